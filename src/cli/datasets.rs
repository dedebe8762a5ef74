//! `helios datasets list|pull|verify`, the progress bars of source fetches (used by
//! `plan` and `apply` too), and the lines that say how each source was resolved.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use comfy_table::Table;
use comfy_table::presets::NOTHING;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::ExitStatus;
use crate::dataset::{self, Cache, DatasetError, Event, Progress, Registry, Resolved, Spec};
use crate::diagnostic::suggestion_hint;
use crate::manifest::PipelineSource;

/// Progress of fetches and checkouts: bars on a terminal, one line per download
/// otherwise (so logs say what was fetched).
pub(super) struct Bars {
    multi: Option<MultiProgress>,
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    fetch: Option<ProgressBar>,
    tasks: Option<ProgressBar>,
}

impl Bars {
    pub(super) fn new() -> Bars {
        Bars {
            multi: std::io::stderr().is_terminal().then(MultiProgress::new),
            state: Mutex::new(BarState::default()),
        }
    }

    fn bar(&self, total: Option<usize>, template: &str) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let bar = match total {
            Some(n) => ProgressBar::new(n as u64),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(multi.add(bar))
    }

    fn line(&self, text: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

impl Progress for Bars {
    fn event(&self, event: Event) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Fetching { what } => {
                if self.multi.is_none() {
                    eprintln!("fetching {what}");
                }
                state.fetch = self.bar(None, "{spinner} fetching {msg} {elapsed}");
                if let Some(bar) = &state.fetch {
                    bar.set_message(what);
                }
            }
            Event::Fetched { what } => {
                if let Some(bar) = state.fetch.take() {
                    bar.finish_and_clear();
                }
                self.line(format!("fetched {what}"));
            }
            Event::Tasks { total } | Event::Checking { total } => {
                if let Some(bar) = state.tasks.take() {
                    bar.finish_and_clear();
                }
                state.tasks = self.bar(
                    Some(total),
                    "{bar:30} {pos}/{len} task director(ies) {elapsed}",
                );
            }
            Event::TaskDone | Event::Checked => {
                if let Some(bar) = &state.tasks {
                    bar.inc(1);
                    if bar.position() >= bar.length().unwrap_or(0) {
                        bar.finish_and_clear();
                    }
                }
            }
            Event::Repairing { what } => {
                self.line(format!(
                    "cache entry `{what}` does not match its tree id; checking it out again"
                ));
            }
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Ok(state) = self.state.get_mut() {
            for bar in [state.fetch.take(), state.tasks.take()]
                .into_iter()
                .flatten()
            {
                bar.finish_and_clear();
            }
        }
    }
}

/// How a source resolved: its tasks, commits, and whether anything was downloaded.
pub(super) fn describe(resolved: &Resolved) -> String {
    let mut commits: Vec<&str> = resolved
        .tasks
        .iter()
        .map(|t| t.origin.commit.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    commits.sort_unstable();
    commits.dedup();
    let at = match commits.as_slice() {
        [] => String::new(),
        [one] => format!(" at {}", &one[..one.len().min(12)]),
        many => format!(" at {} commits", many.len()),
    };
    let how = if resolved.fetches == 0 && resolved.checkouts == 0 {
        "cached".to_string()
    } else {
        format!(
            "{} fetch(es), {} checked out",
            resolved.fetches, resolved.checkouts
        )
    };
    format!(
        "{} → {} task(s){at} ({how})",
        resolved.label,
        resolved.tasks.len()
    )
}

/// The `sources:` section of `plan` and `apply`.
pub(super) fn sources_section(file: &Path, sources: &[PipelineSource]) -> String {
    if sources.is_empty() {
        return String::new();
    }
    let mut out = String::from("sources:\n");
    for source in sources {
        out.push_str(&format!(
            "  {}:{}  {}\n",
            file.display(),
            source.line,
            describe(&source.resolved)
        ));
        for note in &source.resolved.notes {
            out.push_str(&format!("    note: {note}\n"));
        }
    }
    out
}

fn registries_or_default(registries: Vec<String>) -> Vec<String> {
    if registries.is_empty() {
        vec![dataset::DEFAULT_REGISTRY.to_string()]
    } else {
        registries
    }
}

fn fail(error: &DatasetError) -> ExitStatus {
    eprintln!("error: {error}");
    let hint = match error {
        DatasetError::UnknownDataset { name, known, .. } => {
            suggestion_hint(name, known.iter().map(String::as_str))
        }
        DatasetError::UnknownVersion { version, versions, .. } => {
            suggestion_hint(version, versions.iter().map(String::as_str))
        }
        DatasetError::UnknownRev { rev, names, .. } => {
            suggestion_hint(rev, names.iter().map(String::as_str))
        }
        DatasetError::Unreachable { .. } => Some(
            "check the address and the network; what was fetched once is used from the cache offline"
                .to_string(),
        ),
        _ => None,
    };
    if let Some(hint) = hint {
        eprintln!("  = help: {hint}");
    }
    match error {
        DatasetError::Cache { .. } | DatasetError::Git { .. } => ExitStatus::Infrastructure,
        _ => ExitStatus::Invalid,
    }
}

/// `helios datasets list`: every dataset of the registries.
pub(super) fn list(registries: Vec<String>) -> ExitStatus {
    let cache = Cache::from_env();
    let bars = Bars::new();
    let mut table = Table::new();
    table.load_preset(NOTHING);
    table.set_header(vec![
        "dataset",
        "version",
        "tasks",
        "registry",
        "description",
    ]);
    for location in registries_or_default(registries) {
        let registry = match Registry::load(&location, &cache, &bars) {
            Ok(registry) => registry,
            Err(error) => return fail(&error),
        };
        if let Some(detail) = &registry.stale {
            eprintln!(
                "note: `{location}` is unreachable ({detail}); listing the copy in the cache"
            );
        }
        for d in &registry.datasets {
            table.add_row(vec![
                d.name.clone(),
                d.version.clone(),
                d.tasks.len().to_string(),
                location.clone(),
                d.description.lines().next().unwrap_or_default().to_string(),
            ]);
        }
    }
    drop(bars);
    println!("{table}");
    ExitStatus::Success
}

/// `helios datasets pull SPEC`: resolve and fetch a dataset or a git source into the
/// cache.
pub(super) fn pull(
    spec: &str,
    registries: Vec<String>,
    rev: Option<String>,
    path: Option<String>,
) -> ExitStatus {
    let is_git =
        rev.is_some() || path.is_some() || dataset::is_remote(spec) || Path::new(spec).is_dir();
    let spec = if is_git {
        Spec::Git {
            url: dataset::git_url(spec, Path::new(".")),
            rev,
            path: path.unwrap_or_else(|| "**".to_string()),
        }
    } else {
        Spec::dataset(spec, registries)
    };
    let cache = Cache::from_env();
    let bars = Bars::new();
    let outcome = dataset::resolve(&spec, &cache, &bars);
    drop(bars);
    match outcome {
        Ok(resolved) => {
            println!("{}", describe(&resolved));
            for note in &resolved.notes {
                println!("note: {note}");
            }
            println!("cache: {}", cache.root().display());
            ExitStatus::Success
        }
        Err(error) => fail(&error),
    }
}

/// `helios datasets verify`: every cache entry checked; damaged ones removed.
pub(super) fn verify() -> ExitStatus {
    let cache = Cache::from_env();
    let bars = Bars::new();
    let outcome = cache.verify(&bars);
    drop(bars);
    match outcome {
        Ok(report) => {
            println!(
                "{}: {} task checkout(s) and {} mirror(s) sound",
                cache.root().display(),
                report.tasks_ok,
                report.mirrors_ok
            );
            if report.removed.is_empty() {
                return ExitStatus::Success;
            }
            for path in &report.removed {
                println!("damaged, removed: {}", path.display());
            }
            println!(
                "{} damaged entr(ies) removed; they are fetched again when next used",
                report.removed.len()
            );
            ExitStatus::Invalid
        }
        Err(error) => fail(&error),
    }
}
