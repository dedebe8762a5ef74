//! The results store: it owns a run's directory layout (stage and trial directories, the
//! file names in them, build logs, the lock file, `summary.json`), writes every file
//! atomically, and reads results back. The runner hands it finished results; `plan`, the
//! viewer and the API read through it, so no other module builds or parses these paths.

pub mod compare;
mod import;
pub mod summary;
pub mod trial;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::agent::trajectory::Trajectory;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::events::{ErrorKind, TrialStatus};
use trial::TrialResult;

/// The lock file's name inside the run directory.
pub const LOCK_FILE: &str = "helios.lock.json";
/// The run's summary, written when the run ends.
pub const SUMMARY_FILE: &str = "summary.json";
/// A trial's result, inside its directory.
pub const RESULT_FILE: &str = "result.json";
/// A trial's copy (or hard link) of its image's build log.
pub const BUILD_LOG_FILE: &str = "build.log";
/// The ATIF trajectory a model-driven agent writes, inside its trial's directory.
pub const TRAJECTORY_FILE: &str = "agent/trajectory.json";
/// What the agent was asked, as it was given (a step's, in `steps/<name>/`).
pub const INSTRUCTION_FILE: &str = "instruction.md";
/// Where build logs of a run go, one per image.
const BUILDS_DIR: &str = "builds";
/// The directories of a trial that `/logs` is collected into.
pub const LOG_DIRS: [&str; 3] = ["agent", "verifier", "artifacts"];
/// Between a trial directory's slot name and its id.
const ID_SEPARATOR: &str = "__";

/// A run's directory and everything in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStore {
    dir: PathBuf,
}

impl RunStore {
    pub fn new(dir: impl Into<PathBuf>) -> RunStore {
        RunStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A trial's directory relative to the run's: `<stage>/<slot>__<id16>`, where the slot
    /// names task, agent, model, parameters and attempt and stays the same when the
    /// trial's inputs change.
    pub fn trial_path(stage: &str, slot: &str, short_id: &str) -> PathBuf {
        let mut path = PathBuf::from(path_component(stage));
        path.push(format!("{slot}{ID_SEPARATOR}{short_id}"));
        path
    }

    /// The absolute (run-relative joined) directory of a trial.
    pub fn trial_dir(&self, relative: &Path) -> PathBuf {
        self.dir.join(relative)
    }

    /// Trial directories of a stage that exist, grouped by slot name: the ids found.
    pub fn existing_trials(&self, stage: &str) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join(path_component(stage))) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((slot, id)) = name.rsplit_once(ID_SEPARATOR) {
                out.entry(slot.to_string())
                    .or_default()
                    .push(id.to_string());
            }
        }
        out
    }

    /// Where the build log of the image `tag` goes.
    pub fn build_log(&self, tag: &str) -> PathBuf {
        self.dir
            .join(BUILDS_DIR)
            .join(format!("{}.log", tag.replace(['/', ':'], "_")))
    }

    /// Where the output of an installed agent's install goes (next to the build logs).
    pub fn install_log(&self, volume: &str) -> PathBuf {
        self.dir.join(BUILDS_DIR).join(format!("{volume}.log"))
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    pub fn has_lock(&self) -> bool {
        self.lock_path().is_file()
    }

    /// Writes the lock file (its content is the plan's) atomically; returns its path.
    pub fn write_lock(&self, lock: &impl Serialize) -> std::io::Result<PathBuf> {
        let path = self.lock_path();
        write_json(&path, lock)?;
        Ok(path)
    }

    /// Reads the lock file, if there is one.
    pub fn read_lock<T: DeserializeOwned>(&self) -> std::io::Result<Option<T>> {
        match std::fs::read(self.lock_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn summary_path(&self) -> PathBuf {
        self.dir.join(SUMMARY_FILE)
    }

    pub fn write_summary(&self, summary: &summary::Summary) -> std::io::Result<()> {
        write_json(&self.summary_path(), summary)
    }

    /// Whether `dir` looks like a run directory (a lock file or a summary in it).
    pub fn is_run_dir(dir: &Path) -> bool {
        dir.join(LOCK_FILE).is_file() || dir.join(SUMMARY_FILE).is_file()
    }

    /// Empties a trial's directory for a new attempt (a rerun must not mix with old
    /// files), makes the directories `/logs` is collected into, and links the build log.
    pub fn reset_trial(&self, trial_dir: &Path, build_log: Option<&Path>) -> std::io::Result<()> {
        if trial_dir.exists() {
            std::fs::remove_dir_all(trial_dir)?;
        }
        for sub in LOG_DIRS {
            std::fs::create_dir_all(trial_dir.join(sub))?;
        }
        if let Some(log) = build_log.filter(|l| l.exists()) {
            let target = trial_dir.join(BUILD_LOG_FILE);
            if std::fs::hard_link(log, &target).is_err() {
                std::fs::copy(log, &target)?;
            }
        }
        Ok(())
    }

    /// Writes a trial's `result.json`.
    pub fn write_result(trial_dir: &Path, result: &TrialResult) -> std::io::Result<()> {
        write_json(&trial_dir.join(RESULT_FILE), result)
    }

    /// Reads the ATIF trajectory a trial's agent wrote, if it wrote one.
    pub fn read_trajectory(trial_dir: &Path) -> Option<Trajectory> {
        serde_json::from_slice(&std::fs::read(trial_dir.join(TRAJECTORY_FILE)).ok()?).ok()
    }

    /// Every result of the run's current plan, in plan order: the trials the lock file
    /// lists that have a readable `result.json` (without a lock file, every trial directory
    /// found, in path order).
    pub fn read_results(&self) -> std::io::Result<Vec<TrialResult>> {
        #[derive(Deserialize)]
        struct Listed {
            dir: PathBuf,
        }
        #[derive(Deserialize)]
        struct Lock {
            trials: Vec<Listed>,
        }
        let dirs: Vec<PathBuf> = match self.read_lock::<Lock>()? {
            Some(lock) => lock
                .trials
                .into_iter()
                .map(|t| self.dir.join(t.dir))
                .collect(),
            None => {
                let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(&self.dir)
                    .min_depth(2)
                    .max_depth(2)
                    .into_iter()
                    .flatten()
                    .filter(|e| e.path().join(RESULT_FILE).is_file())
                    .map(|e| e.into_path())
                    .collect();
                dirs.sort();
                dirs
            }
        };
        Ok(dirs
            .iter()
            .filter_map(|d| RunStore::read_result(d))
            .collect())
    }

    /// Reads `summary.json`, if there is one.
    pub fn read_summary(&self) -> std::io::Result<Option<summary::Summary>> {
        match std::fs::read(self.summary_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a trial's `result.json`; `None` when it is absent or not a result.
    pub fn read_result(trial_dir: &Path) -> Option<TrialResult> {
        serde_json::from_slice(&std::fs::read(trial_dir.join(RESULT_FILE)).ok()?).ok()
    }
}

/// The fields of `result.json` a listing shows (the viewer's matrix); others are ignored,
/// so older and newer results both read, and ten thousand of them parse quickly.
#[derive(Debug, Clone, Deserialize)]
pub struct ResultSummary {
    pub task: String,
    pub stage: String,
    pub agent: String,
    pub model: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    pub attempt: u32,
    pub status: TrialStatus,
    pub reward: Option<f64>,
    pub error: Option<ErrorFields>,
    pub cost_usd: Option<f64>,
    pub usage: Option<UsageFields>,
    #[serde(default)]
    pub timings: Vec<TimingFields>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorFields {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UsageFields {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimingFields {
    pub seconds: f64,
}

/// Keeps names usable as one path component on every filesystem.
pub fn path_component(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `value` as pretty JSON with a final newline, written atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The fields of `result.json` that tell whether a trial is done.
#[derive(Debug, Clone, Deserialize)]
pub struct ResultHeader {
    pub trial_id: String,
    pub status: TrialStatus,
}

impl ResultHeader {
    /// Reads `<trial_dir>/result.json`; `None` when it is absent or not a result.
    pub fn read(trial_dir: &Path) -> Option<ResultHeader> {
        let bytes = std::fs::read(trial_dir.join(RESULT_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

pub use crate::atomic::write_atomic;
