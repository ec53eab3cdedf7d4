//! Reading flow-log lines back: the owned form of one written event, for `verify` and for
//! the report.
//!
//! It must never be used to write events (the writer's typed [`FlowEvent`] is the only way
//! in), and never echo a line it could not parse: a damaged line may hold anything.
//!
//! [`FlowEvent`]: super::FlowEvent

use serde::Deserialize;

use super::event::Direction;

/// One event as found in a file (all members of docs/flow-log.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedEvent {
    /// Record format version (1).
    pub v: u32,
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Per-instance sequence number, from 1.
    pub seq: u64,
    /// The writing proxy instance.
    pub instance: String,
    /// Request id.
    pub request_id: String,
    /// Route name, if one matched.
    pub route: Option<String>,
    /// Standard method or `OTHER`.
    pub method: String,
    /// Route path template.
    pub path_template: Option<String>,
    /// Caller role.
    pub caller: Option<String>,
    /// Reduced client address.
    pub client: Option<String>,
    /// Upstream name.
    pub upstream: Option<String>,
    /// Status sent to the client.
    pub status: u16,
    /// `forwarded`, `refused`, `upstream_failed`, `client_aborted`.
    pub outcome: String,
    /// Reason for `refused` and `upstream_failed`.
    pub reason: Option<String>,
    /// Per field rule.
    pub fields: Vec<LoggedField>,
    /// Response values that did not open.
    pub open_failures: u32,
    /// Detectors that found uncovered sensitive data.
    pub uncovered: Vec<String>,
    /// Whole exchange, µs.
    pub duration_us: u64,
    /// Upstream wait, µs.
    pub upstream_us: Option<u64>,
    /// Body transformation, µs.
    pub transform_us: u64,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// `hash` is an HMAC.
    #[serde(default)]
    pub mac: bool,
    /// Hash of the previous event of this instance.
    pub prev: String,
    /// This event's hash.
    pub hash: String,
}

/// One field rule's entry in a [`LoggedEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedField {
    /// Rule label.
    pub label: String,
    /// Data category.
    pub category: String,
    /// Action applied.
    pub action: String,
    /// Request or response.
    pub direction: Direction,
    /// Values touched.
    pub count: u32,
}

impl LoggedEvent {
    /// Parses one line (without its newline). The error says only that the line is not an
    /// event, never what it contained.
    pub fn parse(line: &[u8]) -> Option<LoggedEvent> {
        serde_json::from_slice(line).ok()
    }
}
