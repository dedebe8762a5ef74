//! `helios plan PIPELINE`: what `apply` would do — trials per stage, done, changed, new,
//! and the image builds.

use std::path::Path;

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};
use serde::Serialize;

use super::{ExitStatus, Format};
use crate::dataset::Cache;
use crate::diagnostic::render;
use crate::env::{Builds, Engine, OpenOptions, Provider};
use crate::manifest::{SourceOptions, load_pipeline_with};
use crate::plan::cost::WorstCase;
use crate::plan::lock::{LockFile, SourceChange, source_changes};
use crate::plan::shard::Shard;
use crate::plan::status::{Assessment, Counts, TrialState};
use crate::plan::{ImageSource, Plan};
use crate::report::memory;
use crate::runner::{ApplyOptions, Budget};

pub(super) async fn run(
    path: &Path,
    format: Format,
    write_lock: bool,
    output_dir: Option<&Path>,
    shard: Option<Shard>,
    styled: bool,
) -> ExitStatus {
    let bars = super::datasets::Bars::new();
    let options = SourceOptions {
        cache: Cache::from_env(),
        progress: &bars,
    };
    let loaded = load_pipeline_with(path, &options);
    drop(bars);
    let loaded = match loaded {
        Ok(mut loaded) => {
            super::apply::redirect_output(&mut loaded.value, output_dir);
            loaded
        }
        Err(error) => {
            match format {
                Format::Json => println!("{}", render::json(&error.report, 0)),
                Format::Human => {
                    eprint!("{}", render::human(&error.report, styled));
                    eprintln!(
                        "error: `{}` is not valid; nothing was planned",
                        path.display()
                    );
                }
            }
            return ExitStatus::Invalid;
        }
    };
    if format == Format::Human && !loaded.warnings.diagnostics.is_empty() {
        eprint!("{}", render::human(&loaded.warnings, styled));
    }
    let plan = match Plan::of(&loaded.value) {
        Ok(plan) => match shard {
            Some(shard) => plan.shard(shard),
            None => plan,
        },
        Err(error) => {
            eprintln!("error: cannot plan `{}`: {error}", path.display());
            return ExitStatus::Invalid;
        }
    };
    let assessment = Assessment::of(&plan);
    // Against the lock file of the last plan or run: which sources moved, and what that
    // changed.
    let changes: Vec<SourceChange> = match LockFile::read(&plan.run_dir) {
        Ok(Some(lock)) => source_changes(&lock.sources, &plan.sources)
            .into_iter()
            .filter(|c| !c.new_source)
            .collect(),
        _ => Vec::new(),
    };
    let installed = installed_volumes(&plan).await;
    let budget = ApplyOptions::default().budget(&loaded.value);
    let concurrency = loaded.value.manifest.pipeline.concurrency as usize;
    let worst = WorstCase::of(&loaded.value, &plan, &assessment.states);
    let lock_path = if write_lock {
        match LockFile::of(&plan).write(&plan.run_dir) {
            Ok(path) => Some(path),
            Err(error) => {
                eprintln!(
                    "error: cannot write the lock file in `{}`: {error}",
                    plan.run_dir.display()
                );
                return ExitStatus::Invalid;
            }
        }
    } else {
        None
    };
    match format {
        Format::Json => println!(
            "{}",
            json(
                &plan,
                &assessment,
                &changes,
                &installed,
                budget,
                concurrency,
                worst
            )
        ),
        Format::Human => {
            print!(
                "{}",
                super::datasets::sources_section(path, &loaded.value.sources)
            );
            for change in &changes {
                println!("  changed: {}", change.describe());
            }
            if !loaded.value.sources.is_empty() {
                println!();
            }
            print!(
                "{}",
                human(
                    &plan,
                    &assessment,
                    &installed,
                    lock_path.as_deref(),
                    budget,
                    concurrency
                )
            );
            println!("{}", worst.describe());
        }
    }
    if assessment.total().to_run() == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::WorkToDo
    }
}

/// Whether each of the plan's agent installs is on this machine already (`None`: the
/// engine that installs agents could not be asked).
async fn installed_volumes(plan: &Plan) -> Vec<Option<bool>> {
    if plan.installs.is_empty() {
        return Vec::new();
    }
    let installs = Provider::all().find(|p| plan.uses(*p) && p.capabilities().installed_agents);
    let options = OpenOptions {
        docker_calls: 2,
        ..OpenOptions::default()
    };
    let host = |name: &str| std::env::var(name).ok();
    let engine = match installs {
        Some(provider) => Engine::open(provider, &options, &host).await.ok(),
        None => None,
    };
    let Some(engine) = engine else {
        return vec![None; plan.installs.len()];
    };
    let mut found = Vec::new();
    for install in &plan.installs {
        found.push(engine.volume_exists(&install.volume).await.ok());
    }
    found
}

fn human(
    plan: &Plan,
    assessment: &Assessment,
    installed: &[Option<bool>],
    lock: Option<&Path>,
    budget: Budget,
    concurrency: usize,
) -> String {
    let mut out = format!(
        "plan for `{}` → {}\n\n",
        plan.pipeline,
        plan.run_dir.display()
    );
    if let Some(sharded) = &plan.shard {
        out.push_str(&format!(
            "shard {}: {} of the plan's {} trials (`helios merge` combines the shards into {})\n\n",
            sharded.shard,
            plan.trials.len(),
            sharded.whole_trials,
            sharded.whole_run_dir.display()
        ));
    }
    let mut table = Table::new();
    table.load_preset(NOTHING);
    table.set_header(vec![
        "stage", "needs", "trials", "done", "changed", "new", "provider", "gate",
    ]);
    for stage in &plan.stages {
        let counts = assessment.counts(stage.trials.clone());
        let gate = stage.gate.as_ref().map_or_else(String::new, |g| {
            format!(
                "tasks where `{}` reached ≥ {} in `{}`",
                g.agent, g.min_reward, g.stage
            )
        });
        let needs = if stage.needs.is_empty() {
            "-".to_string()
        } else {
            stage.needs.join(", ")
        };
        table.add_row(vec![
            stage.name.clone(),
            needs,
            counts.trials.to_string(),
            counts.done.to_string(),
            counts.changed.to_string(),
            counts.new.to_string(),
            stage.provider.to_string(),
            gate,
        ]);
    }
    for column in 2..6 {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    out.push_str(&table.to_string());
    out.push_str("\n\n");
    let prebuilt = plan
        .tasks
        .iter()
        .filter(|t| matches!(t.image, ImageSource::Prebuilt(_) | ImageSource::Pull { .. }))
        .count();
    // A shard builds only what its own trials need.
    let needed: std::collections::BTreeSet<usize> = plan
        .trials
        .iter()
        .flat_map(|t| plan.tasks[t.task as usize].builds())
        .collect();
    let shown = |b: &usize| plan.shard.is_none() || needed.contains(b);
    out.push_str(&format!(
        "image builds: {}",
        (0..plan.builds.len()).filter(shown).count()
    ));
    for remote in
        Provider::all().filter(|p| plan.uses(*p) && p.capabilities().builds != Builds::Here)
    {
        out.push_str(&format!(" ({} builds its own images)", remote.title()));
    }
    if prebuilt > 0 {
        out.push_str(&format!(" ({prebuilt} task(s) use a prebuilt image)"));
    }
    out.push('\n');
    let fallback_of = |b: usize| {
        plan.tasks.iter().find_map(|t| match &t.image {
            ImageSource::Pull { image, fallback } if *fallback == b => Some(image.as_str()),
            _ => None,
        })
    };
    for (b, build) in plan.builds.iter().enumerate().filter(|(b, _)| shown(b)) {
        let when = match fallback_of(b) {
            Some(image) if !plan.tasks.iter().any(|t| t.image == ImageSource::Build(b)) => {
                format!(" (only if `{image}` cannot be pulled, or with --rebuild)")
            }
            _ => String::new(),
        };
        out.push_str(&format!(
            "  {}  for {} task(s){when}\n",
            build.tag,
            build.tasks.len()
        ));
    }
    let mut pulls: Vec<(&str, Vec<&str>)> = Vec::new();
    for task in &plan.tasks {
        if let ImageSource::Pull { image, .. } | ImageSource::Prebuilt(image) = &task.image {
            match pulls.iter_mut().find(|(i, _)| i == image) {
                Some((_, tasks)) => tasks.push(&task.name),
                None => pulls.push((image, vec![&task.name])),
            }
        }
    }
    if !pulls.is_empty() {
        out.push_str(&format!(
            "prebuilt images: {} (pulled if missing)\n",
            pulls.len()
        ));
        for (image, tasks) in pulls {
            out.push_str(&format!("  {image}  for {}\n", tasks.join(", ")));
        }
    }
    if !plan.installs.is_empty() {
        let to_do = installed.iter().filter(|i| **i != Some(true)).count();
        out.push_str(&format!(
            "agent installs: {} ({to_do} to install)\n",
            plan.installs.len()
        ));
        for (install, found) in plan.installs.iter().zip(installed) {
            out.push_str(&format!(
                "  {}  for {}: {}\n",
                install.volume,
                install.agents.join(", "),
                match found {
                    Some(true) => "installed",
                    Some(false) => "to install",
                    None => "unknown (cannot ask Docker)",
                }
            ));
        }
    }
    if !plan.skipped.is_empty() {
        out.push_str(&format!(
            "skipped as invalid (`on_invalid = \"skip\"`): {} task(s)\n",
            plan.skipped.len()
        ));
        for task in &plan.skipped {
            out.push_str(&format!("  {}\n", task.name));
            for problem in &task.problems {
                out.push_str(&format!("    {problem}\n"));
            }
        }
    }
    out.push_str(&format!("\n{}\n", resources_line(&budget, concurrency)));
    let total = assessment.total();
    out.push('\n');
    if total.to_run() == 0 {
        out.push_str(&format!(
            "nothing to do: all {} trials are done\n",
            total.trials
        ));
    } else {
        out.push_str(&format!(
            "{} trial(s) to run ({} new, {} changed), {} already done\n",
            total.to_run(),
            total.new,
            total.changed,
            total.done
        ));
    }
    if plan.stages.iter().any(|s| s.gate.is_some()) {
        out.push_str(
            "gated stages run only the tasks their gate admits; their counts are upper bounds\n",
        );
    }
    if let Some(lock) = lock {
        out.push_str(&format!("lock file written: {}\n", lock.display()));
    }
    out
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    pipeline: &'a str,
    run_dir: &'a Path,
    helios_version: &'static str,
    /// With `--shard I/N`: which part of the plan this is (its trials are the part's).
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<JsonShard<'a>>,
    to_run: usize,
    totals: Counts,
    worst_case_cost: WorstCase,
    stages: Vec<JsonStage<'a>>,
    builds: Vec<JsonBuild<'a>>,
    installs: Vec<JsonInstall<'a>>,
    /// What `apply` may use on this machine at once, with no `--cpus` / `--memory`.
    budget: Budget,
    concurrency: usize,
    /// The git and dataset sources as resolved (commits, tree ids).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    sources: &'a [crate::plan::lock::LockedSource],
    /// Sources that resolve differently from the lock file, described.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    source_changes: Vec<String>,
    /// Invalid tasks left out (`on_invalid = "skip"`), with their problems.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    skipped_tasks: &'a [crate::manifest::SkippedTask],
    trials: Vec<JsonTrial<'a>>,
}

#[derive(Serialize)]
struct JsonShard<'a> {
    index: u32,
    count: u32,
    /// Trials of the whole plan.
    whole_trials: usize,
    whole_run_dir: &'a Path,
}

#[derive(Serialize)]
struct JsonStage<'a> {
    name: &'a str,
    needs: &'a [String],
    gate: Option<&'a crate::manifest::pipeline::Gate>,
    provider: crate::env::Provider,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Serialize)]
struct JsonBuild<'a> {
    tag: &'a str,
    digest: String,
    context: &'a Path,
    tasks: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonInstall<'a> {
    volume: &'a str,
    agent: &'a str,
    version: &'a str,
    agents: &'a [String],
    /// `null` when Docker could not be asked.
    installed: Option<bool>,
}

#[derive(Serialize)]
struct JsonTrial<'a> {
    id: String,
    stage: &'a str,
    task: &'a str,
    agent: &'a str,
    model: Option<&'a str>,
    params: &'a std::collections::BTreeMap<String, serde_json::Value>,
    attempt: u32,
    state: TrialState,
    dir: std::path::PathBuf,
}

/// The budget and policy, for people.
fn resources_line(budget: &Budget, concurrency: usize) -> String {
    use crate::runner::ResourcePolicy;
    let at_once = format!(
        "{} build(s) and up to {concurrency} trial(s) at once",
        budget.builds
    );
    let memory = memory(budget.memory_mb);
    match budget.policy {
        ResourcePolicy::Adaptive => format!(
            "resources (adaptive): {memory} of memory and {} CPU(s) on this machine, {at_once}; a trial starts when its task's memory fits and its cpus fit in the {} CPU(s), or else while CPU pressure stays under {:.0}%{}",
            budget.cpus,
            budget.cpus,
            budget.pressure_target.unwrap_or_default() * 100.0,
            budget
                .max_cpus
                .map(|max| format!(" and the cpus of running trials stay within {max}"))
                .unwrap_or_default()
        ),
        ResourcePolicy::Reserve => format!(
            "resources (reserve): {} CPU(s) and {memory} of memory on this machine, {at_once}; a trial starts when its task's cpus and memory fit",
            budget.cpus
        ),
        ResourcePolicy::None => {
            format!("resources (none): {at_once}; only concurrency bounds the trials")
        }
    }
}

fn json(
    plan: &Plan,
    assessment: &Assessment,
    changes: &[SourceChange],
    installed: &[Option<bool>],
    budget: Budget,
    concurrency: usize,
    worst_case_cost: WorstCase,
) -> String {
    let totals = assessment.total();
    let doc = JsonPlan {
        pipeline: &plan.pipeline,
        run_dir: &plan.run_dir,
        helios_version: env!("CARGO_PKG_VERSION"),
        shard: plan.shard.as_ref().map(|s| JsonShard {
            index: s.shard.index,
            count: s.shard.count,
            whole_trials: s.whole_trials,
            whole_run_dir: &s.whole_run_dir,
        }),
        to_run: totals.to_run(),
        totals,
        budget,
        concurrency,
        worst_case_cost,
        sources: &plan.sources,
        source_changes: changes.iter().map(SourceChange::describe).collect(),
        skipped_tasks: &plan.skipped,
        stages: plan
            .stages
            .iter()
            .map(|s| JsonStage {
                name: &s.name,
                needs: &s.needs,
                gate: s.gate.as_ref(),
                provider: s.provider,
                counts: assessment.counts(s.trials.clone()),
            })
            .collect(),
        builds: plan
            .builds
            .iter()
            .map(|b| JsonBuild {
                tag: &b.tag,
                digest: b.digest.hex(),
                context: &b.context,
                tasks: b
                    .tasks
                    .iter()
                    .map(|&t| plan.tasks[t].name.as_str())
                    .collect(),
            })
            .collect(),
        installs: plan
            .installs
            .iter()
            .zip(installed)
            .map(|(i, &installed)| JsonInstall {
                volume: &i.volume,
                agent: &i.recipe.agent,
                version: &i.recipe.version,
                agents: &i.agents,
                installed,
            })
            .collect(),
        trials: plan
            .trials
            .iter()
            .zip(&assessment.states)
            .map(|(t, &state)| JsonTrial {
                id: t.id.short(),
                stage: &plan.stages[t.stage as usize].name,
                task: &plan.tasks[t.task as usize].name,
                agent: &plan.agents[t.agent as usize].name,
                model: plan.model_name(t),
                params: &plan.params[t.params as usize],
                attempt: t.attempt,
                state,
                dir: plan.trial_dir(t),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).expect("plans serialize")
}
