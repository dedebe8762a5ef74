//! A task's declared artifacts and collect hooks: the hooks run after the agent, then every
//! artifact is copied out of the environment into the trial's `artifacts/` (with
//! `exclude` globs honoured), and `artifacts/manifest.json` says what each became.

use std::path::Path;
use std::time::Duration;

use crate::env::{EnvError, ExecSpec, Instance, shell_quote};
use crate::manifest::task::{ArtifactSpec, CollectHook};
use crate::store::trial::{ArtifactEntry, HookRun};

/// Where artifacts are staged in the environment before one download.
const STAGING: &str = "/tmp/.helios-artifacts";

/// The artifacts' manifest, beside them.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";

/// Most bytes of artifacts kept from one collection.
const ARTIFACTS_CAP: u64 = 256 << 20;

/// Runs the collect hooks in order, each in its service's container (`main`'s under
/// `bash`, a sidecar's under `sh`); a hook that fails is recorded, never fatal. Their
/// output goes to `main`'s `/logs/verifier/collect-<n>.txt`.
pub(crate) async fn run_hooks(
    instance: &Instance,
    hooks: &[CollectHook],
    workdir: Option<String>,
) -> Result<Vec<HookRun>, EnvError> {
    let mut runs = Vec::with_capacity(hooks.len());
    for (n, hook) in hooks.iter().enumerate() {
        let sidecar = hook
            .service
            .as_deref()
            .filter(|s| *s != crate::env::MAIN_SERVICE);
        let target = instance.service(sidecar)?;
        let command = match sidecar {
            None => format!(
                "mkdir -p /logs/verifier; {{ {}\n}} > /logs/verifier/collect-{n}.txt 2>&1",
                hook.command
            ),
            // A sidecar has no `/logs` that is collected: its output comes back here.
            Some(_) => format!("{{ {}\n}} 2>&1", hook.command),
        };
        let output = target
            .exec(&ExecSpec {
                command,
                // The task's workdir is `main`'s; a sidecar runs in its own.
                workdir: if sidecar.is_none() {
                    workdir.clone()
                } else {
                    None
                },
                env: Default::default(),
                deadline: Some(Duration::from_secs_f64(hook.timeout_sec)),
                user: hook.user.as_ref().map(ToString::to_string),
            })
            .await?;
        if sidecar.is_some() {
            let archive = crate::env::tarball::pack_file(
                &format!("logs/verifier/collect-{n}.txt"),
                output.stdout.as_bytes(),
                0o644,
            )
            .map_err(|e| EnvError::io("packing a collect hook's output", e))?;
            instance.upload_archive(archive).await?;
        }
        runs.push(HookRun {
            command: hook.command.clone(),
            exit_code: output.exit_code,
            timed_out: output.timed_out,
        });
    }
    Ok(runs)
}

/// Where an artifact goes under `artifacts/`: its `destination`, or its source's path
/// without the leading `/`.
pub(crate) fn destination(spec: &ArtifactSpec) -> String {
    match spec.destination.as_deref().filter(|d| !d.is_empty()) {
        Some(destination) => destination.trim_end_matches('/').to_string(),
        None => spec
            .source
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string(),
    }
}

/// The shell script that copies artifact `n` to `STAGING/n/` and says what it was.
fn stage_script(n: usize, spec: &ArtifactSpec) -> String {
    let source = shell_quote(&spec.source);
    let excludes: String = spec
        .exclude
        .iter()
        .map(|e| format!(" --exclude={}", shell_quote(e)))
        .collect();
    format!(
        "d={STAGING}/{n}; mkdir -p \"$d\"; \
         if [ -d {source} ]; then tar -C {source}{excludes} -cf - . | tar -C \"$d\" -xf - \
         && echo \"helios-artifact {n} directory\" || echo \"helios-artifact {n} failed\"; \
         elif [ -e {source} ]; then cp -p {source} \"$d/file\" \
         && echo \"helios-artifact {n} file\" || echo \"helios-artifact {n} failed\"; \
         else echo \"helios-artifact {n} missing\"; fi"
    )
}

/// Copies every artifact out of `instance` (a sidecar's from its service's container)
/// into `dir` (the trial's, or a step's, `artifacts/`) and writes its manifest there, in
/// the order they are declared. Nothing is written when there are none.
pub(crate) async fn collect(
    instance: &Instance,
    artifacts: &[ArtifactSpec],
    workdir: Option<String>,
    dir: &Path,
) -> Result<Vec<ArtifactEntry>, EnvError> {
    if artifacts.is_empty() {
        return Ok(Vec::new());
    }
    let service_of = |spec: &ArtifactSpec| {
        spec.service
            .clone()
            .filter(|s| s != crate::env::MAIN_SERVICE)
    };
    let mut services: Vec<Option<String>> = Vec::new();
    for spec in artifacts {
        let service = service_of(spec);
        if !services.contains(&service) {
            services.push(service);
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| EnvError::io(format!("making `{}`", dir.display()), e))?;
    let mut entries: Vec<Option<ArtifactEntry>> = vec![None; artifacts.len()];
    for service in services {
        let target = instance.service(service.as_deref())?;
        let indexes: Vec<usize> = (0..artifacts.len())
            .filter(|&n| service_of(&artifacts[n]) == service)
            .collect();
        let workdir = if service.is_none() {
            workdir.clone()
        } else {
            None
        };
        for (n, entry) in collect_from(&target, artifacts, &indexes, workdir, dir).await? {
            entries[n] = Some(entry);
        }
    }
    let entries: Vec<ArtifactEntry> = entries.into_iter().flatten().collect();
    let text = serde_json::to_vec_pretty(&entries).expect("artifact entries serialize");
    crate::atomic::write_atomic(&dir.join(MANIFEST_FILE), &text)
        .map_err(|e| EnvError::io("writing the artifacts' manifest", e))?;
    Ok(entries)
}

/// Copies the artifacts at `indexes` out of one container: staged there by one script,
/// downloaded at once, placed under `dir`.
async fn collect_from(
    instance: &Instance,
    artifacts: &[ArtifactSpec],
    indexes: &[usize],
    workdir: Option<String>,
    dir: &Path,
) -> Result<Vec<(usize, ArtifactEntry)>, EnvError> {
    let mut script = format!("rm -rf {STAGING}; mkdir -p {STAGING}");
    for &n in indexes {
        script.push_str("; ");
        script.push_str(&stage_script(n, &artifacts[n]));
    }
    let output = instance
        .exec(&ExecSpec {
            command: script,
            workdir,
            env: Default::default(),
            deadline: Some(Duration::from_secs(300)),
            user: None,
        })
        .await?;
    let kind_of = |n: usize| {
        output.stdout.lines().find_map(|line| {
            let rest = line.strip_prefix("helios-artifact ")?;
            let (index, kind) = rest.split_once(' ')?;
            (index.parse::<usize>().ok()? == n).then(|| kind.to_string())
        })
    };
    let staged = tempfile::Builder::new()
        .prefix(".artifacts-")
        .tempdir_in(dir.parent().unwrap_or(dir))
        .map_err(|e| EnvError::io("making a directory for artifacts", e))?;
    instance
        .download_dir(STAGING, staged.path(), ARTIFACTS_CAP)
        .await?;
    let mut entries = Vec::with_capacity(indexes.len());
    for &n in indexes {
        let spec = &artifacts[n];
        let relative = destination(spec);
        let target = dir.join(&relative);
        let kind = kind_of(n);
        let from = staged.path().join(n.to_string());
        let status = match kind.as_deref() {
            Some("directory") => place(&from, &target).map(|()| {
                if std::fs::read_dir(&target).is_ok_and(|mut d| d.next().is_some()) {
                    "ok"
                } else {
                    "empty"
                }
            }),
            Some("file") => place(&from.join("file"), &target).map(|()| "ok"),
            _ => Ok("failed"),
        }
        .map_err(|e| EnvError::io(format!("placing artifact `{}`", spec.source), e))?;
        entries.push((
            n,
            ArtifactEntry {
                source: spec.source.clone(),
                destination: format!("artifacts/{relative}"),
                kind: kind.filter(|k| k == "file" || k == "directory"),
                status: status.to_string(),
                service: spec.service.clone(),
            },
        ));
    }
    Ok(entries)
}

/// Moves `from` (a file or a directory) to `to`, making its parents; a directory is
/// merged into what is there.
fn place(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if !from.exists() {
        return std::fs::create_dir_all(to);
    }
    if from.is_dir() && to.is_dir() {
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            place(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    std::fs::rename(from, to)
}

/// The artifacts of a step or a task: the task's, then the step's.
pub(crate) fn declared(
    task: &[crate::manifest::task::Artifact],
    step: &[crate::manifest::task::Artifact],
) -> Vec<ArtifactSpec> {
    task.iter().chain(step).map(|a| a.spec()).collect()
}
