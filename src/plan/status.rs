//! Compares a plan with the results already on disk: which trials are done, which are new
//! because an input changed, and which were never run.

use serde::Serialize;

use super::Plan;
use crate::store::{ResultHeader, RunStore};

/// Where a planned trial stands against the results directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// A final result with this id exists: `apply` skips it.
    Done,
    /// A result exists for the same task, agent, model, parameters and attempt, but with
    /// another id: an input changed, so it runs again.
    Changed,
    /// Never run (or interrupted before it ended).
    New,
}

/// Counts of trial states, for a stage or a whole plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub trials: usize,
    pub done: usize,
    pub changed: usize,
    pub new: usize,
}

impl Counts {
    pub fn to_run(&self) -> usize {
        self.changed + self.new
    }

    fn add(&mut self, state: TrialState) {
        self.trials += 1;
        match state {
            TrialState::Done => self.done += 1,
            TrialState::Changed => self.changed += 1,
            TrialState::New => self.new += 1,
        }
    }
}

/// The state of every trial of a plan, by trial index.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub states: Vec<TrialState>,
}

impl Assessment {
    /// Reads the run directory once per stage, and `result.json` of trials whose directory
    /// exists.
    pub fn of(plan: &Plan) -> Assessment {
        let store = RunStore::new(&plan.run_dir);
        let mut states = Vec::with_capacity(plan.trials.len());
        for stage in &plan.stages {
            let existing = store.existing_trials(&stage.name);
            for trial in &plan.trials[stage.trials.clone()] {
                let slot = plan.slot_name(trial);
                let id = trial.id.short();
                let state = match existing.get(&slot) {
                    None => TrialState::New,
                    Some(ids) if ids.contains(&id) => {
                        let dir = store.trial_dir(&plan.trial_dir(trial));
                        match ResultHeader::read(&dir) {
                            Some(header) if header.status.is_final() && header.trial_id == id => {
                                TrialState::Done
                            }
                            _ if ids.len() > 1 => TrialState::Changed,
                            _ => TrialState::New,
                        }
                    }
                    Some(_) => TrialState::Changed,
                };
                states.push(state);
            }
        }
        Assessment { states }
    }

    /// Counts for the trials in `range` (a stage's), or for all with `0..len`.
    pub fn counts(&self, range: std::ops::Range<usize>) -> Counts {
        let mut counts = Counts::default();
        for &state in &self.states[range] {
            counts.add(state);
        }
        counts
    }

    pub fn total(&self) -> Counts {
        self.counts(0..self.states.len())
    }
}
