//! `helios report RUN_DIR`: a run's statistics from its results, as a table, Markdown,
//! JSON, CSV or JUnit XML; `--compare` and `--groups` compare two runs or two groups; the
//! run's expectations (and `--fail-under`) are checked again and decide the exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::ExitStatus;
use crate::report::formats;
use crate::report::table;
use crate::store::RunStore;
use crate::store::compare::Comparison;
use crate::store::summary::{Summary, SummaryRow};
use crate::store::trial::TrialResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// The table `apply` prints.
    Terminal,
    /// GitHub-flavoured Markdown (also appended to `$GITHUB_STEP_SUMMARY` when it is set).
    Markdown,
    /// `summary.json`'s content, or the comparison.
    Json,
    /// One line per group.
    Csv,
    /// JUnit XML, one test case per trial.
    Junit,
}

pub(super) struct ReportArgs {
    pub run_dir: PathBuf,
    pub format: ReportFormat,
    pub compare: Option<PathBuf>,
    pub groups: Option<Vec<String>>,
    pub fail_under: Option<f64>,
}

/// Why a report could not be made (exit 1).
#[derive(Debug, thiserror::Error)]
enum ReportError {
    #[error("`{0}` is not a run directory (no helios.lock.json or summary.json in it)")]
    NotARun(PathBuf),
    #[error("cannot read the results of `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{0}` selects no group of the run (groups: {1})")]
    NoGroup(String, String),
    #[error("`{0}` selects {1} groups of the run; add `stage=`, `agent=` or `model=` to pick one")]
    ManyGroups(String, usize),
    #[error(
        "`{0}` is not a selector: write `agent=NAME`, `model=NAME`, `stage=NAME`, comma-separated"
    )]
    BadSelector(String),
    #[error("comparisons print as terminal, markdown or json, not {0}")]
    CompareFormat(&'static str),
}

pub(super) fn run(args: ReportArgs) -> ExitStatus {
    match report(&args) {
        Ok(status) => status,
        Err(error) => {
            eprintln!("error: {error}");
            ExitStatus::Invalid
        }
    }
}

/// A run's results and its summary, recomputed from them, with the expectations its
/// `summary.json` recorded checked again (and `--fail-under`).
fn load(
    run_dir: &Path,
    fail_under: Option<f64>,
) -> Result<(Summary, Vec<TrialResult>), ReportError> {
    if !RunStore::is_run_dir(run_dir) {
        return Err(ReportError::NotARun(run_dir.to_path_buf()));
    }
    let store = RunStore::new(run_dir);
    let read = |source| ReportError::Read {
        path: run_dir.to_path_buf(),
        source,
    };
    let results = store.read_results().map_err(read)?;
    let stored = store.read_summary().map_err(read)?;
    #[derive(serde::Deserialize)]
    struct LockName {
        pipeline: String,
    }
    let name = match &stored {
        Some(summary) => summary.pipeline.clone(),
        None => store
            .read_lock::<LockName>()
            .map_err(read)?
            .map_or_else(|| run_dir.display().to_string(), |l| l.pipeline),
    };
    let mut expect = stored.map(|s| s.expect).unwrap_or_default();
    expect.extend(fail_under.map(super::apply::fail_under_expectation));
    let summary = Summary::of(&name, &results.iter().collect::<Vec<_>>()).checked(&expect);
    Ok((summary, results))
}

fn report(args: &ReportArgs) -> Result<ExitStatus, ReportError> {
    let (summary, results) = load(&args.run_dir, args.fail_under)?;
    if args.compare.is_some() || args.groups.is_some() {
        let comparison = match (&args.compare, &args.groups) {
            (Some(other), _) => {
                let (b, _) = load(other, None)?;
                Comparison::of_runs(
                    &args.run_dir.display().to_string(),
                    &summary,
                    &other.display().to_string(),
                    &b,
                )
            }
            (None, Some(selectors)) => {
                let a = select(&summary, &selectors[0])?;
                let b = select(&summary, &selectors[1])?;
                Comparison::of_groups(a, b)
            }
            (None, None) => unreachable!("one of them is set"),
        };
        let text = match args.format {
            ReportFormat::Terminal => formats::comparison(&comparison, false),
            ReportFormat::Markdown => formats::comparison(&comparison, true),
            ReportFormat::Json => {
                serde_json::to_string_pretty(&comparison).expect("comparisons serialize") + "\n"
            }
            ReportFormat::Csv => return Err(ReportError::CompareFormat("csv")),
            ReportFormat::Junit => return Err(ReportError::CompareFormat("junit")),
        };
        emit(&text, args.format);
        return Ok(ExitStatus::Success);
    }
    let text = match args.format {
        ReportFormat::Terminal => format!("{}\n", table::render(&summary)),
        ReportFormat::Markdown => formats::markdown(&summary),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&summary).expect("summaries serialize") + "\n"
        }
        ReportFormat::Csv => formats::csv(&summary),
        ReportFormat::Junit => formats::junit(&summary, &results),
    };
    emit(&text, args.format);
    if summary.expectations_met() {
        Ok(ExitStatus::Success)
    } else {
        if args.format != ReportFormat::Terminal {
            for check in summary.expectations.iter().filter(|c| !c.met) {
                eprintln!("{}", check.describe());
            }
        }
        Ok(ExitStatus::ExpectationFailed)
    }
}

/// Prints `text`; Markdown also goes to the GitHub Actions job summary when there is one.
fn emit(text: &str, format: ReportFormat) {
    print!("{text}");
    if format == ReportFormat::Markdown
        && let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty())
    {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{text}"));
        if let Err(error) = written {
            eprintln!(
                "warning: cannot append to $GITHUB_STEP_SUMMARY (`{}`): {error}",
                Path::new(&path).display()
            );
        }
    }
}

/// The one group of `summary` that `selector` (`agent=x,model=y,stage=z`) picks.
fn select<'s>(summary: &'s Summary, selector: &str) -> Result<&'s SummaryRow, ReportError> {
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((key @ ("agent" | "model" | "stage"), value)) => wanted.push((key, value)),
            _ => return Err(ReportError::BadSelector(selector.to_string())),
        }
    }
    if wanted.is_empty() {
        return Err(ReportError::BadSelector(selector.to_string()));
    }
    let matches: Vec<&SummaryRow> = summary
        .rows
        .iter()
        .filter(|row| {
            wanted.iter().all(|(key, value)| match *key {
                "agent" => row.agent == *value,
                "stage" => row.stage == *value,
                _ => row.model.as_deref() == Some(*value),
            })
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ReportError::NoGroup(
            selector.to_string(),
            summary
                .rows
                .iter()
                .map(SummaryRow::label)
                .collect::<Vec<_>>()
                .join("; "),
        )),
        many => Err(ReportError::ManyGroups(selector.to_string(), many.len())),
    }
}
