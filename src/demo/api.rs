//! The demo backend's endpoints: routing by method and path, then one small handler each.
//!
//! Bodies are validated only as far as the shop needs (a JSON object for documents) and
//! then stored as the exact bytes received, never re-serialised: the proxy's splicing must
//! survive the round trip byte for byte. Error answers are short fixed problem+json bodies
//! that never echo what the caller sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use sha2::{Digest as _, Sha256};

use super::backend::{request_target, Shared};
use super::store::{Collection, Store};
use crate::text::hex;

/// Every response the backend sends.
pub(super) type Resp = Response<Full<Bytes>>;

/// Largest request body the backend reads (echo, uploads, documents).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Longest sleep `/api/slow` accepts, in milliseconds.
const MAX_SLOW_MS: u64 = 600_000;

const JSON: &str = "application/json";
const OCTET_STREAM: &str = "application/octet-stream";

/// What a request path names.
#[derive(Clone, Copy)]
enum Target {
    Health,
    Echo,
    Headers,
    Slow,
    Uploads,
    Upload(i64),
    Collection(Collection),
    Doc(Collection, i64),
}

impl Target {
    fn parse(path: &str) -> Option<Self> {
        if path == "/healthz" {
            return Some(Self::Health);
        }
        let mut segments = path.strip_prefix("/api/")?.split('/');
        let first = segments.next()?;
        let second = segments.next();
        if segments.next().is_some() {
            return None;
        }
        Some(match (first, second) {
            ("echo", None) => Self::Echo,
            ("headers", None) => Self::Headers,
            ("slow", None) => Self::Slow,
            ("uploads", None) => Self::Uploads,
            ("uploads", Some(id)) => Self::Upload(parse_id(id)?),
            (name, None) => Self::Collection(Collection::from_name(name)?),
            (name, Some(id)) => Self::Doc(Collection::from_name(name)?, parse_id(id)?),
        })
    }

    /// The `Allow` header value for a 405 on this path.
    fn allowed(self) -> &'static str {
        match self {
            Self::Health | Self::Headers | Self::Slow | Self::Upload(_) => "GET",
            Self::Echo | Self::Uploads => "POST",
            Self::Collection(_) => "GET, POST",
            Self::Doc(..) => "GET, PUT, DELETE",
        }
    }
}

/// A positive decimal id; anything else (signs, spaces, overflow) names no document.
fn parse_id(segment: &str) -> Option<i64> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok().filter(|id| *id > 0)
}

/// Routes one request to its handler.
pub(super) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let Some(target) = Target::parse(req.uri().path()) else {
        return problem(StatusCode::NOT_FOUND);
    };
    let store = &shared.store;
    let result = match (target, req.method().as_str()) {
        (Target::Health, "GET") => Ok(respond(StatusCode::OK, "text/plain", "ok")),
        (Target::Echo, "POST") => echo(req).await,
        (Target::Headers, "GET") => Ok(headers(&req)),
        (Target::Slow, "GET") => slow(req.uri().query()).await,
        (Target::Uploads, "POST") => create_upload(store, req).await,
        (Target::Upload(id), "GET") => get_upload(store, id).await,
        (Target::Collection(c), "POST") => create_doc(store, c, req).await,
        (Target::Collection(c), "GET") => list_docs(store, c, req.uri().query()).await,
        (Target::Doc(c, id), "GET") => get_doc(store, c, id).await,
        (Target::Doc(c, id), "PUT") => replace_doc(store, c, id, req).await,
        (Target::Doc(c, id), "DELETE") => delete_doc(store, c, id).await,
        (target, _) => return method_not_allowed(target.allowed()),
    };
    result.unwrap_or_else(problem)
}

async fn echo(req: Request<Incoming>) -> Result<Resp, StatusCode> {
    let content_type = request_content_type(&req);
    let body = read_body(req).await?;
    Ok(respond(StatusCode::OK, content_type, body))
}

fn headers(req: &Request<Incoming>) -> Resp {
    let mut object = serde_json::Map::new();
    for name in req.headers().keys() {
        let joined = req
            .headers()
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        object.insert(name.as_str().to_owned(), joined.into());
    }
    object.insert("_target".to_owned(), request_target(req).into());
    object.insert("_version".to_owned(), version_name(req.version()).into());
    let body = serde_json::Value::Object(object).to_string();
    respond(StatusCode::OK, JSON, body)
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "unknown",
    }
}

async fn slow(query: Option<&str>) -> Result<Resp, StatusCode> {
    let ms = query_param(query, "ms")?
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms <= MAX_SLOW_MS)
        .ok_or(StatusCode::BAD_REQUEST)?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(respond(
        StatusCode::OK,
        JSON,
        format!(r#"{{"slept":{ms}}}"#),
    ))
}

async fn create_upload(store: &Store, req: Request<Incoming>) -> Result<Resp, StatusCode> {
    let content_type = request_content_type(&req);
    let content_type = String::from_utf8_lossy(content_type.as_bytes()).into_owned();
    let body = read_body(req).await?;
    let sha256 = hex(&Sha256::digest(&body));
    let len = body.len();
    let digest = sha256.clone();
    let id = db(store, move |s| {
        s.insert_upload(&content_type, &digest, &body)
    })
    .await?;
    let json = format!(r#"{{"id":{id},"sha256":"{sha256}","len":{len}}}"#);
    Ok(created(&format!("/api/uploads/{id}"), json))
}

async fn get_upload(store: &Store, id: i64) -> Result<Resp, StatusCode> {
    let upload = db(store, move |s| s.get_upload(id))
        .await?
        .ok_or(StatusCode::NOT_FOUND)?;
    let content_type = HeaderValue::try_from(upload.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static(OCTET_STREAM));
    Ok(respond(StatusCode::OK, content_type, upload.body))
}

async fn create_doc(
    store: &Store,
    c: Collection,
    req: Request<Incoming>,
) -> Result<Resp, StatusCode> {
    let (doc, email) = parse_doc(read_body(req).await?)?;
    let id = db(store, move |s| s.insert(c, &doc, email.as_deref())).await?;
    Ok(created(
        &format!("/api/{}/{id}", c.name()),
        format!(r#"{{"id":{id}}}"#),
    ))
}

async fn list_docs(store: &Store, c: Collection, query: Option<&str>) -> Result<Resp, StatusCode> {
    let email = query_param(query, "email")?;
    let docs = db(store, move |s| s.list(c, email.as_deref())).await?;
    let body = format!("[{}]", docs.join(","));
    Ok(respond(StatusCode::OK, JSON, body))
}

async fn get_doc(store: &Store, c: Collection, id: i64) -> Result<Resp, StatusCode> {
    match db(store, move |s| s.get(c, id)).await? {
        Some(doc) => Ok(respond(StatusCode::OK, JSON, doc)),
        None => Err(StatusCode::NOT_FOUND),
    }
}

async fn replace_doc(
    store: &Store,
    c: Collection,
    id: i64,
    req: Request<Incoming>,
) -> Result<Resp, StatusCode> {
    let (doc, email) = parse_doc(read_body(req).await?)?;
    if db(store, move |s| s.replace(c, id, &doc, email.as_deref())).await? {
        Ok(respond(StatusCode::OK, JSON, format!(r#"{{"id":{id}}}"#)))
    } else {
        Err(StatusCode::NOT_FOUND)
    }
}

async fn delete_doc(store: &Store, c: Collection, id: i64) -> Result<Resp, StatusCode> {
    if db(store, move |s| s.delete(c, id)).await? {
        let mut resp = Response::new(Full::default());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Ok(resp)
    } else {
        Err(StatusCode::NOT_FOUND)
    }
}

/// Checks that a body is a JSON object; returns it unchanged as text, plus its top-level
/// `"email"` member if that is a string (the lookup column).
fn parse_doc(body: Bytes) -> Result<(String, Option<String>), StatusCode> {
    let bad = StatusCode::BAD_REQUEST;
    let text = String::from_utf8(body.to_vec()).map_err(|_| bad)?;
    let serde_json::Value::Object(object) = serde_json::from_str(&text).map_err(|_| bad)? else {
        return Err(bad);
    };
    let email = match object.get("email") {
        Some(serde_json::Value::String(email)) => Some(email.clone()),
        _ => None,
    };
    Ok((text, email))
}

/// Reads a whole request body, refusing more than [`MAX_BODY`] bytes with a 413.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, StatusCode> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Err(err) => {
            tracing::debug!(error = %err, "demo backend could not read a request body");
            Err(StatusCode::BAD_REQUEST)
        }
    }
}

/// Runs a blocking store call off the async workers; a failure is a 500.
async fn db<T, F>(store: &Store, call: F) -> Result<T, StatusCode>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> rusqlite::Result<T> + Send + 'static,
{
    let store = store.clone();
    match tokio::task::spawn_blocking(move || call(&store)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "demo backend database call failed");
            Err(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(err) => {
            tracing::warn!(error = %err, "demo backend database task failed");
            Err(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The first value of query parameter `name`, percent-decoded (`+` stays a plus sign).
/// A malformed escape or a value that is not UTF-8 is a 400.
fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, StatusCode> {
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = StatusCode::BAD_REQUEST;
        if percent_decode(key).ok_or(bad)? == name {
            return percent_decode(value).map(Some).ok_or(bad);
        }
    }
    Ok(None)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// The request's Content-Type, or `application/octet-stream` when it has none.
fn request_content_type(req: &Request<Incoming>) -> HeaderValue {
    req.headers()
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(OCTET_STREAM))
}

fn respond(
    status: StatusCode,
    content_type: impl TryInto<HeaderValue>,
    body: impl Into<Bytes>,
) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(value) = content_type.try_into() {
        resp.headers_mut().insert(CONTENT_TYPE, value);
    }
    resp
}

fn created(location: &str, body: String) -> Resp {
    let mut resp = respond(StatusCode::CREATED, JSON, body);
    if let Ok(value) = HeaderValue::try_from(location) {
        resp.headers_mut().insert(LOCATION, value);
    }
    resp
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut resp = problem(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

/// A fixed RFC 9457 body for `status`; it never carries anything from the request.
fn problem(status: StatusCode) -> Resp {
    let title = status.canonical_reason().unwrap_or("Error");
    let code = status.as_u16();
    let body = format!(r#"{{"type":"about:blank","title":"{title}","status":{code}}}"#);
    respond(status, "application/problem+json", body)
}
