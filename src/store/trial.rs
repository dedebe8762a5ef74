//! `result.json`: everything about one trial's outcome, in a versioned serde type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::env::{EnvError, Provider};
pub use crate::events::now_rfc3339;
use crate::events::{ErrorKind, Phase, TrialStatus};

/// The format version of `result.json`.
pub const RESULT_FORMAT: u32 = 1;

/// A typed error, as recorded: a stable `kind`, a message for people, and for a provider's
/// failure (`provider_error`, `provider_unreachable`) the provider that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
}

impl ErrorInfo {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            kind,
            message: message.into(),
            provider: None,
        }
    }

    /// An environment's error, with the provider when the provider itself failed.
    pub fn from_env(error: &EnvError) -> ErrorInfo {
        ErrorInfo {
            kind: ErrorKind::from(error),
            message: error.to_string(),
            provider: error.provider(),
        }
    }
}

/// When a phase of the trial started and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    pub phase: Phase,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub seconds: f64,
}

/// An infrastructure failure that was retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetriedFailure {
    pub at: String,
    pub error: ErrorInfo,
}

/// The content of a trial's `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub format: u32,
    /// The first 16 hex characters of the trial's id (its directory ends with them).
    pub trial_id: String,
    /// The whole SHA-256 id.
    pub full_id: String,
    pub task: String,
    pub stage: String,
    pub agent: String,
    pub model: Option<String>,
    pub params: BTreeMap<String, Value>,
    pub attempt: u32,
    pub status: TrialStatus,
    /// Every reward the verification wrote, by name.
    pub rewards: BTreeMap<String, f64>,
    /// The primary reward (`rewards.reward`, or the only one), or null.
    pub reward: Option<f64>,
    pub error: Option<ErrorInfo>,
    /// Per phase: environment, agent, verifier, collect, teardown.
    pub timings: Vec<PhaseTiming>,
    pub agent_exit_code: Option<i64>,
    pub verifier_exit_code: Option<i64>,
    /// Tokens a model-driven agent used, over the whole trial.
    pub usage: Option<crate::model::Usage>,
    /// What those tokens cost in US dollars (null when the model's price is unknown).
    pub cost_usd: Option<f64>,
    pub image: String,
    /// Where the trial ran.
    #[serde(default)]
    pub provider: Provider,
    /// The id of the trial's Docker container, or of its Daytona sandbox.
    pub container: Option<String>,
    /// Infrastructure failures before the attempt that produced this result.
    pub retried: Vec<RetriedFailure>,
    /// Containers or sandboxes that could not be removed (they may still run: remove them
    /// by the id in the message, or with `helios gc`).
    #[serde(default)]
    pub teardown_errors: Vec<ErrorInfo>,
    /// What collecting `/logs` left out at the cap (absent when nothing was cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_cut: Option<LogsCut>,
    /// Whether the reward may be the agent's and not the tests' (see `tampering`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tampering_suspected: bool,
    /// Why: reward files the agent left before the verifier started, or that changed
    /// after it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tampering: Vec<String>,
    /// How the task's collect hooks ran (`[[verifier.collect]]`), after the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collect: Vec<HookRun>,
    /// A multi-step task's steps as they ran, in order; the trial's rewards are made from
    /// theirs by the task's `multi_step_reward_strategy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepResult>,
    /// What of the task the agent did without: MCP servers it cannot take (absent when
    /// nothing was left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// For a result of `helios regrade`: the trial directory it regraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regraded_from: Option<std::path::PathBuf>,
    /// For a task whose network changes between phases: the network of each (`public` or
    /// `no-network`), by phase (`environment`, `agent`, `verifier`; `step/phase` in a
    /// multi-step task).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network: BTreeMap<String, String>,
    pub helios_version: String,
}

/// How a collect hook ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRun {
    pub command: String,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
}

/// One entry of `artifacts/manifest.json`: what became of a declared artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// The path in the environment, as declared.
    pub source: String,
    /// Where it is, relative to the trial's (or the step's) directory:
    /// `artifacts/app/out.txt`.
    pub destination: String,
    /// `file` or `directory`; absent when the source was not there.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `ok`, `empty` (a directory with nothing in it), or `failed` (not there, or not
    /// copied).
    pub status: String,
    pub service: Option<String>,
}

/// One step of a multi-step trial, in `result.json`; its files are under
/// `steps/<name>/` of the trial's directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub rewards: BTreeMap<String, f64>,
    pub reward: Option<f64>,
    /// Why the step did not end well: its setup, agent or verifier.
    pub error: Option<ErrorInfo>,
    pub agent_exit_code: Option<i64>,
    pub verifier_exit_code: Option<i64>,
    pub timings: Vec<PhaseTiming>,
    /// With a `min_reward`: whether the step reached it (the next steps ran only if so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collect: Vec<HookRun>,
    /// The tokens its agent's model calls took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::model::Usage>,
}

/// `logs_cut` in `result.json`: the trial's `/logs` held more than the cap on what is
/// collected, so some files were cut short or left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsCut {
    /// The cap, in bytes of files.
    pub cap_bytes: u64,
    /// Files cut short or left out.
    pub files: u64,
    /// Bytes not collected.
    pub bytes: u64,
    /// The first of those files, relative to the trial directory.
    pub paths: Vec<String>,
}

impl LogsCut {
    /// What `stats` say was cut, or `None` when nothing was.
    pub fn of(stats: &crate::env::tarball::UnpackStats) -> Option<LogsCut> {
        (stats.cut_files > 0).then(|| LogsCut {
            cap_bytes: stats.cap,
            files: stats.cut_files,
            bytes: stats.cut_bytes,
            paths: stats.cut_paths.clone(),
        })
    }
}

impl TrialResult {
    /// Records how the trial failed (a later failure replaces an earlier one).
    pub fn fail(&mut self, status: TrialStatus, kind: ErrorKind, message: impl Into<String>) {
        self.status = status;
        self.error = Some(ErrorInfo::new(kind, message));
    }

    /// Passed means a primary reward of at least 1.
    pub fn passed(&self) -> bool {
        self.reward.is_some_and(|r| r >= 1.0)
    }
}
