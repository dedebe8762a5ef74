//! Multi-container environments on Docker, driven through the engine API as Compose would
//! drive them: one user-defined network per trial (labelled like the trial's containers, so
//! reaping and `helios gc` find it), every service a container on it with its name as
//! network alias, started in `depends_on` order, each dependency's condition waited for
//! (`service_started`, `service_healthy` by the engine's own healthcheck,
//! `service_completed_successfully`) within one deadline. Whatever fails or is cancelled
//! on the way, everything made so far is removed before the error returns.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EndpointSettings, HealthConfig,
    HealthStatusEnum, NetworkingConfig,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::docker::{Container, DockerEngine, container_body};
use super::netguard::Guard;
use super::{
    EnvError, EnvSpec, ExecOutput, ExecSpec, Instance, Provider, Readiness, Sandbox, ServiceMount,
    ServiceSpec, ServicesSpec, tarball,
};

/// The agent's service in a multi-container environment.
pub const MAIN_SERVICE: &str = "main";

/// How often a dependency's state is asked while it is waited for.
const POLL: Duration = Duration::from_millis(200);

/// Makes network names unique in this process even for a trial tried again.
static NETWORKS: AtomicU64 = AtomicU64::new(0);

/// What has been made so far, removed as a whole.
struct Made {
    engine: DockerEngine,
    network: Option<String>,
    /// Service name → container, in the order they were started.
    containers: Vec<(String, Container)>,
    /// The trial's named volumes, by their names on the engine.
    volumes: Vec<String>,
}

impl Made {
    /// Removes every container, then the network and the volumes; every removal is tried,
    /// the first failure returned.
    async fn remove(&self) -> Result<(), EnvError> {
        let mut failed = None;
        // All at once: after a cancel the removal has only the grace to finish.
        let removals = self
            .containers
            .iter()
            .map(|(_, container)| self.engine.remove_container(container));
        for removed in futures_util::future::join_all(removals).await {
            if let Err(e) = removed {
                failed.get_or_insert(e);
            }
        }
        if let Some(network) = &self.network
            && let Err(e) = self.engine.remove_trial_network(network).await
        {
            failed.get_or_insert(e);
        }
        for volume in &self.volumes {
            if let Err(e) = self.engine.remove_volume(volume).await {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn container(&self, name: &str) -> Option<&Container> {
        self.containers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }
}

/// Starts every service of `spec` (which has `services`); see the module's docs.
pub(crate) async fn start(
    engine: &DockerEngine,
    spec: &EnvSpec,
    services: &ServicesSpec,
    cancel: &CancellationToken,
) -> Result<Instance, EnvError> {
    let network = format!(
        "{}-{}-{}",
        services.project,
        std::process::id(),
        NETWORKS.fetch_add(1, Ordering::Relaxed)
    );
    let mut made = Made {
        engine: engine.clone(),
        network: None,
        containers: Vec::new(),
        volumes: Vec::new(),
    };
    let deadline = Instant::now() + services.deadline;
    // Not raced against the cancel: a container created while the future is dropped would
    // be known to nothing. The cancel is looked at between calls and during waits instead.
    let outcome = start_all(
        engine, spec, services, &network, deadline, cancel, &mut made,
    )
    .await;
    match outcome {
        Ok(()) => {
            let main = made
                .container(MAIN_SERVICE)
                .cloned()
                .expect("main is started last");
            let sidecars = made
                .containers
                .iter()
                .filter(|(name, _)| name != MAIN_SERVICE)
                .map(|(_, container)| (container.clone(), Guard::default()))
                .collect();
            Ok(Instance::new(ServicesSandbox {
                made: Arc::new(made),
                main,
                guard: Guard::default(),
                sidecars,
            }))
        }
        Err(error) => {
            // Nothing else knows of these containers yet: their removal is this call's.
            let _ = made.remove().await;
            Err(error)
        }
    }
}

async fn start_all(
    engine: &DockerEngine,
    spec: &EnvSpec,
    services: &ServicesSpec,
    network: &str,
    deadline: Instant,
    cancel: &CancellationToken,
    made: &mut Made,
) -> Result<(), EnvError> {
    engine
        // A network that changes between phases is the guard's to close: the trial's
        // network keeps its route out.
        .create_trial_network(
            network,
            &spec.labels,
            spec.no_network && !spec.switches_network,
        )
        .await?;
    made.network = Some(network.to_string());
    for volume in &services.volumes {
        let name = volume_name(network, volume);
        engine.create_volume(&name, &spec.labels).await?;
        made.volumes.push(name);
    }
    for service in order(services) {
        if cancel.is_cancelled() {
            return Err(EnvError::Cancelled);
        }
        for dependency in &service.depends_on {
            let container = made
                .container(&dependency.service)
                .cloned()
                .ok_or_else(|| EnvError::ServiceFailed {
                    service: dependency.service.clone(),
                    reason: format!("is needed by `{}` and was not started", service.name),
                })?;
            wait_for(
                engine,
                &dependency.service,
                &container,
                dependency.condition,
                deadline,
                services.deadline,
                cancel,
            )
            .await?;
        }
        // An `image:` sidecar is used as it is, pulled if missing; built ones exist.
        if service.name != MAIN_SERVICE {
            engine.pull_if_missing(&service.image).await?;
        }
        let mut body = if service.name == MAIN_SERVICE {
            main_body(spec, service, network)
        } else {
            sidecar_body(spec, service, network)
        };
        add_mounts(&mut body, service, network)?;
        let container = engine.launch(body).await.map_err(|e| match e {
            EnvError::Engine { message, .. } => EnvError::ServiceFailed {
                service: service.name.clone(),
                reason: format!("did not start: {message}"),
            },
            other => other,
        })?;
        made.containers
            .push((service.name.clone(), container.clone()));
        for external in &service.networks {
            engine
                .join_network(&container, external)
                .await
                .map_err(|e| EnvError::ServiceFailed {
                    service: service.name.clone(),
                    reason: format!("cannot join network `{external}`: {e}"),
                })?;
        }
    }
    Ok(())
}

/// A named volume of the trial, on the engine: the trial's network's name (unique) with
/// the volume's.
fn volume_name(network: &str, volume: &str) -> String {
    format!("{network}-{volume}")
}

/// The service's named volumes and binds, after the mounts the body has (an installed
/// agent's, on `main`). A missing bind source is made as a directory, as Compose does.
fn add_mounts(
    body: &mut ContainerCreateBody,
    service: &ServiceSpec,
    network: &str,
) -> Result<(), EnvError> {
    let mut mounts = Vec::new();
    for mount in &service.mounts {
        mounts.push(match mount {
            ServiceMount::Volume {
                name,
                target,
                read_only,
            } => bollard::models::Mount {
                target: Some(target.clone()),
                source: Some(volume_name(network, name)),
                typ: Some(bollard::models::MountType::VOLUME),
                read_only: Some(*read_only),
                ..Default::default()
            },
            ServiceMount::Bind {
                source,
                target,
                read_only,
            } => {
                if !source.exists() {
                    std::fs::create_dir_all(source).map_err(|e| {
                        EnvError::io(format!("bind mount source `{}`", source.display()), e)
                    })?;
                }
                bollard::models::Mount {
                    target: Some(target.clone()),
                    source: Some(source.display().to_string()),
                    typ: Some(bollard::models::MountType::BIND),
                    read_only: Some(*read_only),
                    ..Default::default()
                }
            }
        });
    }
    if !mounts.is_empty() {
        let host = body.host_config.get_or_insert_with(Default::default);
        host.mounts.get_or_insert_with(Vec::new).extend(mounts);
    }
    Ok(())
}

/// The services in the order they start: each after what it depends on, `main` last of
/// all (the runner's work begins when it is up), the file's order otherwise.
fn order(services: &ServicesSpec) -> Vec<&ServiceSpec> {
    let mut started: Vec<&ServiceSpec> = Vec::new();
    let all: Vec<&ServiceSpec> = services.sidecars.iter().collect();
    let mut left = all.clone();
    while !left.is_empty() {
        let ready = left.iter().position(|s| {
            s.depends_on
                .iter()
                .all(|d| d.service == MAIN_SERVICE || started.iter().any(|t| t.name == d.service))
        });
        // A cycle is refused when the file is read; should one come through, start the
        // rest in the file's order and let the wait for the missing container say so.
        let next = left.remove(ready.unwrap_or(0));
        started.push(next);
    }
    started.push(&services.main);
    started
}

/// Waits until `container` (service `name`) reaches `condition`.
async fn wait_for(
    engine: &DockerEngine,
    name: &str,
    container: &Container,
    condition: Readiness,
    deadline: Instant,
    budget: Duration,
    cancel: &CancellationToken,
) -> Result<(), EnvError> {
    let failed = |reason: String| EnvError::ServiceFailed {
        service: name.to_string(),
        reason,
    };
    loop {
        let inspected = engine.inspect(container).await?;
        let state = inspected.state.unwrap_or_default();
        let exited = matches!(
            state.status,
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
        );
        let code = state.exit_code.unwrap_or(-1);
        let health = state.health.as_ref();
        let last_output = || {
            health
                .and_then(|h| h.log.as_ref())
                .and_then(|log| log.last())
                .and_then(|l| l.output.clone())
                .map(|o| format!("; the healthcheck's last output: {}", o.trim()))
                .unwrap_or_default()
        };
        match condition {
            Readiness::Started => return Ok(()),
            Readiness::Completed if exited && code == 0 => return Ok(()),
            Readiness::Completed if exited => {
                return Err(failed(format!(
                    "exited with status {code}, and `service_completed_successfully` needs 0"
                )));
            }
            Readiness::Healthy if exited => {
                return Err(failed(format!(
                    "exited with status {code} before it was healthy"
                )));
            }
            Readiness::Healthy => match health.and_then(|h| h.status) {
                Some(HealthStatusEnum::HEALTHY) => return Ok(()),
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Err(failed(format!("is unhealthy{}", last_output())));
                }
                None | Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) => {
                    return Err(failed(
                        "has no healthcheck, and `service_healthy` needs one".into(),
                    ));
                }
                Some(HealthStatusEnum::STARTING) => {}
            },
            Readiness::Completed => {}
        }
        if Instant::now() + POLL > deadline {
            let what = match condition {
                Readiness::Healthy => "healthy",
                _ => "done",
            };
            return Err(failed(format!(
                "was not {what} within {}s (the task's `build_timeout_sec`){}",
                budget.as_secs_f64(),
                last_output()
            )));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(EnvError::Cancelled),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

fn nanos(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

fn health_config(service: &ServiceSpec) -> Option<HealthConfig> {
    service.healthcheck.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval.map(nanos),
        timeout: h.timeout.map(nanos),
        retries: h.retries.map(i64::from),
        start_period: h.start_period.map(nanos),
        start_interval: h.start_interval.map(nanos),
    })
}

fn tmpfs(service: &ServiceSpec) -> Option<HashMap<String, String>> {
    (!service.tmpfs.is_empty()).then(|| {
        service
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((path, options)) => (path.to_string(), options.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect()
    })
}

fn on_network(name: &str, network: &str) -> NetworkingConfig {
    NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network.to_string(),
            EndpointSettings {
                aliases: Some(vec![name.to_string()]),
                ..Default::default()
            },
        )])),
    }
}

/// The agent's container: the trial's as ever, on the trial's network, with what the
/// Compose file says of `main` (its variables under the task's, its command if it has
/// one).
fn main_body(spec: &EnvSpec, main: &ServiceSpec, network: &str) -> ContainerCreateBody {
    let mut env = main.env.clone();
    env.extend(spec.env.clone());
    let spec = EnvSpec {
        env,
        cpus: spec.cpus.or(main.cpus),
        memory_mb: spec.memory_mb.or(main.memory_mb),
        workdir: spec.workdir.clone().or(main.workdir.clone()),
        // Attached to the trial's network below instead.
        no_network: false,
        isolated_network: None,
        ..spec.clone()
    };
    let mut body = container_body(&spec);
    if main.entrypoint.is_some() || main.command.is_some() {
        body.entrypoint = main.entrypoint.clone();
        body.cmd = main.command.clone();
    }
    body.user = main.user.clone();
    body.hostname = main.hostname.clone();
    body.healthcheck = health_config(main);
    body.volumes = (!main.volumes.is_empty()).then(|| main.volumes.clone());
    body.networking_config = Some(on_network(MAIN_SERVICE, network));
    if let Some(host) = body.host_config.as_mut() {
        host.network_mode = Some(network.to_string());
        host.tmpfs = tmpfs(main);
    }
    body
}

/// A sidecar's container: its image with its own command, limits and healthcheck,
/// labelled like the trial's container (its own labels under them).
fn sidecar_body(spec: &EnvSpec, service: &ServiceSpec, network: &str) -> ContainerCreateBody {
    let mut labels = service.labels.clone();
    labels.extend(spec.labels.clone());
    labels.insert(SERVICE_LABEL.into(), service.name.clone());
    ContainerCreateBody {
        image: Some(service.image.clone()),
        entrypoint: service.entrypoint.clone(),
        cmd: service.command.clone(),
        working_dir: service.workdir.clone(),
        user: service.user.clone(),
        hostname: service.hostname.clone(),
        env: Some(
            service
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(labels.into_iter().collect()),
        healthcheck: health_config(service),
        volumes: (!service.volumes.is_empty()).then(|| service.volumes.clone()),
        networking_config: Some(on_network(&service.name, network)),
        host_config: Some(bollard::models::HostConfig {
            init: service.init.then_some(true),
            nano_cpus: service.cpus.map(|c| (c * 1e9) as i64),
            memory: service.memory_mb.map(|mb| (mb * 1024 * 1024) as i64),
            network_mode: Some(network.to_string()),
            tmpfs: tmpfs(service),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The label naming a sidecar's service on its container.
const SERVICE_LABEL: &str = "helios.service";

/// A multi-container environment: the agent's container answers as the sandbox, the
/// sidecars through [`Sandbox::service`]; removing it removes them all and the network.
struct ServicesSandbox {
    made: Arc<Made>,
    main: Container,
    /// The network guard in `main`'s namespace, from its first `allowlist` phase.
    guard: Guard,
    /// The sidecars, each with its guard: they follow `main`'s policy.
    sidecars: Vec<(Container, Guard)>,
}

#[async_trait::async_trait]
impl Sandbox for ServicesSandbox {
    fn id(&self) -> &str {
        &self.main.id
    }

    fn provider(&self) -> Provider {
        Provider::Docker
    }

    fn makes_workdir(&self) -> bool {
        true
    }

    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EnvError> {
        self.made.engine.exec_in(&self.main, spec).await
    }

    async fn upload_archive(&self, archive: Vec<u8>) -> Result<(), EnvError> {
        self.made.engine.upload_to(&self.main, archive).await
    }

    async fn download_dir(
        &self,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError> {
        self.made
            .engine
            .download_from(&self.main, path, dest, cap)
            .await
    }

    async fn freeze(&self, labels: &BTreeMap<String, String>) -> Result<String, EnvError> {
        self.made.engine.commit(&self.main, labels).await
    }

    fn service(&self, name: &str) -> Option<Arc<dyn Sandbox>> {
        let container = self.made.container(name)?.clone();
        Some(Arc::new(SidecarSandbox {
            made: self.made.clone(),
            container,
        }))
    }

    /// The services keep their network; guards in their namespaces make each phase's
    /// policy: `no-network` is an allowlist of nothing (`main` and the sidecars, which
    /// follow it, reach one another and the gateway), `public` lifts them.
    async fn set_network(&self, plan: &super::NetworkPlan) -> Result<(), EnvError> {
        let engine = &self.made.engine;
        let wanted = match (&plan.allowlist, plan.public) {
            (Some(allowlist), _) => Some(allowlist.clone()),
            (None, false) => Some(super::Allowlist {
                gateway: plan.gateway,
                ..Default::default()
            }),
            (None, true) => None,
        };
        let allowlist = match (wanted, &self.made.network) {
            (Some(allowlist), Some(network)) => {
                let mut allowlist = allowlist;
                allowlist
                    .own_networks
                    .extend(engine.network_subnets(network).await?);
                allowlist
                    .own_names
                    .extend(self.made.containers.iter().map(|(name, _)| name.clone()));
                Some(allowlist)
            }
            (allowlist, _) => allowlist,
        };
        for (sidecar, guard) in &self.sidecars {
            guard.set(engine, sidecar, allowlist.as_ref()).await?;
        }
        self.guard.set(engine, &self.main, allowlist.as_ref()).await
    }

    async fn remove(&self) -> Result<(), EnvError> {
        let engine = &self.made.engine;
        let mut guards = self.guard.remove(engine).await;
        for (_, guard) in &self.sidecars {
            guards = guards.and(guard.remove(engine).await);
        }
        let services = self.made.remove().await;
        guards.and(services)
    }
}

/// A sidecar's container, as a handle from [`ServicesSandbox::service`].
struct SidecarSandbox {
    made: Arc<Made>,
    container: Container,
}

#[async_trait::async_trait]
impl Sandbox for SidecarSandbox {
    fn id(&self) -> &str {
        &self.container.id
    }

    fn provider(&self) -> Provider {
        Provider::Docker
    }

    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EnvError> {
        self.made
            .engine
            .exec_with(&self.container, spec, "sh")
            .await
    }

    async fn upload_archive(&self, archive: Vec<u8>) -> Result<(), EnvError> {
        self.made.engine.upload_to(&self.container, archive).await
    }

    async fn download_dir(
        &self,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError> {
        self.made
            .engine
            .download_from(&self.container, path, dest, cap)
            .await
    }

    /// The environment's removal removes it.
    async fn remove(&self) -> Result<(), EnvError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Dependency;

    fn service(name: &str, deps: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            depends_on: deps
                .iter()
                .map(|d| Dependency {
                    service: d.to_string(),
                    condition: Readiness::Started,
                })
                .collect(),
            ..ServiceSpec::default()
        }
    }

    #[test]
    fn services_start_after_their_dependencies_and_main_last() {
        let spec = ServicesSpec {
            main: service("main", &["api"]),
            sidecars: vec![
                service("api", &["db", "cache"]),
                service("db", &[]),
                service("cache", &["db"]),
            ],
            ..ServicesSpec::default()
        };
        let names: Vec<&str> = order(&spec).iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db", "cache", "api", "main"]);
    }

    #[test]
    fn main_keeps_the_tasks_variables_over_the_files() {
        let spec = EnvSpec {
            image: "img".into(),
            env: BTreeMap::from([("A".to_string(), "task".to_string())]),
            ..EnvSpec::default()
        };
        let main = ServiceSpec {
            name: "main".into(),
            env: BTreeMap::from([
                ("A".to_string(), "file".to_string()),
                ("B".to_string(), "file".to_string()),
            ]),
            ..ServiceSpec::default()
        };
        let body = main_body(&spec, &main, "net");
        let mut env = body.env.unwrap();
        env.sort();
        assert_eq!(env, ["A=task", "B=file"]);
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("net")
        );
        // Without a command of its own, main is kept alive as every trial container is.
        assert_eq!(body.entrypoint.unwrap(), ["/bin/sh", "-c"]);
    }
}
