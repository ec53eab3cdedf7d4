//! Keep-alive connections to the upstream, one pool per listener thread. A
//! connection is in the pool only while idle: it comes back when the answer it
//! carried has been read to its end and the request was written whole.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::uri::Authority;
use tokio::net::TcpStream;

use super::UpstreamError;

/// Idle connections older than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per listener.
const MAX_IDLE: usize = 256;
/// A read asks the kernel for at least this much room ...
const READ_CHUNK: usize = 16 * 1024;
/// ... and, while reads keep filling it (a large answer), up to this much.
const READ_MAX: usize = 256 * 1024;
/// Below this much free room, the read buffer grows first.
const MIN_ROOM: usize = 2 * 1024;
/// A read buffer larger than this (after a large answer) is not kept while idle.
const KEEP_BUFFER: usize = 64 * 1024;

/// One connection to the upstream and its buffers.
pub(super) struct Conn {
    pub stream: TcpStream,
    /// Bytes read from the backend and not yet used.
    pub rbuf: BytesMut,
    /// Where request heads are written; its allocation is reused.
    pub wbuf: BytesMut,
    /// The pool generation it was opened in.
    pub epoch: u64,
    /// Whether it carried an exchange before this one.
    pub reused: bool,
    /// Room the next read asks for: doubled while reads fill it, up to [`READ_MAX`].
    read_size: usize,
}

impl Conn {
    fn new(stream: TcpStream, epoch: u64) -> Conn {
        Conn {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(1024),
            epoch,
            reused: false,
            read_size: READ_CHUNK,
        }
    }

    /// Reads what the backend has sent into the read buffer: Ready(0) at its end.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < MIN_ROOM {
            self.rbuf.reserve(self.read_size);
        }
        let room = self.rbuf.capacity() - self.rbuf.len();
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.rbuf);
        if let Poll::Ready(Ok(n)) = read {
            self.read_size = if n == room {
                (self.read_size * 2).min(READ_MAX)
            } else {
                READ_CHUNK
            };
        }
        read
    }

    /// Whether an idle connection can carry a request: not when the backend closed
    /// it, or sent something nobody asked for, while it was idle. Costs a system call
    /// only when the socket has signalled something since the last read.
    fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        if self.stream.poll_read_ready(&mut cx).is_pending() {
            return true;
        }
        matches!(self.poll_fill(&mut cx), Poll::Pending)
    }
}

/// One listener's idle connections.
pub(super) struct Pool {
    connect_timeout: Duration,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    /// Whom the connections below talk to; changes only on a reload.
    authority: Option<Authority>,
    /// Bumped when the authority changes, so that connections to the old one that
    /// come back from an exchange are closed instead of pooled.
    epoch: u64,
    /// Most recently used last.
    conns: Vec<(Conn, Instant)>,
}

impl Idle {
    /// Points the pool at `authority`: after a reload that changed it, the old
    /// connections go. Returns whether it changed.
    fn retarget(&mut self, authority: &Authority) -> bool {
        // Compared as written (the config's spelling), not as `Authority::eq` does
        // (case-insensitively): cheaper, and a respelt authority only empties the pool.
        if self.authority.as_ref().map(Authority::as_str) == Some(authority.as_str()) {
            return false;
        }
        self.conns.clear();
        self.authority = Some(authority.clone());
        self.epoch += 1;
        true
    }
}

impl Pool {
    pub fn new(connect_timeout: Duration) -> Pool {
        Pool {
            connect_timeout,
            idle: Mutex::new(Idle::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection to `authority` that is still open, most recently used first.
    pub fn take(&self, authority: &Authority) -> Option<Conn> {
        let mut idle = self.lock();
        if idle.retarget(authority) {
            return None;
        }
        while let Some((mut conn, since)) = idle.conns.pop() {
            if since.elapsed() <= IDLE_TIMEOUT && conn.still_open() {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Takes back a connection whose exchange ended cleanly.
    pub fn put(&self, mut conn: Conn) {
        if !conn.rbuf.is_empty() {
            // The backend sent more than its answer: nothing it says there can be trusted.
            return;
        }
        if conn.rbuf.capacity() > KEEP_BUFFER {
            conn.rbuf = BytesMut::new();
        }
        let mut idle = self.lock();
        if idle.epoch != conn.epoch {
            return;
        }
        if idle
            .conns
            .first()
            .is_some_and(|(_, since)| since.elapsed() > IDLE_TIMEOUT)
        {
            idle.conns.remove(0);
        }
        if idle.conns.len() < MAX_IDLE {
            idle.conns.push((conn, Instant::now()));
        }
    }

    /// Opens a new connection to `authority`.
    pub async fn connect(&self, authority: &Authority) -> Result<Conn, UpstreamError> {
        let epoch = {
            let mut idle = self.lock();
            idle.retarget(authority);
            idle.epoch
        };
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| UpstreamError::Connect)?
            .map_err(|_| UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(Conn::new(stream, epoch))
    }
}
