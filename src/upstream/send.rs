//! One exchange on an upstream connection, in the task of the client's exchange (no
//! task of its own, no channel in between): the request written with its body
//! streamed as the client sends it, the answer head read, and the answer body handed
//! on as a stream that gives the connection back to the pool when it ends.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body as _, Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::pool::{Conn, Pool};
use super::wire::{self, Chunked, Head, In, Out, Step};
use crate::body::Body;

/// Pieces queued for one vectored write at most.
const MAX_QUEUED: usize = 16;
/// Interim (1xx) answers skipped before the backend counts as broken.
const MAX_INTERIM: usize = 8;

/// Why a request could not be written.
#[derive(Debug)]
pub(super) enum SendError {
    /// The client's body broke off.
    Body,
    /// The body did not match its declared length.
    Length,
    /// The connection failed or closed.
    Write,
}

/// How far the request got.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// Written whole.
    Whole,
    /// The backend answered before the whole request was written; the connection
    /// cannot carry another exchange.
    Early,
}

/// A request on its way out: the head and body pieces not yet written.
pub(super) struct Outgoing {
    body: Body,
    framing: Out,
    /// In order; the first may be partly written.
    queue: VecDeque<Bytes>,
    /// Body bytes taken from the client so far.
    taken: u64,
    body_done: bool,
    /// Whether a byte of it reached the socket: until then it may go on another
    /// connection.
    pub started: bool,
}

impl Outgoing {
    pub fn new(head: Bytes, body: Body, framing: Out) -> Outgoing {
        let mut queue = VecDeque::with_capacity(4);
        queue.push_back(head);
        Outgoing {
            body,
            framing,
            queue,
            taken: 0,
            body_done: false,
            started: false,
        }
    }

    /// Writes the request, taking body pieces as the client sends them, until it is
    /// written whole or the backend answers early.
    pub fn poll_send(
        &mut self,
        conn: &mut Conn,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Sent, SendError>> {
        loop {
            while !self.body_done && self.queue.len() + 3 <= MAX_QUEUED {
                match Pin::new(&mut self.body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        // Trailers are not sent on: data only.
                        if let Ok(data) = frame.into_data() {
                            self.push(data)?;
                        }
                    }
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(SendError::Body)),
                    Poll::Ready(None) => self.finish()?,
                    Poll::Pending => break,
                }
            }
            if self.queue.is_empty() {
                if self.body_done {
                    return Poll::Ready(Ok(Sent::Whole));
                }
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_QUEUED];
                let count = self.queue.len().min(MAX_QUEUED);
                for (slice, piece) in slices.iter_mut().zip(&self.queue) {
                    *slice = IoSlice::new(piece);
                }
                match Pin::new(&mut conn.stream).poll_write_vectored(cx, &slices[..count]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        return Poll::Ready(Err(SendError::Write))
                    }
                    Poll::Ready(Ok(written)) => {
                        self.started = true;
                        self.advance(written);
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            // Waiting for the client's body or for room in the socket: the backend
            // may answer before it has read everything (a refusal, say). Interim
            // answers (`100 Continue`) are dropped and the request goes on.
            if self.started {
                loop {
                    match conn.poll_fill(cx) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            return Poll::Ready(Err(SendError::Write))
                        }
                        Poll::Ready(Ok(_)) => loop {
                            match wire::early(&conn.rbuf) {
                                wire::Early::Interim(len) => conn.rbuf.advance(len),
                                // The rest of the head comes with a later read.
                                wire::Early::Partial => break,
                                wire::Early::Final => return Poll::Ready(Ok(Sent::Early)),
                            }
                        },
                        Poll::Pending => break,
                    }
                }
            }
            return Poll::Pending;
        }
    }

    /// Queues a piece of the body, framed.
    fn push(&mut self, data: Bytes) -> Result<(), SendError> {
        if data.is_empty() {
            return Ok(());
        }
        self.taken += data.len() as u64;
        match self.framing {
            Out::Length(n) if self.taken <= n => self.queue.push_back(data),
            Out::Chunked => {
                self.queue.push_back(wire::chunk_size_line(data.len()));
                self.queue.push_back(data);
                self.queue.push_back(Bytes::from_static(b"\r\n"));
            }
            Out::Length(_) | Out::Nothing => return Err(SendError::Length),
        }
        Ok(())
    }

    /// The body has ended.
    fn finish(&mut self) -> Result<(), SendError> {
        self.body_done = true;
        match self.framing {
            Out::Length(n) if self.taken != n => Err(SendError::Length),
            Out::Chunked => {
                self.queue.push_back(Bytes::from_static(b"0\r\n\r\n"));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Drops what a write took.
    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.queue.pop_front();
        }
    }
}

/// Reads the answer head, skipping interim answers.
pub(super) async fn read_head(conn: &mut Conn, to_head: bool) -> Result<Head, wire::Malformed> {
    let mut interim = 0;
    loop {
        if !conn.rbuf.is_empty() {
            match wire::parse_head(&mut conn.rbuf, to_head)? {
                Some(head) if head.status.is_informational() => {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(wire::Malformed::Head);
                    }
                    continue;
                }
                Some(head) => return Ok(head),
                None => {}
            }
        }
        match std::future::poll_fn(|cx| conn.poll_fill(cx)).await {
            Ok(0) | Err(_) => return Err(wire::Malformed::Closed),
            Ok(_) => {}
        }
    }
}

/// The answer body once its head has been read. A body already in the buffer whole
/// (the usual small answer) is taken at once and the connection goes back to the
/// pool before the answer leaves.
pub(super) fn answer_body(mut conn: Conn, head: &Head, sent: Sent, pool: &Arc<Pool>) -> Body {
    let reusable = head.keep_alive && sent == Sent::Whole;
    let left = match head.framing {
        In::Empty => {
            if reusable {
                pool.put(conn);
            }
            return crate::body::empty();
        }
        In::Length(n) if conn.rbuf.len() as u64 >= n => {
            let bytes = conn.rbuf.split_to(n as usize).freeze();
            if reusable {
                pool.put(conn);
            }
            return crate::body::full(bytes);
        }
        In::Length(n) => Left::Length(n),
        In::Chunked => Left::Chunked(Chunked::default()),
        In::Close => Left::Close,
    };
    crate::body::boxed(Answer {
        conn: Some(conn),
        left,
        reusable,
        pool: pool.clone(),
    })
}

/// What is left of an answer body.
enum Left {
    Length(u64),
    Chunked(Chunked),
    Close,
}

/// An answer body read from its connection as the client takes it.
struct Answer {
    /// None once the body has ended (or failed).
    conn: Option<Conn>,
    left: Left,
    reusable: bool,
    pool: Arc<Pool>,
}

impl Answer {
    /// The body has been read whole: the connection goes back when it can.
    fn end(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reusable {
                self.pool.put(conn);
            }
        }
    }

    fn ended(&self) -> bool {
        match &self.left {
            Left::Length(n) => *n == 0,
            Left::Chunked(c) => c.done(),
            Left::Close => self.conn.is_none(),
        }
    }
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let step = match &mut this.left {
                Left::Length(0) => Step::Done,
                Left::Length(n) if !conn.rbuf.is_empty() => {
                    let take = conn
                        .rbuf
                        .len()
                        .min(usize::try_from(*n).unwrap_or(usize::MAX));
                    *n -= take as u64;
                    Step::Data(conn.rbuf.split_to(take).freeze())
                }
                Left::Chunked(chunked) => match chunked.decode(&mut conn.rbuf) {
                    Ok(step) => step,
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            e,
                        ))));
                    }
                },
                Left::Close if !conn.rbuf.is_empty() => Step::Data(conn.rbuf.split().freeze()),
                _ => Step::More,
            };
            match step {
                Step::Data(data) => {
                    if this.ended() {
                        this.end();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::Done => {
                    this.end();
                    return Poll::Ready(None);
                }
                Step::More => match conn.poll_fill(cx) {
                    Poll::Ready(Ok(0)) if matches!(this.left, Left::Close) => {
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(0)) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())));
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended()
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Left::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
