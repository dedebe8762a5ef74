//! Live state of a run in progress: turns the runner's events into trial rows and steps
//! that the viewer overlays on what is on disk and pushes to browsers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use super::catalog::{Catalog, TrialRow};
use crate::events::{RunEvent, TrialIndex};
use crate::plan::lock::LockFile;

/// Something a browser watching a run should know.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// A trial's row changed (it started, entered a phase, finished).
    Trial {
        #[serde(skip)]
        run_dir: PathBuf,
        row: TrialRow,
    },
    /// A model-driven agent did something.
    Step {
        #[serde(skip)]
        run_dir: PathBuf,
        key: String,
        step: LiveStep,
    },
    /// The run as a whole: `running`, `cancelling` or `finished`.
    Run {
        #[serde(skip)]
        run_dir: PathBuf,
        state: String,
    },
}

impl LiveMessage {
    pub fn run_dir(&self) -> &Path {
        match self {
            LiveMessage::Trial { run_dir, .. }
            | LiveMessage::Step { run_dir, .. }
            | LiveMessage::Run { run_dir, .. } => run_dir,
        }
    }

    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            LiveMessage::Trial { .. } => "trial",
            LiveMessage::Step { .. } => "step",
            LiveMessage::Run { .. } => "run",
        }
    }
}

/// One thing a running agent did, before its trajectory is written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveStep {
    Turn {
        turn: u32,
    },
    Text {
        text: String,
    },
    ToolCall {
        name: String,
        input: serde_json::Value,
    },
    ToolResult {
        name: String,
        output: String,
        is_error: bool,
        /// Relative to the trial's `agent/` directory.
        images: Vec<String>,
    },
}

/// The live state of the runs this process is applying, shared by the viewer's handlers.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    sender: broadcast::Sender<LiveMessage>,
}

#[derive(Default)]
struct State {
    /// The run being applied, once it has started.
    run: Option<LiveRun>,
}

struct LiveRun {
    dir: PathBuf,
    lock: LockFile,
    /// Rows of trials that have started and not finished, by plan index.
    running: HashMap<TrialIndex, TrialRow>,
    /// What running agents did so far, by plan index.
    steps: HashMap<TrialIndex, Vec<LiveStep>>,
    state: String,
}

/// Browsers that fall this far behind miss messages and reload the page's data.
const BACKLOG: usize = 4096;

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub::new()
    }
}

impl LiveHub {
    pub fn new() -> LiveHub {
        LiveHub {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                sender: broadcast::channel(BACKLOG).0,
            }),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveMessage> {
        self.inner.sender.subscribe()
    }

    /// The run's state (`running`, `cancelling`, `finished`) when it is the live one.
    pub fn run_state(&self, run_dir: &Path) -> Option<String> {
        let state = self.inner.state.lock().unwrap();
        state
            .run
            .as_ref()
            .filter(|run| run.dir == run_dir)
            .map(|run| run.state.clone())
    }

    /// Replaces the rows of running trials by their live version.
    pub fn overlay(&self, run_dir: &Path, rows: &mut [TrialRow]) {
        let state = self.inner.state.lock().unwrap();
        let Some(run) = state.run.as_ref().filter(|run| run.dir == run_dir) else {
            return;
        };
        if run.running.is_empty() {
            return;
        }
        let by_key: HashMap<&str, &TrialRow> = run
            .running
            .values()
            .map(|row| (row.key.as_str(), row))
            .collect();
        for row in rows.iter_mut() {
            if let Some(live) = by_key.get(row.key.as_str()) {
                *row = (*live).clone();
            }
        }
    }

    /// What the agent of a running trial did so far.
    pub fn steps(&self, run_dir: &Path, key: &str) -> Vec<LiveStep> {
        let state = self.inner.state.lock().unwrap();
        let Some(run) = state.run.as_ref().filter(|run| run.dir == run_dir) else {
            return Vec::new();
        };
        run.running
            .iter()
            .find(|(_, row)| row.key == key)
            .and_then(|(index, _)| run.steps.get(index))
            .cloned()
            .unwrap_or_default()
    }

    /// Marks `run_dir` (whose lock file is written) as the run in progress, before the
    /// runner's first event, so that pages opened early already follow it.
    pub fn begin(&self, run_dir: &Path) {
        let message = begin(&mut self.inner.state.lock().unwrap(), run_dir);
        if let Some(message) = message {
            let _ = self.inner.sender.send(message);
        }
    }

    /// Takes in one event of the runner. `catalog` reads a finished trial's result.
    pub fn record(&self, event: &RunEvent, catalog: &Catalog) {
        let message = {
            let mut state = self.inner.state.lock().unwrap();
            match event {
                RunEvent::Started { run_dir, .. } => begin(&mut state, run_dir),
                RunEvent::Cancelling | RunEvent::Finished => state.run.as_mut().map(|run| {
                    run.state = if matches!(event, RunEvent::Finished) {
                        "finished".into()
                    } else {
                        "cancelling".into()
                    };
                    LiveMessage::Run {
                        run_dir: run.dir.clone(),
                        state: run.state.clone(),
                    }
                }),
                RunEvent::TrialStarted { index, .. } => state.run.as_mut().and_then(|run| {
                    let trial = run.lock.trials.get(index.get())?;
                    let mut row = TrialRow::pending(trial, &run.lock.params);
                    row.status = "running".into();
                    run.running.insert(*index, row.clone());
                    run.steps.insert(*index, Vec::new());
                    Some(LiveMessage::Trial {
                        run_dir: run.dir.clone(),
                        row,
                    })
                }),
                RunEvent::TrialPhase { index, phase } => state.run.as_mut().and_then(|run| {
                    let row = run.running.get_mut(index)?;
                    row.phase = Some(phase.to_string());
                    Some(LiveMessage::Trial {
                        run_dir: run.dir.clone(),
                        row: row.clone(),
                    })
                }),
                RunEvent::AgentTurn { index, turn } => {
                    push_step(&mut state, *index, LiveStep::Turn { turn: *turn })
                }
                RunEvent::AgentText { index, text } => {
                    push_step(&mut state, *index, LiveStep::Text { text: text.clone() })
                }
                RunEvent::ToolCall { index, name, input } => push_step(
                    &mut state,
                    *index,
                    LiveStep::ToolCall {
                        name: name.clone(),
                        input: input.clone(),
                    },
                ),
                RunEvent::ToolResult {
                    index,
                    name,
                    output,
                    is_error,
                    images,
                } => push_step(
                    &mut state,
                    *index,
                    LiveStep::ToolResult {
                        name: name.clone(),
                        output: output.clone(),
                        is_error: *is_error,
                        images: images.clone(),
                    },
                ),
                // A retried trial starts over: its phase and steps belong to the failed try.
                RunEvent::TrialRetry { index, .. } => state.run.as_mut().and_then(|run| {
                    let row = run.running.get_mut(index)?;
                    row.phase = None;
                    run.steps.insert(*index, Vec::new());
                    Some(LiveMessage::Trial {
                        run_dir: run.dir.clone(),
                        row: row.clone(),
                    })
                }),
                RunEvent::TrialFinished { index, .. } => state.run.as_mut().and_then(|run| {
                    let row = run.running.remove(index)?;
                    run.steps.remove(index);
                    let finished = catalog.row_of(&run.dir, &row.key).unwrap_or(row);
                    Some(LiveMessage::Trial {
                        run_dir: run.dir.clone(),
                        row: finished,
                    })
                }),
                _ => None,
            }
        };
        if let Some(message) = message {
            // Nobody watching is fine.
            let _ = self.inner.sender.send(message);
        }
    }
}

fn begin(state: &mut State, run_dir: &Path) -> Option<LiveMessage> {
    let dir = run_dir
        .canonicalize()
        .unwrap_or_else(|_| run_dir.to_path_buf());
    let lock = LockFile::read(&dir).ok().flatten();
    state.run = lock.map(|lock| LiveRun {
        dir,
        lock,
        running: HashMap::new(),
        steps: HashMap::new(),
        state: "running".into(),
    });
    state.run.as_ref().map(|run| LiveMessage::Run {
        run_dir: run.dir.clone(),
        state: run.state.clone(),
    })
}

fn push_step(state: &mut State, index: TrialIndex, step: LiveStep) -> Option<LiveMessage> {
    let run = state.run.as_mut()?;
    let key = run.running.get(&index)?.key.clone();
    run.steps.entry(index).or_default().push(step.clone());
    Some(LiveMessage::Step {
        run_dir: run.dir.clone(),
        key,
        step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TrialStatus;
    use crate::plan::lock::LockedTrial;

    fn run_dir_with_lock() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("r");
        std::fs::create_dir_all(&run).unwrap();
        let lock = LockFile {
            format: 1,
            helios_version: "t".into(),
            pipeline: "p".into(),
            tasks: vec![],
            builds: vec![],
            params: vec![Default::default()],
            trials: vec![LockedTrial {
                id: "00".into(),
                stage: "s".into(),
                task: "t".into(),
                agent: "a".into(),
                model: None,
                params: 0,
                attempt: 1,
                dir: PathBuf::from("s/t__a__a1__00"),
            }],
            sources: vec![],
            shard: None,
        };
        lock.write(&run).unwrap();
        let run = run.canonicalize().unwrap();
        (root, run)
    }

    #[test]
    fn a_trial_goes_from_running_to_its_result() {
        let (root, run) = run_dir_with_lock();
        let catalog = Catalog::new(root.path()).unwrap();
        let hub = LiveHub::new();
        let mut messages = hub.subscribe();
        hub.record(
            &RunEvent::Started {
                run_dir: run.clone(),
                trials: 1,
                to_run: 1,
                done: 0,
                builds: 0,
            },
            &catalog,
        );
        assert_eq!(hub.run_state(&run).as_deref(), Some("running"));
        hub.record(
            &RunEvent::TrialStarted {
                index: TrialIndex(0),
                label: "x".into(),
            },
            &catalog,
        );
        hub.record(
            &RunEvent::TrialPhase {
                index: TrialIndex(0),
                phase: crate::events::Phase::Agent,
            },
            &catalog,
        );
        hub.record(
            &RunEvent::AgentText {
                index: TrialIndex(0),
                text: "hello".into(),
            },
            &catalog,
        );
        let mut rows = catalog.rows(&run);
        assert_eq!(rows[0].status, "pending");
        hub.overlay(&run, &mut rows);
        assert_eq!(rows[0].status, "running");
        assert_eq!(rows[0].phase.as_deref(), Some("agent"));
        assert_eq!(hub.steps(&run, "s/t__a__a1__00").len(), 1);

        std::fs::create_dir_all(run.join("s/t__a__a1__00")).unwrap();
        std::fs::write(
            run.join("s/t__a__a1__00/result.json"),
            serde_json::json!({"task": "t", "stage": "s", "agent": "a", "model": null,
                "attempt": 1, "status": "completed", "reward": 1.0, "error": null,
                "cost_usd": null, "usage": null})
            .to_string(),
        )
        .unwrap();
        hub.record(
            &RunEvent::TrialFinished {
                index: TrialIndex(0),
                label: "x".into(),
                status: TrialStatus::Completed,
                reward: Some(1.0),
                error_kind: None,
            },
            &catalog,
        );
        let names: Vec<&str> = std::iter::from_fn(|| messages.try_recv().ok())
            .map(|m| m.name())
            .collect();
        assert_eq!(names, ["run", "trial", "trial", "step", "trial"]);
        let mut rows = catalog.rows(&run);
        hub.overlay(&run, &mut rows);
        assert_eq!(rows[0].status, "completed");
        assert!(hub.steps(&run, "s/t__a__a1__00").is_empty());
    }

    #[test]
    fn events_of_an_unknown_trial_are_ignored() {
        let (root, run) = run_dir_with_lock();
        let catalog = Catalog::new(root.path()).unwrap();
        let hub = LiveHub::new();
        hub.record(
            &RunEvent::TrialStarted {
                index: TrialIndex(7),
                label: "x".into(),
            },
            &catalog,
        );
        assert_eq!(hub.run_state(&run), None);
    }
}
