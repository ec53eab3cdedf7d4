//! TLS termination on the public listener: a real rustls handshake with a generated
//! certificate, HTTP/1.1 and HTTP/2 chosen by ALPN, the same encryption at rest behind it,
//! and `X-Forwarded-Proto: https` upstream.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tarnkappe::crypto::Keyring;
use tarnkappe::server::{self, Server};

struct Tls {
    _dir: tempfile::TempDir,
    server: Server,
    backend: tarnkappe::demo::BackendHandle,
    ca: CertificateDer<'static>,
}

async fn start_tls() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("server.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), cert.key_pair.serialize_pem()).unwrap();
    Keyring::generate()
        .unwrap()
        .write_new(&dir.path().join("keyring.toml"))
        .unwrap();
    let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = tarnkappe::demo::start_backend(backend_listener, dir.path().join("shop.db"))
        .await
        .unwrap();
    let config = format!(
        r#"
[listen]
address = "127.0.0.1:0"
tls = {{ cert = "server.crt", key = "server.key" }}
[upstream]
url = "http://{}"
[keys]
keyring = "keyring.toml"
[[route]]
name = "customers"
path = "/api/customers/{{*rest}}"
  [[route.field]]
  path = "$.email"
  category = "email"
  action = "encrypt"
"#,
        backend.addr
    );
    let path = dir.path().join("tarnkappe.toml");
    std::fs::write(&path, config).unwrap();
    let loaded = tarnkappe::config::load(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let recorder = server::recorder(&loaded).unwrap();
    let server = Server::start(loaded, listener, recorder, Duration::from_secs(2)).unwrap();
    Tls {
        ca: cert.cert.der().clone(),
        _dir: dir,
        server,
        backend,
    }
}

async fn connect(t: &Tls, alpn: &[u8]) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(t.ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(t.server.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(alpn),
        "ALPN negotiated"
    );
    stream
}

fn post(path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/json")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn stored(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("select group_concat(doc) from customers", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn tls_http1_encrypts_at_rest_and_says_https_upstream() {
    let t = start_tls().await;
    let io = TokioIo::new(connect(&t, b"http/1.1").await);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(post(
            "/api/customers",
            r#"{"email":"tls-jane@example.com"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let req = Request::get("https://localhost/api/customers/1")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"email":"tls-jane@example.com"}"#);
    assert!(
        !stored(&t.backend.db_path).contains("tls-jane"),
        "plaintext at rest"
    );
    let headers: Vec<(String, String)> = t.backend.last_headers();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-forwarded-proto" && v == "https"),
        "{headers:?}"
    );
}

#[tokio::test]
async fn tls_http2_by_alpn() {
    let t = start_tls().await;
    let io = TokioIo::new(connect(&t, b"h2").await);
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(post("/api/customers", r#"{"email":"h2-tls@example.com"}"#))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert!(
        !stored(&t.backend.db_path).contains("h2-tls"),
        "plaintext at rest"
    );
}

#[tokio::test]
async fn plaintext_http_on_a_tls_port_gets_no_answer() {
    let t = start_tls().await;
    let mut tcp = tokio::net::TcpStream::connect(t.server.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /api/customers/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection closed");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}
