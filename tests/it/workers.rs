//! Thread-per-core serving (`Server::start_workers`, what `tarnkappe serve` runs): several
//! worker threads share one port through SO_REUSEPORT, each with its own runtime and
//! upstream pool; every request is served and sealed, and shutdown drains them all.

use std::time::Duration;

use tarnkappe::crypto::Keyring;
use tarnkappe::server::{self, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post(addr: std::net::SocketAddr, n: usize) -> String {
    let body = format!(r#"{{"email":"worker-{n}@example.com"}}"#);
    let head = format!(
        "POST /api/customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_port_and_seal_every_request() {
    let dir = tempfile::tempdir().unwrap();
    Keyring::generate()
        .unwrap()
        .write_new(&dir.path().join("keyring.toml"))
        .unwrap();
    let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = tarnkappe::demo::start_backend(backend_listener, dir.path().join("shop.db"))
        .await
        .unwrap();
    // A free port: bind, read, release (the workers then bind it with SO_REUSEPORT).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[listen]\naddress = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"http://{}\"\n[keys]\nkeyring = \"keyring.toml\"\n\
         [[route]]\nname = \"customers\"\npath = \"/api/customers/{{*rest}}\"\n  [[route.field]]\n  path = \"$.email\"\n  category = \"email\"\n  action = \"encrypt\"\n",
        backend.addr
    );
    let path = dir.path().join("tarnkappe.toml");
    std::fs::write(&path, config).unwrap();
    let loaded = tarnkappe::config::load(&path).unwrap();
    let addr = loaded.config.listen;
    let recorder = server::recorder(&loaded).unwrap();
    let server = Server::start_workers(loaded, addr, 3, recorder, Duration::from_secs(5))
        .await
        .unwrap();
    let answers = futures_join(addr, 24).await;
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 201")),
        "{answers:?}"
    );
    let conn = rusqlite::Connection::open(&backend.db_path).unwrap();
    let docs: String = conn
        .query_row("select group_concat(doc) from customers", [], |r| r.get(0))
        .unwrap();
    assert!(!docs.contains("worker-"), "plaintext at rest");
    assert_eq!(docs.matches("tk1.").count(), 24);
    assert!(server.shutdown().await, "drained");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "stopped listening"
    );
}

async fn futures_join(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(post(addr, i))).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
