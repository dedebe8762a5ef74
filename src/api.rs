//! The library face for scripts and experiments: [`AgentRunner`] runs one task the way
//! `helios apply` runs a trial (it builds a one-trial pipeline and hands it to the same
//! runner), and returns a [`RunResult`]; [`AgentRunner::stream`] yields [`RunEvent`]s as
//! they happen.
//!
//! ```no_run
//! # async fn demo() -> Result<(), helios::RunnerError> {
//! use helios::{AgentRunner, RunConfig};
//!
//! let result = AgentRunner::new("tasks/create-hello-file")
//!     .model("scripted")
//!     .script("pipelines/scripts/hello-file.yaml")
//!     .config(RunConfig { max_turns: 5, ..RunConfig::default() })
//!     .run()
//!     .await?;
//! println!("success: {}, reward: {:?}", result.success, result.reward);
//! for step in &result.trajectory {
//!     println!("{} {} -> {}", step.tool_name, step.tool_input, step.tool_output);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::agent::trajectory::{ToolStep, Trajectory};
use crate::agent::{AgentKind, AgentLimits};
use crate::env::{Credentials, DaytonaSettings, Provider};
use crate::events::RunEvent;
use crate::events::TrialStatus;
use crate::manifest::pipeline::{
    AgentSpec, CommandAgent, ComputerUseAgent, EnvironmentDefaults, InstalledAgent,
    PipelineManifest, PipelineSection, Stage, TaskSource, TerminalAgent,
};
use crate::manifest::{ManifestError, Pipeline, load_task};
use crate::model::{ModelParams, ModelSpec};
use crate::plan::PlanError;
use crate::runner::{ApplyOptions, RunError};
use crate::store::RunStore;
use crate::store::trial::{ErrorInfo, TrialResult};

mod adhoc;
pub mod error_class;
pub mod plan_doc;
mod prompt;
pub mod session;
pub mod verdict;
pub use adhoc::{AdHoc, AdHocError, AdHocSource};
pub use error_class::{Classify, ErrorClass};
pub use prompt::{Agent, DEFAULT_AGENT_MODEL, Message, Role, Runner};
pub use session::{LockProblem, OpenSession, PlanOptions, Session, SessionError};
pub use verdict::Verdict;

/// How one run behaves. The defaults are those of the reference `RunConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Most model turns (10).
    pub max_turns: u32,
    /// Most seconds for the whole run (300).
    pub max_time: f64,
    /// Most seconds for one turn (60).
    pub timeout_per_turn: f64,
    /// End the run at the first failing tool call (false).
    pub stop_on_tool_error: bool,
    /// Print events to standard error as they happen (false).
    pub verbose: bool,
    /// Write the trajectory (true). Trajectories are how `RunResult::trajectory` is read,
    /// so turning this off only empties that list.
    pub trace_enabled: bool,
    /// The run's id; generated from the task and the time when absent.
    pub run_id: Option<String>,
    /// Free data kept with the result.
    pub metadata: BTreeMap<String, Value>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            max_turns: 10,
            max_time: 300.0,
            timeout_per_turn: 60.0,
            stop_on_tool_error: false,
            verbose: false,
            trace_enabled: true,
            run_id: None,
            metadata: BTreeMap::new(),
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    /// A time limit ended the run (`max_time`, `timeout_per_turn`, the task's timeouts).
    TimedOut,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<TrialStatus> for RunStatus {
    fn from(status: TrialStatus) -> RunStatus {
        match status {
            TrialStatus::Completed => RunStatus::Completed,
            TrialStatus::Failed | TrialStatus::InfraError => RunStatus::Failed,
            TrialStatus::TimedOut => RunStatus::TimedOut,
            TrialStatus::Cancelled => RunStatus::Cancelled,
        }
    }
}

/// What a run came to.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// The run's id: [`RunConfig::run_id`], or the one generated for it.
    pub run_id: String,
    /// The trial's id (its directory's name).
    pub trial_id: String,
    pub status: RunStatus,
    /// The reward reached 1.
    pub success: bool,
    pub reward: Option<f64>,
    pub rewards: BTreeMap<String, f64>,
    /// Wall time of the whole run.
    pub duration: Duration,
    /// Every tool call: name, input and output.
    pub trajectory: Vec<ToolStep>,
    /// Model turns taken.
    pub turn_count: u32,
    pub error: Option<ErrorInfo>,
    /// The trial's directory: `result.json`, `agent/`, `verifier/`, `artifacts/`.
    pub output_dir: PathBuf,
    pub usage: Option<crate::model::Usage>,
    pub cost_usd: Option<f64>,
    pub metadata: BTreeMap<String, Value>,
    /// What the agent said last (its last message, or the summary it gave `finish`).
    pub final_output: Option<String>,
    /// A multi-step task's steps as they ran (each with its rewards, timings and error;
    /// its files under `output_dir/steps/<name>/`); empty for a task of one step.
    pub steps: Vec<crate::store::trial::StepResult>,
}

/// What a run knows about itself while it goes on (see [`RunStream::context`]).
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: String,
    pub turn_count: u32,
    /// Values the prompts see as `{{ vars.NAME }}`.
    pub variables: BTreeMap<String, Value>,
    /// Every event so far.
    pub history: Vec<RunEvent>,
    started: Instant,
}

impl RunContext {
    pub fn elapsed_time(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn get_variable(&self, name: &str) -> Option<&Value> {
        self.variables.get(name)
    }

    pub fn set_variable(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.variables.insert(name.into(), value.into());
    }
}

/// Why a run could not be made or finished. A run that ends badly is not an error: it is a
/// [`RunResult`] with its status and error.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("the task is not valid:\n{0}")]
    InvalidTask(#[from] ManifestError),
    #[error(
        "unknown agent `{0}` (hint: use `oracle`, `nop`, `terminal`, `computer-use`, `command`, or a catalog agent such as `claude-code`)"
    )]
    UnknownAgent(String),
    #[error("unknown provider `{0}` (hint: use `docker` or `daytona`)")]
    UnknownProvider(String),
    #[cfg(feature = "viewer")]
    #[error("the viewer cannot start")]
    Viewer(#[from] crate::view::ViewError),
    #[error("this helios was built without the `viewer` feature, so it cannot watch a run")]
    NoViewer,
    #[error("the `{0}` agent needs a model (hint: call `.model(...)`)")]
    NeedsModel(String),
    #[error("the `command` agent needs a command (hint: call `.command(...)`)")]
    NeedsCommand,
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("the run ended without a result")]
    NoResult,
    #[error("cannot write the sandbox task: {0}")]
    Sandbox(String),
}

/// Runs one task with one agent, as `helios run` does.
#[derive(Debug, Clone)]
pub struct AgentRunner {
    task_path: PathBuf,
    model: Option<String>,
    agent: Option<String>,
    provider: String,
    daytona: Option<DaytonaSettings>,
    credentials: Option<Credentials>,
    output_dir: PathBuf,
    watch: bool,
    script: Option<PathBuf>,
    command: Option<String>,
    base_url: Option<String>,
    system_prompt: Option<PathBuf>,
    user_prompt: Option<PathBuf>,
    variables: BTreeMap<String, Value>,
    labels: BTreeMap<String, String>,
    config: RunConfig,
    /// Kept alive until the run ends (the task directory of a prompt run).
    keep_alive: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl AgentRunner {
    /// A runner for the task directory at `task_path`, with the defaults: when a model is
    /// given, the agent the task calls for (`computer-use` for a task with a desktop,
    /// `terminal` otherwise), `oracle` without a model; provider `docker`, output in
    /// `output/`.
    pub fn new(task_path: impl Into<PathBuf>) -> AgentRunner {
        AgentRunner {
            task_path: task_path.into(),
            model: None,
            agent: None,
            provider: "docker".into(),
            daytona: None,
            credentials: None,
            output_dir: PathBuf::from("output"),
            watch: false,
            script: None,
            command: None,
            base_url: None,
            system_prompt: None,
            user_prompt: None,
            variables: BTreeMap::new(),
            labels: BTreeMap::new(),
            config: RunConfig::default(),
            keep_alive: None,
        }
    }

    /// The model: `provider/model`, a bare `claude-*`/`gpt-*`/`gemini-*` id, or `scripted`.
    pub fn model(mut self, id: impl Into<String>) -> Self {
        self.model = Some(id.into());
        self
    }

    /// The agent: `oracle`, `nop`, `terminal`, `computer-use` or `command`.
    pub fn agent(mut self, kind: impl Into<String>) -> Self {
        self.agent = Some(kind.into());
        self
    }

    /// Where the task runs: `docker` (the default) or `daytona` (a cloud sandbox; the key
    /// comes from `DAYTONA_API_KEY` unless [`AgentRunner::daytona_credentials`] gives one).
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// How Daytona sandboxes are managed (`[environment.daytona]` of a pipeline).
    pub fn daytona(mut self, settings: DaytonaSettings) -> Self {
        self.daytona = Some(settings);
        self
    }

    /// Daytona's key, endpoint and region, instead of the `DAYTONA_*` variables.
    pub fn daytona_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = dir.into();
        self
    }

    /// Serve the web viewer while the run goes on (127.0.0.1, port 8080 or the next free
    /// one), with live updates; its address is printed to standard error and given by
    /// [`RunStream::viewer_url`]. It stops when the run ends; `helios view OUTPUT_DIR`
    /// browses the results afterwards.
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// For the `scripted` model: the file of replies.
    pub fn script(mut self, path: impl Into<PathBuf>) -> Self {
        self.script = Some(path.into());
        self
    }

    /// For the `command` agent: the command it runs.
    pub fn command(mut self, command: impl Into<String>) -> Self {
        self.command = Some(command.into());
        self
    }

    /// An OpenAI-compatible endpoint for `openai/...` models.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The agent's system prompt: a template file, as `system_prompt` in a pipeline.
    pub fn system_prompt(mut self, path: impl Into<PathBuf>) -> Self {
        self.system_prompt = Some(path.into());
        self
    }

    /// The agent's first user message: a template file, as `user_prompt` in a pipeline.
    pub fn user_prompt(mut self, path: impl Into<PathBuf>) -> Self {
        self.user_prompt = Some(path.into());
        self
    }

    /// A value the prompts see as `{{ vars.NAME }}`.
    pub fn variable(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.variables.insert(name.into(), value.into());
        self
    }

    /// A label on the run's container and image (`helios gc --label KEY=VALUE` finds them).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn config(mut self, config: RunConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs to the end.
    pub async fn run(&self) -> Result<RunResult, RunnerError> {
        let mut stream = self.stream().await?;
        while stream.next().await.is_some() {}
        stream.result().await
    }

    /// Starts the run and returns its events as they happen, then its result. Dropping
    /// the stream (or [`RunStream::cancel`]) cancels the run; its container is removed.
    pub async fn stream(&self) -> Result<RunStream, RunnerError> {
        let provider = Provider::from_name(&self.provider)
            .ok_or_else(|| RunnerError::UnknownProvider(self.provider.clone()))?;
        let run_id = self.config.run_id.clone().unwrap_or_else(|| {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let task = self
                .task_path
                .file_name()
                .map_or_else(|| "task".into(), |n| n.to_string_lossy().into_owned());
            format!("{task}-{millis}")
        });
        let pipeline = self.pipeline(&run_id, provider)?;
        let session = Session::new(pipeline, &PlanOptions::default()).map_err(|e| match e {
            SessionError::Invalid(e) => RunnerError::InvalidTask(e),
            SessionError::Plan(e) => RunnerError::Plan(e),
        })?;
        let options = ApplyOptions {
            labels: self.labels.clone(),
            variables: self.credentials.clone().map(Into::into).unwrap_or_default(),
            ..ApplyOptions::default()
        };
        let run = session.open(options).await?;
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut reporters: Vec<Box<dyn crate::events::Reporter>> = vec![Box::new(events)];
        let viewer_url = if self.watch {
            let (recorder, url) = watch(&self.output_dir, run.run_dir()).await?;
            reporters.insert(0, recorder);
            url
        } else {
            None
        };
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let started = Instant::now();
        let metadata = self.config.metadata.clone();
        let id = run_id.clone();
        let trace = self.config.trace_enabled;
        let keep_alive = self.keep_alive.clone();
        let handle = tokio::spawn(async move {
            let outcome = run.execute(reporters, token).await?;
            drop(keep_alive);
            let trial = outcome
                .trials
                .into_iter()
                .next()
                .ok_or(RunnerError::NoResult)?;
            let mut result =
                to_run_result(id, trial.result, trial.dir, started.elapsed(), metadata);
            if !trace {
                result.trajectory.clear();
            }
            Ok(result)
        });
        Ok(RunStream {
            events: receiver,
            handle,
            cancel: cancel.clone(),
            _guard: cancel.drop_guard(),
            verbose: self.config.verbose,
            viewer_url,
            context: RunContext {
                run_id,
                turn_count: 0,
                variables: self.variables.clone(),
                history: Vec::new(),
                started,
            },
        })
    }

    /// The one-trial pipeline this runner stands for.
    fn pipeline(&self, run_id: &str, provider: Provider) -> Result<Pipeline, RunnerError> {
        let task = load_task(&self.task_path)?.value;
        let kind = match self.agent.as_deref() {
            None if self.model.is_some() && task.manifest.environment.desktop.is_some() => {
                AgentKind::ComputerUse
            }
            None if self.model.is_some() => AgentKind::Terminal,
            None | Some("oracle") => AgentKind::Oracle,
            Some("nop") => AgentKind::Nop,
            Some("terminal") => AgentKind::Terminal,
            Some("command") => AgentKind::Command,
            Some("computer-use") => AgentKind::ComputerUse,
            Some(name) if crate::agent::installed::names().any(|n| n == name) => {
                AgentKind::Installed
            }
            Some(other) => return Err(RunnerError::UnknownAgent(other.to_string())),
        };
        // An installed agent is named as the catalog names it (`claude-code`).
        let catalog =
            (kind == AgentKind::Installed).then(|| self.agent.clone().unwrap_or_default());
        let declared = catalog.clone().unwrap_or_else(|| kind.as_str().to_string());
        let mut models = BTreeMap::new();
        let mut agents = BTreeMap::new();
        let agent_name = match kind {
            AgentKind::Oracle => "oracle".to_string(),
            AgentKind::Nop => "nop".to_string(),
            _ => {
                // Named as people know them: the kind (`terminal`) and the model's id
                // without its provider (`claude-sonnet-4-5`), in labels and directories.
                let model = match (&self.model, kind.needs_model()) {
                    (Some(id), _) => {
                        let name = id.rsplit('/').next().unwrap_or(id).to_string();
                        models.insert(
                            name.clone(),
                            ModelSpec {
                                id: id.clone(),
                                base_url: self.base_url.clone(),
                                api_key_env: None,
                                max_connections: None,
                                params: ModelParams::default(),
                                script: self.script.as_ref().map(|p| p.display().to_string()),
                                price: None,
                                max_retries: None,
                                request_timeout_sec: None,
                            },
                        );
                        Some(name)
                    }
                    (None, true) => return Err(RunnerError::NeedsModel(kind.as_str().to_string())),
                    (None, false) => None,
                };
                let limits = AgentLimits {
                    max_turns: Some(self.config.max_turns),
                    max_time: Some(self.config.max_time),
                    timeout_per_turn: Some(self.config.timeout_per_turn),
                    stop_on_tool_error: Some(self.config.stop_on_tool_error),
                    max_tokens: None,
                    max_cost_usd: None,
                };
                let prompt =
                    |path: &Option<PathBuf>| path.as_ref().map(|p| p.display().to_string());
                let spec = match kind {
                    AgentKind::Terminal => AgentSpec::Terminal(TerminalAgent {
                        model,
                        system_prompt: prompt(&self.system_prompt),
                        user_prompt: prompt(&self.user_prompt),
                        limits,
                        ..Default::default()
                    }),
                    AgentKind::ComputerUse => AgentSpec::ComputerUse(ComputerUseAgent {
                        model,
                        system_prompt: prompt(&self.system_prompt),
                        user_prompt: prompt(&self.user_prompt),
                        limits,
                        ..Default::default()
                    }),
                    AgentKind::Command => AgentSpec::Command(CommandAgent {
                        command: self.command.clone().ok_or(RunnerError::NeedsCommand)?,
                        model,
                        limits,
                        ..Default::default()
                    }),
                    AgentKind::Installed => AgentSpec::Installed(InstalledAgent {
                        agent: catalog,
                        model,
                        limits,
                        ..Default::default()
                    }),
                    AgentKind::Oracle | AgentKind::Nop => unreachable!("matched above"),
                };
                agents.insert(declared.clone(), spec);
                declared
            }
        };
        let manifest = PipelineManifest {
            pipeline: PipelineSection {
                name: run_id.to_string(),
                description: None,
                output_dir: self.output_dir.display().to_string(),
                concurrency: 1,
                max_trials: crate::manifest::pipeline::DEFAULT_MAX_TRIALS,
                build_concurrency: None,
                start_ahead: None,
                max_cost_usd: None,
                resources: Default::default(),
            },
            vars: self.variables.clone(),
            environment: EnvironmentDefaults {
                provider,
                daytona: self.daytona.clone(),
                ..EnvironmentDefaults::default()
            },
            tasks: vec![TaskSource {
                path: Some(task.dir.display().to_string()),
                ..TaskSource::default()
            }],
            models,
            agents,
            verifier: Default::default(),
            verify: Vec::new(),
            stages: vec![Stage {
                name: "run".into(),
                needs: Vec::new(),
                agents: vec![agent_name],
                models: Vec::new(),
                attempts: 1,
                gate: None,
                matrix: BTreeMap::new(),
                tasks: Vec::new(),
                provider: None,
            }],
            expect: Vec::new(),
        };
        Ok(Pipeline {
            path: task.dir.join("task.toml"),
            base_dir: PathBuf::from("."),
            manifest,
            tasks: vec![task],
            sources: Vec::new(),
            skipped: Vec::new(),
        })
    }
}

fn to_run_result(
    run_id: String,
    result: TrialResult,
    dir: PathBuf,
    duration: Duration,
    metadata: BTreeMap<String, Value>,
) -> RunResult {
    let trajectory: Option<Trajectory> = RunStore::read_trajectory(&dir);
    let final_output = trajectory.as_ref().and_then(final_output);
    let turn_count = trajectory.as_ref().map_or(0, |t| {
        t.steps
            .iter()
            .filter(|s| s.source == crate::agent::trajectory::Source::Agent)
            .count() as u32
    });
    RunResult {
        run_id,
        trial_id: result.trial_id.clone(),
        status: result.status.into(),
        success: result.passed(),
        reward: result.reward,
        rewards: result.rewards,
        steps: result.steps,
        duration,
        trajectory: trajectory.map(|t| t.tool_steps()).unwrap_or_default(),
        turn_count,
        error: result.error,
        output_dir: dir,
        usage: result.usage,
        cost_usd: result.cost_usd,
        metadata,
        final_output,
    }
}

/// The agent's last message, or else the summary it gave `finish`.
fn final_output(trajectory: &Trajectory) -> Option<String> {
    let agent_steps = || {
        trajectory
            .steps
            .iter()
            .rev()
            .filter(|s| s.source == crate::agent::trajectory::Source::Agent)
    };
    agent_steps()
        .map(|s| s.message.trim())
        .find(|m| !m.is_empty())
        .map(str::to_string)
        .or_else(|| {
            agent_steps()
                .flat_map(|s| s.tool_calls.iter())
                .find(|c| c.function_name == "finish")
                .and_then(|c| c.arguments.get("summary")?.as_str().map(str::to_string))
        })
}

/// An error and each cause that says something new, one per line (`  caused by: …`), as
/// the command line prints it after `error: ` (a message that already quotes its cause
/// does not repeat it).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut said = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !said.contains(&line) {
            text.push_str("\n  caused by: ");
            text.push_str(&line);
        }
        said = line;
        source = cause.source();
    }
    text
}

impl RunnerError {
    /// What the command line prints for this error: an invalid task's diagnostics, or
    /// the error with its causes.
    pub fn message(&self) -> String {
        match self {
            RunnerError::InvalidTask(e) => crate::diagnostic::render::human(&e.report, false),
            other => error_chain(other),
        }
    }
}

/// `verbose`: the event on standard error, as `helios run` prints it.
#[cfg(feature = "cli")]
fn say(event: &RunEvent) {
    if let Some(line) = crate::report::progress::transcript_line(event) {
        eprintln!("{line}");
    }
}

/// `verbose`: the event on standard error, as JSON (the readable lines come with the `cli`
/// feature).
#[cfg(not(feature = "cli"))]
fn say(event: &RunEvent) {
    if let Ok(line) = serde_json::to_string(event) {
        eprintln!("{line}");
    }
}

/// A run in progress: its events, then its result.
pub struct RunStream {
    events: UnboundedReceiver<RunEvent>,
    handle: JoinHandle<Result<RunResult, RunnerError>>,
    cancel: CancellationToken,
    _guard: DropGuard,
    verbose: bool,
    viewer_url: Option<String>,
    context: RunContext,
}

impl RunStream {
    /// The next event, or `None` when the run is over.
    pub async fn next(&mut self) -> Option<RunEvent> {
        let event = self.events.recv().await?;
        if let RunEvent::AgentTurn { turn, .. } = &event {
            self.context.turn_count = *turn;
        }
        if self.verbose {
            say(&event);
        }
        self.context.history.push(event.clone());
        Some(event)
    }

    /// The viewer's page of this run, when the runner was asked to `watch`.
    pub fn viewer_url(&self) -> Option<&str> {
        self.viewer_url.as_deref()
    }

    /// What the run knows so far.
    pub fn context(&self) -> &RunContext {
        &self.context
    }

    pub fn context_mut(&mut self) -> &mut RunContext {
        &mut self.context
    }

    /// Stops the run: the agent is interrupted, the container removed, the result says
    /// `Cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the end of the run and returns its result.
    pub async fn result(self) -> Result<RunResult, RunnerError> {
        let RunStream { handle, _guard, .. } = self;
        let result = handle.await.map_err(|_| RunnerError::NoResult)?;
        drop(_guard);
        result
    }
}

/// The task directory of a path given as `task.toml` or as the directory.
pub fn task_dir(path: &Path) -> PathBuf {
    if path.file_name().is_some_and(|n| n == "task.toml") {
        crate::manifest::paths::base_dir(path)
    } else {
        path.to_path_buf()
    }
}

/// Serves the viewer over `run_dir` while the run goes on: its recorder, a reporter that
/// stops the viewer when the run's events end, and the run's page.
#[cfg(feature = "viewer")]
async fn watch(
    output_dir: &Path,
    run_dir: &Path,
) -> Result<(Box<dyn crate::events::Reporter>, Option<String>), RunnerError> {
    use crate::view::{Recorder, ViewOptions, Viewer};
    struct Watching {
        recorder: Recorder,
        viewer: Option<Viewer>,
    }
    impl crate::events::Reporter for Watching {
        fn event(&mut self, event: &RunEvent) {
            self.recorder.record(event);
        }
        fn finish(&mut self) {
            if let Some(viewer) = self.viewer.take() {
                tokio::spawn(viewer.stop());
            }
        }
    }
    let viewer = Viewer::watch(ViewOptions::new(output_dir), run_dir).await?;
    let url = viewer.page_of(run_dir);
    let watching = Watching {
        recorder: viewer.recorder(),
        viewer: Some(viewer),
    };
    Ok((Box::new(watching), Some(url)))
}

#[cfg(not(feature = "viewer"))]
async fn watch(
    _output_dir: &Path,
    _run_dir: &Path,
) -> Result<(Box<dyn crate::events::Reporter>, Option<String>), RunnerError> {
    Err(RunnerError::NoViewer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_kind(runner: &AgentRunner) -> Option<AgentKind> {
        let pipeline = runner.pipeline("r", Provider::default()).unwrap();
        pipeline.manifest.agents.values().next().map(|a| a.kind())
    }

    #[test]
    fn a_catalog_agent_is_an_installed_agent_named_as_the_catalog_names_it() {
        let runner = AgentRunner::new("tasks/create-hello-file")
            .agent("codex")
            .model("scripted");
        assert_eq!(agent_kind(&runner), Some(AgentKind::Installed));
        let pipeline = runner.pipeline("r", Provider::default()).unwrap();
        let codex = &pipeline.manifest.agents["codex"];
        assert_eq!(
            codex.installed().and_then(|a| a.agent.as_deref()),
            Some("codex")
        );
        assert_eq!(codex.model().map(String::as_str), Some("scripted"));
        let plan = crate::plan::Plan::of(&pipeline).unwrap();
        assert!(plan.agents[0].recipe.is_some(), "{:?}", plan.agents);
        assert!(matches!(
            AgentRunner::new("tasks/create-hello-file")
                .agent("codex")
                .pipeline("r", Provider::default()),
            Err(RunnerError::NeedsModel(_))
        ));
    }

    #[test]
    fn the_agent_follows_the_task_unless_one_is_chosen() {
        let desktop = AgentRunner::new("tasks/gui-task").model("scripted");
        assert_eq!(agent_kind(&desktop), Some(AgentKind::ComputerUse));
        let terminal = AgentRunner::new("tasks/create-hello-file").model("scripted");
        assert_eq!(agent_kind(&terminal), Some(AgentKind::Terminal));
        let chosen = AgentRunner::new("tasks/gui-task")
            .model("scripted")
            .agent("terminal");
        assert_eq!(agent_kind(&chosen), Some(AgentKind::Terminal));
        assert_eq!(
            agent_kind(&AgentRunner::new("tasks/gui-task")),
            None,
            "the oracle"
        );
    }
}
