//! Shards: a plan's trials split into N disjoint parts by a stable key, so that N machines
//! (a Kubernetes Indexed Job, a Slurm array, a CI matrix, an ssh loop) each run one part
//! into a run of their own, and `helios merge` puts the parts back together.
//!
//! The key is the trial's id, except in stages joined by a gate (a gated stage and the
//! stage its gate reads), where it is the task's name: all of a task's trials of those
//! stages land in one shard, so each shard decides its gates exactly as the whole run
//! would, from results it holds, with no merge in between.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::lock::LockFile;
use super::{Digest, Plan, Trial};

/// Part `index` of `count` (1-based, as written on the command line: `2/3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Why a `--shard` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("`{0}` is not I/N (such as 1/3): two whole numbers with a slash between")]
    Syntax(String),
    #[error("a run cannot be split into 0 shards")]
    NoShards,
    #[error("shard {index} of {count} does not exist: shards are numbered 1 to {count}")]
    OutOfRange { index: u32, count: u32 },
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(text.to_string());
        let (index, count) = text.trim().split_once('/').ok_or_else(syntax)?;
        let index: u32 = index.trim().parse().map_err(|_| syntax())?;
        let count: u32 = count.trim().parse().map_err(|_| syntax())?;
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards);
        }
        if index == 0 || index > count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Whether a key (a digest) falls in this shard: its first 8 bytes, big-endian, modulo
    /// the count. SHA-256 spreads keys evenly, and a plan grown by a task or an attempt
    /// moves no other trial to another shard (round-robin over plan order would).
    fn holds(&self, key: &Digest) -> bool {
        let mut head = [0u8; 8];
        head.copy_from_slice(&key.0[..8]);
        u64::from_be_bytes(head) % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// The run directory of this shard: beside the whole run's, `<run dir>-shard-I-of-N`,
    /// so shards run on one machine do not share a directory.
    pub fn run_dir(&self, whole: &Path) -> PathBuf {
        let mut name = whole
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(format!("-shard-{}-of-{}", self.index, self.count));
        whole.with_file_name(name)
    }
}

/// What a shard's plan knows of the whole plan it is part of.
#[derive(Debug, Clone)]
pub struct Sharded {
    pub shard: Shard,
    /// The whole plan's run directory (where `plan --write-lock` puts the lock file, and
    /// where `helios merge` puts the merged run by default).
    pub whole_run_dir: PathBuf,
    /// The whole plan's lock file, with `shard` set: what every shard's run records, so
    /// that `helios merge` can tell shards of one plan from shards of another.
    pub lock: Box<LockFile>,
    /// Trials of the whole plan.
    pub whole_trials: usize,
}

/// Per stage: whether its trials are split by task (it is gated, or a gate reads it).
fn split_by_task(plan: &Plan) -> Vec<bool> {
    let mut by_task = vec![false; plan.stages.len()];
    for (s, stage) in plan.stages.iter().enumerate() {
        if let Some(gate) = &stage.gate {
            by_task[s] = true;
            if let Some(from) = plan.stages.iter().position(|x| x.name == gate.stage) {
                by_task[from] = true;
            }
        }
    }
    by_task
}

/// The key a trial is split by (see the module's documentation).
fn key(plan: &Plan, by_task: &[bool], trial: &Trial) -> Digest {
    if by_task[trial.stage as usize] {
        let name = &plan.tasks[trial.task as usize].name;
        Digest::of_bytes(format!("helios-shard/task\0{name}").as_bytes())
    } else {
        trial.id.0
    }
}

impl Plan {
    /// This plan's part `shard`: the same stages, tasks and builds, only the trials whose
    /// key falls in the shard, and the run directory [`Shard::run_dir`]. Builds no kept
    /// trial needs are not built (the runner finds them not needed).
    pub fn shard(mut self, shard: Shard) -> Plan {
        let lock = LockFile::of(&self);
        let by_task = split_by_task(&self);
        let mut trials = Vec::new();
        let mut stages = self.stages.clone();
        for stage in &mut stages {
            let start = trials.len();
            trials.extend(
                self.trials[stage.trials.clone()]
                    .iter()
                    .filter(|t| shard.holds(&key(&self, &by_task, t)))
                    .copied(),
            );
            stage.trials = start..trials.len();
        }
        let (graph, trial_nodes) = super::expand::graph(&stages, &self.tasks, &trials);
        let whole_trials = self.trials.len();
        let whole_run_dir = std::mem::take(&mut self.run_dir);
        self.run_dir = shard.run_dir(&whole_run_dir);
        self.stages = stages;
        self.trials = trials;
        self.graph = graph;
        self.trial_nodes = trial_nodes;
        self.shard = Some(Sharded {
            shard,
            whole_run_dir,
            lock: Box::new(LockFile {
                shard: Some(shard),
                ..lock
            }),
            whole_trials,
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_written_i_over_n_and_checked() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(" 1 / 1 ".parse(), Ok(Shard { index: 1, count: 1 }));
        assert_eq!(
            "0/3".parse::<Shard>(),
            Err(ShardError::OutOfRange { index: 0, count: 3 })
        );
        assert_eq!(
            "4/3".parse::<Shard>(),
            Err(ShardError::OutOfRange { index: 4, count: 3 })
        );
        assert_eq!("1/0".parse::<Shard>(), Err(ShardError::NoShards));
        assert!(matches!("3".parse::<Shard>(), Err(ShardError::Syntax(_))));
        assert!(matches!("a/b".parse::<Shard>(), Err(ShardError::Syntax(_))));
        assert_eq!(Shard { index: 2, count: 3 }.to_string(), "2/3");
    }

    #[test]
    fn a_shard_runs_beside_the_whole_run() {
        let shard = Shard { index: 2, count: 3 };
        assert_eq!(
            shard.run_dir(Path::new("runs/p")),
            PathBuf::from("runs/p-shard-2-of-3")
        );
    }

    #[test]
    fn every_key_falls_in_exactly_one_shard() {
        for n in 1..=7u32 {
            for k in 0..200u32 {
                let key = Digest::of_bytes(&k.to_le_bytes());
                let holders = (1..=n)
                    .filter(|&i| Shard { index: i, count: n }.holds(&key))
                    .count();
                assert_eq!(holders, 1, "key {k} over {n} shards");
            }
        }
    }
}
