//! `helios regrade`: the verifier run again on what a finished run kept — after a fixed
//! test, or with a new `tests/` — its results written as a run of their own beside the old
//! one, which is never changed, as Harbor's `regrade` does. Only trials of tasks verified
//! in an environment of their own (`environment_mode = "separate"`) can be: that verifier
//! sees nothing of the agent but the artifacts helios kept, where a shared verifier would
//! need the agent's container, which is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Problem, ProblemKind, Problems, RunError};
use crate::env::{BuildSpec, Engine, EnvError, Labels, OpenOptions, Provider};
use crate::events::{ErrorKind, TrialStatus};
use crate::manifest::TaskDir;
use crate::plan::lock::LockFile;
use crate::store::RunStore;
use crate::store::summary::Summary;
use crate::store::trial::{ErrorInfo, TrialResult};
use crate::verify::reward;
use crate::verify::steps::TestsSpec;

/// What to regrade, and where the new results go.
#[derive(Debug, Clone)]
pub struct RegradeOptions {
    /// The finished run (`runs/<pipeline>`).
    pub run_dir: PathBuf,
    /// A directory holding tasks to grade with, by the names the run gave them (a fixed
    /// `tests/`); a task it does not hold is graded as the run found it.
    pub tasks: Option<PathBuf>,
    /// Where the regraded run is written; `<run_dir>-regraded` when `None`.
    pub output: Option<PathBuf>,
    /// Verifications at once.
    pub concurrency: usize,
    /// Labels added to every container and image (`--label`).
    pub labels: BTreeMap<String, String>,
}

/// What a regrade did.
#[derive(Debug, Clone)]
pub struct Regraded {
    /// The new run's directory.
    pub run_dir: PathBuf,
    /// The new results, one per regraded trial.
    pub results: Vec<TrialResult>,
    /// Trials left as they were, each with why (`stage/task/agent#attempt`, reason).
    pub skipped: Vec<(String, String)>,
    /// Trials whose verification failed for the environment's reasons, with the error.
    pub failed: Vec<(String, String)>,
    pub summary: Summary,
}

/// A task the run used, ready to grade with.
struct Grader {
    task: TaskDir,
    container: crate::env::EnvSpec,
    artifacts: Vec<crate::manifest::task::ArtifactSpec>,
    env: BTreeMap<String, String>,
    timeout: Duration,
    user: Option<String>,
}

/// Regrades every trial of `options.run_dir` that can be, `progress` told of each.
pub async fn regrade(
    options: &RegradeOptions,
    cancel: &CancellationToken,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Regraded, RunError> {
    let lock = LockFile::read(&options.run_dir)
        .map_err(|source| RunError::Write {
            path: options.run_dir.join(crate::store::LOCK_FILE),
            source,
        })?
        .ok_or_else(|| {
            RunError::Preflight(Problems::one(
                Problem::new(
                    ProblemKind::Regrade,
                    format!(
                        "`{}` is not a run directory: it has no {}",
                        options.run_dir.display(),
                        crate::store::LOCK_FILE
                    ),
                )
                .fix("give the directory `helios apply` wrote the run to"),
            ))
        })?;
    let output = options.output.clone().unwrap_or_else(|| {
        let mut name = options.run_dir.as_os_str().to_os_string();
        name.push("-regraded");
        PathBuf::from(name)
    });
    if output == options.run_dir {
        return Err(RunError::Preflight(Problems::one(
            Problem::new(
                ProblemKind::Regrade,
                "the regraded run would overwrite the run it regrades",
            )
            .fix("give another `--output`"),
        )));
    }
    // Regrading runs verifiers again on this machine, where the run's images are.
    let local = Provider::all()
        .find(|p| p.capabilities().runs_here)
        .unwrap_or_default();
    let engine = Engine::open(local, &OpenOptions::default(), &|name| {
        std::env::var(name).ok()
    })
    .await
    .map_err(RunError::Env)?;
    let labels = Labels::new(&lock.pipeline, options.labels.clone());
    let store = RunStore::new(&output);
    let mut graders: BTreeMap<String, Result<Grader, String>> = BTreeMap::new();
    for locked in &lock.tasks {
        // A task `--tasks` has replaces the run's; the others are graded as they are.
        let dir = match &options.tasks {
            Some(tasks) if tasks.join(&locked.name).join("task.toml").is_file() => {
                tasks.join(&locked.name)
            }
            _ => locked.dir.clone(),
        };
        let grader = grader(&engine, &labels, &store, &locked.name, &dir, progress).await;
        graders.insert(locked.name.clone(), grader);
    }
    std::fs::create_dir_all(&output).map_err(|source| RunError::Write {
        path: output.clone(),
        source,
    })?;
    // The new run is a run like any: `report`, `view` and `report --compare` read it.
    lock.write(&output).map_err(|source| RunError::Write {
        path: store.lock_path(),
        source,
    })?;
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    let concurrency = tokio::sync::Semaphore::new(options.concurrency.max(1));
    let mut work = Vec::new();
    for trial in &lock.trials {
        let label = format!(
            "{}/{}/{}#{}",
            trial.stage, trial.task, trial.agent, trial.attempt
        );
        let old_dir = options.run_dir.join(&trial.dir);
        let Some(old) = RunStore::read_result(&old_dir) else {
            skipped.push((label, "it has no result".to_string()));
            continue;
        };
        if matches!(old.status, TrialStatus::InfraError | TrialStatus::Cancelled) {
            skipped.push((
                label,
                format!("its agent never ran to the end ({})", old.status),
            ));
            continue;
        }
        match graders.get(&trial.task) {
            Some(Ok(grader)) => {
                work.push((label, old_dir, store.trial_dir(&trial.dir), old, grader))
            }
            Some(Err(why)) => skipped.push((label, why.clone())),
            None => skipped.push((label, "its task is not in the lock file".into())),
        }
    }
    let graded = futures_util::future::join_all(work.into_iter().map(
        |(label, old_dir, new_dir, old, grader)| {
            let (engine, labels, concurrency) = (&engine, &labels, &concurrency);
            async move {
                let _permit = concurrency.acquire().await.expect("never closed");
                let result =
                    grade_one(engine, labels, cancel, grader, &old_dir, &new_dir, old).await;
                (label, new_dir, result)
            }
        },
    ))
    .await;
    for (label, new_dir, result) in graded {
        match result {
            Ok(result) => {
                progress(&format!(
                    "{label}: reward {}",
                    result.reward.map_or("none".to_string(), |r| format!("{r}"))
                ));
                RunStore::write_result(&new_dir, &result).map_err(|source| RunError::Write {
                    path: new_dir.join(crate::store::RESULT_FILE),
                    source,
                })?;
                results.push(result);
            }
            Err(error) => failed.push((label, error.to_string())),
        }
    }
    let summary = Summary::of(&lock.pipeline, &results.iter().collect::<Vec<_>>());
    store
        .write_summary(&summary)
        .map_err(|source| RunError::Write {
            path: store.summary_path(),
            source,
        })?;
    Ok(Regraded {
        run_dir: output,
        results,
        skipped,
        failed,
        summary,
    })
}

/// The task at `dir` ready to grade with, its verifier's image built or pulled; why not,
/// when it cannot be regraded.
async fn grader(
    engine: &Engine,
    labels: &Labels,
    store: &RunStore,
    name: &str,
    dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Grader, String> {
    if !dir.join("task.toml").is_file() {
        return Err(format!(
            "task `{name}` has no `{}`",
            dir.join("task.toml").display()
        ));
    }
    let task = crate::manifest::load_task(dir)
        .map_err(|e| format!("task `{name}` at `{}` is not valid:\n{e}", dir.display()))?
        .value;
    let m = &task.manifest;
    if !m.steps.is_empty() {
        return Err(format!(
            "task `{name}` has steps: a multi-step trial cannot be regraded (its steps' \
             verifiers saw the container as each step left it)"
        ));
    }
    let Some(verifier) = m.separate_verifiers(dir).pop() else {
        return Err(format!(
            "task `{name}` is verified in the agent's container, which is gone: only tasks \
             with a separate verifier (`environment_mode = \"separate\"`) can be regraded"
        ));
    };
    let image = match &verifier.environment.docker_image {
        Some(image) => {
            engine
                .ensure_image(image)
                .await
                .map_err(|e| e.to_string())?;
            image.clone()
        }
        None => {
            let digest = crate::plan::digest::trees(&verifier.context, &[&|_: &str| true])
                .map_err(|e| e.to_string())?[0];
            let tag = format!(
                "helios/{}-verifier:{}",
                crate::store::path_component(name).to_lowercase(),
                digest.short(12)
            );
            if !engine.image_exists(&tag).await.map_err(|e| e.to_string())? {
                progress(&format!("building {tag}"));
                engine
                    .build(&BuildSpec {
                        context: &verifier.context,
                        dockerfile: "Dockerfile",
                        tag: &tag,
                        labels: &labels.image(name),
                        timeout: Duration::from_secs_f64(m.environment.build_timeout_sec),
                        log: &store.build_log(&tag),
                    })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            tag
        }
    };
    let host = |name: &str| std::env::var(name).ok();
    let container =
        super::prepare::verifier_container(name, &verifier, image, &host).map_err(joined)?;
    let env = super::prepare::expand_all(
        &m.verifier.env,
        &host,
        &format!("task `{name}` [verifier] env"),
    )
    .map_err(joined)?;
    Ok(Grader {
        artifacts: m.artifacts.iter().map(|a| a.spec()).collect(),
        env,
        timeout: Duration::from_secs_f64(m.verifier.timeout_sec),
        user: m.verifier.user.as_ref().map(ToString::to_string),
        container,
        task,
    })
}

/// Pre-flight problems of one task's grader, on one line.
fn joined(problems: Vec<Problem>) -> String {
    Problems::of(problems)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Grades one trial again: what its agent left is copied to the new trial directory, the
/// verifier runs on it, and the old result is kept but for the verification's part.
async fn grade_one(
    engine: &Engine,
    labels: &Labels,
    cancel: &CancellationToken,
    grader: &Grader,
    old_dir: &Path,
    new_dir: &Path,
    old: TrialResult,
) -> Result<TrialResult, EnvError> {
    let copy = |from: &Path, to: &Path| {
        copy_tree(from, to).map_err(|e| EnvError::io(format!("copying `{}`", from.display()), e))
    };
    if new_dir.exists() {
        std::fs::remove_dir_all(new_dir)
            .map_err(|e| EnvError::io(format!("emptying `{}`", new_dir.display()), e))?;
    }
    for kept in ["agent", "artifacts", crate::store::INSTRUCTION_FILE] {
        let from = old_dir.join(kept);
        if from.exists() {
            copy(&from, &new_dir.join(kept))?;
        }
    }
    let mut spec = grader.container.clone();
    spec.labels = labels.container(&old.trial_id, &grader.task.name);
    let tests = TestsSpec {
        dirs: &[],
        workdir: spec.workdir.clone(),
        env: grader.env.clone(),
        timeout: grader.timeout,
        user: grader.user.clone(),
    };
    let grace = super::trial::Grace::new(cancel.clone());
    let verified =
        super::separate::verify(engine, &spec, &grace, &grader.artifacts, new_dir, &tests).await;
    let run = verified.outcome?;
    let mut result = old;
    result.regraded_from = Some(old_dir.to_path_buf());
    result.verifier_exit_code = run.exit_code;
    result.rewards.clear();
    result.reward = None;
    // The agent's own failure stands; the old verification's does not.
    if result
        .error
        .as_ref()
        .is_some_and(|e| is_verification(e.kind))
    {
        result.error = None;
        result.status = TrialStatus::Completed;
    }
    let mut fail = |status: TrialStatus, kind: ErrorKind, message: String| {
        if result.error.is_none() {
            result.status = status;
            result.error = Some(ErrorInfo::new(kind, message));
        }
    };
    if run.timed_out {
        fail(
            TrialStatus::TimedOut,
            ErrorKind::VerifierTimeout,
            format!(
                "the tests did not finish within {}s",
                grader.timeout.as_secs_f64()
            ),
        );
    } else {
        match reward::read(&new_dir.join("verifier"), "/logs/verifier") {
            Ok(rewards) => {
                result.reward = reward::primary(&rewards);
                result.rewards = rewards;
            }
            Err(error) => fail(TrialStatus::Failed, error.kind(), error.to_string()),
        }
    }
    Ok(result)
}

/// Whether an error kind is the verification's (and so replaced by a regrade's).
fn is_verification(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::VerifierTimeout
            | ErrorKind::RewardMissing
            | ErrorKind::RewardEmpty
            | ErrorKind::RewardInvalid
    )
}

/// `cp -r from to` for a file or a directory, links left out.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to)?;
    }
    Ok(())
}
