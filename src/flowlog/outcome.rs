//! The closed set of outcomes a flow event can record, each written as a short snake_case
//! name plus an optional reason from a fixed list.
//!
//! Part of the flow event. It must never carry an error text: error messages can quote
//! request data (serde does), so only these `&'static str` names reach the log.

/// What happened to the exchange. Written as `"outcome"` plus `"reason"` (or `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The request went upstream and the answer went back to the client.
    Forwarded,
    /// The proxy answered itself instead of forwarding the request or the response.
    Refused(RefuseReason),
    /// The upstream could not be reached or did not answer properly.
    UpstreamFailed(UpstreamFailure),
    /// The client went away before the answer was complete.
    ClientAborted,
}

impl Outcome {
    /// The `"outcome"` member.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Refused(_) => "refused",
            Outcome::UpstreamFailed(_) => "upstream_failed",
            Outcome::ClientAborted => "client_aborted",
        }
    }

    /// The `"reason"` member, if the outcome has one.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Outcome::Refused(r) => Some(r.as_str()),
            Outcome::UpstreamFailed(f) => Some(f.as_str()),
            Outcome::Forwarded | Outcome::ClientAborted => None,
        }
    }
}

/// Why the proxy refused (see FAIL-CLOSED.md for the status each maps to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// No route matches method and path (404/405).
    NoRoute,
    /// The path is ambiguous (encoded slashes, dot segments, ...) (400).
    AmbiguousPath,
    /// Conflicting or unparsable framing headers (400).
    AmbiguousFraming,
    /// Body is not well-formed JSON or form data, or has invalid UTF-8, BOM, trailing data (400).
    Malformed,
    /// A JSON object repeats a member name (400).
    DuplicateMember,
    /// Nesting deeper than the limit (400).
    TooDeep,
    /// Body, decoded body or node count over the limit (413).
    TooLarge,
    /// Media type, charset or content-encoding the route does not accept (415).
    UnsupportedMedia,
    /// A value already is our ciphertext, marker or mask (422).
    AlreadyProtected,
    /// Headers or body arrived too slowly (408).
    ReadTimeout,
    /// Encryption or randomness failed (500).
    CryptoFailure,
    /// An internal error or a caught panic (500).
    Internal,
    /// Keys are not loaded (503).
    KeysUnavailable,
    /// The flow log is not writable and the config says to refuse (503).
    FlowLogUnavailable,
    /// Too many requests in flight (503).
    Overloaded,
    /// A response value did not open and the route says `on_open_failure = "fail"` (502).
    OpenFailed,
    /// The caller is not allowed on this route (401/403).
    Forbidden,
}

impl RefuseReason {
    /// Every reason, for documentation and exhaustive tests.
    pub const ALL: [RefuseReason; 17] = [
        RefuseReason::NoRoute,
        RefuseReason::AmbiguousPath,
        RefuseReason::AmbiguousFraming,
        RefuseReason::Malformed,
        RefuseReason::DuplicateMember,
        RefuseReason::TooDeep,
        RefuseReason::TooLarge,
        RefuseReason::UnsupportedMedia,
        RefuseReason::AlreadyProtected,
        RefuseReason::ReadTimeout,
        RefuseReason::CryptoFailure,
        RefuseReason::Internal,
        RefuseReason::KeysUnavailable,
        RefuseReason::FlowLogUnavailable,
        RefuseReason::Overloaded,
        RefuseReason::OpenFailed,
        RefuseReason::Forbidden,
    ];

    /// The `"reason"` member.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefuseReason::NoRoute => "no_route",
            RefuseReason::AmbiguousPath => "ambiguous_path",
            RefuseReason::AmbiguousFraming => "ambiguous_framing",
            RefuseReason::Malformed => "malformed",
            RefuseReason::DuplicateMember => "duplicate_member",
            RefuseReason::TooDeep => "too_deep",
            RefuseReason::TooLarge => "too_large",
            RefuseReason::UnsupportedMedia => "unsupported_media",
            RefuseReason::AlreadyProtected => "already_protected",
            RefuseReason::ReadTimeout => "read_timeout",
            RefuseReason::CryptoFailure => "crypto_failure",
            RefuseReason::Internal => "internal",
            RefuseReason::KeysUnavailable => "keys_unavailable",
            RefuseReason::FlowLogUnavailable => "flow_log_unavailable",
            RefuseReason::Overloaded => "overloaded",
            RefuseReason::OpenFailed => "open_failed",
            RefuseReason::Forbidden => "forbidden",
        }
    }
}

/// How the upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamFailure {
    /// Connection refused or not established (502).
    Connect,
    /// Connection reset or closed mid-exchange (502).
    Reset,
    /// No answer in time (504).
    Timeout,
    /// The answer was not valid HTTP or broke our limits (502).
    InvalidResponse,
}

impl UpstreamFailure {
    /// Every failure, for documentation and exhaustive tests.
    pub const ALL: [UpstreamFailure; 4] = [
        UpstreamFailure::Connect,
        UpstreamFailure::Reset,
        UpstreamFailure::Timeout,
        UpstreamFailure::InvalidResponse,
    ];

    /// The `"reason"` member.
    pub fn as_str(&self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Reset => "reset",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::InvalidResponse => "invalid_response",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_snake_case() {
        let names: Vec<&str> = RefuseReason::ALL
            .iter()
            .map(RefuseReason::as_str)
            .chain(UpstreamFailure::ALL.iter().map(UpstreamFailure::as_str))
            .collect();
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for n in names {
            assert!(
                n.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
                "{n}"
            );
        }
        assert_eq!(
            Outcome::Refused(RefuseReason::TooLarge).reason(),
            Some("too_large")
        );
        assert_eq!(Outcome::Forwarded.reason(), None);
    }
}
