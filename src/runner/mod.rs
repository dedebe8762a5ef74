//! The runner: executes a plan's DAG. Image builds, stage gates, trials and the final
//! report run as their predecessors finish, under a bound on concurrent trials; a
//! cancellation token stops everything cleanly. It reports through [`RunEvent`]s and never
//! prints.

pub mod events;
pub mod prepare;
pub mod trial;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use petgraph::Direction;
use petgraph::graph::NodeIndex;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use events::{BuildOutcome, RunEvent, SkipReason};
pub use prepare::{TrialSetup, prepare};

use crate::env::Provider;
use crate::env::daytona::Credentials;
use crate::env::{Engine, EnvError, Labels, OpenOptions};
use crate::manifest::Pipeline;
use crate::plan::lock::LockFile;
use crate::plan::status::{Assessment, TrialState};
use crate::plan::{Node, Plan};
use crate::results::summary::Summary;
use crate::results::trial::TrialResult;
use crate::results::{TrialStatus, write_atomic};

/// How to run.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Build images even when one with the same digest exists.
    pub rebuild: bool,
    /// Infrastructure failures retried per trial and per build.
    pub retries: u32,
    /// Labels added to every container and image (`--label key=value`).
    pub labels: BTreeMap<String, String>,
    /// Concurrent trials; the pipeline's `concurrency` unless overridden.
    pub concurrency: Option<usize>,
    /// Daytona credentials, instead of the `DAYTONA_*` environment variables.
    pub daytona: Option<Credentials>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            rebuild: false,
            retries: 2,
            labels: BTreeMap::new(),
            concurrency: None,
            daytona: None,
        }
    }
}

/// Why a run could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the run cannot start:\n  - {}", .0.join("\n  - "))]
    Preflight(Vec<String>),
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_dir: PathBuf,
    /// Results of every trial that has one: run now or done before, in plan order.
    pub results: Vec<TrialResult>,
    /// Trials run by this apply.
    pub ran: usize,
    /// Trials skipped because a finished result existed.
    pub already_done: usize,
    pub gated_out: usize,
    pub not_started: usize,
    pub cancelled: bool,
    pub summary: Summary,
}

impl RunOutcome {
    pub fn count(&self, status: TrialStatus) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

/// Everything the node tasks share.
struct Shared {
    plan: Plan,
    setups: Vec<TrialSetup>,
    states: Vec<TrialState>,
    /// One engine per provider the plan's trials use.
    engines: BTreeMap<Provider, Engine>,
    labels: Labels,
    options: ApplyOptions,
    cancel: CancellationToken,
    events: UnboundedSender<RunEvent>,
    trials: Semaphore,
    builds: Vec<OnceCell<Result<(), EnvError>>>,
    build_logs: Vec<PathBuf>,
    admitted: Vec<OnceCell<Option<HashSet<u32>>>>,
    /// Prebuilt images that could not be pulled, with why.
    missing_images: BTreeMap<String, EnvError>,
    results: Mutex<Vec<Option<TrialResult>>>,
    skipped: Mutex<Vec<SkipReason>>,
    summary_error: OnceCell<RunError>,
}

/// Runs `plan` (made from `pipeline`) to the end or until `cancel` fires. It connects to
/// the providers its trials use (Docker, Daytona) and checks them before any trial starts.
pub async fn apply(
    pipeline: &Pipeline,
    plan: Plan,
    options: ApplyOptions,
    cancel: CancellationToken,
    events: UnboundedSender<RunEvent>,
) -> Result<RunOutcome, RunError> {
    let credentials = options.daytona.clone();
    let host = move |name: &str| match &credentials {
        Some(credentials) if name.starts_with("DAYTONA_") => credentials.lookup(name),
        _ => std::env::var(name).ok(),
    };
    let setups = prepare(pipeline, &plan, &host).map_err(RunError::Preflight)?;
    let engines = open_engines(pipeline, &plan, &host, &events).await?;
    let states = Assessment::of(&plan).states;
    let mut previous: Vec<Option<TrialResult>> = vec![None; plan.trials.len()];
    for (i, state) in states.iter().enumerate() {
        if *state == TrialState::Done {
            previous[i] = read_result(&setups[i].dir);
        }
    }
    let lock_path = plan.run_dir.join(crate::plan::lock::LOCK_FILE);
    LockFile::of(&plan)
        .write(&plan.run_dir)
        .map_err(|source| RunError::Write {
            path: lock_path,
            source,
        })?;
    let done = states.iter().filter(|s| **s == TrialState::Done).count();
    let _ = events.send(RunEvent::Started {
        run_dir: plan.run_dir.clone(),
        trials: plan.trials.len(),
        to_run: plan.trials.len() - done,
        done,
        builds: plan.builds.len(),
    });
    let concurrency = options
        .concurrency
        .unwrap_or(pipeline.manifest.pipeline.concurrency as usize)
        .max(1);
    let build_logs = plan
        .builds
        .iter()
        .map(|b| {
            plan.run_dir
                .join("builds")
                .join(format!("{}.log", b.tag.replace(['/', ':'], "_")))
        })
        .collect();
    let missing_images = ensure_prebuilt_images(&plan, &states, &engines).await;
    let shared = Arc::new(Shared {
        missing_images,
        labels: Labels::new(&plan.pipeline, options.labels.clone()),
        builds: plan.builds.iter().map(|_| OnceCell::new()).collect(),
        admitted: plan.stages.iter().map(|_| OnceCell::new()).collect(),
        skipped: Mutex::new(vec![SkipReason::Done; plan.trials.len()]),
        summary_error: OnceCell::new(),
        results: Mutex::new(previous),
        trials: Semaphore::new(concurrency),
        build_logs,
        plan,
        setups,
        states,
        engines,
        options,
        cancel,
        events,
    });
    dispatch(shared.clone()).await;
    finish(&shared)
}

/// Connects to every provider the plan uses, and removes what dead runs left there. A
/// missing or refused Daytona key stops the run here, before any trial.
async fn open_engines(
    pipeline: &Pipeline,
    plan: &Plan,
    host: &(dyn Fn(&str) -> Option<String> + Sync),
    events: &UnboundedSender<RunEvent>,
) -> Result<BTreeMap<Provider, Engine>, RunError> {
    let options = OpenOptions {
        daytona: pipeline
            .manifest
            .environment
            .daytona
            .clone()
            .unwrap_or_default(),
        ..OpenOptions::default()
    };
    let mut engines = BTreeMap::new();
    for provider in [Provider::Docker, Provider::Daytona] {
        if !plan.uses(provider) {
            continue;
        }
        let preflight = |error: EnvError| match error {
            EnvError::Auth(message) => RunError::Preflight(vec![message]),
            other => RunError::Env(other),
        };
        let engine = Engine::open(provider, &options, host)
            .await
            .map_err(preflight)?;
        let count = engine.reap_dead_runs().await.map_err(preflight)?;
        if count > 0 {
            let _ = events.send(RunEvent::Reaped { provider, count });
        }
        engines.insert(provider, engine);
    }
    Ok(engines)
}

/// Pulls the prebuilt images of Docker trials that will run; the ones that fail are
/// returned.
async fn ensure_prebuilt_images(
    plan: &Plan,
    states: &[TrialState],
    engines: &BTreeMap<Provider, Engine>,
) -> BTreeMap<String, EnvError> {
    let Some(Engine::Docker(engine)) = engines.get(&Provider::Docker) else {
        return BTreeMap::new();
    };
    let mut images: Vec<&str> = plan
        .trials
        .iter()
        .zip(states)
        .filter(|(t, state)| **state != TrialState::Done && plan.provider(t) == Provider::Docker)
        .filter_map(|(t, _)| match &plan.tasks[t.task as usize].image {
            crate::plan::ImageSource::Prebuilt(image) => Some(image.as_str()),
            crate::plan::ImageSource::Build(_) => None,
        })
        .collect();
    images.sort_unstable();
    images.dedup();
    let mut missing = BTreeMap::new();
    for image in images {
        if let Err(error) = engine.ensure_image(image).await {
            missing.insert(image.to_string(), error);
        }
    }
    missing
}

fn read_result(dir: &std::path::Path) -> Option<TrialResult> {
    serde_json::from_slice(&std::fs::read(dir.join("result.json")).ok()?).ok()
}

/// Starts every node whose predecessors are finished, until all are.
async fn dispatch(shared: Arc<Shared>) {
    let graph = &shared.plan.graph;
    let mut waiting: Vec<usize> = graph
        .node_indices()
        .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut running: JoinSet<NodeIndex> = JoinSet::new();
    let start = |node: NodeIndex, running: &mut JoinSet<NodeIndex>| {
        let shared = shared.clone();
        running.spawn(async move {
            run_node(&shared, node).await;
            node
        });
    };
    for node in graph.node_indices().filter(|n| waiting[n.index()] == 0) {
        start(node, &mut running);
    }
    while let Some(finished) = running.join_next().await {
        let node = finished.expect("node tasks do not panic");
        for next in graph.neighbors_directed(node, Direction::Outgoing) {
            waiting[next.index()] -= 1;
            if waiting[next.index()] == 0 {
                start(next, &mut running);
            }
        }
    }
}

async fn run_node(shared: &Shared, node: NodeIndex) {
    match shared.plan.graph[node] {
        Node::Build(b) => build(shared, b).await,
        Node::Gate(s) => {
            let admitted = admitted_tasks(shared, s);
            let _ = shared.admitted[s].set(admitted);
        }
        Node::Trial(t) => run_trial(shared, t).await,
        Node::Report => {
            if let Err(error) = write_summary(shared) {
                let _ = shared.summary_error.set(error);
            }
        }
    }
}

async fn build(shared: &Shared, b: usize) {
    let plan = &shared.plan;
    let image = &plan.builds[b];
    let users: Vec<Provider> = plan
        .trials
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            shared.states[*i] != TrialState::Done
                && matches!(plan.tasks[t.task as usize].image, crate::plan::ImageSource::Build(x) if x == b)
        })
        .map(|(_, t)| plan.provider(t))
        .collect();
    if !users.contains(&Provider::Docker) {
        // Remote providers build the image themselves, from the Dockerfile's text.
        let outcome = if users.is_empty() {
            BuildOutcome::NotNeeded
        } else {
            BuildOutcome::Remote
        };
        let _ = shared.events.send(RunEvent::BuildFinished {
            tag: image.tag.clone(),
            outcome,
            seconds: 0.0,
        });
        let _ = shared.builds[b].set(Ok(()));
        return;
    }
    let started = Instant::now();
    let _ = shared.events.send(RunEvent::BuildStarted {
        tag: image.tag.clone(),
    });
    let outcome = build_image(shared, b).await;
    let _ = shared.events.send(RunEvent::BuildFinished {
        tag: image.tag.clone(),
        outcome: match &outcome {
            Ok(true) => BuildOutcome::Built,
            Ok(false) => BuildOutcome::Cached,
            Err(_) => BuildOutcome::Failed,
        },
        seconds: started.elapsed().as_secs_f64(),
    });
    let _ = shared.builds[b].set(outcome.map(|_| ()));
}

/// Builds (or finds) image `b` with Docker; `Ok(true)` when it was built now.
async fn build_image(shared: &Shared, b: usize) -> Result<bool, EnvError> {
    let image = &shared.plan.builds[b];
    let Some(Engine::Docker(docker)) = shared.engines.get(&Provider::Docker) else {
        return Err(EnvError::Unsupported(
            "an image build without a Docker engine".into(),
        ));
    };
    if !shared.options.rebuild && docker.image_exists(&image.tag).await? {
        let log = &shared.build_logs[b];
        if !log.exists() {
            let note = format!(
                "image {} already existed (same environment digest); not rebuilt\n",
                image.tag
            );
            write_atomic(log, note.as_bytes()).map_err(|e| EnvError::Io(e.to_string()))?;
        }
        return Ok(false);
    }
    let first = &shared.plan.tasks[image.tasks[0]];
    let timeout = shared
        .setups
        .iter()
        .find(|s| s.task.name == first.name)
        .map_or(std::time::Duration::from_secs(600), |s| {
            s.task.build_timeout
        });
    let labels = shared.labels.image(&first.name);
    let mut failures = 0;
    loop {
        let result = docker
            .build(
                &image.context,
                &image.tag,
                &labels,
                timeout,
                &shared.build_logs[b],
            )
            .await;
        match result {
            Ok(()) => return Ok(true),
            Err(e)
                if failures < shared.options.retries
                    && e.is_retryable()
                    && !shared.cancel.is_cancelled() =>
            {
                failures += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The tasks a gated stage admits (`None`: all of them).
fn admitted_tasks(shared: &Shared, s: usize) -> Option<HashSet<u32>> {
    let plan = &shared.plan;
    let stage = &plan.stages[s];
    let gate = stage.gate.as_ref()?;
    let from = plan.stages.iter().find(|x| x.name == gate.stage)?;
    let results = shared.results.lock().expect("results lock");
    let admitted: HashSet<u32> = from
        .trials
        .clone()
        .filter(|&t| plan.agents[plan.trials[t].agent as usize].name == gate.agent)
        .filter(|&t| {
            results[t]
                .as_ref()
                .and_then(|r| r.reward)
                .is_some_and(|r| r >= gate.min_reward)
        })
        .map(|t| plan.trials[t].task)
        .collect();
    let tasks: HashSet<u32> = stage.trials.clone().map(|t| plan.trials[t].task).collect();
    let _ = shared.events.send(RunEvent::StageGated {
        stage: stage.name.clone(),
        admitted: tasks.intersection(&admitted).count(),
        tasks: tasks.len(),
    });
    Some(admitted)
}

async fn run_trial(shared: &Shared, t: usize) {
    let plan = &shared.plan;
    let trial = &plan.trials[t];
    let skip = |reason| {
        shared.skipped.lock().expect("skip lock")[t] = reason;
        let _ = shared
            .events
            .send(RunEvent::TrialSkipped { index: t, reason });
    };
    if shared.states[t] == TrialState::Done {
        return skip(SkipReason::Done);
    }
    let gate = shared.admitted[trial.stage as usize]
        .get()
        .and_then(Option::as_ref);
    if gate.is_some_and(|admitted| !admitted.contains(&trial.task)) {
        return skip(SkipReason::GatedOut);
    }
    let Ok(_permit) = shared.trials.acquire().await else {
        return;
    };
    if shared.cancel.is_cancelled() {
        return skip(SkipReason::Cancelled);
    }
    let setup = &shared.setups[t];
    let build = setup.task.build;
    let build_error = build
        .and_then(|b| shared.builds[b].get().and_then(|r| r.as_ref().err()))
        .or_else(|| shared.missing_images.get(&setup.task.image));
    let env = trial::TrialEnv {
        engine: shared
            .engines
            .get(&setup.provider)
            .expect("an engine is open for every provider the plan uses"),
        labels: &shared.labels,
        cancel: &shared.cancel,
        events: &shared.events,
        retries: shared.options.retries,
        build_log: build.map(|b| shared.build_logs[b].as_path()),
    };
    let result = trial::run(setup, &env, build_error).await;
    shared.results.lock().expect("results lock")[t] = Some(result);
}

/// The results that exist, in plan order: run now or done before.
fn existing_results(shared: &Shared) -> Vec<TrialResult> {
    shared
        .results
        .lock()
        .expect("results lock")
        .iter()
        .flatten()
        .cloned()
        .collect()
}

/// The report node: `summary.json` from every result there is.
fn write_summary(shared: &Shared) -> Result<(), RunError> {
    let results = existing_results(shared);
    let summary = Summary::of(&shared.plan.pipeline, &results.iter().collect::<Vec<_>>());
    let path = shared.plan.run_dir.join("summary.json");
    let mut bytes = serde_json::to_vec_pretty(&summary).expect("summaries serialize");
    bytes.push(b'\n');
    write_atomic(&path, &bytes).map_err(|source| RunError::Write { path, source })
}

fn finish(shared: &Shared) -> Result<RunOutcome, RunError> {
    if let Some(error) = shared.summary_error.get() {
        return Err(RunError::Write {
            path: shared.plan.run_dir.join("summary.json"),
            source: std::io::Error::other(error.to_string()),
        });
    }
    let plan = &shared.plan;
    let results = std::mem::take(&mut *shared.results.lock().expect("results lock"));
    let skipped = shared.skipped.lock().expect("skip lock").clone();
    let (mut ran, mut already_done, mut gated_out, mut not_started) = (0, 0, 0, 0);
    for (t, result) in results.iter().enumerate() {
        match (result, shared.states[t]) {
            (Some(_), TrialState::Done) => already_done += 1,
            (Some(_), _) => ran += 1,
            (None, _) if skipped[t] == SkipReason::GatedOut => gated_out += 1,
            (None, _) => not_started += 1,
        }
    }
    let results: Vec<TrialResult> = results.into_iter().flatten().collect();
    let summary = Summary::of(&plan.pipeline, &results.iter().collect::<Vec<_>>());
    let _ = shared.events.send(RunEvent::Finished);
    Ok(RunOutcome {
        run_dir: plan.run_dir.clone(),
        results,
        ran,
        already_done,
        gated_out,
        not_started,
        cancelled: shared.cancel.is_cancelled(),
        summary,
    })
}
