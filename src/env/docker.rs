//! The Docker provider, over the engine API (bollard): image builds, containers, exec with
//! deadlines that really kill, file transfer by tar, and clean-up of what helios labelled.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerConfig, ContainerCreateBody, DeviceRequest, HostConfig, MountType, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CommitContainerOptionsBuilder, CreateContainerOptions,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    RemoveVolumeOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use tokio_util::sync::CancellationToken;

use super::removal::{BUSY_PATIENCE, Removal, remove_idempotently};
use super::{
    BuildSpec, Collected, EnvError, EnvSpec, Environment, ExecOutput, ExecSpec, HOST_LABEL,
    InstallSpec, Instance, MANAGED_LABEL, Mount, OUTPUT_CAP, PID_LABEL, ProbeSpec, Provider,
    RUN_LABEL, Sandbox, tarball,
};

/// How long one engine call may go unanswered: nothing waits on a wedged daemon forever.
/// Generous, because a daemon under load (many containers starting at once) answers
/// slowly, and a call that times out costs the trial an attempt.
pub const CALL_DEADLINE: Duration = Duration::from_secs(120);

/// How long a transfer may take: uploads, downloads of `/logs`, commits of a container
/// into an image (calls that move a lot of bytes and answer only at the end).
const TRANSFER_DEADLINE: Duration = Duration::from_secs(600);

/// How long pulling a prebuilt image may take.
const PULL_DEADLINE: Duration = Duration::from_secs(1800);

/// Runs one engine call under `limit`; past it the call is dropped (its connection closed)
/// and the error says which call the engine did not answer.
async fn within<T>(
    call: &str,
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, EnvError>>,
) -> Result<T, EnvError> {
    match tokio::time::timeout(limit, work).await {
        Ok(answer) => answer,
        Err(_) => Err(EnvError::NoAnswer {
            provider: Provider::Docker,
            call: call.to_string(),
            seconds: limit.as_secs_f64(),
        }),
    }
}

/// A removal call's answer as [`Removal`]: 404 is gone already, 409 busy (another apply or
/// `helios gc` removing the same object, or a container on the way out still using it).
fn removal(answer: Result<(), bollard::errors::Error>) -> Result<Removal, EnvError> {
    match answer {
        Ok(()) => Ok(Removal::Removed),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(Removal::Gone),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(Removal::Busy),
        Err(e) => Err(engine_error(e)),
    }
}

/// The first 12 characters of an id, as `docker ps` shows it.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Keeps the container alive until it is removed, and stops at once on SIGTERM.
const KEEP_ALIVE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// Kills the process whose pid is in the file `$1` and all its descendants: stop it first
/// so it spawns nothing more, then its children (found through /proc), then kill it. Plain
/// POSIX sh, so it works in any image.
const KILL_TREE: &str = r#"p=$(cat "$1" 2>/dev/null) || exit 0
k() { kill -STOP "$1" 2>/dev/null; for s in /proc/[0-9]*/stat; do read -r c _ _ pp _ < "$s" 2>/dev/null || continue; [ "$pp" = "$1" ] && k "$c"; done; kill -KILL "$1" 2>/dev/null; }
k "$p""#;

/// A connection to a Docker engine, with a bound on concurrent API calls.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    calls: Arc<Semaphore>,
    exec_counter: Arc<AtomicU64>,
    /// Held while the network guard's image builds, so that it builds once.
    guard_build: Arc<tokio::sync::Mutex<()>>,
}

/// A running container of a trial.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
}

fn engine_error(e: bollard::errors::Error) -> EnvError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => EnvError::engine(Provider::Docker, format!("{message} (HTTP {status_code})")),
        other => EnvError::engine(Provider::Docker, other.to_string()),
    }
}

impl DockerEngine {
    /// Connects as the `docker` CLI would (`DOCKER_HOST` or the local socket) and agrees
    /// on an API version. `max_calls` bounds concurrent API calls.
    pub async fn connect(max_calls: usize) -> Result<DockerEngine, EnvError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| EnvError::unreachable(Provider::Docker, e.to_string()))?;
        let docker = within("version", CALL_DEADLINE, async {
            docker.negotiate_version().await.map_err(|e| {
                EnvError::unreachable(
                    Provider::Docker,
                    format!("{e} (is dockerd running? is DOCKER_HOST right?)"),
                )
            })
        })
        .await?;
        within("ping", CALL_DEADLINE, async {
            docker
                .ping()
                .await
                .map_err(|e| EnvError::unreachable(Provider::Docker, e.to_string()))
        })
        .await?;
        Ok(DockerEngine {
            docker,
            calls: Arc::new(Semaphore::new(max_calls.max(1))),
            exec_counter: Arc::new(AtomicU64::new(0)),
            guard_build: Arc::default(),
        })
    }

    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.calls
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// One call to the engine, named `call` (as its API does, for a deadline's message):
    /// under the bound on calls at once and the call deadline, its failure an [`EnvError`].
    async fn engine_call<T>(
        &self,
        call: &str,
        work: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EnvError> {
        let _permit = self.permit().await;
        within(call, CALL_DEADLINE, async {
            work.await.map_err(engine_error)
        })
        .await
    }

    /// Whether the engine has what `work` inspects: its 404 is `false`.
    async fn engine_has<T>(
        &self,
        call: &str,
        work: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<bool, EnvError> {
        let found = async {
            match work.await {
                Ok(_) => Ok(true),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(false),
                Err(e) => Err(e),
            }
        };
        self.engine_call(call, found).await
    }

    /// The default bridge network's gateway: the host's address on the network trial
    /// containers are attached to.
    async fn bridge_gateway(&self) -> Result<std::net::IpAddr, EnvError> {
        self.network_gateway("bridge").await
    }

    /// Creates an internal network (no route out; the host is reachable at its gateway).
    async fn internal_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<std::net::IpAddr, EnvError> {
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            internal: Some(true),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        {
            self.engine_call("create network", self.docker.create_network(request))
                .await?;
        }
        self.network_gateway(name).await
    }

    /// The address ranges of network `name`.
    pub(crate) async fn network_subnets(&self, name: &str) -> Result<Vec<ipnet::IpNet>, EnvError> {
        let network = self
            .engine_call("inspect network", self.docker.inspect_network(name, None))
            .await?;
        Ok(network
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .iter()
            .filter_map(|config| config.subnet.as_deref()?.parse().ok())
            .collect())
    }

    /// The host's address on network `name`.
    async fn network_gateway(&self, name: &str) -> Result<std::net::IpAddr, EnvError> {
        let network = self
            .engine_call("inspect network", self.docker.inspect_network(name, None))
            .await?;
        let configs = network
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default();
        // Some engines (20.10 after a restart, say) leave the default bridge's gateway out
        // of its IPAM config; it is then the subnet's first address, as dockerd assigns it.
        let gateway = configs
            .iter()
            .filter_map(|config| config.gateway.as_deref())
            .find_map(|gateway| gateway.parse::<std::net::IpAddr>().ok())
            .or_else(|| {
                configs
                    .iter()
                    .filter_map(|config| config.subnet.as_deref())
                    .find_map(first_host_of)
            });
        gateway.ok_or_else(|| {
            EnvError::engine(
                Provider::Docker,
                format!(
                    "the Docker network `{name}` has no gateway address, so trial containers \
                 cannot reach the model gateway (is dockerd running with `--bridge=none`?)"
                ),
            )
        })
    }

    /// Removes a network; one already gone is fine, and one still busy (its last
    /// container on the way out, another apply removing it) is waited for.
    async fn delete_network(&self, name: &str) -> Result<Removal, EnvError> {
        self.remove_object(
            &format!("network `{name}`"),
            &format!("remove network {name}"),
            BUSY_PATIENCE,
            || self.docker.remove_network(name),
        )
        .await
    }

    /// Removes `what` with `remove`, one engine call under the engine's permits and the
    /// call deadline, as [`remove_idempotently`] decides: gone counts as removed, and busy
    /// is asked again until `patience` runs out.
    async fn remove_object<F, Fut>(
        &self,
        what: &str,
        call: &str,
        patience: Duration,
        remove: F,
    ) -> Result<Removal, EnvError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), bollard::errors::Error>>,
    {
        remove_idempotently(Provider::Docker, what, patience, || async {
            let _permit = self.permit().await;
            within(call, CALL_DEADLINE, async { removal(remove().await) }).await
        })
        .await
    }

    /// Networks carrying every label in `labels`, with their labels.
    async fn networks_with(
        &self,
        labels: &[String],
    ) -> Result<Vec<(String, HashMap<String, String>)>, EnvError> {
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .engine_call("list networks", self.docker.list_networks(Some(options)))
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|n| Some((n.name?, n.labels.unwrap_or_default())))
            .collect())
    }

    /// Whether an image with this tag exists locally.
    pub(crate) async fn has_image(&self, tag: &str) -> Result<bool, EnvError> {
        self.engine_has("inspect image", self.docker.inspect_image(tag))
            .await
    }

    /// Makes sure a prebuilt image is present, pulling it when it is not.
    pub(crate) async fn pull_if_missing(&self, image: &str) -> Result<(), EnvError> {
        if self.has_image(image).await? {
            return Ok(());
        }
        let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let _permit = self.permit().await;
        let mut stream = self.docker.create_image(Some(options), None, None);
        within(&format!("pull {image}"), PULL_DEADLINE, async {
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| {
                    EnvError::engine(
                        Provider::Docker,
                        format!("cannot pull image `{image}`: {e}"),
                    )
                })?;
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(EnvError::engine(
                        Provider::Docker,
                        format!("cannot pull image `{image}`: {detail}"),
                    ));
                }
            }
            Ok(())
        })
        .await
    }

    /// Builds `context` (a directory with a Dockerfile) as `tag`, writing the build's output
    /// to `log`. Fails with the build's own error message, or after `timeout`.
    pub(crate) async fn build_image(
        &self,
        context: &Path,
        dockerfile: &str,
        tag: &str,
        labels: &BTreeMap<String, String>,
        timeout: Duration,
        log: &Path,
    ) -> Result<(), EnvError> {
        let io =
            |e: std::io::Error| EnvError::io(format!("build context `{}`", context.display()), e);
        let archive = tarball::pack_dir(context, ".").map_err(io)?;
        if let Some(parent) = log.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        // The log grows in `<log>.partial` (follow it with `tail -f`) and takes its name
        // when the build ends, so a build log under its own name is always complete.
        let partial = log.with_extension("log.partial");
        let mut log_file = tokio::fs::File::create(&partial).await.map_err(io)?;
        let labels: HashMap<&String, &String> = labels.iter().collect();
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(tag)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .build();
        let _permit = self.permit().await;
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(archive.into())));
        let log_name = log.display().to_string();
        let outcome = tokio::time::timeout(timeout, async {
            let mut last_lines: Vec<String> = Vec::new();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| match e {
                    // The engine went away or failed mid-build (a restart, a dropped
                    // connection, a 5xx): worth another try.
                    bollard::errors::Error::HyperLegacyError { .. }
                    | bollard::errors::Error::HyperResponseError { .. }
                    | bollard::errors::Error::HttpClientError { .. }
                    | bollard::errors::Error::IOError { .. }
                    | bollard::errors::Error::DockerResponseServerError {
                        status_code: 500..,
                        ..
                    } => EnvError::Engine {
                        provider: Provider::Docker,
                        message: format!("building `{tag}` was cut off: {e}"),
                        source: Some(Arc::new(e)),
                    },
                    // The build itself failed (a step that exits non-zero, a bad
                    // Dockerfile): building again gives the same answer.
                    other => EnvError::BuildFailed {
                        tag: tag.to_string(),
                        reason: other.to_string(),
                        log: log_name.clone(),
                    },
                })?;
                if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                    log_file.write_all(text.as_bytes()).await.map_err(io)?;
                    last_lines.extend(
                        text.lines()
                            .filter(|l| !l.trim().is_empty())
                            .map(str::to_string),
                    );
                    let excess = last_lines.len().saturating_sub(5);
                    last_lines.drain(..excess);
                }
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    log_file
                        .write_all(format!("ERROR: {detail}\n").as_bytes())
                        .await
                        .map_err(io)?;
                    return Err(EnvError::BuildFailed {
                        tag: tag.to_string(),
                        reason: detail,
                        log: log_name.clone(),
                    });
                }
            }
            Ok(())
        })
        .await;
        log_file.flush().await.map_err(io)?;
        drop(log_file);
        tokio::fs::rename(&partial, log).await.map_err(io)?;
        match outcome {
            Ok(result) => result,
            Err(_) => Err(EnvError::BuildTimeout {
                tag: tag.to_string(),
                seconds: timeout.as_secs_f64(),
                log: log_name,
            }),
        }
    }

    /// Creates and starts a container that stays up until [`DockerEngine::remove_container`].
    pub(crate) async fn start_container(&self, spec: &EnvSpec) -> Result<Container, EnvError> {
        self.launch(container_body(spec)).await
    }

    /// Creates and starts a container from `body`; one that fails to start is removed.
    pub(crate) async fn launch(&self, body: ContainerCreateBody) -> Result<Container, EnvError> {
        let created = self
            .engine_call(
                "create container",
                self.docker
                    .create_container(None::<CreateContainerOptions>, body),
            )
            .await?;
        let container = Container { id: created.id };
        let call = format!("start container {}", short(&container.id));
        let started = self
            .engine_call(&call, self.docker.start_container(&container.id, None))
            .await;
        if let Err(error) = started {
            // Nothing else knows of this container yet: its removal is this call's.
            let _ = self.remove_container(&container).await;
            return Err(error);
        }
        Ok(container)
    }

    /// The container's state as the engine reports it.
    pub(crate) async fn inspect(
        &self,
        container: &Container,
    ) -> Result<bollard::models::ContainerInspectResponse, EnvError> {
        self.engine_call(
            &format!("inspect container {}", short(&container.id)),
            self.docker.inspect_container(&container.id, None),
        )
        .await
    }

    /// Commits a container (paused meanwhile) into an image carrying `labels`; its id.
    pub(crate) async fn commit(
        &self,
        container: &Container,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, EnvError> {
        let options = CommitContainerOptionsBuilder::default()
            .container(&container.id)
            .pause(true)
            .build();
        let config = ContainerConfig {
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let _permit = self.permit().await;
        let committed = within("commit container", TRANSFER_DEADLINE, async {
            self.docker
                .commit_container(options, config)
                .await
                .map_err(engine_error)
        })
        .await?;
        Ok(committed.id)
    }

    /// Creates a user-defined network of a trial (`internal`: no route out).
    pub(crate) async fn create_trial_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        internal: bool,
    ) -> Result<(), EnvError> {
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            internal: Some(internal),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.engine_call("create network", self.docker.create_network(request))
            .await
            .map(|_| ())
    }

    /// Removes a network (see [`DockerEngine::delete_network`]).
    pub(crate) async fn remove_trial_network(&self, name: &str) -> Result<Removal, EnvError> {
        self.delete_network(name).await
    }

    /// Runs `bash -c COMMAND`; past the deadline the command and its children are killed.
    pub(crate) async fn exec_in(
        &self,
        container: &Container,
        spec: &ExecSpec,
    ) -> Result<ExecOutput, EnvError> {
        self.exec_with(container, spec, "bash").await
    }

    /// Runs `SHELL -c COMMAND` (`bash`, or `sh` in a sidecar's image that may lack bash).
    pub(crate) async fn exec_with(
        &self,
        container: &Container,
        spec: &ExecSpec,
        shell: &str,
    ) -> Result<ExecOutput, EnvError> {
        let pid_file = format!(
            "/tmp/.helios-exec-{}",
            self.exec_counter.fetch_add(1, Ordering::Relaxed)
        );
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            r#"echo $$ > "$1"; shift; exec "$@""#.to_string(),
            "helios".to_string(),
            pid_file.clone(),
            shell.to_string(),
            "-c".to_string(),
            spec.command.clone(),
        ];
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: spec.workdir.clone(),
            user: spec.user.clone(),
            ..Default::default()
        };
        let exec_id = self
            .engine_call(
                "create exec",
                self.docker.create_exec(&container.id, options),
            )
            .await?
            .id;
        let started = self
            .engine_call("start exec", self.docker.start_exec(&exec_id, None))
            .await?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(EnvError::engine(Provider::Docker, "exec did not attach"));
        };
        let mut result = ExecOutput::default();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut cut = 0;
        let collect = async {
            while let Some(chunk) = output.next().await {
                cut += match chunk.map_err(engine_error)? {
                    LogOutput::StdOut { message } => append_capped(&mut stdout, &message),
                    LogOutput::StdErr { message } => append_capped(&mut stderr, &message),
                    _ => 0,
                };
            }
            Ok::<(), EnvError>(())
        };
        let finished = match spec.deadline {
            Some(deadline) => tokio::time::timeout(deadline, collect).await,
            None => Ok(collect.await),
        };
        match finished {
            Ok(outcome) => outcome?,
            Err(_) => {
                result.timed_out = true;
                self.kill_tree(container, &pid_file).await?;
            }
        }
        let inspected = self
            .engine_call("inspect exec", self.docker.inspect_exec(&exec_id))
            .await?;
        result.exit_code = inspected.exit_code;
        result.stdout = String::from_utf8_lossy(&stdout).into_owned();
        result.stderr = String::from_utf8_lossy(&stderr).into_owned();
        result.cut = cut;
        Ok(result)
    }

    async fn kill_tree(&self, container: &Container, pid_file: &str) -> Result<(), EnvError> {
        let options = CreateExecOptions {
            cmd: Some(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                KILL_TREE.to_string(),
                "helios-kill".to_string(),
                pid_file.to_string(),
            ]),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let _permit = self.permit().await;
        // The command's deadline has passed already: the kill gets one call's time more.
        within("kill a timed-out command", CALL_DEADLINE, async {
            let id = self
                .docker
                .create_exec(&container.id, options)
                .await
                .map_err(engine_error)?
                .id;
            if let StartExecResults::Attached { mut output, .. } = self
                .docker
                .start_exec(&id, None)
                .await
                .map_err(engine_error)?
            {
                while output.next().await.is_some() {}
            }
            Ok(())
        })
        .await
    }

    /// Unpacks a tar archive at `/` in the container.
    pub(crate) async fn upload_to(
        &self,
        container: &Container,
        archive: Vec<u8>,
    ) -> Result<(), EnvError> {
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        let _permit = self.permit().await;
        within("upload to container", TRANSFER_DEADLINE, async {
            self.docker
                .upload_to_container(
                    &container.id,
                    Some(options),
                    bollard::body_full(archive.into()),
                )
                .await
                .map_err(engine_error)
        })
        .await
    }

    /// Copies the container's directory `path` into the host directory `dest`.
    pub(crate) async fn download_from(
        &self,
        container: &Container,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        // Streamed to disk as it arrives: a 1 GB artifact must not become 1 GB of memory.
        let _permit = self.permit().await;
        let stream = self
            .docker
            .download_from_container(&container.id, Some(options))
            .map(|chunk| chunk.map_err(engine_error));
        within(&format!("download {path}"), TRANSFER_DEADLINE, async {
            tarball::unpack_stream(stream, dest, cap)
                .await
                .map_err(|e| match e {
                    tarball::StreamError::Source(e) => e,
                    tarball::StreamError::Unpack(e) => {
                        EnvError::io(format!("unpacking `{path}`"), e)
                    }
                })
        })
        .await
    }

    /// Removes a container and its anonymous volumes, killing it if it runs. Idempotent: a
    /// container gone already counts as removed, and one whose removal is in progress
    /// (another apply reaping the same dead run: HTTP 409) is waited for until it is gone.
    pub(crate) async fn remove_container(
        &self,
        container: &Container,
    ) -> Result<Removal, EnvError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.remove_object(
            &format!("container `{}`", short(&container.id)),
            &format!("remove container {}", short(&container.id)),
            BUSY_PATIENCE,
            || {
                self.docker
                    .remove_container(&container.id, Some(options.clone()))
            },
        )
        .await
    }

    /// Containers carrying every label in `labels` (`key=value`, or `key` alone).
    pub async fn containers_with(
        &self,
        labels: &[String],
    ) -> Result<Vec<LabelledContainer>, EnvError> {
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .engine_call(
                "list containers",
                self.docker.list_containers(Some(options)),
            )
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                Some(LabelledContainer {
                    id: c.id?,
                    labels: c.labels.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Image ids carrying every label in `labels`.
    pub async fn images_with(&self, labels: &[String]) -> Result<Vec<String>, EnvError> {
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListImagesOptionsBuilder::default()
            .all(false)
            .filters(&filters)
            .build();
        let list = self
            .engine_call("list images", self.docker.list_images(Some(options)))
            .await?;
        Ok(list.into_iter().map(|i| i.id).collect())
    }

    /// Removes an image by id, with all its tags; gone already is fine, and an image in
    /// use by a container on its way out (409, "conflict") is asked again for a while.
    pub async fn remove_image(&self, id: &str) -> Result<(), EnvError> {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        self.remove_object(
            &format!("image `{id}`"),
            &format!("remove image {}", short(id)),
            IMAGE_PATIENCE,
            || async {
                let removed = self.docker.remove_image(id, Some(options.clone()), None);
                removed.await.map(|_| ())
            },
        )
        .await
        .map(|_| ())
    }

    /// Whether a volume of this name exists.
    pub(crate) async fn has_volume(&self, name: &str) -> Result<bool, EnvError> {
        self.engine_has("inspect volume", self.docker.inspect_volume(name))
            .await
    }

    /// Creates an empty volume carrying `labels`.
    pub(crate) async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EnvError> {
        let body = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.engine_call("create volume", self.docker.create_volume(body))
            .await
            .map(|_| ())
    }

    /// Names of the volumes carrying every label in `labels`.
    pub async fn volumes_with(&self, labels: &[String]) -> Result<Vec<String>, EnvError> {
        Ok(self
            .labelled_volumes(labels)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// The volumes carrying every label in `labels`, with all their labels.
    async fn labelled_volumes(
        &self,
        labels: &[String],
    ) -> Result<Vec<(String, HashMap<String, String>)>, EnvError> {
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".to_string(), labels.to_vec())]);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .engine_call("list volumes", self.docker.list_volumes(Some(options)))
            .await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.labels))
            .collect())
    }

    /// Removes a volume: gone already is fine, and one still in use by a container on its
    /// way out (409) is waited for.
    pub(crate) async fn remove_volume(&self, name: &str) -> Result<(), EnvError> {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        self.remove_object(
            &format!("volume `{name}`"),
            &format!("remove volume {name}"),
            BUSY_PATIENCE,
            || self.docker.remove_volume(name, Some(options.clone())),
        )
        .await
        .map(|_| ())
    }

    /// Runs `command` in a throwaway container of `image` with `mount`; its output, merged.
    async fn run_once(
        &self,
        image: &str,
        mount: Mount,
        labels: &BTreeMap<String, String>,
        command: &str,
        deadline: Duration,
    ) -> Result<ExecOutput, EnvError> {
        let container = self
            .start_container(&EnvSpec {
                image: image.to_string(),
                labels: labels.clone(),
                mounts: vec![mount],
                ..EnvSpec::default()
            })
            .await?;
        let output = self
            .exec_in(
                &container,
                &ExecSpec {
                    command: format!("{{ {command}\n}} 2>&1"),
                    deadline: Some(deadline),
                    ..ExecSpec::default()
                },
            )
            .await;
        let removed = self.remove_container(&container).await;
        let output = output?;
        removed?;
        Ok(output)
    }

    /// An installed agent's volume, kept if its install finished, else (re)made by running
    /// the install script in a one-off container. Returns whether it installed.
    pub(crate) async fn install_volume(&self, spec: &InstallSpec<'_>) -> Result<bool, EnvError> {
        let mount = |read_only| Mount {
            volume: spec.volume.to_string(),
            target: spec.target.to_string(),
            read_only,
        };
        self.pull_if_missing(spec.image).await?;
        if self.has_volume(spec.volume).await? {
            let marker = format!("{}/{}", spec.target, spec.marker);
            let check = self
                .run_once(
                    spec.image,
                    mount(true),
                    spec.container_labels,
                    &format!("test -f {}", super::shell_quote(&marker)),
                    Duration::from_secs(60),
                )
                .await?;
            if check.exit_code == Some(0) {
                return Ok(false);
            }
            // An install cut off (its apply killed): start again.
            self.remove_volume(spec.volume).await?;
        }
        self.create_volume(spec.volume, spec.labels).await?;
        let ran = self
            .run_once(
                spec.image,
                mount(false),
                spec.container_labels,
                spec.script,
                spec.timeout,
            )
            .await;
        let output = match ran {
            Ok(output) => output,
            Err(error) => {
                let _ = self.remove_volume(spec.volume).await;
                return Err(error);
            }
        };
        let io = |e| EnvError::io(format!("writing `{}`", spec.log.display()), e);
        if let Some(dir) = spec.log.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        tokio::fs::write(spec.log, &output.stdout)
            .await
            .map_err(io)?;
        let reason = if output.timed_out {
            Some(format!(
                "it took longer than {}s",
                spec.timeout.as_secs_f64()
            ))
        } else if output.exit_code != Some(0) {
            Some(format!(
                "the install script exited with {}",
                output
                    .exit_code
                    .map_or_else(|| "no status".to_string(), |c| c.to_string())
            ))
        } else {
            None
        };
        match reason {
            None => Ok(true),
            Some(reason) => {
                self.remove_volume(spec.volume).await?;
                Err(EnvError::InstallFailed {
                    volume: spec.volume.to_string(),
                    reason,
                    log: spec.log.display().to_string(),
                    output: last_lines(&output.stdout, 40),
                })
            }
        }
    }

    /// Removes containers and networks of earlier applies on this machine whose process is
    /// gone; never anything of a process alive (another apply running now), nor of another
    /// machine sharing the engine. Several applies may reap at once: a container another
    /// one is removing is waited for and not counted here. Every leftover is tried; the
    /// first failure is returned after. Returns how many containers this call removed.
    pub(crate) async fn reap(&self) -> Result<usize, EnvError> {
        let host = super::hostname();
        let dead = |labels: &HashMap<String, String>| {
            let pid: Option<i32> = labels.get(PID_LABEL).and_then(|p| p.parse().ok());
            labels.get(HOST_LABEL) == Some(&host) && pid.is_some_and(|pid| !process_alive(pid))
        };
        let mut removed = 0;
        let mut failed = None;
        for container in self.containers_with(&[RUN_LABEL.to_string()]).await? {
            if !dead(&container.labels) {
                continue;
            }
            match self.remove_container(&Container { id: container.id }).await {
                Ok(Removal::Removed) => removed += 1,
                Ok(_) => {}
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        for (name, labels) in self.networks_with(&[RUN_LABEL.to_string()]).await? {
            if dead(&labels)
                && let Err(error) = self.delete_network(&name).await
            {
                failed.get_or_insert(error);
            }
        }
        // A Compose trial's named volumes (an installed agent's carry no pid: kept).
        for (name, labels) in self.labelled_volumes(&[RUN_LABEL.to_string()]).await? {
            if dead(&labels)
                && let Err(error) = self.remove_volume(&name).await
            {
                failed.get_or_insert(error);
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(removed),
        }
    }

    /// Removes every container, image, network and volume helios labelled (and matching
    /// `labels`).
    pub(crate) async fn collect(&self, labels: &[String]) -> Result<Collected, EnvError> {
        let mut filter = vec![MANAGED_LABEL.to_string()];
        filter.extend(labels.iter().cloned());
        let containers = self.containers_with(&filter).await?;
        for container in &containers {
            self.remove_container(&Container {
                id: container.id.clone(),
            })
            .await?;
        }
        let images = self.images_with(&filter).await?;
        for image in &images {
            self.remove_image(image).await?;
        }
        let networks = self.networks_with(&filter).await?;
        for (name, _) in &networks {
            self.delete_network(name).await?;
        }
        let volumes = self.volumes_with(&filter).await?;
        for volume in &volumes {
            self.remove_volume(volume).await?;
        }
        Ok(Collected {
            instances: containers.len(),
            images: images.len(),
            networks: networks.len(),
            volumes: volumes.len(),
        })
    }
}

/// The body of a trial's container: kept alive by [`KEEP_ALIVE`], with the spec's limits,
/// network, variables, labels and volumes.
pub(crate) fn container_body(spec: &EnvSpec) -> ContainerCreateBody {
    let host_config = HostConfig {
        init: Some(true),
        nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
        memory: spec.memory_mb.map(|mb| (mb * 1024 * 1024) as i64),
        // A container made with no network can never join one, so one whose network changes
        // between phases starts on the default network (its first phase's is set before
        // anything runs in it).
        network_mode: match (
            &spec.isolated_network,
            spec.no_network,
            spec.switches_network,
        ) {
            (_, _, true) => None,
            (Some(network), true, false) => Some(network.clone()),
            (_, true, false) => Some("none".to_string()),
            (_, false, false) => None,
        },
        device_requests: spec.gpus.filter(|&g| g > 0).map(|count| {
            vec![DeviceRequest {
                count: Some(i64::from(count)),
                capabilities: Some(vec![vec!["gpu".to_string()]]),
                ..Default::default()
            }]
        }),
        mounts: (!spec.mounts.is_empty()).then(|| spec.mounts.iter().map(volume_mount).collect()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        cmd: Some(vec![KEEP_ALIVE.into()]),
        working_dir: spec.workdir.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// How long an image in use (a container of it on its way out) is asked again before its
/// removal fails: an image a live container uses stays in use, so this is short.
const IMAGE_PATIENCE: Duration = Duration::from_secs(10);

/// A container found by its labels.
#[derive(Debug, Clone)]
pub struct LabelledContainer {
    pub id: String,
    pub labels: HashMap<String, String>,
}

/// A named volume as the engine mounts it.
fn volume_mount(mount: &Mount) -> bollard::models::Mount {
    bollard::models::Mount {
        target: Some(mount.target.clone()),
        source: Some(mount.volume.clone()),
        typ: Some(MountType::VOLUME),
        read_only: Some(mount.read_only),
        ..Default::default()
    }
}

/// The first host address of an IPv4 subnet (`172.17.0.0/16` → `172.17.0.1`).
fn first_host_of(subnet: &str) -> Option<std::net::IpAddr> {
    let (address, prefix) = subnet.split_once('/')?;
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 30)?;
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    Some(std::net::IpAddr::V4((u32::from(address) & mask | 1).into()))
}

/// The last `count` lines of `text`.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// Appends what fits under [`OUTPUT_CAP`]; returns how many bytes did not.
fn append_capped(buffer: &mut Vec<u8>, bytes: &[u8]) -> u64 {
    let room = OUTPUT_CAP.saturating_sub(buffer.len());
    let kept = bytes.len().min(room);
    buffer.extend_from_slice(&bytes[..kept]);
    (bytes.len() - kept) as u64
}

/// Whether a process with this pid exists on this machine.
pub(crate) fn process_alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        Some(pid) => match rustix::process::test_kill_process(pid) {
            Ok(()) => true,
            Err(e) => e == rustix::io::Errno::PERM,
        },
        None => false,
    }
}

#[async_trait::async_trait]
impl Environment for DockerEngine {
    fn provider(&self) -> Provider {
        Provider::Docker
    }

    async fn image_exists(&self, tag: &str) -> Result<bool, EnvError> {
        self.has_image(tag).await
    }

    async fn ensure_image(&self, image: &str) -> Result<(), EnvError> {
        self.pull_if_missing(image).await
    }

    async fn build(&self, spec: &BuildSpec<'_>) -> Result<(), EnvError> {
        self.build_image(
            spec.context,
            spec.dockerfile,
            spec.tag,
            spec.labels,
            spec.timeout,
            spec.log,
        )
        .await
    }

    async fn create(
        &self,
        spec: &EnvSpec,
        cancel: &CancellationToken,
    ) -> Result<Instance, EnvError> {
        // The contract of `create` (tests/conformance.rs): cancelled already, nothing made.
        if cancel.is_cancelled() {
            return Err(EnvError::Cancelled);
        }
        if let Some(services) = &spec.services {
            return super::compose::start(self, spec, services, cancel).await;
        }
        let container = self.start_container(spec).await?;
        let sandbox = DockerSandbox {
            engine: self.clone(),
            container,
            guard: Default::default(),
        };
        if let Some(allowlist) = &spec.allowlist {
            let guarded = sandbox
                .guard
                .set(self, &sandbox.container, Some(allowlist))
                .await;
            if let Err(error) = guarded {
                // Nothing else knows of this sandbox yet: its removal is this call's.
                let _ = sandbox.remove().await;
                return Err(error);
            }
        }
        Ok(Instance::new(sandbox))
    }

    async fn reap_dead_runs(&self) -> Result<usize, EnvError> {
        self.reap().await
    }

    async fn host_address(&self) -> Result<Option<std::net::IpAddr>, EnvError> {
        self.bridge_gateway().await.map(Some)
    }

    async fn remove_image(&self, image: &str) -> Result<(), EnvError> {
        DockerEngine::remove_image(self, image).await
    }

    async fn gc(&self, labels: &[String]) -> Result<Collected, EnvError> {
        self.collect(labels).await
    }

    async fn create_isolated_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<std::net::IpAddr>, EnvError> {
        self.internal_network(name, labels).await.map(Some)
    }

    async fn remove_network(&self, name: &str) -> Result<(), EnvError> {
        self.delete_network(name).await.map(|_| ())
    }

    async fn ping(&self) -> Result<(), EnvError> {
        // No permit: this asks whether the daemon answers at all, even when every permit
        // is held by calls waiting on it.
        within("ping", CALL_DEADLINE, async {
            self.docker.ping().await.map(|_| ()).map_err(engine_error)
        })
        .await
    }

    async fn volume_exists(&self, volume: &str) -> Result<bool, EnvError> {
        self.has_volume(volume).await
    }

    async fn install(&self, spec: &InstallSpec<'_>) -> Result<bool, EnvError> {
        self.install_volume(spec).await
    }

    async fn probe(&self, spec: &ProbeSpec<'_>) -> Result<ExecOutput, EnvError> {
        let mount = Mount {
            volume: spec.volume.to_string(),
            target: spec.target.to_string(),
            read_only: true,
        };
        self.run_once(spec.image, mount, spec.labels, spec.script, spec.timeout)
            .await
    }
}

impl DockerEngine {
    pub(crate) fn guard_build_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.guard_build
    }

    /// Connects `container` to the networks of `plan` (the default bridge when public) and
    /// disconnects it from every other.
    async fn set_networks(
        &self,
        container: &Container,
        plan: &super::NetworkPlan,
    ) -> Result<(), EnvError> {
        let wanted: Vec<String> = plan
            .public
            .then(|| "bridge".to_string())
            .into_iter()
            .chain(plan.isolated.clone())
            .collect();
        let current: Vec<String> = {
            self.engine_call(
                "inspect container",
                self.docker.inspect_container(&container.id, None),
            )
            .await?
        }
        .network_settings
        .and_then(|n| n.networks)
        .map(|n| n.into_keys().collect())
        .unwrap_or_default();
        for network in current.iter().filter(|n| !wanted.contains(n)) {
            self.engine_call(
                "disconnect network",
                self.docker.disconnect_network(
                    network,
                    bollard::models::NetworkDisconnectRequest {
                        container: container.id.clone(),
                        force: Some(true),
                    },
                ),
            )
            .await?;
        }
        for network in wanted.iter().filter(|n| !current.contains(n)) {
            self.join_network(container, network).await?;
        }
        Ok(())
    }

    /// Connects `container` to `network` as well.
    pub(crate) async fn join_network(
        &self,
        container: &Container,
        network: &str,
    ) -> Result<(), EnvError> {
        self.engine_call(
            "connect network",
            self.docker.connect_network(
                network,
                bollard::models::NetworkConnectRequest {
                    container: container.id.clone(),
                    ..Default::default()
                },
            ),
        )
        .await
    }
}

/// A trial's container, with the engine that made it.
struct DockerSandbox {
    engine: DockerEngine,
    container: Container,
    /// The network guard in the container's namespace, from its first `allowlist` phase.
    guard: super::netguard::Guard,
}

#[async_trait::async_trait]
impl Sandbox for DockerSandbox {
    fn id(&self) -> &str {
        &self.container.id
    }

    fn provider(&self) -> Provider {
        Provider::Docker
    }

    fn makes_workdir(&self) -> bool {
        true
    }

    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EnvError> {
        self.engine.exec_in(&self.container, spec).await
    }

    async fn upload_archive(&self, archive: Vec<u8>) -> Result<(), EnvError> {
        self.engine.upload_to(&self.container, archive).await
    }

    async fn download_dir(
        &self,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError> {
        self.engine
            .download_from(&self.container, path, dest, cap)
            .await
    }

    async fn freeze(&self, labels: &BTreeMap<String, String>) -> Result<String, EnvError> {
        self.engine.commit(&self.container, labels).await
    }

    async fn set_network(&self, plan: &super::NetworkPlan) -> Result<(), EnvError> {
        self.engine.set_networks(&self.container, plan).await?;
        self.guard
            .set(&self.engine, &self.container, plan.allowlist.as_ref())
            .await
    }

    async fn remove(&self) -> Result<(), EnvError> {
        let guard = self.guard.remove(&self.engine).await;
        let container = self.engine.remove_container(&self.container).await;
        guard.and(container.map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::first_host_of;

    #[test]
    fn a_bridge_without_a_listed_gateway_uses_its_subnets_first_host() {
        assert_eq!(
            first_host_of("172.17.0.0/16"),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(
            first_host_of("10.1.2.0/24"),
            Some("10.1.2.1".parse().unwrap())
        );
        assert_eq!(first_host_of("fd00::/64"), None);
        assert_eq!(first_host_of("nonsense"), None);
    }
}
