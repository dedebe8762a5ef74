//! Reporting on runs for people and for CI: live progress from
//! [`RunEvent`](crate::events::RunEvent)s, the closing table, and `helios report`'s formats
//! (Markdown, CSV, JUnit XML, comparisons). It only consumes events and results; it never
//! drives a run.

pub mod formats;
pub mod progress;
pub mod table;
