//! The typed pipeline manifest (`pipeline.toml` / `pipeline.yaml`): what to run, in stages.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::task::NetworkMode;
use crate::agent::{AgentKind, AgentLimits};
use crate::env::{DaytonaSettings, Provider, ProviderSettings};
use crate::model::computer::SafetyChecks;
use crate::model::spec::ModelSpec;
use crate::verify::Isolation;

/// A pipeline: tasks × agents × models × attempts, in stages that may depend on each other.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "helios pipeline manifest")]
pub struct PipelineManifest {
    pub pipeline: PipelineSection,
    /// Values every prompt template sees as `{{ vars.NAME }}`.
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
    /// Defaults for every trial's environment; a task's own `[environment]` values win.
    #[serde(default)]
    pub environment: EnvironmentDefaults,
    /// Where the tasks come from.
    #[schemars(length(min = 1))]
    pub tasks: Vec<TaskSource>,
    /// Named models that agents and stages refer to.
    #[serde(default)]
    pub models: BTreeMap<String, ModelSpec>,
    /// Named agents that stages refer to; `oracle` and `nop` exist without being declared.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentSpec>,
    /// How the task's tests run, for tasks whose `task.toml` does not say.
    #[serde(default, skip_serializing_if = "VerifierDefaults::is_empty")]
    pub verifier: VerifierDefaults,
    /// Verification steps run after the task's own `tests/test.sh`.
    #[serde(default)]
    pub verify: Vec<VerifyStep>,
    /// The stages of the run, ordered by their `needs`.
    #[schemars(length(min = 1))]
    pub stages: Vec<Stage>,
    /// Bars the results must clear (CI gates): `apply` and `report` exit 6 when one is not met.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<Expect>,
}

/// `[verifier]` in a pipeline: defaults for the verifier of every task.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifierDefaults {
    /// `shared` (the default: the agent's container) or `separate` (a fresh container
    /// made from the agent's files, so an agent cannot forge its reward); a task's own
    /// `[verifier] isolation` wins.
    pub isolation: Option<Isolation>,
}

impl VerifierDefaults {
    fn is_empty(&self) -> bool {
        self.isolation.is_none()
    }
}

/// `[pipeline]`: the run as a whole.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Name of the run; results go to `<output_dir>/<name>/`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub name: String,
    /// What the pipeline is for.
    pub description: Option<String>,
    /// Directory for results, relative to the pipeline file.
    #[serde(default = "default_output_dir")]
    #[schemars(length(min = 1))]
    pub output_dir: String,
    /// How many trials run at once, at most: a trial also waits until its task's `cpus`
    /// and memory fit in what is free of the machine.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1))]
    pub concurrency: u32,
    /// How many trials may have their environment made ahead of a free place under
    /// `concurrency`, so a container is ready when one is (default: as many as
    /// `concurrency`; 0: none; always none under `max_cost_usd`, where a trial starts only
    /// once the cost of those before it is known). They count against the machine's CPUs
    /// and memory as running trials do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ahead: Option<u32>,
    /// How many images build at once (default: half the machine's cores, at least one).
    #[schemars(range(min = 1))]
    pub build_concurrency: Option<u32>,
    /// How trials are admitted on this machine: `adaptive` (default) by measured CPU
    /// pressure, `reserve` by reserving each task's declared `cpus`, `none` by
    /// `concurrency` alone. Declared memory is reserved under `adaptive` and `reserve`.
    #[serde(default, skip_serializing_if = "ResourcePolicy::is_default")]
    pub resources: ResourcePolicy,
    /// Most US dollars the run's trials may spend on models: once spent, no further trial
    /// starts (finished results are kept; `apply` again resumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub max_cost_usd: Option<f64>,
    /// The most trials the pipeline may make (tasks × agents × models × matrix × attempts,
    /// summed over stages); checked before a plan is built, so a mistake cannot exhaust
    /// memory.
    #[serde(default = "default_max_trials")]
    #[schemars(range(min = 1))]
    pub max_trials: u64,
}

/// The default of `[pipeline] max_trials`: planning this many takes about 100 MB.
pub const DEFAULT_MAX_TRIALS: u64 = 100_000;

fn default_max_trials() -> u64 {
    DEFAULT_MAX_TRIALS
}

fn default_output_dir() -> String {
    "runs".to_string()
}

fn default_concurrency() -> u32 {
    4
}

/// `[environment]` in a pipeline: defaults for every trial.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentDefaults {
    /// Where containers run.
    #[serde(default)]
    pub provider: Provider,
    /// Network access for tasks that do not say.
    pub network_mode: Option<NetworkMode>,
    /// CPUs for tasks that do not say.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub cpus: Option<f64>,
    /// Memory in megabytes for tasks that do not say.
    #[schemars(range(min = 1))]
    pub memory_mb: Option<u64>,
    /// Environment variables added to every container (a task's own win).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Settings of the Daytona provider; they change how sandboxes are managed, never a
    /// trial's result, so they are not part of trial ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daytona: Option<DaytonaSettings>,
    /// Where a task that names a `docker_image` and has an `environment/Dockerfile` gets
    /// its image: `prebuilt` (the default: the image its authors validated, pulled once,
    /// as Harbor does; built from the Dockerfile only when the pull fails) or `dockerfile`
    /// (always built). `apply --rebuild` builds too.
    #[serde(default, skip_serializing_if = "ImagePolicy::is_default")]
    pub images: ImagePolicy,
}

impl EnvironmentDefaults {
    /// The providers' own sections, for opening them.
    pub fn provider_settings(&self) -> ProviderSettings {
        ProviderSettings {
            daytona: self.daytona.clone().unwrap_or_default(),
        }
    }
}

/// `[pipeline] resources`: how a trial is admitted on this machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResourcePolicy {
    /// A trial starts while its declared memory fits and the machine's measured CPU
    /// pressure stays under a target; declared CPUs up to the machine's cores start
    /// without asking. The verifier phase takes its declared CPUs.
    #[default]
    Adaptive,
    /// A trial starts only when its declared `cpus` and memory fit in what is free of the
    /// machine's cores and memory (or `--cpus` / `--memory`), held for its whole life.
    Reserve,
    /// Only `concurrency` bounds the trials at once.
    None,
}

impl ResourcePolicy {
    fn is_default(&self) -> bool {
        *self == ResourcePolicy::Adaptive
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResourcePolicy::Adaptive => "adaptive",
            ResourcePolicy::Reserve => "reserve",
            ResourcePolicy::None => "none",
        }
    }
}

/// `[environment] images`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImagePolicy {
    /// Pull `docker_image`; build from the Dockerfile only when the pull fails.
    #[default]
    Prebuilt,
    /// Build from the Dockerfile whenever there is one.
    Dockerfile,
}

impl ImagePolicy {
    fn is_default(&self) -> bool {
        *self == ImagePolicy::Prebuilt
    }
}

/// `[[tasks]]`: a source of task directories: local directories (`path`), a git
/// repository at a rev (`git`, `rev`, `path`), or a dataset of a registry (`dataset`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSource {
    /// A glob of task directories: relative to the pipeline file (`tasks/*`), or with
    /// `git`, inside the repository (default: every directory holding a `task.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub path: Option<String>,
    /// A git repository: a URL (`https://…`, `ssh://…`, `file://…`, `git@host:repo`) or a
    /// path relative to the pipeline file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub git: Option<String>,
    /// With `git`: a commit id, tag or branch (default: the remote's `HEAD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub rev: Option<String>,
    /// A dataset of a registry, `NAME@VERSION` (`terminal-bench@2.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub dataset: Option<String>,
    /// With `dataset`: the registries to look in, in order (URLs or paths relative to the
    /// pipeline file, in Harbor's registry format); default: Harbor's registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registries>,
    /// Keep only tasks whose directory name matches one of these globs.
    #[serde(default)]
    pub include: Vec<String>,
    /// Drop tasks whose directory name matches one of these globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Keep at most this many tasks (after `include` and `exclude`), sampled with `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    /// The seed of the `limit` sample (default 0): the same seed, the same tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What an invalid task of this source does to the pipeline: `"error"` (the default)
    /// refuses the pipeline; `"skip"` leaves the task out, listed by `plan` and in the
    /// run's summary with why, and runs the rest.
    #[serde(default, skip_serializing_if = "OnInvalid::is_default")]
    pub on_invalid: OnInvalid,
}

/// What an invalid task of a `[[tasks]]` source does to the pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnInvalid {
    /// The pipeline is invalid: every problem is reported and nothing runs.
    #[default]
    Error,
    /// The task is left out with its problems as warnings; the others run.
    Skip,
}

impl OnInvalid {
    fn is_default(&self) -> bool {
        *self == OnInvalid::Error
    }
}

/// One registry or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Registries {
    One(String),
    Many(Vec<String>),
}

impl Registries {
    pub fn list(&self) -> Vec<String> {
        match self {
            Registries::One(one) => vec![one.clone()],
            Registries::Many(many) => many.clone(),
        }
    }
}

/// `[agents.NAME]`: an agent stages can run, by its `kind`. Each kind takes its own fields,
/// so a field of another kind (a `command` on a `terminal` agent) is an unknown key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AgentSpec {
    /// Runs the task's `solution/solve.sh`.
    Oracle(PlainAgent),
    /// Does nothing; the verifier should give 0.
    Nop(PlainAgent),
    /// A model working through a shell in the task's container.
    Terminal(TerminalAgent),
    /// A model working a desktop through screenshots, mouse and keyboard.
    ComputerUse(ComputerUseAgent),
    /// A command run in the task's container (an agent of your own).
    Command(CommandAgent),
    /// A CLI agent from the catalog (`agent = "claude-code"`) or a recipe of your own,
    /// installed once per machine and run in the task's container through the gateway.
    Installed(InstalledAgent),
}

/// `kind = "oracle"` or `"nop"`: an agent with no model, prompts or command.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlainAgent {
    /// Environment variables for the agent; `${VAR}` and `${VAR:-default}` read the host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: AgentLimits,
}

/// `kind = "terminal"`: a model driven by helios through a shell.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalAgent {
    /// Name of a model under `[models]` (stages may give `models` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Path of the minijinja template of the system prompt, relative to the pipeline file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Path of the minijinja template of the first user message (the task instruction by
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_prompt: Option<String>,
    /// Environment variables for the agent; `${VAR}` and `${VAR:-default}` read the host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: AgentLimits,
}

/// `kind = "computer-use"`: a model driven by helios through a desktop.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputerUseAgent {
    /// Name of a model under `[models]` (stages may give `models` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Path of the minijinja template of the system prompt, relative to the pipeline file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Path of the minijinja template of the first user message (the task instruction by
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_prompt: Option<String>,
    /// What a provider's safety check (OpenAI's pending safety checks, Gemini's safety
    /// decisions) gets: `acknowledge` (default; recorded in the trajectory) or `refuse`
    /// (the trial ends with `safety_refused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_checks: Option<SafetyChecks>,
    /// Environment variables for the agent; `${VAR}` and `${VAR:-default}` read the host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: AgentLimits,
}

/// `kind = "command"`: a shell command of your own.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandAgent {
    /// The shell command that runs the agent, in the task's `workdir`.
    pub command: String,
    /// Name of a model under `[models]` whose calls go through helios's model gateway
    /// (stages may give `models` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Environment variables for the agent; `${VAR}` and `${VAR:-default}` read the host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: AgentLimits,
}

/// `kind = "installed"`: a catalog agent, or a recipe of your own (`install` and `run`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstalledAgent {
    /// The catalog agent (`claude-code`, `codex`, `gemini-cli`, `opencode`,
    /// `mini-swe-agent`, `aider`; see docs/agents.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The version to install (the catalog's pinned one by default); the install script
    /// sees it as `{{ version }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The runtime the install needs first (`node`, `python`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The shell script (a minijinja template seeing `prefix` and `version`) that installs
    /// the agent under `{{ prefix }}`, once per machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<String>,
    /// The shell command (a minijinja template seeing `instruction`, `instruction_file`,
    /// `model`, `model_id`, `workdir`, `log_dir`, `prefix` and `version`) that runs the
    /// agent on the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Name of a model under `[models]` (stages may give `models` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Environment variables for the agent; `${VAR}` and `${VAR:-default}` read the host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: AgentLimits,
}

impl InstalledAgent {
    /// The fields the agent layer resolves a recipe from.
    pub fn recipe_fields(&self) -> crate::agent::installed::RecipeFields<'_> {
        crate::agent::installed::RecipeFields {
            agent: self.agent.as_deref(),
            version: self.version.as_deref(),
            runtime: self.runtime.as_deref(),
            install: self.install.as_deref(),
            run: self.run.as_deref(),
        }
    }
}

impl AgentSpec {
    pub fn kind(&self) -> AgentKind {
        match self {
            AgentSpec::Oracle(_) => AgentKind::Oracle,
            AgentSpec::Nop(_) => AgentKind::Nop,
            AgentSpec::Terminal(_) => AgentKind::Terminal,
            AgentSpec::ComputerUse(_) => AgentKind::ComputerUse,
            AgentSpec::Command(_) => AgentKind::Command,
            AgentSpec::Installed(_) => AgentKind::Installed,
        }
    }

    /// The model under `[models]` the agent names, for the kinds that take one.
    pub fn model(&self) -> Option<&String> {
        match self {
            AgentSpec::Oracle(_) | AgentSpec::Nop(_) => None,
            AgentSpec::Terminal(a) => a.model.as_ref(),
            AgentSpec::ComputerUse(a) => a.model.as_ref(),
            AgentSpec::Command(a) => a.model.as_ref(),
            AgentSpec::Installed(a) => a.model.as_ref(),
        }
    }

    /// The paths of its system and user prompt templates, for the kinds helios drives.
    pub fn prompts(&self) -> (Option<&String>, Option<&String>) {
        match self {
            AgentSpec::Terminal(a) => (a.system_prompt.as_ref(), a.user_prompt.as_ref()),
            AgentSpec::ComputerUse(a) => (a.system_prompt.as_ref(), a.user_prompt.as_ref()),
            _ => (None, None),
        }
    }

    /// The command of a `command` agent.
    pub fn command(&self) -> Option<&String> {
        match self {
            AgentSpec::Command(a) => Some(&a.command),
            _ => None,
        }
    }

    /// What a `computer-use` agent answers a provider's safety check.
    pub fn safety_checks(&self) -> Option<SafetyChecks> {
        match self {
            AgentSpec::ComputerUse(a) => a.safety_checks,
            _ => None,
        }
    }

    /// The recipe fields of an `installed` agent.
    pub fn installed(&self) -> Option<&InstalledAgent> {
        match self {
            AgentSpec::Installed(a) => Some(a),
            _ => None,
        }
    }

    pub fn env(&self) -> &BTreeMap<String, String> {
        match self {
            AgentSpec::Oracle(a) | AgentSpec::Nop(a) => &a.env,
            AgentSpec::Terminal(a) => &a.env,
            AgentSpec::ComputerUse(a) => &a.env,
            AgentSpec::Command(a) => &a.env,
            AgentSpec::Installed(a) => &a.env,
        }
    }

    pub fn limits(&self) -> &AgentLimits {
        match self {
            AgentSpec::Oracle(a) | AgentSpec::Nop(a) => &a.limits,
            AgentSpec::Terminal(a) => &a.limits,
            AgentSpec::ComputerUse(a) => &a.limits,
            AgentSpec::Command(a) => &a.limits,
            AgentSpec::Installed(a) => &a.limits,
        }
    }
}

/// `[[verify]]`: a verification step after the task's own tests.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyStep {
    /// Name of the step; `tests` is the task's own `tests/test.sh` and takes no command.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub name: String,
    /// Shell command run in the container after the agent; it writes its reward like
    /// `tests/test.sh` does.
    pub command: Option<String>,
    /// Weight of this step's reward in the trial's combined reward.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0.0))]
    pub weight: f64,
    /// Seconds the step may run (the task's verifier timeout by default).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_sec: Option<f64>,
}

fn default_weight() -> f64 {
    1.0
}

/// `[[stages]]`: a set of trials, run after the stages it `needs`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub name: String,
    /// Stages that must finish first.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Agents to run: names under `[agents]`, or `oracle` / `nop`.
    #[schemars(length(min = 1))]
    pub agents: Vec<String>,
    /// Models to cross with the model-driven agents (overrides each agent's `model`).
    #[serde(default)]
    pub models: Vec<String>,
    /// Trials per task × agent × model.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1))]
    pub attempts: u32,
    /// Run only the tasks that passed in an earlier stage.
    pub gate: Option<Gate>,
    /// Parameters crossed with everything else; templates see them as `{{ params.NAME }}`.
    #[serde(default)]
    pub matrix: BTreeMap<String, Vec<Value>>,
    /// Keep only tasks whose name matches one of these globs.
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Where this stage's trials run, instead of `[environment] provider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
}

fn default_attempts() -> u32 {
    1
}

/// A stage gate: which tasks may enter the stage.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// The earlier stage whose results decide; it must be among this stage's `needs`
    /// (directly or through other stages).
    pub stage: String,
    /// The agent in that stage whose reward counts (default `oracle`).
    #[serde(default = "default_gate_agent")]
    pub agent: String,
    /// The reward a task must reach (default 1.0).
    #[serde(default = "default_min_reward")]
    pub min_reward: f64,
}

fn default_gate_agent() -> String {
    "oracle".to_string()
}

fn default_min_reward() -> f64 {
    1.0
}

/// `[[expect]]`: a bar that the groups it selects (every group when no selector is given)
/// must clear; each group is checked on its own.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Only groups of this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Only groups of this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Only groups of this model (its name under `[models]`, or its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The mean reward must be at least this (infrastructure errors left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_mean_reward: Option<f64>,
    /// The share of scored trials that passed must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_pass_rate: Option<f64>,
    /// The share of trials that ended in an error of any kind may be at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: Option<f64>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_agent_takes_the_fields_of_its_kind_and_refuses_those_of_another() {
        let command: AgentSpec =
            serde_json::from_value(json!({"kind": "command", "command": "./run.sh", "model": "m"}))
                .unwrap();
        assert_eq!(command.kind(), AgentKind::Command);
        assert_eq!(command.command().map(String::as_str), Some("./run.sh"));
        assert_eq!(command.model().map(String::as_str), Some("m"));
        for foreign in [
            json!({"kind": "terminal", "command": "./run.sh"}),
            json!({"kind": "oracle", "model": "m"}),
            json!({"kind": "command", "command": "x", "agent": "codex"}),
            json!({"kind": "installed", "agent": "codex", "system_prompt": "p.j2"}),
        ] {
            assert!(
                serde_json::from_value::<AgentSpec>(foreign.clone()).is_err(),
                "{foreign}"
            );
        }
    }

    #[test]
    fn an_agent_serializes_with_its_kind_and_only_the_fields_it_has() {
        let agent = AgentSpec::Installed(InstalledAgent {
            agent: Some("codex".into()),
            model: Some("m".into()),
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_value(&agent).unwrap(),
            json!({"kind": "installed", "agent": "codex", "model": "m", "limits": {
                "max_turns": null, "max_time": null, "timeout_per_turn": null,
                "stop_on_tool_error": null, "max_tokens": null, "max_cost_usd": null,
            }})
        );
    }
}
