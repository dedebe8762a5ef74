//! The typed `task.toml` of a Harbor / Terminal-Bench 2.0 task directory.
//!
//! Field names and defaults follow Harbor so that existing tasks load unmodified; the legacy
//! spellings Terminal-Bench 2.0 uses (`version`, `memory`, `storage`, `allow_internet`) are
//! accepted and resolved by the accessor methods.

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
}

/// `[agent]`: limits on the agent's work.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Seconds the agent may work; absent means no limit.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_sec: Option<f64>,
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
}

impl Default for VerifierSection {
    fn default() -> Self {
        VerifierSection {
            timeout_sec: default_verifier_timeout(),
            env: BTreeMap::new(),
            isolation: None,
        }
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
    /// Working directory of the agent, an absolute path (the image's WORKDIR when absent).
    #[schemars(regex(pattern = r"^/"))]
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
