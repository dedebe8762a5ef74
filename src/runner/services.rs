//! A Compose task's services as the environment takes them: the task's Compose file
//! (`manifest::compose`), resolved per trial (its project name is the trial's), turned into
//! `env` services with the images the plan built for them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::env::{Dependency, Readiness, ServiceMount, ServiceSpec, ServicesSpec};
use crate::manifest::compose::{self, ComposeFile, Condition, Service, Variables, VolumeEntry};

/// What every trial of a Compose task shares.
#[derive(Debug, Clone)]
pub struct ComposeRuntime {
    pub file: ComposeFile,
    /// The image the plan built for each sidecar with `build:`, by service.
    pub built: BTreeMap<String, String>,
    /// The sidecars' declared CPUs and memory, which the run's budget counts.
    pub sidecar_cpus: f64,
    pub sidecar_memory_mb: u64,
}

impl ComposeRuntime {
    /// Reads what every trial shares, resolving the file once (with a sample project name)
    /// so that a problem stops the run before any trial.
    pub fn new(
        file: ComposeFile,
        built: BTreeMap<String, String>,
        host: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ComposeRuntime, Vec<String>> {
        let vars = Variables {
            project: "helios-check".into(),
            ..Variables::default()
        };
        let services = file
            .resolve(&|name| vars.lookup(name, host))
            .map_err(|problems| {
                problems
                    .iter()
                    .map(|p| format!("`{}`: {p}", file.path.display()))
                    .collect::<Vec<_>>()
            })?;
        let sidecars = services.iter().filter(|s| s.name != compose::MAIN);
        Ok(ComposeRuntime {
            sidecar_cpus: sidecars.clone().filter_map(|s| s.cpus).sum(),
            sidecar_memory_mb: sidecars.filter_map(|s| s.memory_mb).sum(),
            file,
            built,
        })
    }

    /// The services of one trial: `project` names it (`COMPOSE_PROJECT_NAME`),
    /// `trial_dir` is its results directory; `deadline` bounds their start.
    pub fn spec(
        &self,
        project: &str,
        trial_dir: &Path,
        limits: (Option<f64>, Option<u64>),
        deadline: Duration,
        host: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<ServicesSpec>, String> {
        let vars = Variables {
            project: project.to_string(),
            host_artifacts: trial_dir.join("artifacts").display().to_string(),
            cpus: limits.0,
            memory_mb: limits.1,
        };
        let services = self
            .file
            .resolve(&|name| vars.lookup(name, host))
            .map_err(|problems| {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                format!("`{}`: {}", self.file.path.display(), text.join("; "))
            })?;
        let mut main = ServiceSpec {
            name: compose::MAIN.into(),
            ..ServiceSpec::default()
        };
        let mut sidecars = Vec::new();
        for service in services {
            if service.name == compose::MAIN {
                main = self.service(service);
            } else {
                sidecars.push(self.service(service));
            }
        }
        Ok(Arc::new(ServicesSpec {
            project: project.to_string(),
            main,
            sidecars,
            volumes: self.file.volume_names(),
            deadline,
        }))
    }

    fn service(&self, s: Service) -> ServiceSpec {
        let image = match self.built.get(&s.name) {
            Some(tag) => tag.clone(),
            None => s.image.unwrap_or_default(),
        };
        ServiceSpec {
            image,
            command: s.command,
            entrypoint: s.entrypoint,
            env: s.environment,
            workdir: s.working_dir,
            user: s.user,
            hostname: s.hostname,
            cpus: s.cpus,
            memory_mb: s.memory_mb,
            healthcheck: s.healthcheck,
            depends_on: s
                .depends_on
                .into_iter()
                .map(|(service, condition)| Dependency {
                    service,
                    condition: match condition {
                        Condition::Started => Readiness::Started,
                        Condition::Healthy => Readiness::Healthy,
                        Condition::CompletedSuccessfully => Readiness::Completed,
                    },
                })
                .collect(),
            tmpfs: s.tmpfs,
            volumes: s.volumes,
            networks: s.networks,
            mounts: s
                .mounts
                .into_iter()
                .filter_map(|m| match m {
                    VolumeEntry::Named {
                        volume,
                        target,
                        read_only,
                    } => Some(ServiceMount::Volume {
                        name: volume,
                        target,
                        read_only,
                    }),
                    VolumeEntry::Bind {
                        source,
                        target,
                        read_only,
                    } => Some(ServiceMount::Bind {
                        source: source.into(),
                        target,
                        read_only,
                    }),
                    VolumeEntry::Anonymous(_) => None,
                })
                .collect(),
            init: s.init,
            labels: s.labels,
            name: s.name,
        }
    }
}

/// A trial's Compose project name: lowercase letters, digits, `-` and `_`, as Compose
/// wants it.
pub fn project_name(trial_id: &str) -> String {
    let id: String = trial_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("helios-{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trials_services_get_its_project_name_and_the_built_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("environment/api")).unwrap();
        std::fs::write(
            dir.path().join("environment/docker-compose.yaml"),
            "services:\n  main:\n    environment:\n      PROJECT: ${COMPOSE_PROJECT_NAME}\n  api:\n    build: ./api\n    cpus: 0.5\n    mem_limit: 128m\n  cache:\n    image: redis\n    cpus: 1\n",
        )
        .unwrap();
        let file = ComposeFile::read(dir.path()).unwrap().unwrap();
        let runtime = ComposeRuntime::new(
            file,
            BTreeMap::from([("api".to_string(), "helios/t-api:abc".to_string())]),
            &|_| None,
        )
        .unwrap();
        assert_eq!(runtime.sidecar_cpus, 1.5);
        assert_eq!(runtime.sidecar_memory_mb, 128);
        let spec = runtime
            .spec(
                &project_name("AB12"),
                Path::new("/runs/t"),
                (None, None),
                Duration::from_secs(60),
                &|_| None,
            )
            .unwrap();
        assert_eq!(spec.main.env["PROJECT"], "helios-ab12");
        assert_eq!(spec.sidecars[0].image, "helios/t-api:abc");
        assert_eq!(spec.sidecars[1].image, "redis");
    }
}
