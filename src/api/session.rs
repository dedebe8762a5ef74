//! One way in for every front end: a [`Session`] owns a pipeline from load through its
//! sources and plan (with `--output-dir`, `--fail-under` and `--shard` applied), the lock
//! check, the run, and the outcome with its expectations and summary; its events go to the
//! [`Reporter`]s a front end gives. `helios apply`, `helios run` and [`super::AgentRunner`]
//! are front ends over it.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, WeakUnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::diagnostic::Report;
use crate::events::{Reporter, RunEvent, feed};
use crate::manifest::pipeline::Expect;
use crate::manifest::{ManifestError, Pipeline, SourceOptions, load_pipeline_with};
use crate::plan::lock::{LockFile, locked_mismatches};
use crate::plan::shard::Shard;
use crate::plan::{Plan, PlanError};
use crate::runner::{ApplyOptions, Run, RunError, RunOutcome};
use crate::store::RunStore;

/// How a pipeline is planned, besides what it says itself.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Results go to `<DIR>/<name>` (relative to the working directory) instead of the
    /// pipeline's `output_dir`.
    pub output_dir: Option<PathBuf>,
    /// Every group's mean reward must reach this, after the pipeline's own expectations.
    pub fail_under: Option<f64>,
    /// Only this part of the trials, into a run of its own.
    pub shard: Option<Shard>,
}

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The pipeline or one of its tasks is not valid (the report says where).
    #[error("the pipeline is not valid")]
    Invalid(#[from] ManifestError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// Why `--locked` refuses a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockProblem {
    #[error("`{0}` has no lock file")]
    Missing(PathBuf),
    #[error("the lock file of `{dir}` cannot be read: {reason}")]
    Unreadable { dir: PathBuf, reason: String },
    /// The pipeline no longer resolves to what the lock file says, each way it differs.
    #[error("the pipeline no longer resolves to what the lock file says")]
    Differs(Vec<String>),
}

/// A pipeline, planned.
#[derive(Debug)]
pub struct Session {
    pipeline: Pipeline,
    plan: Plan,
}

impl Session {
    /// Loads `path` (fetching its sources as `sources` says) and plans it; the loader's
    /// warnings come with it.
    pub fn load(
        path: &Path,
        sources: &SourceOptions<'_>,
        options: &PlanOptions,
    ) -> Result<(Session, Report), SessionError> {
        let loaded = load_pipeline_with(path, sources)?;
        Ok((Session::new(loaded.value, options)?, loaded.warnings))
    }

    /// Plans a pipeline made in memory (checked as a loaded one was).
    pub fn new(mut pipeline: Pipeline, options: &PlanOptions) -> Result<Session, SessionError> {
        if let Some(dir) = &options.output_dir {
            let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            pipeline.manifest.pipeline.output_dir = absolute.display().to_string();
        }
        let mut plan = Plan::of(&pipeline)?;
        plan.expect
            .extend(options.fail_under.map(|threshold| Expect {
                min_mean_reward: Some(threshold),
                ..Default::default()
            }));
        if let Some(shard) = options.shard {
            plan = plan.shard(shard);
        }
        Ok(Session { pipeline, plan })
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// `--locked`: whether the plan is what the run's lock file says. A shard's run without
    /// a lock file yet is checked against the whole run's, the one `helios plan
    /// --write-lock` writes and every machine has a copy of.
    pub fn check_lock(&self) -> Result<(), LockProblem> {
        let plan = &self.plan;
        let mut dir = plan.run_dir.as_path();
        if let Some(sharded) = &plan.shard
            && !RunStore::new(dir).has_lock()
        {
            dir = &sharded.whole_run_dir;
        }
        let lock = match LockFile::read(dir) {
            Ok(Some(lock)) => lock,
            Ok(None) => return Err(LockProblem::Missing(dir.to_path_buf())),
            Err(error) => {
                return Err(LockProblem::Unreadable {
                    dir: dir.to_path_buf(),
                    reason: error.to_string(),
                });
            }
        };
        let mismatches = locked_mismatches(&lock, &LockFile::of(plan));
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(LockProblem::Differs(
                mismatches.iter().map(ToString::to_string).collect(),
            ))
        }
    }

    /// Checks everything, connects to the providers and writes the lock file: nothing is
    /// written before every check has passed and the providers answered. The events of
    /// opening wait for [`OpenSession::execute`]'s reporters.
    pub async fn open(self, options: ApplyOptions) -> Result<OpenSession, RunError> {
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let run = Run::open(&self.pipeline, self.plan, options, &events).await?;
        Ok(OpenSession {
            run,
            events,
            receiver,
        })
    }
}

/// A session whose run is open: its directory exists, its trials wait.
pub struct OpenSession {
    run: Run,
    events: UnboundedSender<RunEvent>,
    receiver: UnboundedReceiver<RunEvent>,
}

impl OpenSession {
    pub fn run_dir(&self) -> &Path {
        self.run.run_dir()
    }

    /// A handle to say something in the run's event stream (`Cancelling` on Ctrl-C) that
    /// does not keep the stream open.
    pub fn events(&self) -> WeakUnboundedSender<RunEvent> {
        self.events.downgrade()
    }

    /// Runs every trial still to run, feeding each event to every reporter in order, and
    /// returns the outcome (its summary says whether the expectations were met) once the
    /// reporters have seen the last event.
    pub async fn execute(
        self,
        reporters: Vec<Box<dyn Reporter>>,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, RunError> {
        let fed = tokio::spawn(feed(self.receiver, reporters));
        let outcome = self.run.execute(cancel, self.events).await;
        let _ = fed.await;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/quickstart.toml");

    #[test]
    fn plan_options_redirect_results_add_the_bar_and_shard() {
        let out = tempfile::tempdir().unwrap();
        let options = PlanOptions {
            output_dir: Some(out.path().to_path_buf()),
            fail_under: Some(0.5),
            shard: None,
        };
        let (session, _) =
            Session::load(Path::new(QUICKSTART), &SourceOptions::default(), &options).unwrap();
        let plan = session.plan();
        assert_eq!(plan.run_dir, out.path().join("quickstart"));
        assert_eq!(
            plan.expect.last().and_then(|e| e.min_mean_reward),
            Some(0.5)
        );
        let whole = plan.trials.len();
        let shard: Shard = "1/2".parse().unwrap();
        let (half, _) = Session::load(
            Path::new(QUICKSTART),
            &SourceOptions::default(),
            &PlanOptions {
                shard: Some(shard),
                ..options
            },
        )
        .unwrap();
        assert!(half.plan().trials.len() < whole);
    }

    #[test]
    fn a_run_without_a_lock_file_is_refused_by_the_lock_check() {
        let out = tempfile::tempdir().unwrap();
        let options = PlanOptions {
            output_dir: Some(out.path().to_path_buf()),
            ..PlanOptions::default()
        };
        let (session, _) =
            Session::load(Path::new(QUICKSTART), &SourceOptions::default(), &options).unwrap();
        assert_eq!(
            session.check_lock(),
            Err(LockProblem::Missing(out.path().join("quickstart")))
        );
        LockFile::of(session.plan())
            .write(&out.path().join("quickstart"))
            .unwrap();
        assert_eq!(session.check_lock(), Ok(()));
    }
}
