//! The request path, top to bottom: request id -> normalised path -> route -> (rule
//! routes) capped body read and transform -> upstream -> (rule routes) response opening
//! -> one exchange record for the flow log and metrics, errors included.
//!
//! Fail closed: whatever a rule route cannot parse is refused, never forwarded as is.
//! Never logs a body, a field value or a header value.

mod body_read;
mod exchange;

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Uri, Version};

pub use exchange::{Exchange, FieldCount, Recorder};

use crate::body::{self, Body, BoxError};
use crate::config::{Config, Loaded, CALLER_HEADER};
use crate::crypto::Keyring;
use crate::error::ProxyError;
use crate::flowlog::RequestId;
use crate::route::{path, Conceal, OpenFailure, Route};
use crate::timer::{HyperTimer, Wheel};
use crate::transform::{form, request, response};
use crate::upstream::{self, Seen, UpstreamClient};
use body_read::{read_capped, BodyKind};

/// One loaded config and keyring; requests finish on the snapshot they started with.
pub struct Snapshot {
    /// The config.
    pub config: Config,
    /// The keyring.
    pub keyring: Keyring,
}

/// What the listener knows of the connection a request came on.
#[derive(Clone, Copy)]
pub struct Conn {
    /// The client's socket address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The proxy's shared state.
pub struct Proxy {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Bumped after each [`Proxy::replace`], so that workers notice a new snapshot
    /// with one load of a value that is almost never written.
    generation: AtomicU64,
    recorder: Recorder,
    /// Exchanges in flight; over `limits.max_in_flight`, 503 early rather than
    /// timeouts or OOM.
    in_flight: AtomicUsize,
}

/// One listener's (one worker thread's) handle on the proxy: its own upstream pool and
/// its own hold on the current snapshot and routes, so that the exchanges of one
/// worker touch no reference count that another worker's exchanges also touch.
pub struct Worker {
    proxy: Arc<Proxy>,
    client: UpstreamClient,
    /// The listener's deadlines: upstream answers, rule routes' body reads, and (through
    /// [`Worker::timer`]) request heads.
    wheel: Arc<Wheel>,
    pinned: Mutex<Arc<Pinned>>,
}

/// A snapshot as one worker holds it.
struct Pinned {
    generation: u64,
    snap: Arc<Snapshot>,
    /// This worker's copies of the snapshot's routes, in router order.
    routes: Vec<Arc<Route>>,
}

impl Pinned {
    fn new(generation: u64, snap: Arc<Snapshot>) -> Pinned {
        let routes = snap
            .config
            .router
            .routes()
            .iter()
            .map(|r| Arc::new(Route::clone(r)))
            .collect();
        Pinned {
            generation,
            snap,
            routes,
        }
    }
}

impl Proxy {
    /// A proxy serving `loaded`, recording exchanges with `recorder`.
    pub fn new(loaded: Loaded, recorder: Recorder) -> Proxy {
        let snapshot = Snapshot {
            config: loaded.config,
            keyring: loaded.keyring,
        };
        Proxy {
            snapshot: RwLock::new(Arc::new(snapshot)),
            generation: AtomicU64::new(0),
            recorder,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A handle for one listener, with its own upstream pool and timer wheel (whose task
    /// runs on the current runtime).
    pub fn worker(self: &Arc<Self>) -> Arc<Worker> {
        let generation = self.generation.load(Ordering::Acquire);
        let snap = self.snapshot();
        Arc::new(Worker {
            proxy: self.clone(),
            client: upstream::client(snap.config.upstream.connect_timeout),
            wheel: Wheel::start(),
            pinned: Mutex::new(Arc::new(Pinned::new(generation, snap))),
        })
    }

    /// Swaps in a new config and keyring atomically; in-flight requests keep theirs.
    pub fn replace(&self, loaded: Loaded) {
        let next = Arc::new(Snapshot {
            config: loaded.config,
            keyring: loaded.keyring,
        });
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = next;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The recorder (flow log and metrics).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

/// One exchange counted in flight; counted out when dropped, however the exchange ends.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// How many were in flight before this one.
    before: usize,
}

impl<'a> InFlight<'a> {
    fn take(count: &'a AtomicUsize) -> InFlight<'a> {
        let before = count.fetch_add(1, Ordering::Relaxed);
        InFlight { count, before }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    /// This listener's timer, for hyper.
    pub fn timer(&self) -> HyperTimer {
        HyperTimer(self.wheel.clone())
    }

    /// Handles one exchange; always answers, and always records.
    pub fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
        conn: Conn,
    ) -> impl Future<Output = Response<Body>> + Send
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // Not boxed: hyper keeps one place per connection for the exchange in flight.
        self.handle_boxed(req.map(body::boxed), conn)
    }

    /// This worker's hold on the current snapshot, renewed after a reload.
    fn pinned(&self) -> Arc<Pinned> {
        let generation = self.proxy.generation.load(Ordering::Acquire);
        let mut pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if pinned.generation != generation {
            *pinned = Arc::new(Pinned::new(generation, self.proxy.snapshot()));
        }
        pinned.clone()
    }

    async fn handle_boxed(self: Arc<Self>, req: Request<Body>, conn: Conn) -> Response<Body> {
        let started = Instant::now();
        let pinned = self.pinned();
        let snap = &pinned.snap;
        let seen = Seen::of(req.headers());
        // A safe id the client sent travels on as it came; otherwise a fresh one.
        let kept = seen
            .has(Seen::REQUEST_ID)
            .then(|| req.headers().get(&upstream::X_REQUEST_ID))
            .flatten()
            .and_then(|v| {
                let id = RequestId::sanitize(v.to_str().ok()?)?;
                Some((id, v.clone()))
            });
        let (request_id, id_header) = kept.unwrap_or_else(|| {
            let id = RequestId::generate();
            let v = id_header(&id);
            (id, v)
        });
        let mut ex = Exchange::new(request_id, req.method().clone(), conn.peer, started);
        ex.tls = conn.tls;
        if seen.has(Seen::CALLER) {
            ex.caller = req
                .headers()
                .get(CALLER_HEADER)
                .and_then(|token| snap.config.callers.identify(token.as_bytes()))
                .cloned();
        }
        let slot = InFlight::take(&self.proxy.in_flight);
        let outcome = if slot.before < snap.config.limits.max_in_flight {
            self.exchange(&pinned, req, seen, id_header.clone(), &mut ex)
                .await
        } else {
            Err(ProxyError::Overloaded)
        };
        drop(slot);
        let resp = match outcome {
            Ok(resp) => resp,
            Err(e) => {
                ex.error = Some(e);
                e.to_response(ex.request_id.as_str()).map(body::full)
            }
        };
        let mut resp = resp;
        resp.headers_mut().insert(upstream::X_REQUEST_ID, id_header);
        ex.status = resp.status().as_u16();
        self.proxy.recorder.record(ex, &snap.config);
        resp
    }

    async fn exchange(
        &self,
        pinned: &Pinned,
        req: Request<Body>,
        seen: Seen,
        id_header: HeaderValue,
        ex: &mut Exchange,
    ) -> Result<Response<Body>, ProxyError> {
        // In two steps, so that what only the preparation needs takes no room in this
        // future while it waits on the upstream (hyper moves the future of an exchange).
        let (req, fwd, route) = self.prepare(pinned, req, seen, id_header, ex).await?;
        let snap = &*pinned.snap;
        let config = &snap.config;
        let upstream_started = Instant::now();
        let answer = self
            .wheel
            .within(
                config.upstream.timeout,
                self.client.send(&config.upstream.authority, req, &fwd),
            )
            .await;
        ex.upstream_time = Some(upstream_started.elapsed());
        let resp = match answer {
            None => return Err(ProxyError::UpstreamTimeout),
            Some(Err(_)) => return Err(ProxyError::UpstreamFailed),
            Some(Ok(resp)) => resp,
        };
        // The upstream client has taken the answer's hop-by-hop headers out.
        let (parts, body) = resp.into_parts();
        match route.filter(|r| r.has_rules()) {
            Some(route) => Box::pin(self.open_response(snap, &route, parts, body, ex)).await,
            None => Ok(Response::from_parts(parts, body)),
        }
    }

    /// Routes the request and makes the one that goes upstream: path and query as
    /// matched (and transformed), body transformed, hop-by-hop headers out, forwarding
    /// headers for the head; with the route, for the answer.
    async fn prepare(
        &self,
        pinned: &Pinned,
        req: Request<Body>,
        seen: Seen,
        id_header: HeaderValue,
        ex: &mut Exchange,
    ) -> Result<(Request<Body>, upstream::Forwarding, Option<Arc<Route>>), ProxyError> {
        let snap = &*pinned.snap;
        let config = &snap.config;
        let (mut parts, body) = req.into_parts();
        // The client's target; the upstream gets a new one.
        let target = std::mem::take(&mut parts.uri);
        // Match on one spelling of the path, and send upstream exactly that spelling.
        let normalized = path::normalize(target.path()).map_err(ProxyError::BadPath)?;
        let route = config
            .router
            .find(&parts.method, &normalized)
            .map(|i| pinned.routes[i].clone());
        ex.route = route.clone();
        let rules = route.as_ref().filter(|r| r.has_rules());
        // A rule route refuses while its exchanges cannot be recorded.
        if rules.is_some() && self.proxy.recorder.must_refuse() {
            return Err(ProxyError::LogUnavailable);
        }
        let query = match rules {
            Some(route) => self
                .transform_query(snap, route, target.query(), ex)?
                .map(Cow::Owned),
            None => target.query().map(Cow::Borrowed),
        };
        let body = match rules.filter(|r| !r.rules.fields.is_empty()) {
            // Boxed, as the response opening below: routes without rules then carry
            // a small future.
            Some(route) => {
                match Box::pin(self.transform_request(snap, route, &parts, body, ex)).await? {
                    Rewritten::Kept(body) => body,
                    Rewritten::New { chunks, len } => {
                        // The splice changed the length: say the new one.
                        parts
                            .headers
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                        body::chunks(chunks)
                    }
                }
            }
            None => body,
        };
        // The client's host: Host on HTTP/1.1, the URI authority on HTTP/2. Read it
        // before the URI is rewritten to the upstream's.
        let host = parts
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| authority_header(&target));
        parts.uri = forward_uri(
            &config.upstream.base_path,
            &target,
            &normalized,
            query.as_deref(),
        )?;
        upstream::strip_hop_by_hop(&mut parts.headers, seen);
        if seen.has(Seen::CALLER) {
            // A caller's token is for us alone.
            parts.headers.remove(CALLER_HEADER);
        }
        let fwd = upstream::forwarding(
            &mut parts.headers,
            seen,
            ex.peer,
            ex.tls,
            host,
            id_header,
            config.upstream.host.clone(),
        );
        if rules.is_some() {
            // Ask for an answer we can open: we never decompress.
            parts.headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        parts.version = Version::HTTP_11;
        Ok((Request::from_parts(parts, body), fwd, route))
    }

    /// Applies the route's query rules (a query string is form-encoded).
    fn transform_query(
        &self,
        snap: &Snapshot,
        route: &Route,
        query: Option<&str>,
        ex: &mut Exchange,
    ) -> Result<Option<String>, ProxyError> {
        let Some(query) = query else { return Ok(None) };
        if route.query_rules.fields.is_empty() {
            return Ok(Some(query.to_owned()));
        }
        let started = Instant::now();
        let out = form::transform_form(query.as_bytes(), &route.query_rules, &snap.keyring)
            .map_err(ProxyError::Body)?;
        ex.transform_time += started.elapsed();
        ex.add_query_counts(&out.counts);
        ex.uncovered.extend(out.uncovered);
        // Only URL-safe bytes are written: the form encoder escapes everything else.
        Ok(Some(String::from_utf8_lossy(&out.body).into_owned()))
    }

    async fn transform_request(
        &self,
        snap: &Snapshot,
        route: &Route,
        parts: &http::request::Parts,
        body: Body,
        ex: &mut Exchange,
    ) -> Result<Rewritten, ProxyError> {
        let limits = &snap.config.limits;
        let kind = BodyKind::of(&parts.headers);
        if http_body::Body::is_end_stream(&body) {
            return Ok(Rewritten::Kept(body));
        }
        match kind {
            BodyKind::Encoded => return Err(ProxyError::UnsupportedEncoding),
            BodyKind::Other if route.pass_other_types => return Ok(Rewritten::Kept(body)),
            BodyKind::Other => return Err(ProxyError::UnsupportedMediaType),
            BodyKind::Json | BodyKind::Form => {}
        }
        let bytes = read_capped(&self.wheel, body, &parts.headers, limits).await?;
        ex.bytes_in = bytes.len() as u64;
        let started = Instant::now();
        let out = match kind {
            BodyKind::Form => form::transform_form(&bytes, &route.rules, &snap.keyring).map(|t| {
                request::Chunked {
                    len: t.body.len(),
                    chunks: vec![Bytes::from(t.body)],
                    counts: t.counts,
                    uncovered: t.uncovered,
                }
            }),
            _ => request::transform_json_chunked(&bytes, &route.rules, &snap.keyring, limits.json),
        }
        .map_err(ProxyError::Body)?;
        ex.transform_time += started.elapsed();
        ex.add_request_counts(&out.counts);
        ex.uncovered.extend(out.uncovered);
        ex.uncovered.sort_unstable();
        ex.uncovered.dedup();
        Ok(Rewritten::New {
            chunks: out.chunks,
            len: out.len,
        })
    }

    async fn open_response(
        &self,
        snap: &Snapshot,
        route: &Route,
        mut parts: http::response::Parts,
        body: Body,
        ex: &mut Exchange,
    ) -> Result<Response<Body>, ProxyError> {
        let limits = &snap.config.limits;
        let bodiless = ex.method == http::Method::HEAD
            || parts.status == http::StatusCode::NO_CONTENT
            || parts.status == http::StatusCode::NOT_MODIFIED;
        if BodyKind::of(&parts.headers) != BodyKind::Json || bodiless {
            // Not JSON, or compressed despite our request: it passes as it is (it cannot
            // hold plaintext of ours), and is counted.
            ex.response_passed_unopened = BodyKind::of(&parts.headers) == BodyKind::Encoded;
            return Ok(Response::from_parts(parts, body));
        }
        if !route.reveals_to(ex.caller.as_ref()) && route.conceal == Conceal::Ciphertext {
            // This caller gets what the backend stores: ciphertext, never plaintext.
            parts
                .headers
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(Response::from_parts(parts, body));
        }
        if body_read::declared_length(&parts.headers).is_some_and(|n| n > limits.max_body) {
            // Too large to open: it passes as it is, ciphertext and all, and is counted.
            ex.response_passed_unopened = true;
            return Ok(Response::from_parts(parts, body));
        }
        let bytes = read_capped(&self.wheel, body, &parts.headers, limits)
            .await
            .map_err(|_| ProxyError::UpstreamFailed)?;
        let started = Instant::now();
        if !route.reveals_to(ex.caller.as_ref()) {
            let concealed = response::conceal_json(&bytes, limits.json);
            ex.transform_time += started.elapsed();
            let body = match concealed {
                Ok((Some(new), n)) => {
                    ex.concealed = n;
                    Bytes::from(new)
                }
                Ok((None, _)) => bytes,
                Err(_) => {
                    ex.response_passed_unopened = true;
                    bytes
                }
            };
            return Ok(finish_response(parts, body, ex));
        }
        let opened = response::open_json(&bytes, &snap.config.labels, &snap.keyring, limits.json);
        ex.transform_time += started.elapsed();
        let body = match opened {
            Ok(o) => {
                ex.open_failures = o.failures.len() as u32;
                ex.open_failure_reasons = o.failures;
                ex.response_opened = o.opened;
                if ex.open_failures > 0 && route.on_open_failure == OpenFailure::Fail {
                    return Err(ProxyError::OpenFailed);
                }
                o.body.map(Bytes::from).unwrap_or(bytes)
            }
            Err(_) => {
                ex.response_passed_unopened = true;
                bytes
            }
        };
        Ok(finish_response(parts, body, ex))
    }
}

/// A buffered answer: its length said anew, and kept out of shared caches.
fn finish_response(
    mut parts: http::response::Parts,
    body: Bytes,
    ex: &mut Exchange,
) -> Response<Body> {
    ex.bytes_out = body.len() as u64;
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Response::from_parts(parts, body::full(body))
}

/// A request body after the transform stage.
enum Rewritten {
    /// Forwarded as it came (nothing to read).
    Kept(Body),
    /// Buffered and rewritten: pieces in order (slices of the original and new values).
    New {
        /// The pieces.
        chunks: Vec<Bytes>,
        /// Their total length.
        len: usize,
    },
}

/// The origin-form target the upstream gets: its base path, the normalised path, the
/// (transformed) query.
/// The upstream's target: the base path, the matched path and the (possibly rewritten)
/// query. With no base path and the same path and query as the client's, that is the
/// client's own path and query, shared rather than written out and parsed again.
fn forward_uri(
    base: &str,
    target: &Uri,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, ProxyError> {
    let unchanged = |pq: &&http::uri::PathAndQuery| pq.path() == path && pq.query() == query;
    if let Some(pq) = target
        .path_and_query()
        .filter(unchanged)
        .filter(|_| base.is_empty())
    {
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = Some(pq.clone());
        if let Ok(uri) = Uri::from_parts(parts) {
            return Ok(uri);
        }
    }
    upstream_uri(base, path, query)
}

fn upstream_uri(base: &str, path: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
    let mut pq = String::with_capacity(base.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    pq.push_str(base);
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    Uri::try_from(pq).map_err(|_| ProxyError::BadPath(path::PathRefusal::BadCharacter))
}

/// A generated request id as a header value. The values are cut from one buffer per
/// thread, so that making one, and the copy that goes upstream, allocate nothing.
fn id_header(id: &RequestId) -> HeaderValue {
    thread_local! {
        static IDS: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::default();
    }
    let bytes = IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        if ids.capacity() < RequestId::MAX_LEN {
            *ids = bytes::BytesMut::with_capacity(64 * RequestId::MAX_LEN);
        }
        ids.extend_from_slice(id.as_str().as_bytes());
        ids.split().freeze()
    });
    // A generated id is hex digits.
    HeaderValue::from_maybe_shared(bytes).unwrap_or(HeaderValue::from_static("-"))
}

fn authority_header(uri: &Uri) -> Option<HeaderValue> {
    uri.authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(base: &str, target: &str, path: &str, query: Option<&str>) -> String {
        let target: Uri = target.parse().unwrap();
        forward_uri(base, &target, path, query).unwrap().to_string()
    }

    #[test]
    fn the_upstream_target_is_origin_form_with_the_matched_path() {
        // Unchanged: the client's own path and query (absolute form becomes origin form).
        assert_eq!(forwarded("", "/a/b?x=1", "/a/b", Some("x=1")), "/a/b?x=1");
        assert_eq!(forwarded("", "http://h:1/a?", "/a", Some("")), "/a?");
        // Absolute form without a path: the normal path "/" is written out.
        assert_eq!(forwarded("", "http://h:1", "/", None), "/");
        // A base path, a normalised path or a rewritten query: written out.
        assert_eq!(
            forwarded("/base", "/a?x=1", "/a", Some("x=1")),
            "/base/a?x=1"
        );
        assert_eq!(forwarded("", "/a/b/../c?q", "/a/c", Some("q")), "/a/c?q");
        assert_eq!(
            forwarded("", "/a?e=plain", "/a", Some("e=tk1.x")),
            "/a?e=tk1.x"
        );
        assert_eq!(forwarded("", "/a?e=1", "/a", None), "/a");
    }
}
