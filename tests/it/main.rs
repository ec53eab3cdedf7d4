//! One integration-test binary: the real proxy, in-process, in front of a real
//! backend that stores to SQLite on disk.

mod support;

mod at_rest;
mod cli;
mod deterministic;
mod forms;
mod headers;
mod http2;
mod keys;
mod passthrough;
mod refused;
mod swap;
mod upstream_faults;
