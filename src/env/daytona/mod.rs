//! The Daytona provider: every trial in a cloud sandbox, over Daytona's documented REST API.
//! A sandbox is created from the task's image or Dockerfile (a declarative build), with the
//! task's resources, environment and helios's labels; its state is polled until `started`;
//! commands and files go through its toolbox (`toolbox.rs`); it is deleted at the end, with
//! retries. Create calls are bounded, and 429 and 5xx answers are retried with backoff.

mod api;
pub mod dockerfile;
mod toolbox;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;

use self::api::{Api, Attempts, BuildInfo, CreateSandbox, Replay, SandboxDto};
use std::path::Path;

use super::{
    BuildSpec, Collected, EnvError, EnvSpec, Environment, ExecOutput, ExecSpec, HOST_LABEL,
    Instance, MANAGED_LABEL, PID_LABEL, Provider, Sandbox, tarball,
};
use crate::env::DaytonaSettings;
use crate::retry::RetryPolicy;

pub const KEY_VARIABLE: &str = "DAYTONA_API_KEY";
pub const URL_VARIABLE: &str = "DAYTONA_API_URL";
pub const TARGET_VARIABLE: &str = "DAYTONA_TARGET";
/// Daytona's own default, as its SDKs have it.
pub const DEFAULT_API_URL: &str = "https://app.daytona.io/api";
/// A label unique to one create call, to find what a lost or cancelled call made.
pub const CREATE_LABEL: &str = "helios.create";

/// Credentials a program gives instead of the `DAYTONA_*` variables.
#[derive(Clone)]
pub struct Credentials {
    pub api_key: String,
    /// `DAYTONA_API_URL` by default, then [`DEFAULT_API_URL`].
    pub api_url: Option<String>,
    /// `DAYTONA_TARGET` by default.
    pub target: Option<String>,
}

impl Credentials {
    /// The value these credentials give the `DAYTONA_*` variable `name`, if any.
    pub fn lookup(&self, name: &str) -> Option<String> {
        match name {
            KEY_VARIABLE => Some(self.api_key.clone()),
            URL_VARIABLE => self.api_url.clone(),
            TARGET_VARIABLE => self.target.clone(),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"<hidden>")
            .field("api_url", &self.api_url)
            .field("target", &self.target)
            .finish()
    }
}

/// Everything the provider needs, resolved.
#[derive(Clone)]
pub struct Config {
    pub api_url: String,
    api_key: String,
    pub target: Option<String>,
    /// The toolbox endpoint with `{id}`; asked of the API when `None`.
    pub toolbox_url: Option<String>,
    pub max_creates: usize,
    pub poll_interval: Duration,
    /// Instead of each task's build timeout.
    pub ready_timeout: Option<Duration>,
    pub auto_stop_interval: u32,
    pub auto_archive_interval: Option<u32>,
    pub auto_delete_interval: i32,
    pub retry: RetryPolicy,
}

/// The problem with the host's Daytona key, if there is one (for the checks before a run).
pub fn missing_key(host: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    host(KEY_VARIABLE)
        .filter(|k| !k.trim().is_empty())
        .is_none()
        .then(|| {
            format!(
                "the Daytona provider needs an API key in `{KEY_VARIABLE}`, which is not set \
                 (hint: create a key in the Daytona dashboard and `export {KEY_VARIABLE}=...`; \
                 `{URL_VARIABLE}` and `{TARGET_VARIABLE}` choose the endpoint and the region)"
            )
        })
}

impl Config {
    /// Settings from the pipeline, credentials from the host's `DAYTONA_*` variables.
    pub fn resolve(
        settings: &DaytonaSettings,
        host: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, EnvError> {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let api_key = non_empty(host(KEY_VARIABLE))
            .ok_or_else(|| EnvError::Auth(missing_key(&|_| None).unwrap_or_default()))?;
        let api_url = non_empty(host(URL_VARIABLE)).unwrap_or_else(|| DEFAULT_API_URL.to_string());
        api::absolute(&api_url, &[])?;
        let target =
            non_empty(settings.target.clone()).or_else(|| non_empty(host(TARGET_VARIABLE)));
        let retry = RetryPolicy {
            max_attempts: settings.max_retries.unwrap_or(5) as usize + 1,
            ..RetryPolicy::default()
        };
        Ok(Config {
            api_url,
            api_key,
            target,
            toolbox_url: settings.toolbox_url.clone(),
            max_creates: settings.max_creates.unwrap_or(8).max(1) as usize,
            poll_interval: Duration::from_secs_f64(settings.poll_interval_sec.unwrap_or(1.0)),
            ready_timeout: settings.ready_timeout_sec.map(Duration::from_secs_f64),
            auto_stop_interval: settings.auto_stop_interval.unwrap_or(0),
            auto_archive_interval: settings.auto_archive_interval,
            auto_delete_interval: settings.auto_delete_interval.unwrap_or(0),
            retry,
        })
    }
}

/// A connection to Daytona, shared by every trial of a run.
#[derive(Clone)]
pub struct DaytonaEngine {
    api: Arc<Api>,
    config: Arc<Config>,
    /// Bounds create calls in flight (`max_creates`).
    creates: Arc<Semaphore>,
    counter: Arc<AtomicU64>,
}

/// A trial's sandbox.
#[derive(Debug, Clone)]
pub struct RemoteSandbox {
    id: String,
    ready_timeout: Duration,
    /// Its image, for messages.
    image: String,
    /// Already `started` when created.
    started: bool,
    /// The toolbox base URL, asked for once.
    toolbox: Arc<OnceCell<String>>,
}

impl RemoteSandbox {
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Requests other than commands may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl DaytonaEngine {
    pub fn new(config: Config) -> Result<DaytonaEngine, EnvError> {
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

    fn next(&self) -> u64 {
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

    fn create_body(&self, spec: &EnvSpec, nonce: &str) -> CreateSandbox {
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
    pub async fn wait_ready(&self, sandbox: &RemoteSandbox) -> Result<(), EnvError> {
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
                    return Err(EnvError::Daytona(format!(
                        "sandbox `{}` went to `{state}` instead of starting{}",
                        sandbox.id,
                        if reason.is_empty() {
                            String::new()
                        } else {
                            format!(": {reason}")
                        }
                    )));
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

    /// `DELETE /sandbox/{id}`, retried on 429 and 5xx; a sandbox already gone is deleted.
    pub async fn delete(&self, id: &str) -> Result<(), EnvError> {
        let url = self
            .api
            .url(&format!("sandbox/{id}"), &[("force", "true")])?;
        match self
            .api
            .call(
                || self.api.request(Method::DELETE, url.clone()),
                Replay::Safe,
                None,
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(match api::to_env("DELETE /sandbox", &e) {
                EnvError::Daytona(message) => EnvError::Daytona(format!(
                    "cannot delete sandbox `{id}`: {message} (it may still run and cost: delete \
                     it in the Daytona dashboard, or with `helios gc --provider daytona`)"
                )),
                other => other,
            }),
        }
    }

    /// `GET /sandbox?labels=...`: the sandboxes carrying every label in `labels`.
    pub async fn sandboxes_with(
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
            (HOST_LABEL.to_string(), super::hostname()),
        ]);
        let mut removed = 0;
        for sandbox in self.sandboxes_with(&labels).await? {
            let pid: Option<i32> = sandbox.labels.get(PID_LABEL).and_then(|p| p.parse().ok());
            if pid.is_some_and(|pid| !super::docker::process_alive(pid)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn credentials_come_from_daytonas_own_variables() {
        let settings = DaytonaSettings::default();
        let config = Config::resolve(&settings, &host(&[(KEY_VARIABLE, "k")])).unwrap();
        assert_eq!(config.api_url, DEFAULT_API_URL);
        assert_eq!(config.target, None);
        assert_eq!(config.max_creates, 8);
        assert_eq!(config.auto_stop_interval, 0);
        assert_eq!(config.auto_delete_interval, 0);
        assert_eq!(config.retry.max_attempts, 6);
        let config = Config::resolve(
            &DaytonaSettings {
                target: Some("us".into()),
                max_retries: Some(0),
                ..settings.clone()
            },
            &host(&[
                (KEY_VARIABLE, "k"),
                (URL_VARIABLE, "http://localhost:3000/api"),
                (TARGET_VARIABLE, "eu"),
            ]),
        )
        .unwrap();
        assert_eq!(config.api_url, "http://localhost:3000/api");
        assert_eq!(config.target.as_deref(), Some("us"), "the pipeline's wins");
        assert_eq!(config.retry.max_attempts, 1);
    }

    #[test]
    fn a_missing_or_blank_key_is_an_auth_error_naming_the_variable() {
        for vars in [&[][..], &[(KEY_VARIABLE, "  ")][..]] {
            match Config::resolve(&DaytonaSettings::default(), &host(vars)) {
                Err(EnvError::Auth(message)) => assert!(message.contains(KEY_VARIABLE)),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("a config without a key"),
            }
            assert!(missing_key(&host(vars)).is_some());
        }
        assert!(missing_key(&host(&[(KEY_VARIABLE, "k")])).is_none());
        assert!(matches!(
            Config::resolve(
                &DaytonaSettings::default(),
                &host(&[(KEY_VARIABLE, "k"), (URL_VARIABLE, "not a url")])
            ),
            Err(EnvError::Daytona(_))
        ));
    }

    #[test]
    fn resources_round_up_to_what_daytona_allocates() {
        let config = Config::resolve(
            &DaytonaSettings::default(),
            &host(&[(KEY_VARIABLE, "k"), (TARGET_VARIABLE, "eu")]),
        )
        .unwrap();
        let engine = DaytonaEngine::new(config).unwrap();
        let spec = EnvSpec {
            image: "python:3.12-slim".into(),
            cpus: Some(1.5),
            memory_mb: Some(512),
            storage_mb: Some(10 * 1024 + 1),
            gpus: Some(0),
            no_network: true,
            labels: BTreeMap::from([("helios.trial".to_string(), "t".to_string())]),
            ..EnvSpec::default()
        };
        let body = serde_json::to_value(engine.create_body(&spec, "n1")).unwrap();
        assert_eq!(body["cpu"], 2);
        assert_eq!(body["memory"], 1);
        assert_eq!(body["disk"], 11);
        assert_eq!(body.get("gpu"), None);
        assert_eq!(body["networkBlockAll"], true);
        assert_eq!(body["target"], "eu");
        assert_eq!(body["labels"]["helios.trial"], "t");
        assert_eq!(body["labels"][CREATE_LABEL], "n1");
        assert_eq!(
            body["buildInfo"]["dockerfileContent"],
            "FROM python:3.12-slim\n"
        );
        assert_eq!(
            body.get("snapshot"),
            None,
            "resources need a build, not a snapshot"
        );
    }
}

#[async_trait::async_trait]
impl Environment for DaytonaEngine {
    fn provider(&self) -> Provider {
        Provider::Daytona
    }

    fn builds_images(&self) -> bool {
        false
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
            images: 0,
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
    ) -> Result<tarball::UnpackStats, EnvError> {
        self.engine.download_from(&self.sandbox, path, dest).await
    }

    async fn remove(&self) -> Result<(), EnvError> {
        self.engine.delete(self.sandbox.id()).await
    }
}
