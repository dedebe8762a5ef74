//! What a finished run comes to, for every front end alike: the pipeline's expectations
//! decide when it has any, an infrastructure failure wins over an agent's, and a cancelled
//! or over-budget run says so. `helios apply` turns it into an exit code, Python into
//! `ApplyResult.verdict`.

use crate::events::{ErrorKind, TrialStatus};
use crate::runner::RunOutcome;
use crate::store::trial::TrialResult;

/// What a run (or a set of trial results) comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every trial ended without an error, or the expectations, which decide, were met.
    Passed,
    /// Some trials ended in an agent's or verifier's error (a reward of 0 is a result, not
    /// an error), and no expectation decides.
    TrialsFailed,
    /// Some trial's infrastructure failed (the engine, a build, a sandbox).
    Infrastructure,
    /// An `[[expect]]` (or `--fail-under`) was not met; the summary says which.
    ExpectationsNotMet,
    /// The run's spend reached `[pipeline] max_cost_usd`: some trials were not started.
    BudgetReached,
    /// The run was cancelled; finished results are kept.
    Cancelled,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::TrialsFailed => "trials_failed",
            Verdict::Infrastructure => "infrastructure",
            Verdict::ExpectationsNotMet => "expectations_not_met",
            Verdict::BudgetReached => "budget_reached",
            Verdict::Cancelled => "cancelled",
        }
    }

    /// What one trial's ending comes to: an error of an infrastructure kind is an
    /// infrastructure failure whatever the front end; another failure is the agent's.
    pub fn of_trial(failed: bool, kind: Option<ErrorKind>) -> Verdict {
        if kind.is_some_and(ErrorKind::is_infrastructure) {
            Verdict::Infrastructure
        } else if failed {
            Verdict::TrialsFailed
        } else {
            Verdict::Passed
        }
    }

    /// What the trials' results come to: an infrastructure failure wins over an agent's,
    /// which wins over success. Cancelled trials are the caller's to report.
    pub fn of_results<'a>(results: impl IntoIterator<Item = &'a TrialResult>) -> Verdict {
        results
            .into_iter()
            .map(|result| {
                // An infrastructure status is one whatever kind a newer helios recorded.
                if result.status == TrialStatus::InfraError {
                    return Verdict::Infrastructure;
                }
                let failed = matches!(result.status, TrialStatus::Failed | TrialStatus::TimedOut);
                Verdict::of_trial(failed, result.error.as_ref().map(|e| e.kind))
            })
            .max_by_key(|verdict| match verdict {
                Verdict::Infrastructure => 2,
                Verdict::TrialsFailed => 1,
                _ => 0,
            })
            .unwrap_or(Verdict::Passed)
    }

    /// What a finished run comes to.
    pub fn of_run(outcome: &RunOutcome) -> Verdict {
        let trials = Verdict::of_results(outcome.results());
        if outcome.cancelled {
            Verdict::Cancelled
        } else if trials == Verdict::Infrastructure {
            Verdict::Infrastructure
        } else if !outcome.summary.expectations_met() {
            Verdict::ExpectationsNotMet
        } else if outcome.over_budget > 0 {
            Verdict::BudgetReached
        } else if !outcome.summary.expectations.is_empty() {
            // Expectations decide: an agent's failures are what they measure.
            Verdict::Passed
        } else {
            trials
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TrialIndex;
    use crate::manifest::pipeline::Expect;
    use crate::runner::TrialOutcome;
    use crate::store::summary::Summary;

    fn failed_trial() -> TrialResult {
        let mut result: TrialResult = serde_json::from_str(include_str!(
            "../../tests/fixtures/result-desktop-failed.json"
        ))
        .unwrap();
        result.error = None;
        result.status = TrialStatus::Failed;
        result.reward = Some(0.0);
        result
    }

    fn outcome(bar: Option<f64>) -> RunOutcome {
        let result = failed_trial();
        let expects: Vec<Expect> = bar
            .map(|threshold| Expect {
                min_mean_reward: Some(threshold),
                ..Default::default()
            })
            .into_iter()
            .collect();
        RunOutcome {
            run_dir: "runs/p".into(),
            summary: Summary::of("p", &[&result]).checked(&expects),
            trials: vec![TrialOutcome {
                index: TrialIndex(0),
                dir: "runs/p/t".into(),
                result,
                ran_now: true,
            }],
            ran: 1,
            already_done: 0,
            gated_out: 0,
            not_started: 0,
            over_budget: 0,
            spent_usd: 0.0,
            cancelled: false,
        }
    }

    #[test]
    fn expectations_decide_over_the_agents_failures_and_a_cancel_over_everything() {
        assert_eq!(Verdict::of_run(&outcome(None)), Verdict::TrialsFailed);
        assert_eq!(Verdict::of_run(&outcome(Some(0.0))), Verdict::Passed);
        assert_eq!(
            Verdict::of_run(&outcome(Some(0.5))),
            Verdict::ExpectationsNotMet
        );
        let mut over = outcome(Some(0.0));
        over.over_budget = 1;
        assert_eq!(Verdict::of_run(&over), Verdict::BudgetReached);
        over.cancelled = true;
        assert_eq!(Verdict::of_run(&over), Verdict::Cancelled);
    }

    #[test]
    fn a_failed_desktop_is_infrastructure_for_every_front_end() {
        let mut result: TrialResult = serde_json::from_str(include_str!(
            "../../tests/fixtures/result-desktop-failed.json"
        ))
        .unwrap();
        assert_eq!(Verdict::of_results([&result]), Verdict::Infrastructure);
        result.error = None;
        result.status = TrialStatus::Failed;
        assert_eq!(Verdict::of_results([&result]), Verdict::TrialsFailed);
        result.status = TrialStatus::Completed;
        assert_eq!(Verdict::of_results([&result]), Verdict::Passed);
        result.status = TrialStatus::InfraError;
        assert_eq!(Verdict::of_results([&result]), Verdict::Infrastructure);
    }
}
