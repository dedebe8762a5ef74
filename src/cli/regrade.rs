//! `helios regrade RUN_DIR`: the verifier again on a finished run's kept artifacts (with
//! the tasks as they are now, or those of `--tasks`), written as a new run beside it.

use std::path::PathBuf;

use super::ExitStatus;
use super::failure;
use crate::report::table;
use crate::runner::regrade::{RegradeOptions, regrade};

pub(super) struct RegradeArgs {
    pub run_dir: PathBuf,
    pub tasks: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub concurrency: usize,
    pub labels: std::collections::BTreeMap<String, String>,
}

pub(super) async fn run(args: RegradeArgs) -> ExitStatus {
    let options = RegradeOptions {
        run_dir: args.run_dir,
        tasks: args.tasks,
        output: args.output,
        concurrency: args.concurrency,
        labels: args.labels,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let progress = |line: &str| eprintln!("{line}");
    let regraded = match regrade(&options, &cancel, &progress).await {
        Ok(regraded) => regraded,
        Err(error) => return failure::run_error(&error),
    };
    // One line per reason: a task's trials share theirs.
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for (trial, why) in &regraded.skipped {
        match reasons.iter_mut().find(|(w, _)| w == why) {
            Some((_, trials)) => trials.push(trial),
            None => reasons.push((why, vec![trial])),
        }
    }
    for (why, trials) in reasons {
        let shown = if trials.len() > 3 {
            format!("{} and {} more", trials[..3].join(", "), trials.len() - 3)
        } else {
            trials.join(", ")
        };
        eprintln!("not regraded: {shown}: {why}");
    }
    for (trial, error) in &regraded.failed {
        eprintln!("could not regrade {trial}: {error}");
    }
    println!("{}", table::render(&regraded.summary));
    eprintln!(
        "{} trial(s) regraded, {} left as they were; results in {} (compare: helios report {} --compare {})",
        regraded.results.len(),
        regraded.skipped.len(),
        regraded.run_dir.display(),
        options.run_dir.display(),
        regraded.run_dir.display()
    );
    if cancel.is_cancelled() {
        return ExitStatus::Interrupted;
    }
    if !regraded.failed.is_empty() {
        return ExitStatus::Infrastructure;
    }
    if regraded.results.is_empty() {
        eprintln!(
            "error: no trial of `{}` could be regraded",
            options.run_dir.display()
        );
        return ExitStatus::Invalid;
    }
    failure::status_of(&regraded.results)
}
