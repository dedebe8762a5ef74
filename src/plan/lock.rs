//! The lock file's content: the resolved plan a run was made from, so it can be audited
//! and resumed. The results store names, writes and reads the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ImageSource, Plan};
use crate::store::RunStore;

/// The format version of the lock file.
pub const LOCK_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockFile {
    pub format: u32,
    pub helios_version: String,
    pub pipeline: String,
    pub tasks: Vec<LockedTask>,
    pub builds: Vec<LockedBuild>,
    /// The distinct matrix parameter sets; trials refer to them by index.
    pub params: Vec<BTreeMap<String, Value>>,
    pub trials: Vec<LockedTrial>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedTask {
    pub name: String,
    pub dir: PathBuf,
    /// SHA-256 of the task directory's files (see `docs/plan.md`).
    pub digest: String,
    /// The image tag it runs in.
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedBuild {
    pub tag: String,
    pub digest: String,
    pub context: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedTrial {
    /// The full SHA-256 trial id; results use its first 16 characters.
    pub id: String,
    pub stage: String,
    pub task: String,
    pub agent: String,
    pub model: Option<String>,
    pub params: u32,
    pub attempt: u32,
    /// The trial's directory, relative to the run directory.
    pub dir: PathBuf,
}

impl LockFile {
    pub fn of(plan: &Plan) -> LockFile {
        LockFile {
            format: LOCK_FORMAT,
            helios_version: env!("CARGO_PKG_VERSION").to_string(),
            pipeline: plan.pipeline.clone(),
            tasks: plan
                .tasks
                .iter()
                .map(|t| LockedTask {
                    name: t.name.clone(),
                    dir: t.dir.clone(),
                    digest: t.digest.hex(),
                    image: match &t.image {
                        ImageSource::Build(b) => plan.builds[*b].tag.clone(),
                        ImageSource::Prebuilt(image) => image.clone(),
                    },
                })
                .collect(),
            builds: plan
                .builds
                .iter()
                .map(|b| LockedBuild {
                    tag: b.tag.clone(),
                    digest: b.digest.hex(),
                    context: b.context.clone(),
                })
                .collect(),
            params: plan.params.clone(),
            trials: plan
                .trials
                .iter()
                .map(|t| LockedTrial {
                    id: t.id.0.hex(),
                    stage: plan.stages[t.stage as usize].name.clone(),
                    task: plan.tasks[t.task as usize].name.clone(),
                    agent: plan.agents[t.agent as usize].name.clone(),
                    model: plan.model_name(t).map(str::to_string),
                    params: t.params,
                    attempt: t.attempt,
                    dir: plan.trial_dir(t),
                })
                .collect(),
        }
    }

    /// Writes the lock file into `run_dir` atomically and returns its path.
    pub fn write(&self, run_dir: &Path) -> std::io::Result<PathBuf> {
        RunStore::new(run_dir).write_lock(self)
    }

    /// Reads the lock file of `run_dir`, if there is one.
    pub fn read(run_dir: &Path) -> std::io::Result<Option<LockFile>> {
        RunStore::new(run_dir).read_lock()
    }
}
