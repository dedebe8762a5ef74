//! The Daytona engine: sandboxes made, polled, used and deleted over the REST API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;

use super::api::{Api, Attempts, BuildInfo, CreateSandbox, Replay, SandboxDto};
use std::path::Path;

use crate::env::{
    BuildSpec, Collected, EnvError, EnvSpec, Environment, ExecOutput, ExecSpec, HOST_LABEL,
    Instance, MANAGED_LABEL, PID_LABEL, Provider, Sandbox, tarball,
};

use super::{CREATE_LABEL, Config, api, dockerfile};
use crate::env::removal::{BUSY_PATIENCE, Removal, remove_idempotently};

/// A connection to Daytona, shared by every trial of a run.
#[derive(Clone)]
pub(crate) struct DaytonaEngine {
    pub(super) api: Arc<Api>,
    pub(super) config: Arc<Config>,
    /// Bounds create calls in flight (`max_creates`).
    pub(super) creates: Arc<Semaphore>,
    pub(super) counter: Arc<AtomicU64>,
}

/// A trial's sandbox.
#[derive(Debug, Clone)]
pub(crate) struct RemoteSandbox {
    pub(super) id: String,
    pub(super) ready_timeout: Duration,
    /// Its image, for messages.
    pub(super) image: String,
    /// Already `started` when created.
    pub(super) started: bool,
    /// The toolbox base URL, asked for once.
    pub(super) toolbox: Arc<OnceCell<String>>,
}

impl RemoteSandbox {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

/// Requests other than commands may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl DaytonaEngine {
    pub(crate) fn new(config: Config) -> Result<DaytonaEngine, EnvError> {
        let api = Api::new(
            &config.api_url,
            config.api_key.clone(),
            config.retry.clone(),
            REQUEST_TIMEOUT,
        )?;
        Ok(DaytonaEngine {
            api: Arc::new(api),
            creates: Arc::new(Semaphore::new(config.max_creates)),
            config: Arc::new(config),
            counter: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(super) fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// `POST /sandbox`, under the bound on create calls. A cancel while waiting for a turn,
    /// or between retries, returns at once; one during a request waits for its answer and
    /// deletes what it made. A create that was retried after a lost answer deletes the
    /// sandboxes the lost tries may have made (found by a label unique to the call).
    pub(crate) async fn create_sandbox(
        &self,
        spec: &EnvSpec,
        cancel: &CancellationToken,
    ) -> Result<RemoteSandbox, EnvError> {
        // A cancel that came first makes nothing. The race below cannot promise it: the
        // create is polled first, and its first poll can carry a request to its answer
        // (the conformance suite saw it under load, against a local server).
        if cancel.is_cancelled() {
            return Err(EnvError::Cancelled);
        }
        let nonce = format!(
            "{}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            self.next()
        );
        let body = self.create_body(spec, &nonce);
        let url = self.api.url("sandbox", &[])?;
        let attempts = Attempts::default();
        let create = async {
            let _turn = self
                .creates
                .acquire()
                .await
                .expect("the create bound is never closed");
            self.api
                .json::<SandboxDto>(
                    "POST /sandbox",
                    || self.api.request(Method::POST, url.clone()).json(&body),
                    // Safe to repeat: what a try whose answer was lost made is found by
                    // its label and deleted below.
                    Replay::Safe,
                    Some(&attempts),
                )
                .await
        };
        tokio::pin!(create);
        let outcome = tokio::select! {
            biased;
            outcome = &mut create => outcome,
            _ = cancel.cancelled() => {
                if attempts.in_flight.load(Ordering::SeqCst) {
                    // Its answer names the sandbox it made: wait for it, then delete.
                    if let Ok(made) = create.await {
                        let _ = self.delete(&made.id).await;
                    }
                }
                Err(EnvError::Cancelled)
            }
        };
        let sent = attempts.sent.load(Ordering::SeqCst);
        match outcome {
            Ok(made) => {
                if sent > 1 {
                    self.delete_strays(&nonce, Some(&made.id)).await;
                }
                Ok(RemoteSandbox {
                    started: made.state.as_deref() == Some("started"),
                    id: made.id,
                    ready_timeout: self.config.ready_timeout.unwrap_or(spec.ready_timeout),
                    image: spec.image.clone(),
                    toolbox: Arc::new(OnceCell::new()),
                })
            }
            Err(error) => {
                if sent > 0 {
                    self.delete_strays(&nonce, None).await;
                }
                Err(error)
            }
        }
    }

    pub(super) fn create_body(&self, spec: &EnvSpec, nonce: &str) -> CreateSandbox {
        let gib = |mb: u64| mb.div_ceil(1024).max(1) as u32;
        let mut labels = spec.labels.clone();
        labels.insert(CREATE_LABEL.to_string(), nonce.to_string());
        CreateSandbox {
            labels,
            env: spec.env.clone(),
            target: self.config.target.clone(),
            cpu: spec.cpus.map(|c| c.ceil().max(1.0) as u32),
            memory: spec.memory_mb.map(gib),
            disk: spec.storage_mb.map(gib),
            gpu: spec.gpus.filter(|&g| g > 0),
            auto_stop_interval: self.config.auto_stop_interval,
            auto_archive_interval: self.config.auto_archive_interval,
            auto_delete_interval: self.config.auto_delete_interval,
            network_block_all: spec.no_network,
            build_info: BuildInfo {
                dockerfile_content: spec
                    .dockerfile
                    .clone()
                    .unwrap_or_else(|| dockerfile::from_image(&spec.image)),
                context_hashes: Vec::new(),
            },
        }
    }

    /// Deletes the sandboxes one create call made, but `keep`. Best effort: what is left
    /// carries helios's labels, for the next run's reaper and `helios gc`.
    async fn delete_strays(&self, nonce: &str, keep: Option<&str>) {
        let labels = BTreeMap::from([(CREATE_LABEL.to_string(), nonce.to_string())]);
        if let Ok(found) = self.sandboxes_with(&labels).await {
            for sandbox in found.iter().filter(|s| Some(s.id.as_str()) != keep) {
                let _ = self.delete(&sandbox.id).await;
            }
        }
    }

    /// `GET /sandbox/{id}` until the sandbox is `started`, fails, or its time is up.
    pub(crate) async fn wait_ready(&self, sandbox: &RemoteSandbox) -> Result<(), EnvError> {
        if sandbox.started {
            return Ok(());
        }
        let start = tokio::time::Instant::now();
        let url = self.api.url(&format!("sandbox/{}", sandbox.id), &[])?;
        let what = format!("GET /sandbox/{}", sandbox.id);
        loop {
            let dto: SandboxDto = self
                .api
                .json(
                    &what,
                    || self.api.request(Method::GET, url.clone()),
                    Replay::Safe,
                    None,
                )
                .await?;
            let state = dto.state.unwrap_or_else(|| "unknown".into());
            let reason = dto.error_reason.unwrap_or_default();
            match state.as_str() {
                "started" => return Ok(()),
                "build_failed" => {
                    return Err(EnvError::BuildFailed {
                        tag: sandbox.image.clone(),
                        reason: format!("Daytona could not build the sandbox's image: {reason}"),
                        log: format!("{}/sandbox/{}/build-logs", self.api.base(), sandbox.id),
                    });
                }
                "error" | "destroyed" | "destroying" | "stopped" | "stopping" | "archived"
                | "archiving" => {
                    return Err(EnvError::engine(
                        Provider::Daytona,
                        format!(
                            "sandbox `{}` went to `{state}` instead of starting{}",
                            sandbox.id,
                            if reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {reason}")
                            }
                        ),
                    ));
                }
                _ => {}
            }
            let waited = start.elapsed();
            if waited >= sandbox.ready_timeout {
                return Err(EnvError::NotReady {
                    id: sandbox.id.clone(),
                    seconds: sandbox.ready_timeout.as_secs_f64(),
                    state,
                });
            }
            let left = sandbox.ready_timeout - waited;
            tokio::time::sleep(self.config.poll_interval.min(left)).await;
        }
    }

    /// `DELETE /sandbox/{id}`, retried on 429 and 5xx; a sandbox already gone is deleted,
    /// and one another caller is deleting (409: a state change in progress, as when two
    /// applies reap the same dead run) is asked again until it is gone.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), EnvError> {
        let url = self
            .api
            .url(&format!("sandbox/{id}"), &[("force", "true")])?;
        let failed = |e: &api::ApiError| match api::to_env("DELETE /sandbox", e) {
            EnvError::Engine { message, .. } => EnvError::engine(
                Provider::Daytona,
                format!(
                    "cannot delete sandbox `{id}`: {message} (it may still run and cost: delete \
                 it in the Daytona dashboard, or with `helios gc --provider daytona`)"
                ),
            ),
            other => other,
        };
        let what = format!("Daytona sandbox `{id}`");
        remove_idempotently(Provider::Daytona, &what, BUSY_PATIENCE, || async {
            let answer = self
                .api
                .call(
                    || self.api.request(Method::DELETE, url.clone()),
                    Replay::Safe,
                    None,
                    None,
                )
                .await;
            match answer {
                Ok(_) => Ok(Removal::Removed),
                Err(e) if e.status() == Some(404) => Ok(Removal::Gone),
                Err(e) if e.status() == Some(409) => Ok(Removal::Busy),
                Err(e) => Err(failed(&e)),
            }
        })
        .await
        .map(|_| ())
    }

    /// `GET /sandbox?labels=...`: the sandboxes carrying every label in `labels`.
    pub(crate) async fn sandboxes_with(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<SandboxDto>, EnvError> {
        let filter = serde_json::to_string(labels).expect("labels serialize");
        let url = self.api.url("sandbox", &[("labels", filter.as_str())])?;
        self.api
            .json(
                "GET /sandbox",
                || self.api.request(Method::GET, url.clone()),
                Replay::Safe,
                None,
            )
            .await
    }

    /// Deletes the sandboxes of earlier runs on this machine whose process is gone. The
    /// first authenticated call of a run: a refused key is reported here.
    pub(crate) async fn reap(&self) -> Result<usize, EnvError> {
        let labels = BTreeMap::from([
            (MANAGED_LABEL.to_string(), "true".to_string()),
            (HOST_LABEL.to_string(), crate::env::hostname()),
        ]);
        let mut removed = 0;
        for sandbox in self.sandboxes_with(&labels).await? {
            let pid: Option<i32> = sandbox.labels.get(PID_LABEL).and_then(|p| p.parse().ok());
            if pid.is_some_and(|pid| !crate::env::docker::process_alive(pid)) {
                self.delete(&sandbox.id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes every sandbox helios labelled that also carries `labels` (`key=value`, or
    /// `key` alone); returns how many.
    pub(crate) async fn collect(&self, labels: &[String]) -> Result<usize, EnvError> {
        let mut filter = BTreeMap::from([(MANAGED_LABEL.to_string(), "true".to_string())]);
        let mut keys = Vec::new();
        for label in labels {
            match label.split_once('=') {
                Some((k, v)) => {
                    filter.insert(k.to_string(), v.to_string());
                }
                None => keys.push(label.as_str()),
            }
        }
        let mut removed = 0;
        for sandbox in self.sandboxes_with(&filter).await? {
            if keys.iter().all(|k| sandbox.labels.contains_key(*k)) {
                self.delete(&sandbox.id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[async_trait::async_trait]
impl Environment for DaytonaEngine {
    fn provider(&self) -> Provider {
        Provider::Daytona
    }

    async fn image_exists(&self, _tag: &str) -> Result<bool, EnvError> {
        // Daytona builds each sandbox's image from the Dockerfile's text itself.
        Ok(false)
    }

    async fn ensure_image(&self, _image: &str) -> Result<(), EnvError> {
        Ok(())
    }

    async fn build(&self, spec: &BuildSpec<'_>) -> Result<(), EnvError> {
        Err(EnvError::Unsupported(format!(
            "Daytona builds `{}` itself, from the Dockerfile, when a sandbox is made",
            spec.tag
        )))
    }

    async fn create(
        &self,
        spec: &EnvSpec,
        cancel: &CancellationToken,
    ) -> Result<Instance, EnvError> {
        // The runner refuses these before the run; this is the last line.
        if spec.services.is_some() {
            return Err(EnvError::Unsupported(
                "Daytona sandboxes cannot run Compose environments: run the task with \
                 `provider = \"docker\"`"
                    .into(),
            ));
        }
        // Nor an allowlist: a sandbox made without it would reach every host.
        if spec.allowlist.is_some() {
            return Err(EnvError::Unsupported(
                "Daytona sandboxes cannot enforce `network_mode = \"allowlist\"`: run the task \
                 with `provider = \"docker\"`"
                    .into(),
            ));
        }
        let sandbox = self.create_sandbox(spec, cancel).await?;
        Ok(Instance::new(DaytonaInstance {
            engine: self.clone(),
            sandbox,
        }))
    }

    async fn reap_dead_runs(&self) -> Result<usize, EnvError> {
        self.reap().await
    }

    async fn gc(&self, labels: &[String]) -> Result<Collected, EnvError> {
        Ok(Collected {
            instances: self.collect(labels).await?,
            ..Collected::default()
        })
    }
}

/// A trial's sandbox, with the connection that made it.
struct DaytonaInstance {
    engine: DaytonaEngine,
    sandbox: RemoteSandbox,
}

#[async_trait::async_trait]
impl Sandbox for DaytonaInstance {
    fn id(&self) -> &str {
        self.sandbox.id()
    }

    fn provider(&self) -> Provider {
        Provider::Daytona
    }

    async fn ready(&self) -> Result<(), EnvError> {
        self.engine.wait_ready(&self.sandbox).await
    }

    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EnvError> {
        self.engine.exec_in(&self.sandbox, spec).await
    }

    async fn upload_archive(&self, archive: Vec<u8>) -> Result<(), EnvError> {
        self.engine.upload_to(&self.sandbox, archive).await
    }

    async fn download_dir(
        &self,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError> {
        self.engine
            .download_from(&self.sandbox, path, dest, cap)
            .await
    }

    async fn remove(&self) -> Result<(), EnvError> {
        self.engine.delete(self.sandbox.id()).await
    }
}
