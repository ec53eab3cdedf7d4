//! tarnkappe: a transparent encrypting HTTP reverse proxy.
//!
//! The data flow, in the order the modules are listed:
//!
//! 1. `config` reads TOML, validates it and compiles every JSONPath once.
//! 2. `listener` accepts HTTP/1.1 and HTTP/2 and hands each request to the proxy stack.
//! 3. `route` matches method and normalised path to a compiled route.
//! 4. `transform` reads a capped body and applies the route's field rules
//!    (encrypt, redact, mask, hash, drop) by splicing new values into the original bytes.
//! 5. `crypto` seals and opens field values (envelope format, keyring).
//! 6. `upstream` forwards to the backend with its own HTTP/1.1 client over pooled
//!    keep-alive connections, in the task of the exchange.
//! 7. On the way back, `transform` opens every ciphertext of ours in a JSON response.
//! 8. `flowlog` writes one value-free event per exchange; `metrics` counts it.
//!
//! Nothing in this crate ever logs, returns or panics with a field value.

pub mod admin;
pub mod body;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod drain;
pub mod error;
pub mod flowlog;
pub mod listener;
pub mod metrics;
pub mod proxy;
pub mod report;
pub mod route;
pub mod server;
pub mod text;
pub mod timer;
pub mod tls;
pub mod transform;
pub mod upstream;
