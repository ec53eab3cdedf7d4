//! The one body type that flows through the proxy: streamed bodies stay streams,
//! transformed bodies are full buffers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Any error a body can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body's error. A concrete type, not a bare box, so that it converts into a boxed
/// error of any lifetime (which hyper's client asks for).
#[derive(Debug)]
pub struct BodyError(BoxError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl BodyError {
    /// Whether the inner error is of type `E`.
    pub fn is<E: std::error::Error + 'static>(&self) -> bool {
        self.0.is::<E>()
    }
}

/// The proxy's body type.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>;

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// Boxes any body whose error converts.
pub fn boxed<B>(b: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(|e| BodyError(e.into())).boxed_unsync()
}

/// A body made of pieces sent in order (a spliced body: slices of the original and new
/// values), with its exact length known up front.
pub fn chunks(pieces: Vec<Bytes>) -> Body {
    let len = pieces.iter().map(|p| p.len() as u64).sum();
    Chunks {
        pieces: pieces.into(),
        len,
    }
    .map_err(|never| match never {})
    .boxed_unsync()
}

struct Chunks {
    pieces: std::collections::VecDeque<Bytes>,
    len: u64,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.pieces.pop_front();
        if let Some(piece) = &next {
            self.len -= piece.len() as u64;
        }
        std::task::Poll::Ready(next.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}
