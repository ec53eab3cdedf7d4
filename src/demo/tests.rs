//! Tests of the demo backend over real sockets, with hyper's client over HTTP/1.1 and
//! HTTP/2 (prior knowledge), and of what lands in the SQLite file.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use tokio::net::TcpListener;

use super::{start_backend, BackendHandle};

const PROBLEM_400: &str = r#"{"type":"about:blank","title":"Bad Request","status":400}"#;

/// A document with odd spacing, numbers no f64 holds exactly and escapes: any
/// re-serialisation would change its bytes.
const ODD_DOC: &str = "{ \"name\" :\"J\\u00fcrgen \\ud83d\\ude00\",  \"email\":\"a@example.com\",\n\t\"n\": 12345678901234567890123 ,\"f\":1e2, \"z\": -0.0, \"nested\" : { \"x\" : [1 , 2.50] } }";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Fixture {
    backend: BackendHandle,
    client: HttpClient,
    dir: TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii content type"))
            .unwrap_or("")
    }
}

async fn start_on(dir: TempDir) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = start_backend(listener, dir.path().join("shop.db"))
        .await
        .expect("backend starts");
    let client = Client::builder(TokioExecutor::new()).build_http();
    Fixture {
        backend,
        client,
        dir,
    }
}

async fn start() -> Fixture {
    start_on(tempfile::tempdir().expect("tempdir")).await
}

async fn send_with(
    client: &HttpClient,
    fixture: &Fixture,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{}{target}", fixture.backend.addr));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder.body(Full::new(body.into())).expect("request");
    let resp = client.request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

impl Fixture {
    async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        send_with(&self.client, self, method, target, headers, body).await
    }

    async fn get(&self, target: &str) -> Reply {
        self.send(Method::GET, target, &[], Bytes::new()).await
    }

    async fn post_json(&self, target: &str, doc: &str) -> Reply {
        let json = [("content-type", "application/json")];
        self.send(Method::POST, target, &json, doc.to_owned()).await
    }

    async fn put_json(&self, target: &str, doc: &str) -> Reply {
        let json = [("content-type", "application/json")];
        self.send(Method::PUT, target, &json, doc.to_owned()).await
    }
}

#[tokio::test]
async fn post_then_get_returns_the_exact_bytes() {
    let f = start().await;
    let created = f.post_json("/api/customers", ODD_DOC).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.content_type(), "application/json");
    assert_eq!(created.text(), r#"{"id":1}"#);
    let location = created.headers[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(location, "/api/customers/1");

    let fetched = f.get(&location).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.content_type(), "application/json");
    assert_eq!(fetched.body, ODD_DOC.as_bytes());
}

#[tokio::test]
async fn list_joins_docs_verbatim_and_filters_by_email() {
    let f = start().await;
    assert_eq!(f.get("/api/customers").await.text(), "[]");
    let docs = [
        r#"{"email":"b+tag@example.com", "n":1}"#,
        r#"{"email":"c@example.com","n":2}"#,
        r#"{ "email" : "b+tag@example.com","n":3 }"#,
        r#"{"email":42}"#,
    ];
    for doc in docs {
        assert_eq!(
            f.post_json("/api/customers", doc).await.status,
            StatusCode::CREATED
        );
    }
    f.post_json("/api/subscriptions", r#"{"plan":"gold"}"#)
        .await;

    let all = f.get("/api/customers").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.text(), format!("[{}]", docs.join(",")));

    let by_email = f.get("/api/customers?email=b%2Btag%40example.com").await;
    assert_eq!(by_email.text(), format!("[{},{}]", docs[0], docs[2]));
    let literal_plus = f.get("/api/customers?x=1&email=b+tag@example.com").await;
    assert_eq!(literal_plus.text(), by_email.text());
    assert_eq!(f.get("/api/customers?email=42").await.text(), "[]");
    assert_eq!(f.get("/api/customers?email=nobody").await.text(), "[]");
    let malformed = f.get("/api/customers?email=%zz").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    let subs = f.get("/api/subscriptions").await;
    assert_eq!(subs.text(), r#"[{"plan":"gold"}]"#);
}

#[tokio::test]
async fn put_replaces_and_delete_removes() {
    let f = start().await;
    f.post_json("/api/customers", r#"{"email":"old@example.com"}"#)
        .await;
    let new_doc = r#"{"email":"new@example.com",  "v":2}"#;
    let replaced = f.put_json("/api/customers/1", new_doc).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.text(), r#"{"id":1}"#);
    assert_eq!(f.get("/api/customers/1").await.body, new_doc.as_bytes());
    let old = f.get("/api/customers?email=old%40example.com").await;
    assert_eq!(old.text(), "[]");
    let new = f.get("/api/customers?email=new@example.com").await;
    assert_eq!(new.text(), format!("[{new_doc}]"));

    let absent = f.put_json("/api/customers/7", new_doc).await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);

    let deleted = f.send(Method::DELETE, "/api/customers/1", &[], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_empty());
    assert_eq!(
        f.get("/api/customers/1").await.status,
        StatusCode::NOT_FOUND
    );
    let again = f.send(Method::DELETE, "/api/customers/1", &[], "").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let f = start().await;
    for target in [
        "/api/orders",
        "/api/orders/1",
        "/api/customers/abc",
        "/api/customers/0",
        "/api/customers/+1",
        "/api/customers/1/extra",
        "/api/customers/",
        "/api/customers/99",
        "/api/uploads/5",
        "/",
        "/nothing",
    ] {
        let reply = f.get(target).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{target}");
        assert_eq!(reply.content_type(), "application/problem+json", "{target}");
        assert_eq!(reply.json()["status"], 404, "{target}");
    }
    let patch = f.send(Method::PATCH, "/api/customers/1", &[], "{}").await;
    assert_eq!(patch.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(patch.headers[ALLOW], "GET, PUT, DELETE");
    let delete_all = f.send(Method::DELETE, "/api/customers", &[], "").await;
    assert_eq!(delete_all.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(delete_all.headers[ALLOW], "GET, POST");
    let get_echo = f.get("/api/echo").await;
    assert_eq!(get_echo.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(f.get("/healthz").await.text(), "ok");
}

#[tokio::test]
async fn bad_json_is_a_400_problem_and_nothing_is_stored() {
    let f = start().await;
    let bodies: [&[u8]; 6] = [
        br#"{"secret":"hunter2""#,
        b"[1,2]",
        br#""just a string""#,
        b"",
        b"{\"a\":\"\xff\xfe\"}",
        br#"{"a":1} trailing"#,
    ];
    for body in bodies {
        let headers = [("content-type", "application/json")];
        let reply = f
            .send(Method::POST, "/api/customers", &headers, body.to_vec())
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(reply.text(), PROBLEM_400);
    }
    assert_eq!(f.get("/api/customers").await.text(), "[]");

    f.post_json("/api/customers", r#"{"keep":true}"#).await;
    let bad_put = f.put_json("/api/customers/1", "{nope").await;
    assert_eq!(bad_put.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_put.text(), PROBLEM_400);
    assert_eq!(f.get("/api/customers/1").await.text(), r#"{"keep":true}"#);
}

#[tokio::test]
async fn upload_of_3_mb_round_trips_with_its_sha256() {
    let f = start().await;
    let mut data = vec![0u8; 3 * 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut data);
    let expected_sha = hex_sha256(&data);

    let headers = [("content-type", "image/png")];
    let created = f
        .send(Method::POST, "/api/uploads", &headers, data.clone())
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.headers[LOCATION], "/api/uploads/1");
    let meta = created.json();
    assert_eq!(meta["id"], 1);
    assert_eq!(meta["sha256"], expected_sha.as_str());
    assert_eq!(meta["len"], data.len());

    let fetched = f.get("/api/uploads/1").await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.content_type(), "image/png");
    assert_eq!(fetched.body.len(), data.len());
    assert!(fetched.body == data, "upload bytes differ");

    let untyped = f.send(Method::POST, "/api/uploads", &[], "raw").await;
    assert_eq!(untyped.status, StatusCode::CREATED);
    let fetched = f.get("/api/uploads/2").await;
    assert_eq!(fetched.content_type(), "application/octet-stream");
    assert_eq!(fetched.text(), "raw");
}

#[tokio::test]
async fn stored_data_is_in_the_sqlite_file_on_disk() {
    let f = start().await;
    f.post_json("/api/customers", ODD_DOC).await;
    f.send(Method::POST, "/api/uploads", &[], vec![0u8, 1, 2, 255])
        .await;

    let conn = rusqlite::Connection::open(&f.backend.db_path).expect("open db file");
    let (doc, email): (String, Option<String>) = conn
        .query_row("SELECT doc, email FROM customers WHERE id = 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .expect("customer row");
    assert_eq!(doc, ODD_DOC);
    assert_eq!(email.as_deref(), Some("a@example.com"));
    let blob: Vec<u8> = conn
        .query_row("SELECT body FROM uploads WHERE id = 1", [], |row| {
            row.get(0)
        })
        .expect("upload row");
    assert_eq!(blob, [0u8, 1, 2, 255]);
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("journal mode");
    assert_eq!(journal, "delete");
}

#[tokio::test]
async fn data_survives_a_restart_on_the_same_file() {
    let f = start().await;
    f.post_json("/api/subscriptions", r#"{"plan":"a"}"#).await;
    let Fixture { backend, dir, .. } = f;
    backend.shutdown().await;

    let f = start_on(dir).await;
    assert_eq!(
        f.get("/api/subscriptions/1").await.text(),
        r#"{"plan":"a"}"#
    );
    let created = f.post_json("/api/subscriptions", r#"{"plan":"b"}"#).await;
    assert_eq!(created.text(), r#"{"id":2}"#);
}

#[tokio::test]
async fn request_counter_counts_every_request() {
    let f = start().await;
    assert_eq!(f.backend.requests(), 0);
    assert_eq!(f.backend.last_target(), None);
    assert!(f.backend.last_headers().is_empty());
    f.get("/healthz").await;
    f.get("/nowhere").await;
    f.post_json("/api/customers", "not json").await;
    f.send(Method::PATCH, "/api/echo", &[], "").await;
    assert_eq!(f.backend.requests(), 4);
    assert_eq!(f.backend.last_target().as_deref(), Some("/api/echo"));
}

#[tokio::test]
async fn headers_endpoint_reports_headers_as_received() {
    let f = start().await;
    let target = "/api/headers?q=a%20b&x=1";
    let headers = [
        ("X-Demo", "one"),
        ("x-multi", "1"),
        ("x-multi", "2"),
        ("authorization", "Bearer t"),
    ];
    let reply = f.send(Method::GET, target, &headers, Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let json = reply.json();
    assert_eq!(json["x-demo"], "one");
    assert_eq!(json["x-multi"], "1, 2");
    assert_eq!(json["authorization"], "Bearer t");
    assert_eq!(json["host"], f.backend.addr.to_string());
    assert_eq!(json["_target"], target);
    assert_eq!(json["_version"], "HTTP/1.1");

    let seen = f.backend.last_headers();
    assert!(seen.contains(&("x-demo".to_owned(), "one".to_owned())));
    let multi: Vec<_> = seen.iter().filter(|(name, _)| name == "x-multi").collect();
    assert_eq!(multi.len(), 2);
    assert_eq!(f.backend.last_target().as_deref(), Some(target));
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let f = start().await;
    let h2: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let reply = send_with(&h2, &f, Method::GET, "/api/headers?v=2", &[], Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["_version"], "HTTP/2.0");
    assert_eq!(reply.json()["_target"], "/api/headers?v=2");

    let json = [("content-type", "application/json")];
    let created = send_with(&h2, &f, Method::POST, "/api/customers", &json, ODD_DOC).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let fetched = send_with(&h2, &f, Method::GET, "/api/customers/1", &[], "").await;
    assert_eq!(fetched.body, ODD_DOC.as_bytes());
}

#[tokio::test]
async fn echo_returns_the_body_and_content_type() {
    let f = start().await;
    let mut data = vec![0u8; 5 * 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut data);
    let headers = [("content-type", "text/csv; charset=utf-8")];
    let reply = f
        .send(Method::POST, "/api/echo", &headers, data.clone())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "text/csv; charset=utf-8");
    assert!(reply.body == data, "echoed bytes differ");

    let untyped = f.send(Method::POST, "/api/echo", &[], "x").await;
    assert_eq!(untyped.content_type(), "application/octet-stream");
    assert_eq!(untyped.text(), "x");
    assert_eq!(f.get("/api/customers").await.text(), "[]");
}

#[tokio::test]
async fn slow_sleeps_as_asked() {
    let f = start().await;
    let started = Instant::now();
    let reply = f.get("/api/slow?ms=60").await;
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), r#"{"slept":60}"#);
    assert_eq!(
        f.get("/api/slow?ms=x").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(f.get("/api/slow").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_listening() {
    let f = start().await;
    let addr = f.backend.addr;
    let client = f.client.clone();
    let in_flight = tokio::spawn(async move {
        let req = Request::get(format!("http://{addr}/api/slow?ms=300"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = client.request(req).await.expect("response");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.backend.shutdown().await;
    let (status, body) = in_flight.await.expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], br#"{"slept":300}"#);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
