//! Events: the one contract between the runner and whatever reports on a run.

use std::path::PathBuf;

use crate::env::Provider;
use crate::results::TrialStatus;

/// Something that happened during `apply`.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The run begins: how much there is to do.
    Started {
        run_dir: PathBuf,
        trials: usize,
        to_run: usize,
        done: usize,
        builds: usize,
    },
    /// Containers or sandboxes left by dead runs on this machine were removed.
    Reaped {
        provider: Provider,
        count: usize,
    },
    BuildStarted {
        tag: String,
    },
    BuildFinished {
        tag: String,
        outcome: BuildOutcome,
        seconds: f64,
    },
    /// A stage's gate let in `admitted` of `tasks` tasks.
    StageGated {
        stage: String,
        admitted: usize,
        tasks: usize,
    },
    TrialStarted {
        index: usize,
        label: String,
    },
    /// A trial entered a phase (`environment`, `agent`, `verifier`, `collect`, `teardown`).
    TrialPhase {
        index: usize,
        phase: &'static str,
    },
    /// A model-driven agent received its model's reply number `turn`.
    AgentTurn {
        index: usize,
        turn: u32,
    },
    /// A model-driven agent said something.
    AgentText {
        index: usize,
        text: String,
    },
    /// A model-driven agent called a tool.
    ToolCall {
        index: usize,
        name: String,
        input: serde_json::Value,
    },
    /// A tool call's result, as the model sees it.
    ToolResult {
        index: usize,
        name: String,
        output: String,
        is_error: bool,
        /// Images it carried (a computer-use screenshot), relative to the trial's
        /// `agent/` directory.
        images: Vec<String>,
    },
    /// An infrastructure failure that will be retried.
    TrialRetry {
        index: usize,
        label: String,
        error: String,
    },
    /// A trial's container or sandbox could not be removed: it is left running.
    TeardownFailed {
        index: usize,
        label: String,
        provider: Provider,
        /// The container or sandbox id, to remove it by hand.
        id: String,
        error: String,
    },
    TrialFinished {
        index: usize,
        label: String,
        status: TrialStatus,
        reward: Option<f64>,
        error_kind: Option<String>,
    },
    /// Trials that were not started because of a gate or a cancel.
    TrialSkipped {
        index: usize,
        reason: SkipReason,
    },
    /// The first Ctrl-C: running trials stop and clean up.
    Cancelling,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildOutcome {
    Built,
    /// The image with this digest already existed.
    Cached,
    Failed,
    /// Every trial using it was already done.
    NotNeeded,
    /// Its trials run on a provider that builds the image itself (Daytona).
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    Done,
    GatedOut,
    Cancelled,
}
