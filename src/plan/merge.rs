//! `helios merge`: runs of one plan (the shards of `apply --shard I/N`, usually) combined
//! into one run, after checking that their lock files describe the same plan. The merged
//! run is an ordinary run: its lock file is the whole plan's, each trial's directory is
//! the one finished result any input has for it, and `summary.json` is made from them.

use std::path::{Path, PathBuf};

use super::lock::{LockFile, plan_differences};
use super::shard::Shard;
use crate::store::summary::Summary;
use crate::store::{ResultHeader, RunStore};

/// Why runs were not merged. Nothing is written when one of these is found before the
/// copying starts (all but [`MergeError::Write`]).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("`{0}` is not a run: it has no helios.lock.json")]
    NotARun(PathBuf),
    #[error("cannot read the lock file of `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{first}` and `{other}` are runs of different plans; nothing was merged:\n  - {}", .differences.join("\n  - "))]
    DifferentPlans {
        first: PathBuf,
        other: PathBuf,
        differences: Vec<String>,
    },
    #[error("`{first}` and `{other}` are both shard {shard}; merge one of them")]
    ShardTwice {
        shard: Shard,
        first: PathBuf,
        other: PathBuf,
    },
    #[error(
        "`{first}` is shard {a} and `{other}` shard {b}: shards of different splits do not merge"
    )]
    DifferentSplits {
        a: Shard,
        b: Shard,
        first: PathBuf,
        other: PathBuf,
    },
    #[error("trial `{trial}` has a result in both `{first}` and `{other}`; merge one of them")]
    Doubled {
        trial: PathBuf,
        first: PathBuf,
        other: PathBuf,
    },
    #[error("`{0}` is shard {1}; merge into a run of the whole plan")]
    IntoShard(PathBuf, Shard),
    #[error("`{0}` is one of the runs to merge; merge into another directory")]
    IntoInput(PathBuf),
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    pub into: PathBuf,
    /// Trials of the plan.
    pub trials: usize,
    /// Per input, in the order given: the results taken from it.
    pub taken: Vec<(PathBuf, usize)>,
    /// Trials of the plan without a finished result, by directory (relative to the run).
    pub missing: Vec<PathBuf>,
    pub summary: Summary,
}

/// Where `helios merge` puts the merged run when not told: beside the first run, named as
/// the pipeline's run directory is (`<output_dir>/<name>`).
pub fn default_into(first: &Path, lock: &LockFile) -> PathBuf {
    first
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(&lock.pipeline)
}

/// Reads the lock file of each run; the first's plan is the one the others must match.
pub fn read_locks(runs: &[PathBuf]) -> Result<Vec<LockFile>, MergeError> {
    runs.iter()
        .map(|run| match LockFile::read(run) {
            Ok(Some(lock)) => Ok(lock),
            Ok(None) => Err(MergeError::NotARun(run.clone())),
            Err(source) => Err(MergeError::Read {
                path: run.clone(),
                source,
            }),
        })
        .collect()
}

/// Merges `runs` (their lock files read by [`read_locks`]) into `into`, which may be new,
/// or a run of the same plan (a merge before; its results are kept unless an input has a
/// newer one).
pub fn merge(
    runs: &[PathBuf],
    locks: &[LockFile],
    into: &Path,
) -> Result<MergeOutcome, MergeError> {
    check_inputs(runs, locks)?;
    let whole = LockFile {
        shard: None,
        ..locks[0].clone()
    };
    check_into(runs, &whole, into)?;
    // Where each trial's finished result is, refusing a trial finished in two inputs.
    let mut sources: Vec<Option<usize>> = vec![None; whole.trials.len()];
    for (t, trial) in whole.trials.iter().enumerate() {
        let short = &trial.id[..trial.id.len().min(16)];
        for (r, run) in runs.iter().enumerate() {
            let finished = ResultHeader::read(&run.join(&trial.dir))
                .is_some_and(|h| h.status.is_final() && h.trial_id == short);
            if !finished {
                continue;
            }
            if let Some(first) = sources[t] {
                return Err(MergeError::Doubled {
                    trial: trial.dir.clone(),
                    first: runs[first].clone(),
                    other: run.clone(),
                });
            }
            sources[t] = Some(r);
        }
    }
    let store = RunStore::new(into);
    let write = |path: PathBuf| move |source| MergeError::Write { path, source };
    std::fs::create_dir_all(into).map_err(write(into.to_path_buf()))?;
    whole.write(into).map_err(write(store.lock_path()))?;
    let mut taken = vec![0; runs.len()];
    for (trial, source) in whole.trials.iter().zip(&sources) {
        if let Some(r) = *source {
            store
                .import_trial(&trial.dir, &runs[r].join(&trial.dir))
                .map_err(write(into.join(&trial.dir)))?;
            taken[r] += 1;
        }
    }
    for run in runs {
        store
            .import_builds(&RunStore::new(run))
            .map_err(write(into.join("builds")))?;
    }
    // The expectations and the tasks left out are the pipeline's, so every shard recorded
    // the same; the first summary there is has them.
    let recorded = runs
        .iter()
        .find_map(|run| RunStore::new(run).read_summary().ok().flatten());
    let results = store.read_results().map_err(|source| MergeError::Read {
        path: into.to_path_buf(),
        source,
    })?;
    let mut summary = Summary::of(&whole.pipeline, &results.iter().collect::<Vec<_>>());
    if let Some(recorded) = recorded {
        summary = summary
            .checked(&recorded.expect)
            .with_skipped(&recorded.skipped_tasks);
    }
    store
        .write_summary(&summary)
        .map_err(write(store.summary_path()))?;
    let missing = whole
        .trials
        .iter()
        .filter(|t| {
            let short = &t.id[..t.id.len().min(16)];
            !ResultHeader::read(&into.join(&t.dir))
                .is_some_and(|h| h.status.is_final() && h.trial_id == short)
        })
        .map(|t| t.dir.clone())
        .collect();
    Ok(MergeOutcome {
        into: into.to_path_buf(),
        trials: whole.trials.len(),
        taken: runs.iter().cloned().zip(taken).collect(),
        missing,
        summary,
    })
}

/// The inputs are runs of one plan, no shard twice, all of one split.
fn check_inputs(runs: &[PathBuf], locks: &[LockFile]) -> Result<(), MergeError> {
    for (run, lock) in runs.iter().zip(locks).skip(1) {
        let differences = plan_differences(&locks[0], lock);
        if !differences.is_empty() {
            return Err(MergeError::DifferentPlans {
                first: runs[0].clone(),
                other: run.clone(),
                differences,
            });
        }
    }
    let shards: Vec<(&PathBuf, Shard)> = runs
        .iter()
        .zip(locks)
        .filter_map(|(run, lock)| lock.shard.map(|s| (run, s)))
        .collect();
    for (i, (run, shard)) in shards.iter().enumerate() {
        for (other, theirs) in &shards[..i] {
            if theirs.count != shard.count {
                return Err(MergeError::DifferentSplits {
                    a: *theirs,
                    b: *shard,
                    first: (*other).clone(),
                    other: (*run).clone(),
                });
            }
            if theirs == shard {
                return Err(MergeError::ShardTwice {
                    shard: *shard,
                    first: (*other).clone(),
                    other: (*run).clone(),
                });
            }
        }
    }
    Ok(())
}

/// `into` is not an input, and if it is a run already, a run of the whole plan.
fn check_into(runs: &[PathBuf], whole: &LockFile, into: &Path) -> Result<(), MergeError> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if runs.iter().any(|run| same(run, into)) {
        return Err(MergeError::IntoInput(into.to_path_buf()));
    }
    let existing = LockFile::read(into).map_err(|source| MergeError::Read {
        path: into.to_path_buf(),
        source,
    })?;
    if let Some(existing) = existing {
        if let Some(shard) = existing.shard {
            return Err(MergeError::IntoShard(into.to_path_buf(), shard));
        }
        let differences = plan_differences(whole, &existing);
        if !differences.is_empty() {
            return Err(MergeError::DifferentPlans {
                first: runs[0].clone(),
                other: into.to_path_buf(),
                differences,
            });
        }
    }
    Ok(())
}
