//! What kind of body a request or response carries, and the capped, timed read of a
//! body that a rule route must buffer (Content-Length checked before reading, the
//! stream limited while reading).

use bytes::Bytes;
use http::{header, HeaderMap};
use http_body_util::{BodyExt, Limited};

use crate::body::Body;
use crate::config::BodyLimits;
use crate::error::ProxyError;
use crate::timer::Wheel;

/// The body kinds a rule route distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` or any `+json` type, UTF-8.
    Json,
    /// `application/x-www-form-urlencoded`, UTF-8.
    Form,
    /// Compressed or otherwise encoded: we do not decode.
    Encoded,
    /// Anything else, or no type at all.
    Other,
}

impl BodyKind {
    /// Classifies by Content-Encoding and Content-Type.
    pub fn of(h: &HeaderMap) -> BodyKind {
        let encoded = h.get_all(header::CONTENT_ENCODING).iter().any(|v| {
            v.to_str().map_or(true, |v| {
                v.split(',')
                    .any(|e| !e.trim().eq_ignore_ascii_case("identity"))
            })
        });
        if encoded {
            return BodyKind::Encoded;
        }
        let Some(ct) = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return BodyKind::Other;
        };
        let mut parts = ct.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let v = v.trim().trim_matches('"');
            if k.trim().eq_ignore_ascii_case("charset")
                && !v.eq_ignore_ascii_case("utf-8")
                && !v.eq_ignore_ascii_case("utf8")
            {
                return BodyKind::Other;
            }
        }
        if media == "application/json"
            || (media.starts_with("application/") && media.ends_with("+json"))
        {
            BodyKind::Json
        } else if media == "application/x-www-form-urlencoded" {
            BodyKind::Form
        } else {
            BodyKind::Other
        }
    }
}

/// The declared Content-Length, if there is one and it is a number.
pub fn declared_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads a whole body of at most `limits.max_body` bytes within `limits.body_timeout`
/// (kept on `wheel`).
pub async fn read_capped(
    wheel: &Wheel,
    body: Body,
    h: &HeaderMap,
    limits: &BodyLimits,
) -> Result<Bytes, ProxyError> {
    let max = limits.max_body;
    if declared_length(h).is_some_and(|n| n > max) {
        return Err(ProxyError::TooLarge);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match wheel
        .within(limits.body_timeout, Limited::new(body, limit).collect())
        .await
    {
        None => Err(ProxyError::BodyTimeout),
        Some(Ok(collected)) => Ok(collected.to_bytes()),
        Some(Err(e)) if is_length_limit(&*e) => Err(ProxyError::TooLarge),
        Some(Err(_)) => Err(ProxyError::BodyRead),
    }
}

/// Limited wraps the inner body's errors; the limit error is its own.
fn is_length_limit(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.is::<http_body_util::LengthLimitError>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn kind(ct: &str, ce: Option<&str>) -> BodyKind {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        if let Some(ce) = ce {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_str(ce).unwrap());
        }
        BodyKind::of(&h)
    }

    #[test]
    fn classifies_media_types() {
        assert_eq!(kind("application/json", None), BodyKind::Json);
        assert_eq!(
            kind("Application/JSON; charset=UTF-8", None),
            BodyKind::Json
        );
        assert_eq!(kind("application/merge-patch+json", None), BodyKind::Json);
        assert_eq!(
            kind("application/json; charset=latin1", None),
            BodyKind::Other
        );
        assert_eq!(
            kind("application/x-www-form-urlencoded", None),
            BodyKind::Form
        );
        assert_eq!(kind("text/plain", None), BodyKind::Other);
        assert_eq!(kind("application/json", Some("gzip")), BodyKind::Encoded);
        assert_eq!(kind("application/json", Some("identity")), BodyKind::Json);
    }
}
