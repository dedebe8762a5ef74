//! `helios merge RUN_DIR...`: the shards of a plan combined into one run, printed as the
//! table `apply` prints, with what is still missing.

use std::path::{Path, PathBuf};

use super::{ExitStatus, failure};
use crate::plan::merge::{self, MergeOutcome};
use crate::report;

pub(super) fn run(runs: &[PathBuf], into: Option<&Path>) -> ExitStatus {
    let locks = match merge::read_locks(runs) {
        Ok(locks) => locks,
        Err(error) => return failure::merge_error(&error),
    };
    let into = into.map_or_else(
        || merge::default_into(&runs[0], &locks[0]),
        Path::to_path_buf,
    );
    match merge::merge(runs, &locks, &into) {
        Ok(outcome) => conclude(&outcome),
        Err(error) => failure::merge_error(&error),
    }
}

/// Prints the merged run's table and what each input gave; exit 0 when every trial has a
/// result, 3 (as `plan`: work to do) when some shard has not finished.
fn conclude(outcome: &MergeOutcome) -> ExitStatus {
    println!("\n{}\n", report::table::render(&outcome.summary));
    for (run, taken) in &outcome.taken {
        println!("  {taken} trial(s) from {}", run.display());
    }
    let done = outcome.trials - outcome.missing.len();
    println!(
        "{done} of {} trial(s) have a result; merged run in {}",
        outcome.trials,
        outcome.into.display()
    );
    if outcome.missing.is_empty() {
        return ExitStatus::Success;
    }
    eprintln!(
        "{} trial(s) have no finished result yet (a shard lost or not finished: run its \
         `helios apply --shard I/N` again, then merge again), such as:",
        outcome.missing.len()
    );
    for dir in outcome.missing.iter().take(5) {
        eprintln!("  {}", dir.display());
    }
    ExitStatus::WorkToDo
}
