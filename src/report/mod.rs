//! Reporting on runs for people and for CI: live progress from
//! [`RunEvent`](crate::events::RunEvent)s, the closing table, and `helios report`'s formats
//! (Markdown, CSV, JUnit XML, comparisons). It only consumes events and results; it never
//! drives a run.

pub mod formats;
pub mod progress;
pub mod table;

/// Megabytes as people read them.
pub fn memory(megabytes: u64) -> String {
    match megabytes {
        u64::MAX => "all".to_string(),
        mb if mb >= 1024 => format!("{:.1} GiB", mb as f64 / 1024.0),
        mb => format!("{mb} MiB"),
    }
}
