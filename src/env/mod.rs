//! Environments: where a trial's commands run. A provider is a local Docker engine
//! ([`docker`]) or Daytona cloud sandboxes ([`daytona`]); [`Engine`] and [`Instance`] are
//! what the trial lifecycle sees of either, so nothing above this module names one.

pub mod allowlist;
mod compose;
pub mod daytona;
pub mod desktop;
pub mod docker;
mod engine;
pub mod fake;
mod netguard;
mod provider;
pub mod registry;
pub mod removal;
pub mod tarball;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use allowlist::{AllowedHost, Allowlist};
pub use compose::MAIN_SERVICE;
/// Credentials a program gives instead of a provider's environment variables.
pub use daytona::Credentials;
pub use engine::{
    BuildSpec, Collected, DEFAULT_DOCKER_CALLS, Engine, Environment, InstallSpec, Instance,
    OpenOptions, ProbeSpec, Sandbox,
};
pub use provider::{DaytonaSettings, HostVariables, Provider, ProviderSettings};
pub use registry::{Builds, Capabilities};

/// What went wrong with the environment itself (never the agent's fault).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnvError {
    /// The provider's engine or API does not answer at all (dockerd not running, a wrong
    /// `DOCKER_HOST`).
    #[error("cannot reach {}: {message}", .provider.engine_name())]
    Unreachable { provider: Provider, message: String },
    /// The provider's engine or API refused or failed a call (after its retries, if any).
    #[error("{} failed: {message}", .provider.engine_name())]
    Engine {
        provider: Provider,
        message: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    #[error("building image `{tag}` failed: {reason} (build log: {log})")]
    BuildFailed {
        tag: String,
        reason: String,
        log: String,
    },
    #[error("building image `{tag}` took longer than {seconds}s (build log: {log})")]
    BuildTimeout {
        tag: String,
        seconds: f64,
        log: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Desktop(String),
    /// A file on this machine could not be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The provider's credentials are missing or were refused.
    #[error("{0}")]
    Auth(String),
    /// A sandbox did not reach `started` in time, or stopped on the way.
    #[error("sandbox `{id}` was not ready after {seconds}s (last state `{state}`)")]
    NotReady {
        id: String,
        seconds: f64,
        state: String,
    },
    /// An installed agent's install script failed (or ran out of time); nothing of it is
    /// kept.
    #[error("installing `{volume}` failed: {reason} (install log: {log})\n{output}")]
    InstallFailed {
        volume: String,
        reason: String,
        log: String,
        /// The end of the installer's output.
        output: String,
    },
    /// A task's image lacks what an installed agent needs (glibc's x86-64 loader, a C
    /// library its runtime can use): found before any trial, by running the agent's own
    /// runtime in a container of the image.
    #[error("{0}")]
    ImageUnfit(Box<ImageUnfit>),
    /// A service of a multi-container environment (a Compose sidecar) did not start, did not
    /// become healthy or did not complete as another service's `depends_on` asks.
    #[error("service `{service}` {reason}")]
    ServiceFailed { service: String, reason: String },
    /// The run was cancelled while the environment was being made.
    #[error("cancelled")]
    Cancelled,
    /// A task's healthcheck did not pass: the environment never became ready.
    #[error("the healthcheck `{command}` did not pass after {attempts} attempt(s) in {seconds:.1}s{}", last_output(.output))]
    Unhealthy {
        command: String,
        attempts: u32,
        seconds: f64,
        /// The end of the last attempt's output.
        output: String,
    },
    /// The engine did not answer a call within its deadline (a wedged daemon): nothing of
    /// helios waits on an engine forever. Worth another try, like any engine hiccup.
    #[error("{} did not answer `{call}` within {seconds}s", .provider.engine_name())]
    NoAnswer {
        provider: Provider,
        /// The call, as the engine's API names it (`remove container 0123abcd`).
        call: String,
        seconds: f64,
    },
}

fn last_output(output: &str) -> String {
    let output = output.trim();
    if output.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{output}")
    }
}

/// Why a task's image cannot run an installed agent, and what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "task `{task}`: image `{image}` cannot run installed agent `{agent}`: it lacks {missing}\n  (hint: {fix})"
)]
pub struct ImageUnfit {
    pub task: String,
    pub image: String,
    pub agent: String,
    pub missing: String,
    pub fix: String,
}

impl EnvError {
    /// A failure of `provider`'s engine or API described by `message` alone.
    pub fn engine(provider: Provider, message: impl Into<String>) -> EnvError {
        EnvError::Engine {
            provider,
            message: message.into(),
            source: None,
        }
    }

    /// `provider`'s engine or API does not answer.
    pub fn unreachable(provider: Provider, message: impl Into<String>) -> EnvError {
        EnvError::Unreachable {
            provider,
            message: message.into(),
        }
    }

    /// The provider an error is about, when it is a provider's failure (its engine or API
    /// unreachable, failing or silent): the `provider` of a result's error.
    pub fn provider(&self) -> Option<Provider> {
        match self {
            EnvError::Unreachable { provider, .. }
            | EnvError::Engine { provider, .. }
            | EnvError::NoAnswer { provider, .. } => Some(*provider),
            _ => None,
        }
    }

    /// An I/O failure while doing `context` (a lowercase fragment naming the file).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> EnvError {
        EnvError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// Whether trying again may help: engine hiccups and slow sandboxes yes; a Dockerfile
    /// that fails or a refused key, no.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EnvError::Engine { .. }
                | EnvError::Unreachable { .. }
                | EnvError::Io { .. }
                | EnvError::Desktop(_)
                | EnvError::NotReady { .. }
                | EnvError::NoAnswer { .. }
        )
    }
}

impl crate::retry::Transient for EnvError {
    fn is_retryable(&self) -> bool {
        EnvError::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// How to start a trial's environment, whatever the provider.
#[derive(Debug, Clone, Default)]
pub struct EnvSpec {
    /// The image: a tag the run built, or a registry reference (`docker_image`).
    pub image: String,
    /// The Dockerfile text that makes `image`, for providers that build it themselves
    /// (Daytona's declarative build); `None` for a prebuilt image.
    pub dockerfile: Option<String>,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub cpus: Option<f64>,
    pub memory_mb: Option<u64>,
    pub storage_mb: Option<u64>,
    pub gpus: Option<u32>,
    pub no_network: bool,
    /// The network changes between phases ([`Sandbox::set_network`]): the provider makes
    /// the environment so that it can, and the runner sets the first phase's network
    /// before anything runs.
    pub switches_network: bool,
    /// With `no_network`: a network of this run to attach to instead of none, one with no
    /// route out whose sandboxes reach only this machine (the model gateway).
    pub isolated_network: Option<String>,
    /// In force from the start, for its whole life (a separate verifier's `allowlist`);
    /// a provider that cannot enforce it refuses to create the environment.
    pub allowlist: Option<Allowlist>,
    /// How long the environment may take to be ready, a remote image build included.
    pub ready_timeout: Duration,
    /// Volumes mounted into the environment (an installed agent's, read-only).
    pub mounts: Vec<Mount>,
    /// Other services started with it on a network of their own (a Compose task's
    /// sidecars), and what the Compose file says of the agent's container (`main`).
    pub services: Option<Arc<ServicesSpec>>,
}

/// The services of a multi-container environment. The agent's container is made from the
/// [`EnvSpec`] with `main`'s settings over it; every service is a container on one network
/// of the trial, reachable by its name.
#[derive(Debug, Clone, Default)]
pub struct ServicesSpec {
    /// The trial's project name (`COMPOSE_PROJECT_NAME`): the network is named after it.
    pub project: String,
    /// The agent's service; its `image` is the [`EnvSpec`]'s, its `env` goes under the
    /// spec's.
    pub main: ServiceSpec,
    pub sidecars: Vec<ServiceSpec>,
    /// Named volumes, made empty for the trial and removed with it (by their names in the
    /// Compose file).
    pub volumes: Vec<String>,
    /// How long every service may take to start, become healthy or complete.
    pub deadline: Duration,
}

/// One service of a multi-container environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    /// The image's command and entrypoint when `None`.
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub cpus: Option<f64>,
    pub memory_mb: Option<u64>,
    pub healthcheck: Option<HealthSpec>,
    pub depends_on: Vec<Dependency>,
    /// Paths mounted as tmpfs (`/run` or `/run:size=64m`).
    pub tmpfs: Vec<String>,
    /// Anonymous volumes, removed with the container.
    pub volumes: Vec<String>,
    pub init: bool,
    pub labels: BTreeMap<String, String>,
    /// Networks that already exist it joins besides the trial's (`external: true`).
    pub networks: Vec<String>,
    /// The trial's named volumes and this machine's paths mounted into it.
    pub mounts: Vec<ServiceMount>,
}

/// A mount of a service of a multi-container environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceMount {
    /// One of [`ServicesSpec::volumes`], by its name in the Compose file.
    Volume {
        name: String,
        target: String,
        read_only: bool,
    },
    /// A path of this machine (made as a directory when missing).
    Bind {
        source: std::path::PathBuf,
        target: String,
        read_only: bool,
    },
}

/// A container healthcheck, as the engine runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSpec {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
}

/// A service another waits for before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Readiness,
}

/// What a dependency must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Its container is running.
    Started,
    /// Its healthcheck passes.
    Healthy,
    /// It exited with status 0.
    Completed,
}

/// The networks a sandbox is on during a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// On the provider's default network, with a route out.
    pub public: bool,
    /// On this network of the run, with no route out, whose sandboxes reach this machine
    /// (the model gateway) only.
    pub isolated: Option<String>,
    /// With `public`: only these destinations are reachable (`allowlist`).
    pub allowlist: Option<Allowlist>,
    /// The model gateway's address as the sandbox sees it, for a provider that keeps it
    /// reachable by rules rather than by networks.
    pub gateway: Option<std::net::SocketAddr>,
}

impl NetworkPlan {
    /// The policy's name, as a task's `network_mode` says it.
    pub fn mode(&self) -> &'static str {
        match (self.public, &self.allowlist) {
            (true, Some(_)) => "allowlist",
            (true, None) => "public",
            (false, _) => "no-network",
        }
    }
}

/// A named volume mounted at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
}

/// A command to run in a container with `bash -c`.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub command: String,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    /// When it must be over; the process and its children are killed then.
    pub deadline: Option<Duration>,
    /// The user it runs as (a name or a numeric id); the image's user when `None`.
    pub user: Option<String>,
}

/// Most bytes of standard output (and of standard error) kept from one command, on every
/// provider; the rest is dropped and counted in [`ExecOutput::cut`].
pub const OUTPUT_CAP: usize = 4 << 20;

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    /// The deadline passed and the command was killed.
    pub timed_out: bool,
    /// Bytes of output past [`OUTPUT_CAP`] (standard output and error together), dropped
    /// rather than held in memory: 0 unless the output was cut.
    pub cut: u64,
}

/// Labels on everything helios creates, so it can be found and removed.
#[derive(Debug, Clone)]
pub struct Labels {
    /// This apply's id: `<pipeline>.<pid>.<start in ms>`.
    pub run: String,
    /// Labels the user added (`--label key=value`).
    pub extra: BTreeMap<String, String>,
}

/// Every helios object carries this label.
pub const MANAGED_LABEL: &str = "helios.managed";
pub const RUN_LABEL: &str = "helios.run";
pub const TRIAL_LABEL: &str = "helios.trial";
pub const TASK_LABEL: &str = "helios.task";
pub const PID_LABEL: &str = "helios.pid";
pub const HOST_LABEL: &str = "helios.host";
/// An installed agent's volume carries its recipe's content address.
pub const INSTALL_LABEL: &str = "helios.install";
pub const AGENT_LABEL: &str = "helios.agent";

impl Labels {
    pub fn new(pipeline: &str, extra: BTreeMap<String, String>) -> Labels {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Labels {
            run: format!("{pipeline}.{}.{started}", std::process::id()),
            extra,
        }
    }

    fn base(&self) -> BTreeMap<String, String> {
        let mut labels = self.extra.clone();
        labels.insert(MANAGED_LABEL.into(), "true".into());
        labels
    }

    /// Labels of a trial's container.
    pub fn container(&self, trial: &str, task: &str) -> BTreeMap<String, String> {
        let mut labels = self.base();
        labels.insert(RUN_LABEL.into(), self.run.clone());
        labels.insert(TRIAL_LABEL.into(), trial.into());
        labels.insert(TASK_LABEL.into(), task.into());
        labels.insert(PID_LABEL.into(), std::process::id().to_string());
        labels.insert(HOST_LABEL.into(), hostname());
        labels
    }

    /// Labels of a network of this run.
    pub fn network(&self) -> BTreeMap<String, String> {
        let mut labels = self.base();
        labels.insert(RUN_LABEL.into(), self.run.clone());
        labels.insert(PID_LABEL.into(), std::process::id().to_string());
        labels.insert(HOST_LABEL.into(), hostname());
        labels
    }

    /// A name for a network of this run, unique on the engine.
    pub fn network_name(&self) -> String {
        let mut digest = sha2::Sha256::default();
        sha2::Digest::update(&mut digest, self.run.as_bytes());
        let hash = hex::encode(sha2::Digest::finalize(digest));
        format!("helios-isolated-{}", &hash[..16])
    }

    /// Labels of an installed agent's volume (shared by runs, so it names the run that made
    /// it) and of the container that installs it.
    pub fn install(&self, agent: &str, digest: &str) -> BTreeMap<String, String> {
        let mut labels = self.base();
        labels.insert(RUN_LABEL.into(), self.run.clone());
        labels.insert(AGENT_LABEL.into(), agent.into());
        labels.insert(INSTALL_LABEL.into(), digest.into());
        labels
    }

    /// Labels of a built image (shared by runs, so it names the run that built it).
    pub fn image(&self, task: &str) -> BTreeMap<String, String> {
        let mut labels = self.base();
        labels.insert(RUN_LABEL.into(), self.run.clone());
        labels.insert(TASK_LABEL.into(), task.into());
        labels
    }
}

/// This machine's name, to tell our leftovers from another machine's on a shared engine.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// `text` as one word for `sh`/`bash`: single-quoted, with its own quotes escaped.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
