//! The one place where errors are printed and where outcomes and errors become exit codes,
//! so that `helios run` and `helios apply` agree: an error prints with its causes, and a
//! trial's error kind decides between an infrastructure failure and an agent's.

use std::error::Error;

use super::ExitStatus;
use crate::api::{Classify, ErrorClass, RunnerError, Verdict};
use crate::diagnostic::render;
use crate::events::ErrorKind;
use crate::runner::RunError;
use crate::store::trial::TrialResult;

/// `error: WHAT` and a `caused by:` line for each cause that says something new (a
/// message that already quotes its cause is not repeated).
pub(super) fn chain(error: &(dyn Error + 'static)) -> String {
    format!("error: {}", crate::api::error_chain(error))
}

/// Prints `error` with its causes on standard error.
pub(super) fn print(error: &(dyn Error + 'static)) {
    eprintln!("{}", chain(error));
}

/// What one trial's ending comes to (as [`Verdict::of_trial`] says).
pub(super) fn status_of_trial(failed: bool, kind: Option<ErrorKind>) -> ExitStatus {
    exit_status(Verdict::of_trial(failed, kind))
}

/// What the trials' results come to (as [`Verdict::of_results`] says). Cancelled trials
/// are the caller's to report.
pub(super) fn status_of<'a>(results: impl IntoIterator<Item = &'a TrialResult>) -> ExitStatus {
    exit_status(Verdict::of_results(results))
}

/// The exit code of what a run or its trials came to.
pub(super) fn exit_status(verdict: Verdict) -> ExitStatus {
    match verdict {
        Verdict::Passed => ExitStatus::Success,
        Verdict::TrialsFailed => ExitStatus::TrialsFailed,
        Verdict::Infrastructure => ExitStatus::Infrastructure,
        Verdict::ExpectationsNotMet => ExitStatus::ExpectationFailed,
        Verdict::BudgetReached => ExitStatus::BudgetReached,
        Verdict::Cancelled => ExitStatus::Interrupted,
    }
}

/// Prints why a run could not start or go on, and its exit code.
pub(super) fn run_error(error: &RunError) -> ExitStatus {
    print(error);
    match error {
        RunError::Preflight(_) | RunError::Credentials(_) => ExitStatus::Invalid,
        RunError::Env(_) | RunError::Write { .. } => ExitStatus::Infrastructure,
    }
}

/// Prints why a one-task run could not start or finish, and its exit code: past the task's
/// diagnostics and the run's own errors, a problem of helios or this machine (by its
/// [`ErrorClass`]) is an infrastructure failure, any other one invalid input.
pub(super) fn runner_error(error: &RunnerError, styled: bool) -> ExitStatus {
    match error {
        RunnerError::InvalidTask(e) => {
            eprint!("{}", render::human(&e.report, styled));
            ExitStatus::Invalid
        }
        RunnerError::Run(e) => run_error(e),
        _ => {
            print(error);
            match error.class() {
                ErrorClass::Helios => ExitStatus::Infrastructure,
                ErrorClass::Task | ErrorClass::Environment | ErrorClass::Agent => {
                    ExitStatus::Invalid
                }
            }
        }
    }
}

/// A refused or failed merge: a refusal (runs of different plans, a shard twice, a trial
/// doubled) is invalid input; only a write that failed is the machine's.
pub(super) fn merge_error(error: &crate::plan::merge::MergeError) -> ExitStatus {
    print(error);
    match error {
        crate::plan::merge::MergeError::Write { .. } => ExitStatus::Infrastructure,
        _ => ExitStatus::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvError;
    use crate::events::TrialStatus;

    #[test]
    fn an_error_prints_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let error = RunError::Write {
            path: "runs/p/summary.json".into(),
            source: io,
        };
        assert_eq!(
            chain(&error),
            "error: cannot write `runs/p/summary.json`\n  caused by: disk full"
        );
        let quoted = EnvError::io("unpacking `/logs`", std::io::Error::other("bad tar"));
        assert_eq!(chain(&quoted), "error: unpacking `/logs`: bad tar");
    }

    #[test]
    fn run_and_apply_call_a_failed_desktop_infrastructure() {
        let mut result: TrialResult = serde_json::from_str(include_str!(
            "../../tests/fixtures/result-desktop-failed.json"
        ))
        .unwrap();
        assert_eq!(status_of([&result]), ExitStatus::Infrastructure);
        result.error = None;
        result.status = TrialStatus::Failed;
        assert_eq!(status_of([&result]), ExitStatus::TrialsFailed);
        result.status = TrialStatus::Completed;
        assert_eq!(status_of([&result]), ExitStatus::Success);
    }
}
