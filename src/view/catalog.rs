//! What the viewer reads from a results directory: the runs in it, each run's trials as
//! rows, one trial's files. Read-only, and every path it opens stays inside the directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::plan::lock::{LockFile, LockedTrial};
use crate::store::{
    BUILD_LOG_FILE, LOCK_FILE, RESULT_FILE, ResultSummary, RunStore, TRAJECTORY_FILE,
};

/// Why a request for something in the results directory cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no run named `{0}` in this results directory")]
    UnknownRun(String),
    #[error("no trial `{0}` in this run")]
    UnknownTrial(String),
    #[error("`{0}` is outside the results directory")]
    Outside(String),
    #[error("no file `{0}`")]
    NoFile(String),
    #[error("cannot read `{path}`: {reason}")]
    Unreadable { path: String, reason: String },
}

/// A run in the list of runs.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub name: String,
    pub pipeline: Option<String>,
    /// Trials in the run's plan.
    pub planned: usize,
    /// Trials with a result.
    pub finished: usize,
    pub passed: usize,
    pub errors: usize,
    pub mean_reward: Option<f64>,
    pub cost_usd: Option<f64>,
    /// When the run started: its lock file's time (RFC 3339).
    pub modified: Option<String>,
    pub live: bool,
}

/// One trial as a cell of the matrix: what the run page needs, nothing more.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialRow {
    /// `<stage dir>/<trial dir>`, relative to the run: the trial's address.
    pub key: String,
    pub stage: String,
    pub task: String,
    pub agent: String,
    pub model: Option<String>,
    /// The matrix values, as `name=value` joined by `, ` (empty without a matrix).
    pub params: String,
    pub attempt: u32,
    /// `pending`, `running`, or a finished trial's status (`completed`, `failed`, ...).
    pub status: String,
    /// The phase a running trial is in.
    pub phase: Option<String>,
    pub reward: Option<f64>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub cost_usd: Option<f64>,
    pub tokens: Option<u64>,
    /// Wall time of the phases, in seconds.
    pub seconds: Option<f64>,
}

impl TrialRow {
    /// A trial of the plan with no result yet.
    pub fn pending(trial: &LockedTrial, params: &[BTreeMap<String, Value>]) -> TrialRow {
        TrialRow {
            key: key_of(&trial.dir),
            stage: trial.stage.clone(),
            task: trial.task.clone(),
            agent: trial.agent.clone(),
            model: trial.model.clone(),
            params: params
                .get(trial.params as usize)
                .map(params_label)
                .unwrap_or_default(),
            attempt: trial.attempt,
            status: "pending".into(),
            phase: None,
            reward: None,
            error_kind: None,
            error: None,
            cost_usd: None,
            tokens: None,
            seconds: None,
        }
    }

    /// The row of a finished trial, from its `result.json`.
    fn finished(key: String, result: &ResultSummary) -> TrialRow {
        TrialRow {
            key,
            stage: result.stage.clone(),
            task: result.task.clone(),
            agent: result.agent.clone(),
            model: result.model.clone(),
            params: params_label(&result.params),
            attempt: result.attempt,
            status: result.status.as_str().to_string(),
            phase: None,
            reward: result.reward,
            error_kind: result.error.as_ref().map(|e| e.kind.as_str().to_string()),
            error: result.error.as_ref().map(|e| e.message.clone()),
            cost_usd: result.cost_usd,
            tokens: result
                .usage
                .as_ref()
                .map(|u| u.input_tokens + u.output_tokens),
            seconds: Some(result.timings.iter().map(|t| t.seconds).sum()),
        }
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self.status.as_str(), "pending" | "running")
    }
}

/// A file of a trial, for the trial page.
#[derive(Debug, Clone, Serialize)]
pub struct FileText {
    /// Relative to the trial directory.
    pub path: String,
    pub text: String,
    /// The file was longer than what is shown.
    pub truncated: bool,
}

/// A trial page: its result, its trajectory and the files worth reading.
#[derive(Debug, Clone, Serialize)]
pub struct TrialView {
    pub run: String,
    pub row: TrialRow,
    /// `result.json` as written, or null while the trial runs.
    pub result: Option<Value>,
    /// `agent/trajectory.json` as written, or null.
    pub trajectory: Option<Value>,
    /// `verifier/*` text files.
    pub verifier: Vec<FileText>,
    /// The other text files the agent left (`agent/*` but the trajectory).
    pub agent_files: Vec<FileText>,
    pub build_log: Option<FileText>,
    /// Every file under the trial directory, relative to it.
    pub files: Vec<String>,
}

/// How much of a text file the trial page shows.
const TEXT_LIMIT: usize = 256 * 1024;

/// The runs of one results directory, with a cache of parsed `result.json` files so that a
/// run page of thousands of trials is read from disk only when files change.
pub struct Catalog {
    root: PathBuf,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    row: Option<Arc<ResultSummary>>,
}

impl Catalog {
    /// A catalog of `root`: a run directory itself, or a directory of runs.
    pub fn new(root: &Path) -> Result<Catalog, CatalogError> {
        let root = root.canonicalize().map_err(|e| CatalogError::Unreadable {
            path: root.display().to_string(),
            reason: e.to_string(),
        })?;
        if !root.is_dir() {
            return Err(CatalogError::Unreadable {
                path: root.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        Ok(Catalog {
            root,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The run directories by name: `root` itself when it is a run, else its children
    /// that are.
    pub fn run_dirs(&self) -> Vec<(String, PathBuf)> {
        if is_run_dir(&self.root) {
            let name = self
                .root
                .file_name()
                .map_or("run".into(), |n| n.to_string_lossy().into_owned());
            return vec![(name, self.root.clone())];
        }
        let mut runs: Vec<(String, PathBuf)> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .map(|entry| entry.path())
            .filter(|path| is_run_dir(path))
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, path)
            })
            .collect();
        runs.sort();
        runs
    }

    /// The directory of the run called `name`; only names the listing gives are accepted.
    pub fn run_dir(&self, name: &str) -> Result<PathBuf, CatalogError> {
        self.run_dirs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, dir)| dir)
            .ok_or_else(|| CatalogError::UnknownRun(name.to_string()))
    }

    /// Every trial of a run: the plan's trials from the lock file, filled in from the
    /// results on disk. Without a lock file, the results alone.
    pub fn rows(&self, run_dir: &Path) -> Vec<TrialRow> {
        let lock = LockFile::read(run_dir).ok().flatten();
        match lock {
            Some(lock) => lock
                .trials
                .iter()
                .map(|trial| {
                    let dir = run_dir.join(&trial.dir);
                    match self.result(&dir) {
                        Some(result) => TrialRow::finished(key_of(&trial.dir), &result),
                        None => TrialRow::pending(trial, &lock.params),
                    }
                })
                .collect(),
            None => self.result_dirs(run_dir),
        }
    }

    /// The row of one trial directory, from its result if it has one.
    pub fn row_of(&self, run_dir: &Path, key: &str) -> Option<TrialRow> {
        let dir = run_dir.join(key);
        self.result(&dir)
            .map(|result| TrialRow::finished(key.to_string(), &result))
    }

    fn result_dirs(&self, run_dir: &Path) -> Vec<TrialRow> {
        let mut rows = Vec::new();
        for stage in read_dirs(run_dir) {
            for trial in read_dirs(&stage) {
                if let Some(result) = self.result(&trial) {
                    let key = trial.strip_prefix(run_dir).unwrap_or(&trial);
                    rows.push(TrialRow::finished(key_of(key), &result));
                }
            }
        }
        rows
    }

    /// The parsed `result.json` of a trial directory, from the cache when the file has not
    /// changed.
    fn result(&self, trial_dir: &Path) -> Option<Arc<ResultSummary>> {
        let path = trial_dir.join(RESULT_FILE);
        if !self.no_links(&path) {
            return None;
        }
        let meta = std::fs::symlink_metadata(&path).ok()?;
        let modified = meta.modified().ok();
        let len = meta.len();
        if let Some(cached) = self.cache.lock().unwrap().get(&path)
            && cached.modified == modified
            && cached.len == len
        {
            return cached.row.clone();
        }
        let row = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ResultSummary>(&bytes).ok())
            .map(Arc::new);
        self.cache.lock().unwrap().insert(
            path,
            Cached {
                modified,
                len,
                row: row.clone(),
            },
        );
        row
    }

    /// The summary line of a run for the list of runs.
    pub fn run_info(&self, name: &str, run_dir: &Path, live: bool) -> RunInfo {
        let rows = self.rows(run_dir);
        let stats = Stats::of(&rows);
        let lock = LockFile::read(run_dir).ok().flatten();
        RunInfo {
            name: name.to_string(),
            pipeline: lock.map(|l| l.pipeline),
            planned: rows.len(),
            finished: stats.finished,
            passed: stats.passed,
            errors: stats.errors,
            mean_reward: stats.mean_reward(),
            cost_usd: stats.cost_usd,
            modified: std::fs::metadata(run_dir.join(LOCK_FILE))
                .and_then(|m| m.modified())
                .ok()
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            live,
        }
    }

    /// A trial's page. `key` is `<stage>/<trial dir>` as in its row.
    pub fn trial(&self, name: &str, run_dir: &Path, key: &str) -> Result<TrialView, CatalogError> {
        let dir = self.inside(run_dir, key)?;
        if !dir.is_dir() {
            return Err(CatalogError::UnknownTrial(key.to_string()));
        }
        // The plan's entry of this one trial, not every row of the run.
        let planned = LockFile::read(run_dir).ok().flatten().and_then(|lock| {
            let trial = lock.trials.iter().find(|t| key_of(&t.dir) == key)?;
            Some(TrialRow::pending(trial, &lock.params))
        });
        let row = self
            .row_of(run_dir, key)
            .or(planned)
            .ok_or_else(|| CatalogError::UnknownTrial(key.to_string()))?;
        let read_json = |rel: &str| -> Option<Value> {
            let path = dir.join(rel);
            if !self.no_links(&path) {
                return None;
            }
            let bytes = std::fs::read(path).ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        let files = list_files(&dir);
        let texts_under = |prefix: &str, skip: &[&str]| -> Vec<FileText> {
            files
                .iter()
                .filter(|f| f.starts_with(prefix) && !skip.contains(&f.as_str()))
                .filter(|f| self.no_links(&dir.join(f)))
                .filter_map(|f| read_text(&dir, f))
                .collect()
        };
        Ok(TrialView {
            run: name.to_string(),
            result: read_json(RESULT_FILE),
            trajectory: read_json(TRAJECTORY_FILE),
            verifier: texts_under("verifier/", &[]),
            agent_files: texts_under("agent/", &[TRAJECTORY_FILE]),
            build_log: self
                .no_links(&dir.join(BUILD_LOG_FILE))
                .then(|| read_text(&dir, BUILD_LOG_FILE))
                .flatten(),
            files,
            row,
        })
    }

    /// The path of `rel` inside `run_dir`, refusing anything that could leave the run
    /// directory: `..`, absolute paths, and symbolic links (wherever they point: results
    /// are written by helios, which makes none, so a link is someone else's doing).
    pub fn inside(&self, run_dir: &Path, rel: &str) -> Result<PathBuf, CatalogError> {
        let relative = Path::new(rel);
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(CatalogError::Outside(rel.to_string()));
        }
        let joined = run_dir.join(relative);
        if !joined.starts_with(run_dir) || !self.no_links(&joined) {
            return Err(CatalogError::Outside(rel.to_string()));
        }
        if std::fs::symlink_metadata(&joined).is_err() {
            return Err(CatalogError::NoFile(rel.to_string()));
        }
        Ok(joined)
    }

    /// Whether `path` is under the served root and no part of it below the root is a
    /// symbolic link. Every file the viewer reads from a run goes through this, so none is
    /// read through a link (the root itself was resolved once, by [`Catalog::new`]).
    fn no_links(&self, path: &Path) -> bool {
        let Ok(below) = path.strip_prefix(&self.root) else {
            return false;
        };
        let mut at = self.root.clone();
        for part in below.components() {
            let Component::Normal(part) = part else {
                return false;
            };
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => return false,
                Ok(_) => {}
                // A missing part is not a link; the read that follows finds nothing.
                Err(_) => return true,
            }
        }
        true
    }
}

/// Pass rate, mean reward and errors over a set of rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub finished: usize,
    pub passed: usize,
    pub errors: usize,
    /// Finished trials with a reward, and the sum of those rewards.
    pub rewarded: usize,
    pub reward_sum: f64,
    pub cost_usd: Option<f64>,
}

impl Stats {
    pub fn of(rows: &[TrialRow]) -> Stats {
        let mut stats = Stats::default();
        for row in rows.iter().filter(|r| r.is_finished()) {
            stats.finished += 1;
            if let Some(reward) = row.reward {
                stats.rewarded += 1;
                stats.reward_sum += reward;
                if reward >= 1.0 {
                    stats.passed += 1;
                }
            }
            if row.error_kind.is_some() {
                stats.errors += 1;
            }
            if let Some(cost) = row.cost_usd {
                *stats.cost_usd.get_or_insert(0.0) += cost;
            }
        }
        stats
    }

    /// Over the trials that have a reward, as in `summary.json` and the closing table.
    pub fn mean_reward(&self) -> Option<f64> {
        (self.rewarded > 0).then(|| self.reward_sum / self.rewarded as f64)
    }
}

fn is_run_dir(dir: &Path) -> bool {
    RunStore::is_run_dir(dir)
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect();
    dirs.sort();
    dirs
}

/// A relative path with `/` separators, as used in URLs.
fn key_of(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn params_label(params: &BTreeMap<String, Value>) -> String {
    params
        .iter()
        .map(|(name, value)| match value {
            Value::String(text) => format!("{name}={text}"),
            other => format!("{name}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every regular file under `dir`, relative to it, sorted.
fn list_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|entry| entry.file_type().is_file())
        .filter_map(|entry| entry.path().strip_prefix(dir).ok().map(key_of))
        .collect();
    files.sort();
    files
}

/// The start of a text file (lossy UTF-8); `None` when absent or binary.
fn read_text(dir: &Path, rel: &str) -> Option<FileText> {
    use std::io::Read;
    let file = std::fs::File::open(dir.join(rel)).ok()?;
    let mut bytes = Vec::new();
    file.take(TEXT_LIMIT as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.contains(&0) {
        return None;
    }
    let truncated = bytes.len() > TEXT_LIMIT;
    bytes.truncate(TEXT_LIMIT);
    Some(FileText {
        path: rel.to_string(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn result_json(task: &str, status: &str, reward: Option<f64>) -> String {
        serde_json::json!({
            "task": task, "stage": "s", "agent": "oracle", "model": null, "params": {},
            "attempt": 1, "status": status, "reward": reward, "error": null,
            "cost_usd": 0.5, "usage": {"input_tokens": 10, "output_tokens": 5},
            "timings": [{"phase": "agent", "started_at": "x", "seconds": 1.5}]
        })
        .to_string()
    }

    fn run_with_two_results() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("demo");
        write(&run.join("summary.json"), "{}");
        write(
            &run.join("s/a__oracle__a1__0000/result.json"),
            &result_json("a", "completed", Some(1.0)),
        );
        write(
            &run.join("s/b__oracle__a1__1111/result.json"),
            &result_json("b", "failed", None),
        );
        write(
            &run.join("s/b__oracle__a1__1111/verifier/test-stdout.txt"),
            "FAIL",
        );
        root
    }

    #[test]
    fn a_directory_of_runs_lists_its_runs_and_rows() {
        let root = run_with_two_results();
        std::fs::create_dir(root.path().join("not-a-run")).unwrap();
        let catalog = Catalog::new(root.path()).unwrap();
        let runs = catalog.run_dirs();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].0, "demo");
        let rows = catalog.rows(&runs[0].1);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, "s/a__oracle__a1__0000");
        assert_eq!(rows[0].tokens, Some(15));
        assert_eq!(rows[1].status, "failed");
        let info = catalog.run_info("demo", &runs[0].1, false);
        assert_eq!((info.finished, info.passed), (2, 1));
        // The failed trial has no reward: the mean is over the one that has.
        assert_eq!(info.mean_reward, Some(1.0));
        assert_eq!(info.cost_usd, Some(1.0));
    }

    #[test]
    fn a_run_directory_is_its_own_only_run() {
        let root = run_with_two_results();
        let catalog = Catalog::new(&root.path().join("demo")).unwrap();
        assert_eq!(catalog.run_dirs().len(), 1);
        assert!(catalog.run_dir("demo").is_ok());
        assert!(matches!(
            catalog.run_dir(".."),
            Err(CatalogError::UnknownRun(_))
        ));
    }

    #[test]
    fn paths_that_leave_the_run_are_refused() {
        let root = run_with_two_results();
        write(&root.path().join("secret.txt"), "no");
        let catalog = Catalog::new(root.path()).unwrap();
        let run = catalog.run_dir("demo").unwrap();
        for bad in ["../secret.txt", "/etc/passwd", "s/../../secret.txt"] {
            assert!(
                matches!(catalog.inside(&run, bad), Err(CatalogError::Outside(_))),
                "{bad} must be refused"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.path().join("secret.txt"), run.join("link")).unwrap();
            assert!(matches!(
                catalog.inside(&run, "link"),
                Err(CatalogError::Outside(_))
            ));
            // A link that stays inside the run is refused too, and so is a path through one.
            std::os::unix::fs::symlink(run.join("s"), run.join("inner")).unwrap();
            assert!(matches!(
                catalog.inside(&run, "inner/b__oracle__a1__1111/verifier"),
                Err(CatalogError::Outside(_))
            ));
        }
        assert!(
            catalog
                .inside(&run, "s/b__oracle__a1__1111/verifier")
                .is_ok()
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_json_api_reads_no_file_through_a_symlink() {
        let root = run_with_two_results();
        let outside = tempfile::tempdir().unwrap();
        write(&outside.path().join("secret.json"), "{\"secret\": 1}");
        write(&outside.path().join("secret.txt"), "secret");
        let catalog = Catalog::new(root.path()).unwrap();
        let run = catalog.run_dir("demo").unwrap();
        let trial = run.join("s/b__oracle__a1__1111");
        let link = |target: &str, name: &str| {
            std::fs::create_dir_all(trial.join(name).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(outside.path().join(target), trial.join(name)).unwrap();
        };
        link("secret.json", "agent/trajectory.json");
        link("secret.txt", "build.log");
        link("secret.txt", "verifier/leak.txt");
        std::fs::create_dir_all(run.join("s/c__oracle__a1__2222")).unwrap();
        write(
            &run.join("s/c__oracle__a1__2222/real.json"),
            &result_json("c", "completed", Some(1.0)),
        );
        std::os::unix::fs::symlink(
            run.join("s/c__oracle__a1__2222/real.json"),
            run.join("s/c__oracle__a1__2222/result.json"),
        )
        .unwrap();
        let keys: Vec<String> = catalog.rows(&run).into_iter().map(|r| r.key).collect();
        assert_eq!(
            keys,
            ["s/a__oracle__a1__0000", "s/b__oracle__a1__1111"],
            "a linked result.json is not a row"
        );
        let view = catalog
            .trial("demo", &run, "s/b__oracle__a1__1111")
            .unwrap();
        assert!(view.result.is_some());
        assert!(view.trajectory.is_none(), "{:?}", view.trajectory);
        assert!(view.build_log.is_none());
        assert!(view.verifier.iter().all(|f| f.path != "verifier/leak.txt"));
        assert!(
            catalog
                .trial("demo", &run, "s/c__oracle__a1__2222")
                .is_err()
        );
    }

    #[test]
    fn a_trial_page_has_its_verifier_output() {
        let root = run_with_two_results();
        let catalog = Catalog::new(root.path()).unwrap();
        let run = catalog.run_dir("demo").unwrap();
        let view = catalog
            .trial("demo", &run, "s/b__oracle__a1__1111")
            .unwrap();
        assert_eq!(view.verifier.len(), 1);
        assert_eq!(view.verifier[0].text, "FAIL");
        assert!(view.trajectory.is_none());
        assert!(catalog.trial("demo", &run, "s/nope").is_err());
    }

    #[test]
    fn a_changed_result_is_read_again() {
        let root = run_with_two_results();
        let catalog = Catalog::new(root.path()).unwrap();
        let run = catalog.run_dir("demo").unwrap();
        assert_eq!(catalog.rows(&run)[1].status, "failed");
        write(
            &run.join("s/b__oracle__a1__1111/result.json"),
            &result_json("b", "completed", Some(1.0)),
        );
        assert_eq!(catalog.rows(&run)[1].status, "completed");
    }
}
