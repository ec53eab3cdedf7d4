//! Placeholder replaced by the bench helper.
fn main() {}
