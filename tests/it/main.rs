//! One integration-test binary: the real proxy, in-process, in front of a real
//! backend that stores to SQLite on disk.

mod support;
