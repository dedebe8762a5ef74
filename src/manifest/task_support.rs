//! What of a valid task helios cannot honour (yet): refused before any trial with the
//! reason, or run with a warning where doing without it cannot change a reward the task's
//! authors validated. `validate` shows both as warnings; `apply` refuses the first kind.

use std::path::Path;

use super::task::{Os, TaskManifest};

/// A setting of a task that helios does not honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Where in `task.toml` (a JSON Pointer), or empty for a file of the task directory.
    pub pointer: String,
    /// What is not supported, and what to do.
    pub message: String,
    /// Whether trials of the task are refused (`true`), or run without it (`false`).
    pub refused: bool,
}

impl Unsupported {
    fn refuse(pointer: impl Into<String>, message: impl Into<String>) -> Unsupported {
        Unsupported {
            pointer: pointer.into(),
            message: message.into(),
            refused: true,
        }
    }

    fn note(pointer: impl Into<String>, message: impl Into<String>) -> Unsupported {
        Unsupported {
            pointer: pointer.into(),
            message: message.into(),
            refused: false,
        }
    }
}

/// The Compose file of a task's environment, if it has one.
pub fn compose_file(dir: &Path) -> Option<std::path::PathBuf> {
    super::compose::find(dir)
}

/// Everything of `task` (in `dir`) that helios does not honour.
pub fn unsupported(dir: &Path, task: &TaskManifest) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let env = &task.environment;
    if env.os == Some(Os::Windows) {
        out.push(Unsupported::refuse(
            "/environment/os",
            "Windows environments (`os = \"windows\"`) are not supported: helios runs Linux \
             containers only",
        ));
    }
    if env.tpu.is_some() {
        out.push(Unsupported::refuse(
            "/environment/tpu",
            "TPUs (`[environment.tpu]`) are not supported: no helios provider offers them",
        ));
    }
    if env.gpu_types.as_ref().is_some_and(|t| !t.is_empty()) {
        out.push(Unsupported::note(
            "/environment/gpu_types",
            "`gpu_types` is not enforced: Docker hands out whichever GPUs the machine has",
        ));
    }
    if env.skills_dir.is_some() {
        out.push(Unsupported::note(
            "/environment/skills_dir",
            "`skills_dir` is not given to agents yet: agents run without its skills",
        ));
    }
    // Sidecar artifacts and collect hooks need a Compose file that defines their service.
    let compose = super::compose::ComposeFile::read(dir).ok().flatten();
    let services = compose
        .as_ref()
        .map(|file| file.service_names())
        .unwrap_or_default();
    if let Some(file) = &compose {
        let refused = file.refused();
        if !refused.is_empty() {
            out.push(Unsupported::refuse(
                "",
                format!(
                    "its Compose file `{}` asks for what helios does not run yet: {}",
                    file.path.display(),
                    refused.join("; ")
                ),
            ));
        }
    }
    let sidecar = |service: &Option<String>| {
        service
            .as_deref()
            .filter(|s| *s != super::compose::MAIN)
            .map(str::to_string)
    };
    let artifacts = task
        .artifacts
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("/artifacts/{i}"), a.spec().service))
        .chain(task.steps.iter().enumerate().flat_map(|(s, step)| {
            step.artifacts
                .iter()
                .enumerate()
                .map(move |(i, a)| (format!("/steps/{s}/artifacts/{i}"), a.spec().service))
        }));
    let hooks = task
        .verifier
        .collect
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("/verifier/collect/{i}"), h.service.clone()))
        .chain(task.steps.iter().enumerate().flat_map(|(s, step)| {
            step.verifier.collect.iter().enumerate().map(move |(i, h)| {
                (
                    format!("/steps/{s}/verifier/collect/{i}"),
                    h.service.clone(),
                )
            })
        }));
    for (pointer, service) in artifacts.chain(hooks) {
        if let Some(service) = sidecar(&service)
            && !services.contains(&service)
        {
            out.push(Unsupported::refuse(
                format!("{pointer}/service"),
                format!(
                    "service `{service}` is not a service of the task's Compose file \
                     (`environment/docker-compose.yaml`)"
                ),
            ));
        }
    }
    out
}
