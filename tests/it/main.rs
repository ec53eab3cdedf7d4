//! One integration-test binary: the real proxy, in-process, in front of a real
//! backend that stores to SQLite on disk.

mod support;

mod at_rest;
mod bind;
mod callers;
mod cli;
mod deploy;
mod deterministic;
mod forms;
mod headers;
mod http2;
mod keys;
mod ops;
mod ops_admin;
mod ops_flowlog;
mod ops_http;
mod ops_logs;
mod ops_prometheus;
mod ops_reload;
mod ops_shutdown;
mod passthrough;
mod query;
mod refused;
mod report;
mod swap;
mod tls;
mod upstream_faults;
mod upstream_pool;
mod upstream_wire;
mod workers;
