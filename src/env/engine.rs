//! The provider-neutral face of environments: the [`Environment`] trait a provider
//! implements (images, creating sandboxes, reaping and gc) and the [`Sandbox`] trait of
//! what it creates (exec, upload, download, remove). The runner, agents and verifiers hold
//! an [`Engine`] and [`Instance`]s, handles over these traits, and never name a provider.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::registry::{Builds, Capabilities};
use super::{EnvError, EnvSpec, ExecOutput, ExecSpec, Provider, ProviderSettings, tarball};

/// Concurrent Docker API calls when nothing else is said.
pub const DEFAULT_DOCKER_CALLS: usize = 16;

/// What opening an engine needs besides the host's environment variables.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Concurrent Docker API calls, apart from the bound on concurrent trials.
    pub docker_calls: usize,
    /// Each provider's own settings (`[environment.<provider>]` of the pipeline).
    pub settings: ProviderSettings,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            docker_calls: DEFAULT_DOCKER_CALLS,
            settings: ProviderSettings::default(),
        }
    }
}

/// An image build: a directory with a Dockerfile, made into `tag`.
#[derive(Debug, Clone, Copy)]
pub struct BuildSpec<'a> {
    pub context: &'a Path,
    /// The Dockerfile, relative to the context.
    pub dockerfile: &'a str,
    pub tag: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub timeout: Duration,
    /// Where the build's output goes.
    pub log: &'a Path,
}

/// An installed agent's install: `script` run once in a container of `image` with the
/// volume `volume` mounted at `target`, writable.
#[derive(Debug, Clone, Copy)]
pub struct InstallSpec<'a> {
    pub volume: &'a str,
    pub image: &'a str,
    pub target: &'a str,
    pub script: &'a str,
    /// A file the script writes last, under `target`: a volume without it is unfinished.
    pub marker: &'a str,
    /// Of the volume; the installer's container gets them with the run's pid and host.
    pub labels: &'a BTreeMap<String, String>,
    pub container_labels: &'a BTreeMap<String, String>,
    pub timeout: Duration,
    /// Where the installer's output goes.
    pub log: &'a Path,
}

/// A command run once in a container of an image, with a volume mounted: how an installed
/// agent's needs are checked against a task's image before any trial.
#[derive(Debug, Clone)]
pub struct ProbeSpec<'a> {
    pub image: &'a str,
    pub volume: &'a str,
    pub target: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// A shell script; its standard error goes with its output.
    pub script: &'a str,
    pub timeout: Duration,
}

/// What `helios gc` removed from one provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Containers or sandboxes.
    pub instances: usize,
    pub images: usize,
    pub networks: usize,
    /// Installed agents' volumes.
    pub volumes: usize,
}

/// A provider of environments: the local Docker engine, Daytona, or the in-memory fake.
#[async_trait]
pub trait Environment: Send + Sync + 'static {
    fn provider(&self) -> Provider;

    /// What its environments can do: its provider's, from the registry.
    fn capabilities(&self) -> Capabilities {
        self.provider().capabilities()
    }

    /// Whether its sandboxes run on this machine, and so take from the run's CPU and
    /// memory budget.
    fn runs_here(&self) -> bool {
        self.capabilities().runs_here
    }

    /// Whether helios builds images itself on this machine (`false`: the provider builds
    /// them from the Dockerfile's text, as Daytona's declarative build does).
    fn builds_images(&self) -> bool {
        self.capabilities().builds == Builds::Here
    }

    /// Whether an image with this tag exists already.
    async fn image_exists(&self, tag: &str) -> Result<bool, EnvError>;

    /// Makes sure a prebuilt image (`docker_image`) is present, pulling it when it is not.
    async fn ensure_image(&self, image: &str) -> Result<(), EnvError>;

    /// Builds an image, its output in `spec.log`.
    async fn build(&self, spec: &BuildSpec<'_>) -> Result<(), EnvError>;

    /// Whether an installed agent's volume exists (finished or not).
    async fn volume_exists(&self, _volume: &str) -> Result<bool, EnvError> {
        Ok(false)
    }

    /// Makes sure an installed agent's volume is installed: kept if finished, else made
    /// (again) by running the install. Returns whether it installed anything.
    async fn install(&self, spec: &InstallSpec<'_>) -> Result<bool, EnvError> {
        Err(EnvError::Unsupported(format!(
            "{} cannot install agents (installed agents run on Docker); cannot make `{}`",
            self.provider(),
            spec.volume
        )))
    }

    /// Runs `spec.script` once in a container of `spec.image` with `spec.volume` mounted
    /// read-only at `spec.target`, and removes the container.
    async fn probe(&self, spec: &ProbeSpec<'_>) -> Result<super::ExecOutput, EnvError> {
        Err(EnvError::Unsupported(format!(
            "{} cannot check images for installed agents (they run on Docker); cannot check `{}`",
            self.provider(),
            spec.image
        )))
    }

    /// Creates a trial's environment. It may not be ready to run commands yet: see
    /// [`Instance::ready`]. A cancel while the provider is still asked to create it ends
    /// with [`EnvError::Cancelled`] and leaves nothing behind.
    async fn create(
        &self,
        spec: &EnvSpec,
        cancel: &CancellationToken,
    ) -> Result<Instance, EnvError>;

    /// Removes what earlier runs on this machine left when their process died; returns how
    /// many. For a remote provider this is also the first authenticated call, so a refused
    /// key shows here, before any trial starts.
    async fn reap_dead_runs(&self) -> Result<usize, EnvError>;

    /// Removes an image this run made (a sandbox frozen with [`Sandbox::freeze`]).
    async fn remove_image(&self, _image: &str) -> Result<(), EnvError> {
        Ok(())
    }

    /// Removes everything helios labelled (and that carries every label in `labels`).
    async fn gc(&self, labels: &[String]) -> Result<Collected, EnvError>;

    /// The address of this machine as its sandboxes see it, where a server of this run
    /// (the model gateway) can listen for them and for nothing outside: the Docker bridge's
    /// gateway. `None` for sandboxes that run elsewhere and cannot reach this machine.
    async fn host_address(&self) -> Result<Option<std::net::IpAddr>, EnvError> {
        Ok(None)
    }

    /// Makes a network named `name` with no route out, whose sandboxes reach this machine
    /// and nothing else, and returns this machine's address on it: where the model gateway
    /// listens for trials of tasks without network. `None` where the provider has none.
    async fn create_isolated_network(
        &self,
        _name: &str,
        _labels: &BTreeMap<String, String>,
    ) -> Result<Option<std::net::IpAddr>, EnvError> {
        Ok(None)
    }

    /// Removes a network [`Environment::create_isolated_network`] made.
    async fn remove_network(&self, _name: &str) -> Result<(), EnvError> {
        Ok(())
    }

    /// Asks the engine whether it answers at all: the runner's watch on a wedged engine
    /// times this call. A provider with nothing to ask answers at once.
    async fn ping(&self) -> Result<(), EnvError> {
        Ok(())
    }
}

/// A trial's running environment, as a provider implements it.
#[async_trait]
pub trait Sandbox: Send + Sync + 'static {
    /// The container id or the sandbox id.
    fn id(&self) -> &str;

    fn provider(&self) -> Provider;

    /// Whether the environment was made with its spec's `workdir` in place (Docker makes
    /// a container's working directory when it creates it); `false`: it is to be made.
    fn makes_workdir(&self) -> bool {
        false
    }

    /// Waits until commands can run (a sandbox reaching `started`, its image built).
    async fn ready(&self) -> Result<(), EnvError> {
        Ok(())
    }

    /// Runs `bash -c COMMAND`; past the deadline the command and its children are killed.
    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EnvError>;

    /// Unpacks a tar archive at `/`.
    async fn upload_archive(&self, archive: Vec<u8>) -> Result<(), EnvError>;

    /// Copies the directory `path` into the host directory `dest` (its contents, not the
    /// directory itself), streamed to disk, writing at most `cap` bytes of files; what is
    /// past the cap is counted in the stats' `cut_*` fields (see
    /// [`tarball::unpack_stripped`]).
    async fn download_dir(
        &self,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError>;

    /// Freezes the sandbox's filesystem into an image carrying `labels`, and returns the
    /// image's id: a fresh sandbox made from it has the files and none of the processes.
    async fn freeze(&self, _labels: &BTreeMap<String, String>) -> Result<String, EnvError> {
        Err(EnvError::Unsupported(format!(
            "{} cannot freeze a sandbox into an image (needed for `isolation = \"separate\"`)",
            self.provider()
        )))
    }

    /// Another service of a multi-container environment (a Compose sidecar), whose commands
    /// run under `sh -c` (its image may have no bash). `None` when there is no such service.
    /// Removing the environment removes its services: a service's own `remove` does nothing.
    fn service(&self, _name: &str) -> Option<Arc<dyn Sandbox>> {
        None
    }

    /// Puts the sandbox on `plan`'s networks and no other, for the phase about to start
    /// (made with [`super::EnvSpec::switches_network`]).
    async fn set_network(&self, _plan: &super::NetworkPlan) -> Result<(), EnvError> {
        Err(EnvError::Unsupported(format!(
            "{} cannot change a sandbox's network between phases (a task's `[agent]` or \
             `[verifier]` `network_mode` unlike its `[environment]`'s)",
            self.provider()
        )))
    }

    /// Removes the environment (with retries for a remote provider). An error names what
    /// is left, so that it can be removed by hand or by `helios gc`. Called once per
    /// sandbox: [`Instance::remove`] owns the removal.
    async fn remove(&self) -> Result<(), EnvError>;
}

/// A connection to one provider.
#[derive(Clone)]
pub struct Engine(Arc<dyn Environment>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({})", self.provider())
    }
}

impl std::ops::Deref for Engine {
    type Target = dyn Environment;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl Engine {
    /// Wraps a provider's implementation.
    pub fn new(environment: impl Environment) -> Engine {
        Engine(Arc::new(environment))
    }

    /// Connects to `provider` as its registry entry says: the Docker engine as the
    /// `docker` CLI would, or Daytona with `DAYTONA_API_KEY` / `DAYTONA_API_URL` /
    /// `DAYTONA_TARGET` read through `host` (no network call yet for Daytona:
    /// [`Environment::reap_dead_runs`] is the first).
    pub async fn open(
        provider: Provider,
        options: &OpenOptions,
        host: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Engine, EnvError> {
        (provider.entry().open)(options, host).await
    }
}

/// A trial's running environment: a container or a sandbox, whichever provider made it.
///
/// Directories can be staged ([`Instance::stage_dirs`]): they travel with the next upload,
/// or on their own before the next command or download, so that making them costs no
/// round trip of its own where an upload follows.
#[derive(Clone)]
pub struct Instance {
    sandbox: Arc<dyn Sandbox>,
    /// Tar headers of the staged directories, without the archive's end.
    staged: Arc<std::sync::Mutex<Vec<u8>>>,
    /// The one removal of the sandbox, shared by every clone of this handle: whoever asks
    /// first removes it, later asks (a teardown after a separate verification removed the
    /// agent's container, a cancel racing an ending) get its answer without a second call.
    removal: Arc<tokio::sync::OnceCell<Result<(), EnvError>>>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Instance({} {})", self.provider(), self.id())
    }
}

impl std::ops::Deref for Instance {
    type Target = dyn Sandbox;

    fn deref(&self) -> &Self::Target {
        self.sandbox.as_ref()
    }
}

impl Instance {
    pub fn new(sandbox: impl Sandbox) -> Instance {
        Instance {
            sandbox: Arc::new(sandbox),
            staged: Arc::default(),
            removal: Arc::default(),
        }
    }

    /// Removes the environment, once: every call after the first (or during it) waits for
    /// the first's answer and gets it, so no two removals of one sandbox race.
    pub async fn remove(&self) -> Result<(), EnvError> {
        self.removal
            .get_or_init(|| self.sandbox.remove())
            .await
            .clone()
    }

    /// Whether [`Instance::remove`] has finished removing it.
    pub fn removed(&self) -> bool {
        matches!(self.removal.get(), Some(Ok(())))
    }

    /// Stages directories (absolute paths, made as root with `mode`) to be made before
    /// anything else happens in the environment: with the next upload, or before the next
    /// command, download or freeze. A directory that exists takes `mode` and root's
    /// ownership, so stage only directories helios owns (`/logs/...`), never the workdir.
    pub fn stage_dirs(&self, dirs: &[&str], mode: u32) -> Result<(), EnvError> {
        let headers =
            tarball::dir_headers(dirs, mode).map_err(|e| EnvError::io("staging directories", e))?;
        self.staged
            .lock()
            .expect("staged directories")
            .extend_from_slice(&headers);
        Ok(())
    }

    fn take_staged(&self) -> Vec<u8> {
        std::mem::take(&mut *self.staged.lock().expect("staged directories"))
    }

    /// Makes the staged directories now, if there are any.
    async fn flush_staged(&self) -> Result<(), EnvError> {
        let staged = self.take_staged();
        if staged.is_empty() {
            return Ok(());
        }
        self.sandbox.upload_archive(tarball::with_end(staged)).await
    }

    /// Runs `bash -c COMMAND` (see [`Sandbox::exec`]), after the staged directories.
    pub async fn exec(&self, spec: &super::ExecSpec) -> Result<super::ExecOutput, EnvError> {
        self.flush_staged().await?;
        self.sandbox.exec(spec).await
    }

    /// Unpacks a tar archive at `/`, the staged directories first, in one call.
    pub async fn upload_archive(&self, archive: Vec<u8>) -> Result<(), EnvError> {
        let mut staged = self.take_staged();
        if staged.is_empty() {
            return self.sandbox.upload_archive(archive).await;
        }
        staged.extend_from_slice(&archive);
        self.sandbox.upload_archive(staged).await
    }

    /// Copies the directory `path` into the host directory `dest` (see
    /// [`Sandbox::download_dir`]), after the staged directories.
    pub async fn download_dir(
        &self,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError> {
        self.flush_staged().await?;
        self.sandbox.download_dir(path, dest, cap).await
    }

    /// Freezes the filesystem into an image (see [`Sandbox::freeze`]), the staged
    /// directories in it.
    pub async fn freeze(&self, labels: &BTreeMap<String, String>) -> Result<String, EnvError> {
        self.flush_staged().await?;
        self.sandbox.freeze(labels).await
    }

    /// The handle on service `name` of the environment: this one for `main` (or `None`),
    /// else a sidecar's (see [`Sandbox::service`]).
    pub fn service(&self, name: Option<&str>) -> Result<Instance, EnvError> {
        match name {
            None | Some(super::MAIN_SERVICE) => Ok(self.clone()),
            Some(name) => match self.sandbox.service(name) {
                Some(sandbox) => Ok(Instance {
                    sandbox,
                    staged: Arc::default(),
                    removal: Arc::default(),
                }),
                None => Err(EnvError::Unsupported(format!(
                    "the environment has no service `{name}` (only Compose tasks on Docker have \
                     services besides `main`)"
                ))),
            },
        }
    }

    /// Copies the host directory `dir` to `/<name>`.
    pub async fn upload_dir(&self, dir: &Path, name: &str) -> Result<(), EnvError> {
        let archive = tarball::pack_dir(dir, name)
            .map_err(|e| EnvError::io(format!("packing `{}`", dir.display()), e))?;
        self.upload_archive(archive).await
    }
}
