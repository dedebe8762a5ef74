//! Reporting on runs for people: live progress from [`RunEvent`](crate::events::RunEvent)s
//! and the closing table. It only consumes events and results; it never drives a run.

pub mod progress;
pub mod table;
