//! The provider-neutral face of environments: an [`Engine`] starts [`Instance`]s, and an
//! instance runs commands and moves files, whichever provider is behind it. The trial
//! lifecycle, agents and verifiers only ever see these two types.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::daytona::{self, DaytonaEngine, Sandbox};
use super::docker::{Container, DockerEngine};
use super::{EnvError, EnvSpec, ExecOutput, ExecSpec, tarball};
use crate::env::{DaytonaSettings, Provider};

/// Concurrent Docker API calls when nothing else is said.
pub const DEFAULT_DOCKER_CALLS: usize = 16;

/// What opening an engine needs besides the host's environment variables.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Concurrent Docker API calls, apart from the bound on concurrent trials.
    pub docker_calls: usize,
    /// `[environment.daytona]` of the pipeline.
    pub daytona: DaytonaSettings,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            docker_calls: DEFAULT_DOCKER_CALLS,
            daytona: DaytonaSettings::default(),
        }
    }
}

/// A connection to one provider.
#[derive(Clone)]
pub enum Engine {
    Docker(DockerEngine),
    Daytona(DaytonaEngine),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({})", self.provider())
    }
}

impl Engine {
    /// Connects to `provider`: the Docker engine as the `docker` CLI would, or Daytona with
    /// `DAYTONA_API_KEY` / `DAYTONA_API_URL` / `DAYTONA_TARGET` read through `host` (no
    /// network call yet for Daytona: [`Engine::reap_dead_runs`] is the first).
    pub async fn open(
        provider: Provider,
        options: &OpenOptions,
        host: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Engine, EnvError> {
        Ok(match provider {
            Provider::Docker => Engine::Docker(DockerEngine::connect(options.docker_calls).await?),
            Provider::Daytona => {
                let config = daytona::Config::resolve(&options.daytona, host)?;
                Engine::Daytona(DaytonaEngine::new(config)?)
            }
        })
    }

    pub fn provider(&self) -> Provider {
        match self {
            Engine::Docker(_) => Provider::Docker,
            Engine::Daytona(_) => Provider::Daytona,
        }
    }

    /// Creates a trial's environment. It may not be ready to run commands yet: see
    /// [`Instance::ready`]. A cancel while the provider is still asked to create it ends
    /// with [`EnvError::Cancelled`] and leaves nothing behind.
    pub async fn start(
        &self,
        spec: &EnvSpec,
        cancel: &CancellationToken,
    ) -> Result<Instance, EnvError> {
        Ok(Instance(match self {
            Engine::Docker(engine) => Inner::Docker {
                container: engine.start(spec).await?,
                engine: engine.clone(),
            },
            Engine::Daytona(engine) => Inner::Daytona {
                sandbox: engine.create(spec, cancel).await?,
                engine: engine.clone(),
            },
        }))
    }

    /// Removes what earlier runs on this machine left when their process died; returns
    /// how many. For Daytona this is also the first authenticated call, so a refused key
    /// shows here, before any trial starts.
    pub async fn reap_dead_runs(&self) -> Result<usize, EnvError> {
        match self {
            Engine::Docker(docker) => docker.reap_dead_runs().await,
            Engine::Daytona(daytona) => daytona.reap_dead_runs().await,
        }
    }
}

/// A trial's running environment: a container or a sandbox, with the engine that made it.
#[derive(Clone)]
pub struct Instance(Inner);

#[derive(Clone)]
enum Inner {
    Docker {
        engine: DockerEngine,
        container: Container,
    },
    Daytona {
        engine: DaytonaEngine,
        sandbox: Sandbox,
    },
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Instance({} {})", self.provider(), self.id())
    }
}

impl Instance {
    /// The container id or the sandbox id.
    pub fn id(&self) -> &str {
        match &self.0 {
            Inner::Docker { container, .. } => &container.id,
            Inner::Daytona { sandbox, .. } => sandbox.id(),
        }
    }

    pub fn provider(&self) -> Provider {
        match &self.0 {
            Inner::Docker { .. } => Provider::Docker,
            Inner::Daytona { .. } => Provider::Daytona,
        }
    }

    /// Waits until commands can run (a sandbox reaching `started`, its image built).
    pub async fn ready(&self) -> Result<(), EnvError> {
        match &self.0 {
            Inner::Docker { .. } => Ok(()),
            Inner::Daytona { engine, sandbox } => engine.wait_ready(sandbox).await,
        }
    }

    /// Runs `bash -c COMMAND`; past the deadline the command and its children are killed.
    pub async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EnvError> {
        match &self.0 {
            Inner::Docker { engine, container } => engine.exec(container, spec).await,
            Inner::Daytona { engine, sandbox } => engine.exec(sandbox, spec).await,
        }
    }

    /// Copies the host directory `dir` to `/<name>`.
    pub async fn upload_dir(&self, dir: &Path, name: &str) -> Result<(), EnvError> {
        let archive = tarball::pack_dir(dir, name)
            .map_err(|e| EnvError::Io(format!("packing `{}`: {e}", dir.display())))?;
        self.upload_archive(archive).await
    }

    /// Unpacks a tar archive at `/`.
    pub async fn upload_archive(&self, archive: Vec<u8>) -> Result<(), EnvError> {
        match &self.0 {
            Inner::Docker { engine, container } => engine.upload_archive(container, archive).await,
            Inner::Daytona { engine, sandbox } => engine.upload_archive(sandbox, archive).await,
        }
    }

    /// Copies the directory `path` into the host directory `dest`.
    pub async fn download_dir(
        &self,
        path: &str,
        dest: &Path,
    ) -> Result<tarball::UnpackStats, EnvError> {
        match &self.0 {
            Inner::Docker { engine, container } => engine.download_dir(container, path, dest).await,
            Inner::Daytona { engine, sandbox } => engine.download_dir(sandbox, path, dest).await,
        }
    }

    /// Removes the environment (with retries for a remote provider). An error names what
    /// is left, so that it can be removed by hand or by `helios gc`.
    pub async fn remove(&self) -> Result<(), EnvError> {
        match &self.0 {
            Inner::Docker { engine, container } => engine.remove(container).await,
            Inner::Daytona { engine, sandbox } => engine.delete(sandbox.id()).await,
        }
    }
}
