//! The data-flow report: being written.
