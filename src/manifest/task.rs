//! The typed `task.toml` of a Harbor task directory, every schema from Terminal-Bench 2.0's
//! `1.0` to `1.4`.
//!
//! Field names and defaults follow Harbor so that existing tasks load unmodified; the legacy
//! spellings (`version`, `memory`, `storage`, `allow_internet`) are accepted and resolved by
//! the accessor methods. Which fields helios can honour, and where, is [`TaskManifest::unsupported`].

use std::collections::BTreeMap;

use schemars::JsonSchema;

use crate::env::desktop::DesktopConfig;
use crate::verify::Isolation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::size::ByteSize;

/// A task's `task.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "helios task manifest (task.toml)")]
pub struct TaskManifest {
    /// Version of the task format, `"1.0"` or `"1.x"`.
    #[schemars(regex(pattern = r"^1(\.[0-9]+)*$"))]
    pub schema_version: Option<String>,
    /// Deprecated spelling of `schema_version` that Terminal-Bench 2.0 tasks use.
    #[schemars(regex(pattern = r"^1(\.[0-9]+)*$"))]
    pub version: Option<String>,
    /// The task as a package of a registry (schema 1.1): its `org/name`, version, authors.
    /// Without it, the task's name is its directory's.
    pub task: Option<PackageInfo>,
    /// Where the task comes from (a benchmark's name, a URL): provenance only.
    pub source: Option<String>,
    /// Free-form description of the task: difficulty, category, tags, author_name, ...
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub verifier: VerifierSection,
    #[serde(default)]
    pub environment: EnvironmentSection,
    #[serde(default)]
    pub solution: SolutionSection,
    /// How a multi-step task's reward is made from its steps' (schema 1.1): `mean` (the
    /// default) or `final`.
    pub multi_step_reward_strategy: Option<RewardStrategy>,
    /// The steps of a multi-step task, in order (schema 1.1); each has `steps/<name>/`.
    #[serde(default)]
    pub steps: Vec<StepSection>,
    /// Files and directories copied out of the environment after the agent (schema 1.3):
    /// a path, or a table with `source`, `destination`, `exclude` and `service`.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

impl TaskManifest {
    /// The task's separate verifier environments (Harbor's `environment_mode =
    /// "separate"`): the task's (step `None`) when its verifier is separate, and each
    /// step's that is, in order.
    pub fn separate_verifiers(&self, dir: &std::path::Path) -> Vec<SeparateVerifier> {
        let separate = |v: &VerifierSection| v.harbor_mode() == Some(Isolation::Separate);
        let task_env = || {
            self.verifier
                .environment
                .as_deref()
                .unwrap_or(&self.environment)
                .clone()
        };
        if self.steps.is_empty() {
            return separate(&self.verifier)
                .then(|| SeparateVerifier {
                    step: None,
                    environment: task_env(),
                    context: dir.join("tests"),
                    network_mode: self.verifier.network_mode,
                    allowed_hosts: self.verifier.allowed_hosts.clone(),
                })
                .into_iter()
                .collect();
        }
        self.steps
            .iter()
            .filter(|step| match step.verifier.harbor_mode() {
                Some(mode) => mode == Isolation::Separate,
                None => separate(&self.verifier),
            })
            .map(|step| {
                let own_tests = dir.join("steps").join(&step.name).join("tests");
                SeparateVerifier {
                    step: Some(step.name.clone()),
                    environment: step
                        .verifier
                        .environment
                        .as_deref()
                        .cloned()
                        .unwrap_or_else(task_env),
                    context: if own_tests.is_dir() {
                        own_tests
                    } else {
                        dir.join("tests")
                    },
                    network_mode: step.verifier.network_mode.or(self.verifier.network_mode),
                    allowed_hosts: step
                        .verifier
                        .allowed_hosts
                        .clone()
                        .or_else(|| self.verifier.allowed_hosts.clone()),
                }
            })
            .collect()
    }
}

/// A separate verifier environment of a task or of one of its steps.
#[derive(Debug, Clone)]
pub struct SeparateVerifier {
    /// The step it verifies; `None` for the task's.
    pub step: Option<String>,
    /// Its `[verifier.environment]` (or a copy of the task's `[environment]`).
    pub environment: EnvironmentSection,
    /// The build context of its image, when `docker_image` does not name one: the step's
    /// `tests/` if it has one, else the task's.
    pub context: std::path::PathBuf,
    /// The verifier phase's `network_mode` (the step's, else the task's `[verifier]`), over
    /// its environment's.
    pub network_mode: Option<NetworkMode>,
    /// The verifier phase's `allowed_hosts` (the step's, else the task's `[verifier]`), over
    /// its environment's.
    pub allowed_hosts: Option<Vec<String>>,
}

/// `[task]`: the task as a package (`org/name`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageInfo {
    /// `org/name`: letters, digits, `.`, `_` and `-`, each part starting with a letter or
    /// digit.
    #[schemars(regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*/[a-zA-Z0-9][a-zA-Z0-9._-]*$"))]
    pub name: String,
    /// The package's version (schema 1.4), not the format's (`schema_version`).
    #[schemars(length(min = 1))]
    pub version: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub authors: Vec<Author>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// One of `[task] authors`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    pub email: Option<String>,
}

/// How a multi-step task's reward is made from its steps' rewards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RewardStrategy {
    /// Each reward key averaged over the steps that were verified.
    #[default]
    Mean,
    /// The rewards of the last step that ran.
    Final,
}

/// A user in the container: a name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum User {
    Id(u32),
    Name(String),
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            User::Id(id) => write!(f, "{id}"),
            User::Name(name) => f.write_str(name),
        }
    }
}

/// `[agent]`: how the agent works.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Seconds the agent may work; absent means no limit.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_sec: Option<f64>,
    /// The user the agent runs as (schema 1.1); the image's user when absent.
    pub user: Option<User>,
    /// The network while the agent works (schema 1.3); `[environment] network_mode` when
    /// absent.
    pub network_mode: Option<NetworkMode>,
    /// Hosts the agent may reach with `network_mode = "allowlist"`.
    pub allowed_hosts: Option<Vec<String>>,
}

/// One `[[steps]]` of a multi-step task: `steps/<name>/` holds its instruction, tests,
/// solution and `workdir/`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSection {
    /// The step's directory under `steps/`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The step's agent settings; what it leaves out comes from `[agent]`.
    #[serde(default)]
    pub agent: AgentSection,
    /// The step's verifier settings; `env` is merged over `[verifier] env`, `collect` hooks
    /// run after the task's.
    #[serde(default)]
    pub verifier: VerifierSection,
    /// The reward the step must reach for the next steps to run: a number gates `reward`,
    /// a table gates each of its keys. A missing key or a failed verifier fails the gate.
    pub min_reward: Option<MinReward>,
    /// Checked after the step's `setup.sh`, before its agent starts.
    pub healthcheck: Option<Healthcheck>,
    /// Collected after this step's agent, with the task's `artifacts`.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

/// A step's `min_reward`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MinReward {
    /// Gates the `reward` key.
    Reward(f64),
    /// Gates each key named.
    Keys(BTreeMap<String, f64>),
}

impl MinReward {
    /// The thresholds, key by key.
    pub fn thresholds(&self) -> BTreeMap<String, f64> {
        match self {
            MinReward::Reward(value) => BTreeMap::from([("reward".to_string(), *value)]),
            MinReward::Keys(keys) => keys.clone(),
        }
    }
}

/// An artifact: a path in the environment, or a table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Artifact {
    Path(String),
    Spec(ArtifactSpec),
}

/// An artifact as a table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSpec {
    /// The path in the environment, a file or a directory.
    #[schemars(length(min = 1))]
    pub source: String,
    /// Where it goes under the trial's `artifacts/` (a relative path); the source's path
    /// without its leading `/` when absent.
    pub destination: Option<String>,
    /// Glob patterns of files left out of a directory.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The Compose service it is copied from; `main` (the agent's container) when absent.
    pub service: Option<String>,
}

impl Artifact {
    /// The artifact as a table.
    pub fn spec(&self) -> ArtifactSpec {
        match self {
            Artifact::Path(source) => ArtifactSpec {
                source: source.clone(),
                destination: None,
                exclude: Vec::new(),
                service: None,
            },
            Artifact::Spec(spec) => spec.clone(),
        }
    }
}

/// `[[verifier.collect]]`: a command run after the agent and before artifacts are
/// collected, to gather evidence (a sidecar's statistics, a database dump).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectHook {
    /// Shell command.
    #[schemars(length(min = 1))]
    pub command: String,
    /// The Compose service it runs in; `main` (the agent's container) when absent.
    pub service: Option<String>,
    /// Seconds it may run.
    #[serde(default = "default_collect_timeout")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_sec: f64,
    /// The user it runs as; the container's user when absent.
    pub user: Option<User>,
}

fn default_collect_timeout() -> f64 {
    60.0
}

/// `[verifier]`: how `tests/test.sh` runs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifierSection {
    /// Seconds `tests/test.sh` may run.
    #[serde(default = "default_verifier_timeout")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_sec: f64,
    /// Environment variables for the verifier; `${VAR}` and `${VAR:-default}` read the host.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Where the tests run: `shared` (in the agent's container, the default) or
    /// `separate` (in a fresh container made from the agent's files, with none of its
    /// processes). A helios extension: the pipeline's `[verifier] isolation` otherwise.
    pub isolation: Option<Isolation>,
    /// The user the tests run as (schema 1.1); the image's user when absent.
    pub user: Option<User>,
    /// The network while the tests run (schema 1.3); the environment's when absent.
    pub network_mode: Option<NetworkMode>,
    /// Hosts the tests may reach with `network_mode = "allowlist"`.
    pub allowed_hosts: Option<Vec<String>>,
    /// Harbor's verifier environment (schema 1.2): `shared` (the agent's container) or
    /// `separate` (an environment of its own, `[verifier.environment]`, built from
    /// `tests/`). A `[verifier.environment]` table alone means `separate`.
    pub environment_mode: Option<Isolation>,
    /// The separate verifier's environment; a copy of `[environment]` when absent.
    pub environment: Option<Box<EnvironmentSection>>,
    /// Commands run after the agent, before artifacts are collected.
    #[serde(default)]
    pub collect: Vec<CollectHook>,
}

impl Default for VerifierSection {
    fn default() -> Self {
        VerifierSection {
            timeout_sec: default_verifier_timeout(),
            env: BTreeMap::new(),
            isolation: None,
            user: None,
            network_mode: None,
            allowed_hosts: None,
            environment_mode: None,
            environment: None,
            collect: Vec::new(),
        }
    }
}

impl VerifierSection {
    /// Whether Harbor's separate verifier environment is asked for: `environment_mode =
    /// "separate"`, or a `[verifier.environment]` table without a mode.
    pub fn harbor_mode(&self) -> Option<Isolation> {
        self.environment_mode
            .or(self.environment.as_ref().map(|_| Isolation::Separate))
    }
}

fn default_verifier_timeout() -> f64 {
    600.0
}

fn default_build_timeout() -> f64 {
    600.0
}

/// `[solution]`: how the oracle runs `solution/solve.sh`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SolutionSection {
    /// Environment variables for `solve.sh`; `${VAR}` and `${VAR:-default}` read the host.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Whether and how a task's container reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// Full network access.
    Public,
    /// No network at all.
    NoNetwork,
    /// Only the hosts in `allowed_hosts`.
    Allowlist,
}

impl NetworkMode {
    /// The mode as a manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Public => "public",
            NetworkMode::NoNetwork => "no-network",
            NetworkMode::Allowlist => "allowlist",
        }
    }
}

/// `[environment]`: the container a task runs in.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSection {
    /// Seconds the image build may take.
    #[serde(default = "default_build_timeout")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub build_timeout_sec: f64,
    /// A prebuilt image to use; `environment/Dockerfile` is then optional.
    #[schemars(length(min = 1))]
    pub docker_image: Option<String>,
    /// CPUs for the container (fractions allowed).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub cpus: Option<f64>,
    /// Memory limit in megabytes.
    #[schemars(range(min = 1))]
    pub memory_mb: Option<u64>,
    /// Deprecated: memory limit as text (`"2G"`); use `memory_mb`.
    pub memory: Option<ByteSize>,
    /// Disk space in megabytes.
    #[schemars(range(min = 1))]
    pub storage_mb: Option<u64>,
    /// Deprecated: disk space as text (`"10G"`); use `storage_mb`.
    pub storage: Option<ByteSize>,
    /// Number of GPUs.
    pub gpus: Option<u32>,
    /// Acceptable GPU types, such as `["H100", "A100"]`.
    pub gpu_types: Option<Vec<String>>,
    /// Environment variables for the container; `${VAR}` and `${VAR:-default}` read the host.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the agent, an absolute path (the image's WORKDIR when absent);
    /// `C:\\app` style on Windows.
    #[schemars(regex(pattern = r"^(/|[A-Za-z]:[\\/])"))]
    pub workdir: Option<String>,
    /// Network access: `public` (default), `no-network` or `allowlist`.
    pub network_mode: Option<NetworkMode>,
    /// Hosts reachable when `network_mode = "allowlist"`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Deprecated: `false` means `network_mode = "no-network"`.
    pub allow_internet: Option<bool>,
    /// A command that tells when the container is ready.
    pub healthcheck: Option<Healthcheck>,
    /// A virtual X desktop in the container, for computer-use agents.
    pub desktop: Option<DesktopConfig>,
    /// The operating system of the environment (schema 1.1): `linux` (default) or
    /// `windows`.
    pub os: Option<Os>,
    /// A TPU slice the environment needs (schema 1.4).
    pub tpu: Option<Tpu>,
    /// MCP servers the agent is given (schema 1.1).
    #[serde(default)]
    pub mcp_servers: Vec<McpServer>,
    /// A directory in the environment whose skills are given to the agent (schema 1.3).
    pub skills_dir: Option<String>,
}

/// An environment's operating system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Os {
    #[default]
    Linux,
    Windows,
}

/// `[environment.tpu]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tpu {
    /// The TPU type, such as `v5litepod`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub kind: String,
    /// The slice's shape, such as `2x4`.
    #[schemars(regex(pattern = r"^\s*[1-9][0-9]*(x[1-9][0-9]*)+\s*$"))]
    pub topology: String,
}

/// One of `[[environment.mcp_servers]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    #[schemars(length(min = 1))]
    pub name: String,
    /// `sse` (the default), `streamable-http` (or `http`) or `stdio`.
    #[serde(default)]
    pub transport: McpTransport,
    /// The server's URL, for `sse` and `streamable-http`.
    pub url: Option<String>,
    /// The command that starts the server, for `stdio`.
    pub command: Option<String>,
    /// The command's arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

/// How an agent talks to an MCP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum McpTransport {
    #[default]
    Sse,
    StreamableHttp,
    /// Harbor's older name of `streamable-http`.
    Http,
    Stdio,
}

impl Default for EnvironmentSection {
    fn default() -> Self {
        EnvironmentSection {
            build_timeout_sec: default_build_timeout(),
            docker_image: None,
            cpus: None,
            memory_mb: None,
            memory: None,
            storage_mb: None,
            storage: None,
            gpus: None,
            gpu_types: None,
            env: BTreeMap::new(),
            workdir: None,
            network_mode: None,
            allowed_hosts: Vec::new(),
            allow_internet: None,
            healthcheck: None,
            desktop: None,
            os: None,
            tpu: None,
            mcp_servers: Vec::new(),
            skills_dir: None,
        }
    }
}

impl EnvironmentSection {
    /// The memory limit in megabytes, from `memory_mb` or the legacy `memory`.
    pub fn memory_megabytes(&self) -> Option<u64> {
        self.memory_mb.or(self.memory.map(ByteSize::megabytes))
    }

    /// Disk space in megabytes, from `storage_mb` or the legacy `storage`.
    pub fn storage_megabytes(&self) -> Option<u64> {
        self.storage_mb.or(self.storage.map(ByteSize::megabytes))
    }

    /// The network mode, from `network_mode` or the legacy `allow_internet`.
    pub fn resolved_network_mode(&self) -> NetworkMode {
        match (self.network_mode, self.allow_internet) {
            (Some(mode), _) => mode,
            (None, Some(false)) => NetworkMode::NoNetwork,
            (None, _) => NetworkMode::Public,
        }
    }
}

/// `[environment.healthcheck]`, as Docker's HEALTHCHECK.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// Shell command run in the container; exit 0 means healthy.
    #[schemars(length(min = 1))]
    pub command: String,
    /// Seconds between checks.
    #[serde(default = "default_interval")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub interval_sec: f64,
    /// Seconds one check may take.
    #[serde(default = "default_check_timeout")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_sec: f64,
    /// Seconds after start during which failures do not count.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub start_period_sec: f64,
    /// Failures in a row before the container counts as unhealthy.
    #[serde(default = "default_retries")]
    #[schemars(range(min = 1))]
    pub retries: u32,
    /// Seconds between checks during the start period (schema 1.1).
    #[serde(default = "default_interval")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub start_interval_sec: f64,
}

fn default_interval() -> f64 {
    5.0
}

fn default_check_timeout() -> f64 {
    30.0
}

fn default_retries() -> u32 {
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_fields_resolve() {
        let env: EnvironmentSection = serde_json::from_value(serde_json::json!({
            "memory": "2G", "storage": "10G", "allow_internet": false
        }))
        .unwrap();
        assert_eq!(env.memory_megabytes(), Some(2048));
        assert_eq!(env.storage_megabytes(), Some(10240));
        assert_eq!(env.resolved_network_mode(), NetworkMode::NoNetwork);
    }

    #[test]
    fn defaults_follow_harbor() {
        let task: TaskManifest = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(task.verifier.timeout_sec, 600.0);
        assert_eq!(task.environment.build_timeout_sec, 600.0);
        assert_eq!(task.agent.timeout_sec, None);
        assert_eq!(
            task.environment.resolved_network_mode(),
            NetworkMode::Public
        );
    }
}
