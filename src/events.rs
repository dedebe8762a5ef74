//! Events: the one typed, serializable contract between the runner and whatever reports on
//! a run (the progress view, the live viewer, the library's stream), and the vocabulary
//! they share: trial indexes, phases, statuses and error kinds.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::env::{EnvError, Provider};
use crate::model::ModelError;

/// A trial's place in its plan (`Plan::trials`), stable for the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrialIndex(pub usize);

impl TrialIndex {
    pub fn get(self) -> usize {
        self.0
    }
}

impl std::fmt::Display for TrialIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The phases of a trial, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The container or sandbox is made and readied (a desktop started).
    Environment,
    Agent,
    Verifier,
    /// `/logs` is copied into the trial's directory.
    Collect,
    Teardown,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Environment => "environment",
            Phase::Agent => "agent",
            Phase::Verifier => "verifier",
            Phase::Collect => "collect",
            Phase::Teardown => "teardown",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    /// The agent finished and the verifier gave a reward.
    Completed,
    /// The agent or the verifier failed (a typed error is recorded).
    Failed,
    /// The agent or the verifier ran out of time.
    TimedOut,
    /// Stopped by the user before it ended.
    Cancelled,
    /// The infrastructure failed (Docker, a build) after every retry.
    InfraError,
}

impl TrialStatus {
    /// Whether the trial has a result worth keeping: re-applying skips it.
    pub fn is_final(self) -> bool {
        !matches!(self, TrialStatus::Cancelled | TrialStatus::InfraError)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Completed => "completed",
            TrialStatus::Failed => "failed",
            TrialStatus::TimedOut => "timed_out",
            TrialStatus::Cancelled => "cancelled",
            TrialStatus::InfraError => "infra_error",
        }
    }
}

impl std::fmt::Display for TrialStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// Why a trial did not end with a clean reward, as `result.json` records it (the
        /// `snake_case` names are the stable, documented strings).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorKind {
            $( $(#[$doc])* $variant, )*
            /// A kind this version of helios does not know (a result written by another).
            #[serde(other)]
            Unknown,
        }

        impl ErrorKind {
            /// Every kind but [`ErrorKind::Unknown`], for documentation and tests.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( ErrorKind::$variant => $name, )*
                    ErrorKind::Unknown => "unknown",
                }
            }
        }
    };
}

error_kinds! {
    // The environment (never the agent's fault).
    /// The provider's engine or API does not answer at all (dockerd not running). The
    /// result's error names the provider; results written by
    /// earlier versions say `docker_unreachable`, read as this.
    #[serde(alias = "docker_unreachable")]
    ProviderUnreachable = "provider_unreachable",
    /// The provider's engine or API failed a call (after its retries) or did not answer
    /// within its deadline. The result's error names the provider; results written by
    /// earlier versions say `docker_error` or `daytona_error`, read as this.
    #[serde(alias = "docker_error", alias = "daytona_error")]
    ProviderError = "provider_error",
    BuildFailed = "build_failed",
    BuildTimeout = "build_timeout",
    /// An installed agent's install failed.
    InstallFailed = "install_failed",
    /// A task's image lacks what an installed agent needs (glibc); found before any trial.
    ImageUnfit = "image_unfit",
    /// Something the provider cannot do (a prebuilt image on Daytona without a registry).
    Unsupported = "unsupported",
    DesktopFailed = "desktop_failed",
    IoError = "io_error",
    /// The provider's credentials are missing or were refused.
    Auth = "auth",
    SandboxNotReady = "sandbox_not_ready",
    /// The task's healthcheck never passed: its environment was not ready.
    Unhealthy = "unhealthy",
    Cancelled = "cancelled",
    // The agent.
    NoSolution = "no_solution",
    /// A step's `workdir/setup.sh` failed; the trial's later steps did not run.
    StepSetupFailed = "step_setup_failed",
    /// An installed agent exited with a status other than 0.
    AgentExit = "agent_exit",
    AgentTimeout = "agent_timeout",
    TurnTimeout = "turn_timeout",
    MaxTurns = "max_turns",
    TokenLimit = "token_limit",
    CostLimit = "cost_limit",
    ToolError = "tool_error",
    SafetyRefused = "safety_refused",
    // The agent's model.
    ModelMissingKey = "model_missing_key",
    ModelAuth = "model_auth",
    ModelUnknown = "model_unknown",
    ContextOverflow = "context_overflow",
    ModelRateLimited = "model_rate_limited",
    ModelServerError = "model_server_error",
    ModelBadRequest = "model_bad_request",
    ModelMalformedReply = "model_malformed_reply",
    ModelTimeout = "model_timeout",
    ModelConnection = "model_connection",
    // The verifier.
    VerifierTimeout = "verifier_timeout",
    RewardMissing = "reward_missing",
    RewardEmpty = "reward_empty",
    RewardInvalid = "reward_invalid",
}

impl ErrorKind {
    /// Whether the machine or a provider failed rather than the agent: such trials are
    /// counted apart from agent failures, and make `helios run` and `helios apply` exit 5.
    /// (`unsupported` is not: a setting the provider cannot honour is the pipeline's.)
    pub fn is_infrastructure(self) -> bool {
        matches!(
            self,
            ErrorKind::ProviderUnreachable
                | ErrorKind::ProviderError
                | ErrorKind::BuildFailed
                | ErrorKind::BuildTimeout
                | ErrorKind::InstallFailed
                | ErrorKind::DesktopFailed
                | ErrorKind::IoError
                | ErrorKind::Auth
                | ErrorKind::SandboxNotReady
                | ErrorKind::Unhealthy
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&EnvError> for ErrorKind {
    fn from(error: &EnvError) -> ErrorKind {
        match error {
            EnvError::Unreachable { .. } => ErrorKind::ProviderUnreachable,
            EnvError::Engine { .. } | EnvError::NoAnswer { .. } => ErrorKind::ProviderError,
            EnvError::BuildFailed { .. } => ErrorKind::BuildFailed,
            EnvError::BuildTimeout { .. } => ErrorKind::BuildTimeout,
            EnvError::InstallFailed { .. } => ErrorKind::InstallFailed,
            EnvError::ImageUnfit(_) => ErrorKind::ImageUnfit,
            EnvError::Unsupported(_) => ErrorKind::Unsupported,
            EnvError::Desktop(_) => ErrorKind::DesktopFailed,
            EnvError::Io { .. } => ErrorKind::IoError,
            EnvError::Auth(_) => ErrorKind::Auth,
            EnvError::NotReady { .. } => ErrorKind::SandboxNotReady,
            EnvError::Cancelled => ErrorKind::Cancelled,
            EnvError::Unhealthy { .. } | EnvError::ServiceFailed { .. } => ErrorKind::Unhealthy,
        }
    }
}

impl From<&ModelError> for ErrorKind {
    fn from(error: &ModelError) -> ErrorKind {
        match error {
            ModelError::MissingKey { .. } => ErrorKind::ModelMissingKey,
            ModelError::Auth { .. } => ErrorKind::ModelAuth,
            ModelError::UnknownModel { .. } => ErrorKind::ModelUnknown,
            ModelError::ContextOverflow { .. } => ErrorKind::ContextOverflow,
            ModelError::RateLimited { .. } => ErrorKind::ModelRateLimited,
            ModelError::Server { .. } => ErrorKind::ModelServerError,
            ModelError::BadRequest { .. } | ModelError::Unsupported { .. } => {
                ErrorKind::ModelBadRequest
            }
            ModelError::Malformed { .. } => ErrorKind::ModelMalformedReply,
            ModelError::Timeout { .. } => ErrorKind::ModelTimeout,
            ModelError::Connection { .. } => ErrorKind::ModelConnection,
        }
    }
}

/// Why a ready trial has not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// `concurrency` trials run (or are made ahead) already.
    Concurrency,
    /// Its declared memory does not fit in what is free.
    Memory,
    /// Its declared CPUs do not fit in what is free (`reserve`, or `--cpus` reached).
    Cpus,
    /// The machine's CPU pressure is over the target, or rose too recently (`adaptive`).
    Pressure,
}

impl WaitReason {
    pub fn describe(self) -> &'static str {
        match self {
            WaitReason::Concurrency => "a place under concurrency",
            WaitReason::Memory => "memory",
            WaitReason::Cpus => "CPUs",
            WaitReason::Pressure => "CPU pressure to fall",
        }
    }
}

/// Something that happened during a run. Its kind (the `event` tag of its JSON) is
/// `<&str>::from(&event)`; [`RunEvent::KINDS`] lists every kind.
#[derive(Debug, Clone, PartialEq, Serialize, strum::IntoStaticStr, strum::VariantNames)]
#[serde(tag = "event", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunEvent {
    /// The run begins: how much there is to do.
    Started {
        run_dir: PathBuf,
        trials: usize,
        to_run: usize,
        done: usize,
        builds: usize,
    },
    /// What the run may use on this machine at once.
    Resources {
        /// `adaptive`, `reserve` or `none` (`[pipeline] resources`).
        policy: &'static str,
        cpus: f64,
        memory_mb: u64,
        builds: usize,
        concurrency: usize,
        /// `adaptive`: the CPU pressure (a share, 0–1) under which more trials start.
        #[serde(skip_serializing_if = "Option::is_none")]
        pressure_target: Option<f64>,
    },
    /// Trials and builds that are ready but wait (sent when the numbers or the reason
    /// change): `reason` says why the first waiting trial waits.
    WaitingForResources {
        trials: usize,
        builds: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<WaitReason>,
    },
    /// A trial asks for more than the whole budget: it runs alone.
    RunsAlone {
        index: TrialIndex,
        label: String,
        cpus: f64,
        memory_mb: u64,
    },
    /// A task's prebuilt image (`docker_image`) could not be pulled: its image is built
    /// from its Dockerfile instead, as `tag`.
    PullFailed {
        image: String,
        tag: String,
        error: String,
    },
    /// Containers or sandboxes left by dead runs on this machine were removed.
    Reaped {
        provider: Provider,
        count: usize,
    },
    /// Removing what dead runs left failed (the run goes on; the next apply tries again).
    ReapFailed {
        provider: Provider,
        error: String,
    },
    /// The engine has answered nothing for `seconds` (a wedged daemon): sent when a call
    /// has waited that long, and again each time as long again passes.
    EngineStalled {
        provider: Provider,
        seconds: f64,
        /// Trials started and not finished: they wait on it.
        trials: usize,
    },
    /// The engine answers again, after `seconds` of silence.
    EngineAnswered {
        provider: Provider,
        seconds: f64,
    },
    /// An installed agent's install begins (its volume is checked, and made if missing).
    InstallStarted {
        agents: Vec<String>,
        volume: String,
    },
    /// An installed agent's volume is ready: `installed` says whether this run made it.
    InstallFinished {
        agents: Vec<String>,
        volume: String,
        installed: bool,
        seconds: f64,
    },
    BuildStarted {
        tag: String,
    },
    BuildFinished {
        tag: String,
        outcome: BuildOutcome,
        seconds: f64,
    },
    /// A failed image build that will be tried again after `wait_seconds`.
    BuildRetry {
        tag: String,
        error: String,
        wait_seconds: f64,
    },
    /// A stage's gate let in `admitted` of `tasks` tasks.
    StageGated {
        stage: String,
        admitted: usize,
        tasks: usize,
    },
    TrialStarted {
        index: TrialIndex,
        label: String,
    },
    /// A trial entered a phase.
    TrialPhase {
        index: TrialIndex,
        phase: Phase,
    },
    /// A multi-step trial began step `number` (from 1) of `of`.
    TrialStep {
        index: TrialIndex,
        label: String,
        step: String,
        number: usize,
        of: usize,
    },
    /// A model-driven agent received its model's reply number `turn`.
    AgentTurn {
        index: TrialIndex,
        turn: u32,
    },
    /// A model-driven agent said something.
    AgentText {
        index: TrialIndex,
        text: String,
    },
    /// A model-driven agent called a tool.
    ToolCall {
        index: TrialIndex,
        name: String,
        input: serde_json::Value,
    },
    /// A tool call's result, as the model sees it.
    ToolResult {
        index: TrialIndex,
        name: String,
        output: String,
        is_error: bool,
        /// Images it carried (a computer-use screenshot), relative to the trial's
        /// `agent/` directory.
        images: Vec<String>,
    },
    /// An infrastructure failure that will be retried after `wait_seconds`.
    TrialRetry {
        index: TrialIndex,
        label: String,
        kind: ErrorKind,
        error: String,
        wait_seconds: f64,
    },
    /// A trial's container or sandbox could not be removed: it is left running.
    TeardownFailed {
        index: TrialIndex,
        label: String,
        provider: Provider,
        /// The container or sandbox id, to remove it by hand.
        id: String,
        error: String,
    },
    /// After a Ctrl-C, the engine did not answer a trial's create within the grace: a
    /// container or sandbox may appear later, labelled, for the next apply to reap.
    CreateAbandoned {
        index: TrialIndex,
        label: String,
        provider: Provider,
    },
    TrialFinished {
        index: TrialIndex,
        label: String,
        status: TrialStatus,
        reward: Option<f64>,
        error_kind: Option<ErrorKind>,
    },
    /// A trial that was not started because it was done, gated out or cancelled.
    TrialSkipped {
        index: TrialIndex,
        reason: SkipReason,
    },
    /// The first Ctrl-C: running trials stop and clean up.
    Cancelling,
    Finished,
}

impl RunEvent {
    /// The name of every kind of event, as the `event` tag of their JSON says it.
    pub const KINDS: &'static [&'static str] = <RunEvent as strum::VariantNames>::VARIANTS;

    /// This event's kind, as the `event` tag of its JSON says it.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildOutcome {
    Built,
    /// The image with this digest already existed.
    Cached,
    Failed,
    /// Stopped by Ctrl-C; the next apply builds it.
    Cancelled,
    /// Every trial using it was already done.
    NotNeeded,
    /// Its trials run on a provider that builds the image itself (Daytona).
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Done,
    GatedOut,
    Cancelled,
    /// The run's spend reached `[pipeline] max_cost_usd` before the trial could start.
    OverBudget,
}

/// The current time as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// What a front end does with a run's events as they happen: progress on a terminal, a
/// line log, the viewer's feed, a stream a program reads (Rust's `RunStream`, Python's),
/// JSON lines. A session feeds every reporter it is given every event, in order.
pub trait Reporter: Send {
    fn event(&mut self, event: &RunEvent);
    /// No event follows.
    fn finish(&mut self) {}
}

/// A channel is a reporter: it passes every event on to whoever holds the receiver.
impl Reporter for tokio::sync::mpsc::UnboundedSender<RunEvent> {
    fn event(&mut self, event: &RunEvent) {
        let _ = self.send(event.clone());
    }
}

/// Feeds every event of `events` to each reporter, in order, until the run's senders are
/// gone; then finishes them.
pub async fn feed(
    mut events: tokio::sync::mpsc::UnboundedReceiver<RunEvent>,
    mut reporters: Vec<Box<dyn Reporter>>,
) {
    while let Some(event) = events.recv().await {
        for reporter in &mut reporters {
            reporter.event(&event);
        }
    }
    for reporter in &mut reporters {
        reporter.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_final_statuses_count_as_done() {
        assert!(TrialStatus::Completed.is_final());
        assert!(TrialStatus::Failed.is_final());
        assert!(TrialStatus::TimedOut.is_final());
        assert!(!TrialStatus::Cancelled.is_final());
        assert!(!TrialStatus::InfraError.is_final());
    }

    #[test]
    fn error_kinds_serialize_as_their_documented_names() {
        for kind in ErrorKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: ErrorKind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *kind);
        }
    }

    #[test]
    fn results_written_with_provider_named_kinds_read_as_the_neutral_ones() {
        for (old, new) in [
            ("docker_unreachable", ErrorKind::ProviderUnreachable),
            ("docker_error", ErrorKind::ProviderError),
            ("daytona_error", ErrorKind::ProviderError),
        ] {
            let kind: ErrorKind = serde_json::from_str(&format!("\"{old}\"")).unwrap();
            assert_eq!(kind, new, "{old}");
        }
    }

    #[test]
    fn an_error_kind_from_a_newer_helios_reads_as_unknown() {
        let kind: ErrorKind = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(kind, ErrorKind::Unknown);
    }

    #[test]
    fn a_failed_desktop_start_is_infrastructure_for_apply_and_run_alike() {
        let kind = ErrorKind::from(&EnvError::Desktop("no Xvfb".into()));
        assert!(kind.is_infrastructure());
        assert!(!ErrorKind::AgentTimeout.is_infrastructure());
        assert!(!ErrorKind::Cancelled.is_infrastructure());
    }

    #[test]
    fn an_events_kind_is_the_tag_of_its_json() {
        let events = [
            RunEvent::Finished,
            RunEvent::AgentTurn {
                index: TrialIndex(0),
                turn: 1,
            },
            RunEvent::WaitingForResources {
                trials: 1,
                builds: 0,
                reason: None,
            },
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["event"], event.kind());
            assert!(RunEvent::KINDS.contains(&event.kind()), "{}", event.kind());
        }
        assert!(RunEvent::KINDS.contains(&"tool_result"));
    }

    #[test]
    fn events_serialize_with_their_name_as_a_tag() {
        let event = RunEvent::TrialPhase {
            index: TrialIndex(3),
            phase: Phase::Verifier,
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"event": "trial_phase", "index": 3, "phase": "verifier"})
        );
    }
}
