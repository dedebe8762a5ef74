//! The exit codes of `helios`, as documented in `docs/cli.md`.

/// How a `helios` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Everything was valid / succeeded.
    Success = 0,
    /// The input was invalid or unusable: manifests with errors, paths that do not exist.
    Invalid = 1,
    /// The command line itself was wrong (unknown flag, missing argument).
    Usage = 2,
    /// `plan` succeeded and there are trials to run (0 means nothing to do).
    WorkToDo = 3,
    /// `apply` finished but some trials ended in an error (agent or verifier failure,
    /// timeout, unreadable reward). A reward of 0 is a result, not an error.
    TrialsFailed = 4,
    /// The infrastructure failed: Docker unreachable, an image that would not build, results
    /// that could not be written.
    Infrastructure = 5,
    /// An `[[expect]]` of the pipeline (or `--fail-under`) was not met; the summary says
    /// which and by how much. `apply` and `report` both use it.
    ExpectationFailed = 6,
    /// `apply` stopped starting trials because the run's spend reached `[pipeline]
    /// max_cost_usd`; finished results are kept and `apply` again resumes.
    BudgetReached = 7,
    /// Stopped by Ctrl-C; finished results are kept.
    Interrupted = 130,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status as u8)
    }
}
