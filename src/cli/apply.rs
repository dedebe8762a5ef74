//! `helios apply PIPELINE`: runs what the plan says, in real containers, and reports.

use std::collections::BTreeMap;
use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::{ExitStatus, failure};
use crate::api::Verdict;
use crate::api::session::{LockProblem, PlanOptions, Session, SessionError};
use crate::dataset::Cache;
use crate::diagnostic::render;
use crate::events::{Reporter, RunEvent};
use crate::manifest::SourceOptions;
use crate::plan::shard::Shard;
use crate::report;
use crate::runner::{self, ApplyOptions, RunError};
use crate::view::{ViewOptions, Viewer};

pub(super) struct ApplyArgs<'a> {
    pub pipeline: &'a Path,
    pub rebuild: bool,
    pub labels: BTreeMap<String, String>,
    pub concurrency: Option<usize>,
    pub cpus: Option<f64>,
    pub resources: Option<crate::runner::ResourcePolicy>,
    pub memory_mb: Option<u64>,
    pub build_concurrency: Option<usize>,
    pub retries: u32,
    pub styled: bool,
    /// Serve the viewer during the run (its `root` is set to the run's output directory).
    pub watch: Option<ViewOptions>,
    /// `--output-dir`: results go to `<DIR>/<name>` instead of the pipeline's `output_dir`.
    pub output_dir: Option<&'a Path>,
    /// `--fail-under X`: every group's mean reward must reach X.
    pub fail_under: Option<f64>,
    /// `--locked`: run only what the lock file says.
    pub locked: bool,
    /// `--shard I/N`: run only that part of the trials, into a run of its own.
    pub shard: Option<Shard>,
}

/// `--output-dir DIR` (relative to the working directory) in place of the pipeline's
/// `output_dir` (relative to the pipeline file).
pub(super) fn redirect_output(pipeline: &mut crate::manifest::Pipeline, dir: Option<&Path>) {
    if let Some(dir) = dir {
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        pipeline.manifest.pipeline.output_dir = absolute.display().to_string();
    }
}

/// `--fail-under X` as an expectation on every group, after the pipeline's own.
pub(super) fn fail_under_expectation(threshold: f64) -> crate::manifest::pipeline::Expect {
    crate::manifest::pipeline::Expect {
        min_mean_reward: Some(threshold),
        ..Default::default()
    }
}

pub(super) async fn run(args: ApplyArgs<'_>) -> ExitStatus {
    let bars = super::datasets::Bars::new();
    let sources = SourceOptions {
        cache: Cache::from_env(),
        progress: &bars,
    };
    let planning = PlanOptions {
        output_dir: args.output_dir.map(Path::to_path_buf),
        fail_under: args.fail_under,
        shard: args.shard,
    };
    let loaded = Session::load(args.pipeline, &sources, &planning);
    drop(bars);
    let session = match loaded {
        Ok((session, warnings)) => {
            if !warnings.diagnostics.is_empty() {
                eprint!("{}", render::human(&warnings, args.styled));
            }
            session
        }
        Err(SessionError::Invalid(error)) => {
            eprint!("{}", render::human(&error.report, args.styled));
            eprintln!(
                "error: `{}` is not valid; nothing was run",
                args.pipeline.display()
            );
            return ExitStatus::Invalid;
        }
        Err(SessionError::Plan(error)) => {
            eprintln!("error: cannot plan `{}`: {error}", args.pipeline.display());
            return ExitStatus::Invalid;
        }
    };
    let (pipeline, plan) = (session.pipeline(), session.plan());
    if !pipeline.skipped.is_empty() {
        let names: Vec<&str> = pipeline.skipped.iter().map(|t| t.name.as_str()).collect();
        eprintln!(
            "helios: {} invalid task(s) left out (`on_invalid = \"skip\"`; the warnings above say why): {}",
            names.len(),
            names.join(", ")
        );
    }
    if let Some(sharded) = &plan.shard {
        eprintln!(
            "helios: shard {}: {} of the plan's {} trials, into {}",
            sharded.shard,
            plan.trials.len(),
            sharded.whole_trials,
            plan.run_dir.display()
        );
    }
    eprint!(
        "{}",
        super::datasets::sources_section(args.pipeline, &pipeline.sources)
    );
    if args.locked
        && let Err(problem) = session.check_lock()
    {
        say_lock(&problem);
        return ExitStatus::Invalid;
    }
    let options = ApplyOptions {
        rebuild: args.rebuild,
        retries: args.retries,
        labels: args.labels,
        concurrency: args.concurrency,
        cpus: args.cpus,
        resources: args.resources,
        memory_mb: args.memory_mb,
        build_concurrency: args.build_concurrency,
        ..ApplyOptions::default()
    };
    // Nothing is written until every check has passed and the providers answered.
    let open = match session.open(options).await {
        Ok(open) => open,
        Err(error) => return conclude(Err(error)),
    };
    let mut reporters = vec![report::progress::reporter()];
    let viewer = match args.watch {
        Some(options) => match start_viewer(options, open.run_dir()).await {
            Ok(viewer) => {
                reporters.insert(0, Box::new(viewer.recorder()) as Box<dyn Reporter>);
                Some(viewer)
            }
            Err(status) => return status,
        },
        None => None,
    };
    let cancel = CancellationToken::new();
    tokio::spawn(watch_interrupts(cancel.clone(), open.events()));
    let status = conclude(open.execute(reporters, cancel).await);
    if let Some(viewer) = viewer {
        if status == ExitStatus::Interrupted {
            viewer.stop().await;
        } else {
            eprintln!(
                "helios: the run is over; the viewer still serves {} until Ctrl-C",
                viewer.url()
            );
            viewer.serve_until_interrupted().await;
        }
    }
    status
}

/// Why `--locked` ran nothing.
fn say_lock(problem: &LockProblem) {
    match problem {
        LockProblem::Missing(dir) => eprintln!(
            "error: `--locked`, but `{}` has no lock file; nothing was run (hint: `helios plan --write-lock` writes one)",
            dir.display()
        ),
        LockProblem::Unreadable { dir, reason } => eprintln!(
            "error: `--locked`, but the lock file of `{}` cannot be read: {reason}",
            dir.display()
        ),
        LockProblem::Differs(mismatches) => {
            for mismatch in mismatches {
                eprintln!("error: {mismatch}");
            }
            eprintln!(
                "error: `--locked`: the pipeline no longer resolves to what the lock file says; nothing was run (hint: run without `--locked` to run what it says now, and lock that)"
            );
        }
    }
}

/// Starts the viewer on the run's output directory and says where to look.
async fn start_viewer(options: ViewOptions, run_dir: &Path) -> Result<Viewer, ExitStatus> {
    match Viewer::watch(options, run_dir).await {
        Ok(viewer) => {
            eprintln!("helios: watch the run at {}", viewer.page_of(run_dir));
            Ok(viewer)
        }
        Err(error) => {
            failure::print(&error);
            Err(ExitStatus::Infrastructure)
        }
    }
}

/// The exit status of a finished `apply`, after printing its table.
fn conclude(outcome: Result<runner::RunOutcome, RunError>) -> ExitStatus {
    match outcome {
        Ok(outcome) => {
            println!("\n{}\n", report::table::render(&outcome.summary));
            println!(
                "{} trial(s) ran, {} already done{}{}; results in {}",
                outcome.ran,
                outcome.already_done,
                if outcome.gated_out > 0 {
                    format!(", {} gated out", outcome.gated_out)
                } else {
                    String::new()
                },
                if outcome.not_started > 0 {
                    format!(", {} not started", outcome.not_started)
                } else {
                    String::new()
                },
                outcome.run_dir.display()
            );
            if outcome.over_budget > 0 {
                eprintln!(
                    "budget reached: ${:.4} spent, {} trial(s) not started; finished results are kept and `helios apply` again resumes",
                    outcome.spent_usd, outcome.over_budget
                );
            }
            let verdict = Verdict::of_run(&outcome);
            match verdict {
                Verdict::Cancelled => eprintln!(
                    "interrupted: finished results are kept; `helios apply` again runs the rest"
                ),
                Verdict::ExpectationsNotMet => {
                    eprintln!("expectations not met (see above); exit 6");
                }
                _ => {}
            }
            failure::exit_status(verdict)
        }
        Err(error) => failure::run_error(&error),
    }
}

/// How long after the first Ctrl-C helios ends whatever it waits on: the runner's own
/// clean-up gives a wedged engine [`runner::CANCEL_GRACE`]; this backstops a wait outside
/// trials (an install, a pull, a probe before any trial) so a Ctrl-C always ends helios
/// within seconds.
const INTERRUPT_BACKSTOP: std::time::Duration = std::time::Duration::from_millis(4500);

/// The first Ctrl-C cancels gracefully; the second ends the process at once, and so does
/// the first once [`INTERRUPT_BACKSTOP`] has passed without the run ending.
async fn watch_interrupts(
    cancel: CancellationToken,
    events: tokio::sync::mpsc::WeakUnboundedSender<RunEvent>,
) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    cancel.cancel();
    // A weak sender, so that the reporter ends when the run does.
    if let Some(events) = events.upgrade() {
        let _ = events.send(RunEvent::Cancelling);
    }
    let how = tokio::select! {
        second = tokio::signal::ctrl_c() => {
            if second.is_err() {
                return;
            }
            "forced to stop"
        }
        () = tokio::time::sleep(INTERRUPT_BACKSTOP) => {
            "stopped: the engine did not answer in time to clean up"
        }
    };
    eprintln!(
        "{how}: containers or sandboxes may remain; the next `helios apply` or `helios gc` \
         (`--provider daytona` for sandboxes) removes them"
    );
    std::process::exit(ExitStatus::Interrupted as i32);
}
