//! Output stage of the report: the [`Report`] as JSON, machine-readable, in the schema
//! documented in docs/report.md (`"schema": "tarnkappe-report/1"`).
//!
//! serde_json escapes every string; the report holds no value to begin with.

use super::model::Report;

/// The report as pretty-printed JSON, ending in a newline.
pub fn render(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r)
        .expect("the report serialises (no maps with non-string keys)");
    s.push('\n');
    s
}
