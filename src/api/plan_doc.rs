//! The plan as JSON, in one shape for every front end: `helios plan --format json` prints
//! it, Python's `helios.plan` reads it. Stages with their counts, builds, installs (and
//! whether this machine has them), trials with their states, budget and worst-case cost.

use std::path::Path;

use serde::Serialize;

use super::session::Session;
use crate::env::{Engine, OpenOptions, Provider};
use crate::plan::Plan;
use crate::plan::cost::WorstCase;
use crate::plan::lock::{LockFile, SourceChange, source_changes};
use crate::plan::status::{Assessment, Counts, TrialState};
use crate::runner::{ApplyOptions, Budget};

/// The plan of `session` as JSON, everything asked of this machine included.
pub async fn plan_json(session: &Session) -> String {
    let (pipeline, plan) = (session.pipeline(), session.plan());
    let assessment = Assessment::of(plan);
    let installed = installed_volumes(plan).await;
    json(
        plan,
        &assessment,
        &lock_changes(plan),
        &installed,
        ApplyOptions::default().budget(pipeline),
        pipeline.manifest.pipeline.concurrency as usize,
        WorstCase::of(pipeline, plan, &assessment.states),
    )
}

/// Against the lock file of the last plan or run: which sources moved, and what that
/// changed.
pub fn lock_changes(plan: &Plan) -> Vec<SourceChange> {
    match LockFile::read(&plan.run_dir) {
        Ok(Some(lock)) => source_changes(&lock.sources, &plan.sources)
            .into_iter()
            .filter(|c| !c.new_source)
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether each of the plan's agent installs is on this machine already (`None`: the
/// engine that installs agents could not be asked).
pub async fn installed_volumes(plan: &Plan) -> Vec<Option<bool>> {
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
    provider: Provider,
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

pub fn json(
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
