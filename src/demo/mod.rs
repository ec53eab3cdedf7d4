//! The bundled demo shop: the plain backend that `tarnkappe demo` and the integration
//! tests put behind the proxy.
//!
//! It sits *after* the last stage of the flow, where a real shop's API would be. It knows
//! nothing about encryption and must stay that way: it stores exactly the bytes it is sent
//! (ciphertext when the proxy is in front, plaintext when it is not) in one SQLite file,
//! so a test or a curious user can open that file and see what a shop's database would hold.
//!
//! - [`backend`]: the HTTP/1.1 + HTTP/2 server, its handle and request bookkeeping.
//! - `api`: routing and the endpoint handlers.
//! - `store`: the SQLite file (tables `customers`, `subscriptions`, `uploads`).

pub mod backend;

mod api;
mod store;

#[cfg(test)]
mod tests;

pub use backend::{start_backend, BackendHandle};
