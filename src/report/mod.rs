//! Reporting on runs for people: live progress from [`RunEvent`](crate::events::RunEvent)s
//! and the closing table. It only consumes events and results; it never drives a run.

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
