//! One error type for the request path, one exhaustive mapping to a status, and the
//! short fixed RFC 9457 problem+json body a client gets. Bodies name a reason and the
//! request id, never any input.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::route::path::PathRefusal;
use crate::transform::request::TransformError;
use crate::transform::scan::ScanError;

/// Everything that stops an exchange before a normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The request path is ambiguous or invalid.
    #[error("request path refused")]
    BadPath(PathRefusal),
    /// The body could not be read or transformed.
    #[error("body refused: {}", .0.reason())]
    Body(TransformError),
    /// Body (declared or read) over `max_body`.
    #[error("body over the limit")]
    TooLarge,
    /// A media type a rule route does not parse.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A content encoding a rule route does not decode.
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    /// The body did not arrive in time.
    #[error("body read timed out")]
    BodyTimeout,
    /// The connection broke while the body was read.
    #[error("body read failed")]
    BodyRead,
    /// The flow log cannot record the exchange.
    #[error("flow log unavailable")]
    LogUnavailable,
    /// Too many requests in flight.
    #[error("overloaded")]
    Overloaded,
    /// The upstream refused, reset or answered invalidly.
    #[error("upstream failed")]
    UpstreamFailed,
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// A ciphertext in the response could not be opened on a `fail` route.
    #[error("response could not be opened")]
    OpenFailed,
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::Body(TransformError::Scan(e)) => match e {
                ScanError::TooManyNodes => StatusCode::PAYLOAD_TOO_LARGE,
                ScanError::OurCiphertext(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ScanError::Malformed(_)
                | ScanError::MalformedForm(_)
                | ScanError::InvalidUtf8
                | ScanError::Bom
                | ScanError::LoneSurrogate(_)
                | ScanError::DuplicateMember(_)
                | ScanError::TooDeep
                | ScanError::TrailingData(_) => StatusCode::BAD_REQUEST,
            },
            ProxyError::Body(TransformError::Crypto(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Body(TransformError::MissingRecordKey) => StatusCode::BAD_REQUEST,
            ProxyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::UnsupportedMediaType | ProxyError::UnsupportedEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ProxyError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BodyRead => StatusCode::BAD_REQUEST,
            ProxyError::LogUnavailable | ProxyError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamFailed | ProxyError::OpenFailed => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// A short machine reason: metrics label, flow event, problem type.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::BadPath(PathRefusal::NotAbsolute) => "path_not_absolute",
            ProxyError::BadPath(PathRefusal::BadEscape) => "path_bad_escape",
            ProxyError::BadPath(PathRefusal::AmbiguousEscape) => "path_ambiguous_escape",
            ProxyError::BadPath(PathRefusal::BadCharacter) => "path_bad_character",
            ProxyError::Body(e) => e.reason(),
            ProxyError::TooLarge => "body_too_large",
            ProxyError::UnsupportedMediaType => "unsupported_media_type",
            ProxyError::UnsupportedEncoding => "unsupported_content_encoding",
            ProxyError::BodyTimeout => "body_timeout",
            ProxyError::BodyRead => "body_read_failed",
            ProxyError::LogUnavailable => "flow_log_unavailable",
            ProxyError::Overloaded => "overloaded",
            ProxyError::UpstreamFailed => "upstream_failed",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::OpenFailed => "open_failed",
        }
    }

    /// The problem+json answer.
    pub fn to_response(&self, request_id: &str) -> Response<Bytes> {
        let status = self.status();
        let body = serde_json::json!({
            "type": format!("urn:tarnkappe:problem:{}", self.reason()),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "request_id": request_id,
        });
        let mut resp = Response::new(Bytes::from(body.to_string()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
