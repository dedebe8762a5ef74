//! What the viewer reads from a results directory: the runs in it, each run's trials as
//! rows, one trial's files. Read-only, and every path it opens stays inside the directory.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::plan::lock::{LockFile, LockedTrial};
use crate::store::summary::Summary;
use crate::store::trial::TrialResult;
use crate::store::{
    BUILD_LOG_FILE, INSTRUCTION_FILE, LOCK_FILE, RESULT_FILE, ResultSummary, RunStore,
    TRAJECTORY_FILE,
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
            params: params
                .get(trial.params as usize)
                .map(params_label)
                .unwrap_or_default(),
            ..TrialRow::pending_fields(trial)
        }
    }

    /// A pending trial's row without its key and matrix values.
    fn pending_fields(trial: &LockedTrial) -> TrialRow {
        TrialRow {
            key: String::new(),
            stage: trial.stage.clone(),
            task: trial.task.clone(),
            agent: trial.agent.clone(),
            model: trial.model.clone(),
            params: String::new(),
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

    /// The row of a finished trial, from its whole `result.json` (the key left empty).
    fn of_result(result: &TrialResult) -> TrialRow {
        TrialRow {
            key: String::new(),
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
    /// What the agent was asked (a task of one step).
    pub instruction: Option<FileText>,
    /// A multi-step task's steps, in the order they ran.
    pub steps: Vec<StepView>,
    /// Every file under the trial directory, relative to it.
    pub files: Vec<String>,
}

/// One step of a multi-step trial, from `steps/<name>/`.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub name: String,
    /// The step's entry of `result.json`, or null while it runs.
    pub result: Option<Value>,
    pub instruction: Option<FileText>,
    pub trajectory: Option<Value>,
    pub verifier: Vec<FileText>,
    pub agent_files: Vec<FileText>,
}

/// How much of a text file the trial page shows.
const TEXT_LIMIT: usize = 256 * 1024;

/// The runs of one results directory, with what was read of each run kept (its lock file,
/// each `result.json`, its statistics) so that a run page of many thousands of trials is
/// read from disk only where files changed.
pub struct Catalog {
    root: PathBuf,
    /// What was read of each run, by run directory.
    runs: Mutex<HashMap<PathBuf, Arc<Mutex<RunCache>>>>,
}

/// What was read of one run. A scan holds its lock, so two requests for the same run at
/// once read it once.
#[derive(Default)]
struct RunCache {
    plan: Option<CachedPlan>,
    /// Each trial's result as the last scan read it, in that scan's order.
    results: Vec<Option<Cached>>,
    /// The statistics, and the fingerprint of the files they were computed from.
    summary: Option<(u64, Option<Summary>)>,
}

/// A file's identity for the caches: it is read again when its time or size changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Stamp {
    seconds: i64,
    nanos: i64,
    len: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            seconds: meta.mtime(),
            nanos: meta.mtime_nsec(),
            len: meta.len(),
        }
    }

    // The fields' types differ from one target to another.
    #[allow(clippy::unnecessary_cast)]
    fn of_stat(stat: &rustix::fs::Stat) -> Stamp {
        Stamp {
            seconds: stat.st_mtime as i64,
            nanos: stat.st_mtime_nsec as i64,
            len: stat.st_size as u64,
        }
    }
}

/// A trial's `result.json` as last read.
struct Cached {
    /// The trial's key, so that an entry is used only for its own trial.
    key: String,
    stamp: Stamp,
    /// `None` when the file does not parse.
    parsed: Option<Arc<Parsed>>,
}

/// A `result.json` as the viewer keeps it.
struct Parsed {
    /// The trial's row, with an empty key (the key is the trial's place in its run).
    row: TrialRow,
    /// The result as the statistics need it, its bulky fields emptied; `None` when the file
    /// reads only as the listing's fields (another format of `result.json`).
    result: Option<TrialResult>,
}

impl Parsed {
    fn of(bytes: &[u8]) -> Option<Parsed> {
        match serde_json::from_slice::<TrialResult>(bytes) {
            Ok(result) => Some(Parsed {
                row: TrialRow::of_result(&result),
                result: Some(slim(result)),
            }),
            Err(_) => serde_json::from_slice::<ResultSummary>(bytes)
                .ok()
                .map(|summary| Parsed {
                    row: TrialRow::finished(String::new(), &summary),
                    result: None,
                }),
        }
    }

    fn row(&self, key: &str) -> TrialRow {
        TrialRow {
            key: key.to_string(),
            ..self.row.clone()
        }
    }
}

/// A result without what neither rows nor statistics read, so that a hundred thousand of
/// them stay small in memory.
fn slim(mut result: TrialResult) -> TrialResult {
    result.trial_id = String::new();
    result.full_id = String::new();
    result.rewards = BTreeMap::new();
    result.timings = Vec::new();
    result.image = String::new();
    result.container = None;
    result.retried = Vec::new();
    result.teardown_errors = Vec::new();
    result.logs_cut = None;
    result.tampering = Vec::new();
    result.helios_version = String::new();
    result
}

struct CachedPlan {
    stamp: Stamp,
    plan: Option<Arc<RunPlan>>,
}

/// A run's lock file, with what every request needs of each trial worked out once.
struct RunPlan {
    /// The lock file's stamp when it was read.
    stamp: Stamp,
    lock: LockFile,
    /// Each trial's key (`<stage>/<trial dir>`), in the lock file's order.
    keys: Vec<String>,
    /// The label of each matrix parameter set (`name=value, ...`).
    labels: Vec<String>,
}

impl RunPlan {
    fn of(lock: LockFile, stamp: Stamp) -> RunPlan {
        RunPlan {
            stamp,
            keys: lock.trials.iter().map(|t| key_of(&t.dir)).collect(),
            labels: lock.params.iter().map(params_label).collect(),
            lock,
        }
    }

    fn pending(&self, index: usize) -> TrialRow {
        let trial = &self.lock.trials[index];
        TrialRow {
            key: self.keys[index].clone(),
            params: self
                .labels
                .get(trial.params as usize)
                .cloned()
                .unwrap_or_default(),
            ..TrialRow::pending_fields(trial)
        }
    }
}

/// Where a trial directory is: its parent, opened (and checked for links) once for all the
/// trials in it, and its name there.
struct Place<'a> {
    parent: Arc<OwnedFd>,
    name: &'a std::ffi::OsStr,
}

/// What reading one trial's `result.json` found.
enum Found {
    /// No result (no file, or a link).
    Nothing,
    /// The file as the cache has it.
    Unchanged(Option<Arc<Parsed>>),
    /// The file, read again.
    Read(Stamp, Option<Arc<Parsed>>),
}

impl Found {
    fn parsed(&self) -> Option<&Arc<Parsed>> {
        match self {
            Found::Nothing => None,
            Found::Unchanged(parsed) | Found::Read(_, parsed) => parsed.as_ref(),
        }
    }
}

/// A run's trials as they are on disk now: the rows of the run page and the results the
/// statistics are computed from.
pub struct RunScan {
    /// The pipeline, from the lock file.
    pub pipeline: Option<String>,
    /// Every trial of the plan (or every result, without a lock file), in order.
    pub rows: Vec<TrialRow>,
    /// The parsed results, in the rows' order.
    results: Vec<Arc<Parsed>>,
    /// Changes whenever the lock file or any result changes.
    fingerprint: u64,
}

/// Below this many trials a run is read on one thread.
const PARALLEL_FROM: usize = 512;

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
            runs: Mutex::new(HashMap::new()),
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
        self.scan(run_dir).rows
    }

    fn run_cache(&self, run_dir: &Path) -> Arc<Mutex<RunCache>> {
        self.runs
            .lock()
            .unwrap()
            .entry(run_dir.to_path_buf())
            .or_default()
            .clone()
    }

    /// The run's lock file, parsed again only when it changed; `None` without one (or
    /// when it is a symbolic link or does not parse).
    fn plan(&self, run_dir: &Path, cache: &mut RunCache) -> Option<Arc<RunPlan>> {
        let meta = std::fs::symlink_metadata(run_dir.join(LOCK_FILE)).ok()?;
        if meta.file_type().is_symlink() || !self.no_links(run_dir) {
            return None;
        }
        let stamp = Stamp::of(&meta);
        if let Some(cached) = &cache.plan
            && cached.stamp == stamp
        {
            return cached.plan.clone();
        }
        let plan = LockFile::read(run_dir)
            .ok()
            .flatten()
            .map(|lock| Arc::new(RunPlan::of(lock, stamp)));
        cache.plan = Some(CachedPlan {
            stamp,
            plan: plan.clone(),
        });
        plan
    }

    /// Reads a run: its plan, and each trial's result from the cache or, where the file
    /// changed, from disk, on every core for large runs. Each trial costs two `stat` calls
    /// relative to its opened parent directory when nothing changed.
    pub fn scan(&self, run_dir: &Path) -> RunScan {
        let cache = self.run_cache(run_dir);
        let mut cache = cache.lock().unwrap();
        let plan = self.plan(run_dir, &mut cache);
        let mut parents = Parents::default();
        // Without a lock file, the trial directories there are, relative to the run.
        let mut found_dirs: Vec<PathBuf> = Vec::new();
        if plan.is_none() && self.no_links(run_dir) {
            for stage in read_dirs(run_dir) {
                for trial in read_dirs(&stage) {
                    found_dirs.extend(trial.strip_prefix(run_dir).ok().map(Path::to_path_buf));
                }
            }
        }
        let found_keys: Vec<String>;
        let (keys, places): (&[String], Vec<Option<Place>>) = match &plan {
            Some(plan) => (
                &plan.keys,
                plan.lock
                    .trials
                    .iter()
                    .map(|trial| parents.place(self, run_dir, &trial.dir))
                    .collect(),
            ),
            None => {
                found_keys = found_dirs.iter().map(|dir| key_of(dir)).collect();
                (
                    &found_keys,
                    found_dirs
                        .iter()
                        .map(|dir| parents.place(self, run_dir, dir))
                        .collect(),
                )
            }
        };
        let previous = &cache.results;
        let found: Vec<(Found, Option<TrialRow>)> = par_map(places.len(), |i| {
            let before = previous
                .get(i)
                .and_then(Option::as_ref)
                .filter(|c| c.key == keys[i]);
            let found = places[i]
                .as_ref()
                .map_or(Found::Nothing, |place| read_result(place, before));
            let row = match (found.parsed(), &plan) {
                (Some(parsed), _) => Some(parsed.row(&keys[i])),
                (None, Some(plan)) => Some(plan.pending(i)),
                (None, None) => None,
            };
            (found, row)
        });
        let mut previous = std::mem::take(&mut cache.results);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        if let Some(plan) = &plan {
            plan.stamp.hash(&mut hasher);
        }
        let mut rows = Vec::with_capacity(found.len());
        let mut results = Vec::new();
        let mut kept = Vec::with_capacity(found.len());
        for (i, (found, row)) in found.into_iter().enumerate() {
            rows.extend(row);
            let entry = match found {
                Found::Nothing => None,
                Found::Unchanged(_) => previous.get_mut(i).and_then(Option::take),
                Found::Read(stamp, parsed) => Some(Cached {
                    key: keys[i].clone(),
                    stamp,
                    parsed,
                }),
            };
            if let Some(entry) = &entry {
                (i, entry.stamp).hash(&mut hasher);
                results.extend(entry.parsed.clone());
            }
            kept.push(entry);
        }
        cache.results = kept;
        RunScan {
            pipeline: plan.map(|p| p.lock.pipeline.clone()),
            rows,
            results,
            fingerprint: hasher.finish(),
        }
    }

    /// The run's statistics, as `summary.json` has them, from the results of `scan` with
    /// the expectations its `summary.json` recorded checked again; `None` while it has no
    /// result. Computed again only when a result, the lock file or `summary.json` changed.
    pub fn summary(&self, run_dir: &Path, scan: &RunScan) -> Option<Summary> {
        if scan.results.is_empty() {
            return None;
        }
        let store = RunStore::new(run_dir);
        let stored_stamp = std::fs::symlink_metadata(store.summary_path())
            .ok()
            .filter(|m| !m.file_type().is_symlink())
            .map(|m| Stamp::of(&m));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (scan.fingerprint, stored_stamp).hash(&mut hasher);
        let fingerprint = hasher.finish();
        let cache = self.run_cache(run_dir);
        let mut cache = cache.lock().unwrap();
        if let Some((at, summary)) = &cache.summary
            && *at == fingerprint
        {
            return summary.clone();
        }
        let stored = stored_stamp
            .and_then(|_| store.read_summary().ok())
            .flatten();
        let name = scan
            .pipeline
            .clone()
            .or_else(|| stored.as_ref().map(|s| s.pipeline.clone()))
            .unwrap_or_default();
        let expect = stored.map(|s| s.expect).unwrap_or_default();
        let results: Vec<&TrialResult> = scan
            .results
            .iter()
            .filter_map(|parsed| parsed.result.as_ref())
            .collect();
        let summary = (!results.is_empty()).then(|| Summary::of(&name, &results).checked(&expect));
        cache.summary = Some((fingerprint, summary.clone()));
        summary
    }

    /// The row of one trial directory, from its result if it has one.
    pub fn row_of(&self, run_dir: &Path, key: &str) -> Option<TrialRow> {
        let place = Parents::default().place(self, run_dir, Path::new(key))?;
        read_result(&place, None)
            .parsed()
            .map(|parsed| parsed.row(key))
    }

    /// The summary line of a run for the list of runs.
    pub fn run_info(&self, name: &str, run_dir: &Path, live: bool) -> RunInfo {
        let scan = self.scan(run_dir);
        let stats = Stats::of(&scan.rows);
        RunInfo {
            name: name.to_string(),
            pipeline: scan.pipeline,
            planned: scan.rows.len(),
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
        let planned = self
            .plan(run_dir, &mut self.run_cache(run_dir).lock().unwrap())
            .and_then(|plan| {
                let index = plan.keys.iter().position(|k| k == key)?;
                Some(plan.pending(index))
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
        let result = read_json(RESULT_FILE);
        let step_results: Vec<Value> = result
            .as_ref()
            .and_then(|r| r.get("steps"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // The steps the result names, in order, then any other a running trial has begun.
        let mut step_names: Vec<String> = step_results
            .iter()
            .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        for file in &files {
            if let Some(name) = file
                .strip_prefix("steps/")
                .and_then(|f| f.split('/').next())
                && !step_names.iter().any(|n| n == name)
            {
                step_names.push(name.to_string());
            }
        }
        let text_of = |rel: &str| {
            self.no_links(&dir.join(rel))
                .then(|| read_text(&dir, rel))
                .flatten()
        };
        let steps = step_names
            .into_iter()
            .map(|name| {
                let base = format!("steps/{name}/");
                let trajectory = format!("{base}{TRAJECTORY_FILE}");
                StepView {
                    result: step_results
                        .iter()
                        .find(|s| s.get("name").and_then(Value::as_str) == Some(&name))
                        .cloned(),
                    instruction: text_of(&format!("{base}{INSTRUCTION_FILE}")),
                    trajectory: read_json(&trajectory),
                    verifier: texts_under(&format!("{base}verifier/"), &[]),
                    agent_files: texts_under(&format!("{base}agent/"), &[trajectory.as_str()]),
                    name,
                }
            })
            .collect();
        Ok(TrialView {
            run: name.to_string(),
            result,
            trajectory: read_json(TRAJECTORY_FILE),
            verifier: texts_under("verifier/", &[]),
            agent_files: texts_under("agent/", &[TRAJECTORY_FILE]),
            instruction: text_of(INSTRUCTION_FILE),
            steps,
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

/// Opens trial directories' parents once per parent, not once per trial (a plan lists its
/// trials stage by stage, so consecutive trials share a parent), each checked for symbolic
/// links on the way from the served root.
#[derive(Default)]
struct Parents {
    /// The last parent asked for, relative to the run, and the directory opened.
    last: Option<(PathBuf, Option<Arc<OwnedFd>>)>,
}

impl Parents {
    /// Where `run_dir/rel` is, when `rel` is a plain relative path and no directory above
    /// the trial's own is a symbolic link (the trial directory itself is checked when its
    /// result is read).
    fn place<'a>(&mut self, catalog: &Catalog, run_dir: &Path, rel: &'a Path) -> Option<Place<'a>> {
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        let name = rel.file_name()?;
        let parent = rel.parent()?;
        let fd = match &self.last {
            Some((last, fd)) if last.as_os_str() == parent.as_os_str() => fd.clone(),
            _ => {
                let dir = run_dir.join(parent);
                let fd = catalog
                    .no_links(&dir)
                    .then(|| open_dir(&dir))
                    .flatten()
                    .map(Arc::new);
                self.last = Some((parent.to_path_buf(), fd.clone()));
                fd
            }
        };
        Some(Place { parent: fd?, name })
    }
}

/// A directory opened to look things up relative to it; never through a link at its end.
fn open_dir(path: &Path) -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// A trial's `result.json`, unless the trial directory or the file is a symbolic link;
/// `before` is the cached entry, used when the file has not changed.
fn read_result(place: &Place, before: Option<&Cached>) -> Found {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let is = |path: &Path, kind: FileType| {
        rustix::fs::statat(&*place.parent, path, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .filter(|stat| FileType::from_raw_mode(stat.st_mode) == kind)
    };
    if is(Path::new(place.name), FileType::Directory).is_none() {
        return Found::Nothing;
    }
    let file = Path::new(place.name).join(RESULT_FILE);
    let Some(stat) = is(&file, FileType::RegularFile) else {
        return Found::Nothing;
    };
    let stamp = Stamp::of_stat(&stat);
    if let Some(before) = before
        && before.stamp == stamp
    {
        return Found::Unchanged(before.parsed.clone());
    }
    let parsed = rustix::fs::openat(
        &*place.parent,
        &file,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
    .and_then(|fd| {
        use std::io::Read;
        let mut bytes = Vec::with_capacity(stamp.len as usize);
        std::fs::File::from(fd).read_to_end(&mut bytes).ok()?;
        Parsed::of(&bytes)
    })
    .map(Arc::new);
    Found::Read(stamp, parsed)
}

/// `f` of `0..count` in order, spread over the machine's cores when there are many.
fn par_map<R: Send>(count: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || count < PARALLEL_FROM {
        return (0..count).map(f).collect();
    }
    let f = &f;
    let chunk = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                scope.spawn(move || {
                    (start..(start + chunk).min(count))
                        .map(f)
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
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
            "format": 1, "trial_id": "0000", "full_id": "0000",
            "task": task, "stage": "s", "agent": "oracle", "model": null, "params": {},
            "attempt": 1, "status": status, "rewards": {}, "reward": reward, "error": null,
            "cost_usd": 0.5, "usage": {"input_tokens": 10, "output_tokens": 5},
            "timings": [{"phase": "agent", "started_at": "x", "seconds": 1.5}],
            "agent_exit_code": 0, "verifier_exit_code": 0, "image": "i", "container": null,
            "retried": [], "helios_version": "test"
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
    fn a_multi_step_trial_page_shows_each_step_in_order_with_its_instruction() {
        let root = run_with_two_results();
        let dir = root.path().join("demo/s/a__oracle__a1__0000");
        let mut result: Value =
            serde_json::from_str(&result_json("a", "completed", Some(1.0))).unwrap();
        result["steps"] = serde_json::json!([
            {"name": "second", "rewards": {"reward": 1.0}, "reward": 1.0, "error": null,
             "agent_exit_code": 0, "verifier_exit_code": 0, "timings": []},
            {"name": "first", "rewards": {"reward": 1.0}, "reward": 1.0, "error": null,
             "agent_exit_code": 0, "verifier_exit_code": 0, "timings": []}
        ]);
        write(&dir.join("result.json"), &result.to_string());
        write(
            &dir.join("steps/first/instruction.md"),
            "Do the first thing.",
        );
        write(
            &dir.join("steps/second/instruction.md"),
            "Do the second thing.",
        );
        write(&dir.join("steps/second/verifier/reward.txt"), "1");
        write(
            &dir.join("steps/third/instruction.md"),
            "Begun, not in the result yet.",
        );
        let catalog = Catalog::new(root.path()).unwrap();
        let run = catalog.run_dir("demo").unwrap();
        let view = catalog
            .trial("demo", &run, "s/a__oracle__a1__0000")
            .unwrap();
        let names: Vec<&str> = view.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["second", "first", "third"]);
        assert_eq!(
            view.steps[1].instruction.as_ref().unwrap().text,
            "Do the first thing."
        );
        assert_eq!(view.steps[0].verifier[0].text, "1");
        assert!(view.steps[0].result.is_some() && view.steps[2].result.is_none());
        assert!(view.instruction.is_none());
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

    #[test]
    fn the_statistics_follow_a_changed_result() {
        let root = run_with_two_results();
        let catalog = Catalog::new(root.path()).unwrap();
        let run = catalog.run_dir("demo").unwrap();
        let scan = catalog.scan(&run);
        assert_eq!(catalog.summary(&run, &scan).unwrap().passed, 1);
        // Asked again with nothing changed: the same numbers, from the cache.
        let again = catalog.scan(&run);
        assert_eq!(again.fingerprint, scan.fingerprint);
        assert_eq!(catalog.summary(&run, &again).unwrap().passed, 1);
        write(
            &run.join("s/b__oracle__a1__1111/result.json"),
            &result_json("b", "completed", Some(1.0)),
        );
        let changed = catalog.scan(&run);
        assert_ne!(changed.fingerprint, scan.fingerprint);
        assert_eq!(catalog.summary(&run, &changed).unwrap().passed, 2);
    }

    #[test]
    fn a_changed_lock_file_is_read_again() {
        let root = run_with_two_results();
        let catalog = Catalog::new(root.path()).unwrap();
        let run = catalog.run_dir("demo").unwrap();
        let trial = |task: &str, dir: &str| LockedTrial {
            id: "0".repeat(64),
            stage: "s".into(),
            task: task.into(),
            agent: "oracle".into(),
            model: None,
            params: 0,
            attempt: 1,
            dir: dir.into(),
        };
        let lock = |trials: Vec<LockedTrial>| LockFile {
            format: 1,
            helios_version: "test".into(),
            pipeline: "demo".into(),
            tasks: Vec::new(),
            builds: Vec::new(),
            params: vec![Default::default()],
            trials,
            sources: Vec::new(),
            shard: None,
        };
        lock(vec![trial("a", "s/a__oracle__a1__0000")])
            .write(&run)
            .unwrap();
        let keys = |rows: Vec<TrialRow>| -> Vec<(String, String)> {
            rows.into_iter().map(|r| (r.key, r.status)).collect()
        };
        assert_eq!(
            keys(catalog.rows(&run)),
            [("s/a__oracle__a1__0000".to_string(), "completed".to_string())]
        );
        // A longer plan (a different size, so the change shows even within one tick of
        // the file system's clock): the new trial is pending, the old ones keep their result.
        lock(vec![
            trial("a", "s/a__oracle__a1__0000"),
            trial("b", "s/b__oracle__a1__1111"),
            trial("c", "s/c__oracle__a1__2222"),
            trial("d", "../outside"),
        ])
        .write(&run)
        .unwrap();
        assert_eq!(
            keys(catalog.rows(&run)),
            [
                ("s/a__oracle__a1__0000".to_string(), "completed".to_string()),
                ("s/b__oracle__a1__1111".to_string(), "failed".to_string()),
                ("s/c__oracle__a1__2222".to_string(), "pending".to_string()),
                ("../outside".to_string(), "pending".to_string()),
            ]
        );
    }

    #[test]
    fn a_result_of_another_format_is_a_row_but_not_a_statistic() {
        let root = run_with_two_results();
        let run = root.path().join("demo");
        // Only the fields a listing reads: an older or newer result.json.
        write(
            &run.join("s/c__oracle__a1__2222/result.json"),
            r#"{"task": "c", "stage": "s", "agent": "oracle", "model": null, "attempt": 1,
                "status": "completed", "reward": 1.0, "error": null, "cost_usd": null,
                "usage": null}"#,
        );
        let catalog = Catalog::new(root.path()).unwrap();
        let scan = catalog.scan(&run);
        assert_eq!(scan.rows.len(), 3);
        assert_eq!(scan.rows[2].reward, Some(1.0));
        assert_eq!(catalog.summary(&run, &scan).unwrap().trials, 2);
    }
}
