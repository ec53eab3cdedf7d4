//! The flow log: one typed, value-free event per exchange, written as JSON Lines by a
//! dedicated thread into a SHA-256 (or HMAC) hash chain that continues across rotated
//! files and restarts; plus `verify`, which names the first break in a set of files.
//!
//! Last stage of the data flow: the proxy's outermost layer builds a [`FlowEvent`] and
//! calls [`FlowLog::emit`], which never blocks. This module must never hold, write or log
//! a field value, a body, a raw path or query, or a key: events are built only from
//! [`ConfigStr`], closed enums, numbers and sanitized ids. See docs/flow-log.md.

mod chain;
mod event;
mod files;
mod outcome;
mod read;
mod retention;
mod sink;
mod syncer;
mod time;
mod verify;
mod worker;
mod writer;

#[cfg(test)]
mod tests;

pub use chain::{FORMAT_VERSION, GENESIS_PREV};
pub use event::{
    ClientAddr, ClientAddrMode, ConfigStr, Direction, FieldEvent, FlowEvent, MethodName, RequestId,
};
pub use files::files_in_order;
pub use outcome::{Outcome, RefuseReason, UpstreamFailure};
pub use read::{LoggedEvent, LoggedField};
pub use verify::{verify, BreakKind, ChainBreak, ChainSummary, VerifyReport};
pub use writer::{FlowLog, FlowLogConfig, FlowLogError, OnFailure};
