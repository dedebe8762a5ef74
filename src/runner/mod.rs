//! The runner: executes a plan's DAG. A [`Run`] is opened first (every trial resolved,
//! the providers connected and checked, the lock file written), then executed by a
//! dispatcher that owns the run's state: it starts image builds, evaluates stage gates,
//! queues trials under the concurrency bound, and hears from each build and trial by
//! message when it ends. It reports through [`RunEvent`]s and never prints.

mod artifacts;
mod health;
pub mod preflight;
pub mod prepare;
pub mod pressure;
pub mod regrade;
pub mod resources;
mod separate;
pub mod services;
pub mod trial;

#[cfg(test)]
mod shard_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use petgraph::Direction;
use petgraph::graph::NodeIndex;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use preflight::{Problem, ProblemKind, Problems};
pub use prepare::{TrialSetup, prepare};
pub use pressure::{PressureSource, ProcPressure};
pub use resources::{Budget, Demand, ResourcePolicy};
pub use trial::{CANCEL_GRACE, Grace};

use pressure::{Pressure, PressureGate, Sampler, Starting};
use resources::{Ledger, Verdict};

use crate::agent::installed::setup::{self, Fitness, SetupError};
use crate::env::{
    BuildSpec, Engine, EnvError, HostVariables, ImageUnfit, Labels, OpenOptions, Provider,
};
use crate::events::{BuildOutcome, RunEvent, SkipReason, TrialIndex, TrialStatus, WaitReason};
use crate::gateway::Gateway;
use crate::manifest::Pipeline;
use crate::plan::lock::LockFile;
use crate::plan::status::{Assessment, TrialState};
use crate::plan::{ImageSource, Node, Plan};
use crate::retry::RetryPolicy;
use crate::store::summary::Summary;
use crate::store::trial::TrialResult;
use crate::store::{RunStore, write_atomic};

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
    /// The variables providers read (their keys), with what the program gives instead of
    /// this process's environment.
    pub variables: HostVariables,
    /// CPUs the run may use on this machine at once (default: its cores).
    pub cpus: Option<f64>,
    /// Memory the run may use on this machine at once, in megabytes (default: all of it).
    pub memory_mb: Option<u64>,
    /// Image builds at once; the pipeline's `build_concurrency` unless overridden.
    pub build_concurrency: Option<usize>,
    /// How trials are admitted (`--resources`); the pipeline's `resources` unless
    /// overridden.
    pub resources: Option<ResourcePolicy>,
    /// How long an engine may leave a call unanswered before the run says so
    /// ([`RunEvent::EngineStalled`]): 30 s, or `HELIOS_ENGINE_STALL_SECS`.
    pub engine_stall: Duration,
}

/// How long an engine may leave a call unanswered before the run says so, unless
/// `HELIOS_ENGINE_STALL_SECS` says otherwise.
pub const ENGINE_STALL: Duration = Duration::from_secs(30);

/// `HELIOS_ENGINE_STALL_SECS` (seconds, fractions allowed) or [`ENGINE_STALL`].
pub fn engine_stall_from_env() -> Duration {
    std::env::var("HELIOS_ENGINE_STALL_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(ENGINE_STALL, Duration::from_secs_f64)
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            rebuild: false,
            retries: 2,
            labels: BTreeMap::new(),
            concurrency: None,
            variables: HostVariables::default(),
            cpus: None,
            memory_mb: None,
            build_concurrency: None,
            resources: None,
            engine_stall: engine_stall_from_env(),
        }
    }
}

impl ApplyOptions {
    /// How infrastructure failures are retried: `retries` times, with backoff.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::infrastructure(self.retries)
    }

    /// What trials and builds on this machine may use at once.
    pub fn budget(&self, pipeline: &Pipeline) -> Budget {
        let builds = self.build_concurrency.or(pipeline
            .manifest
            .pipeline
            .build_concurrency
            .map(|b| b as usize));
        let policy = self
            .resources
            .unwrap_or(pipeline.manifest.pipeline.resources);
        Budget::of_machine(policy, self.cpus, self.memory_mb, builds)
    }
}

/// Why a run could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Problems found before any trial started, each with its kind, task, agent and fix.
    #[error("the run cannot start:\n{0}")]
    Preflight(Problems),
    /// A provider the plan uses lacks its credentials on this host, or refused them.
    #[error("the run cannot start:\n{0}")]
    Credentials(Problems),
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One trial's ending, as the run saw it.
#[derive(Debug, Clone)]
pub struct TrialOutcome {
    pub index: TrialIndex,
    /// The trial's directory, where its result and files are.
    pub dir: PathBuf,
    pub result: TrialResult,
    /// Whether this run ran it (`false`: a result from an earlier run was kept).
    pub ran_now: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_dir: PathBuf,
    /// Every trial that has a result, run now or done before, in plan order.
    pub trials: Vec<TrialOutcome>,
    /// Trials run by this apply.
    pub ran: usize,
    /// Trials skipped because a finished result existed.
    pub already_done: usize,
    pub gated_out: usize,
    pub not_started: usize,
    /// Trials not started because the run's spend reached `[pipeline] max_cost_usd`
    /// (they are among `not_started`).
    pub over_budget: usize,
    /// What the trials run by this apply cost, in US dollars (where known).
    pub spent_usd: f64,
    pub cancelled: bool,
    pub summary: Summary,
}

impl RunOutcome {
    /// The results, in plan order.
    pub fn results(&self) -> impl Iterator<Item = &TrialResult> {
        self.trials.iter().map(|t| &t.result)
    }

    pub fn count(&self, status: TrialStatus) -> usize {
        self.results().filter(|r| r.status == status).count()
    }

    /// Trials whose infrastructure failed, counted apart from the agent's failures.
    pub fn infrastructure_errors(&self) -> usize {
        self.results()
            .filter(|r| r.error.as_ref().is_some_and(|e| e.kind.is_infrastructure()))
            .count()
    }
}

/// Runs `plan` (made from `pipeline`) to the end or until `cancel` fires: [`Run::open`],
/// then [`Run::execute`].
pub async fn apply(
    pipeline: &Pipeline,
    plan: Plan,
    options: ApplyOptions,
    cancel: CancellationToken,
    events: UnboundedSender<RunEvent>,
) -> Result<RunOutcome, RunError> {
    Run::open(pipeline, plan, options, &events)
        .await?
        .execute(cancel, events)
        .await
}

/// A run that is ready to execute: every trial resolved, the providers it uses connected,
/// the lock file written. Nothing is written before every check has passed.
pub struct Run {
    plan: Plan,
    setups: Vec<TrialSetup>,
    states: Vec<TrialState>,
    previous: Vec<Option<TrialResult>>,
    engines: BTreeMap<Provider, Engine>,
    concurrency: usize,
    /// Trials whose environment may be made ahead of a place under `concurrency`.
    start_ahead: usize,
    budget: Budget,
    /// The measure of CPU pressure the `adaptive` policy admits by (this machine's unless
    /// [`Run::with_pressure`] gave another).
    pressure: Option<Box<dyn PressureSource>>,
    options: ApplyOptions,
    store: RunStore,
}

impl Run {
    /// Checks everything, connects to the providers the plan's trials use (Docker,
    /// Daytona), removes what dead runs left there, and writes the lock file.
    pub async fn open(
        pipeline: &Pipeline,
        plan: Plan,
        options: ApplyOptions,
        events: &UnboundedSender<RunEvent>,
    ) -> Result<Run, RunError> {
        let host = host_lookup(&options);
        let missing: Vec<Problem> = Provider::all()
            .filter(|p| plan.uses(*p))
            .filter_map(|p| (p.entry().missing_credentials)(&host))
            .map(|message| Problem::new(ProblemKind::MissingCredentials, message))
            .collect();
        if !missing.is_empty() {
            return Err(RunError::Credentials(Problems::of(missing)));
        }
        // Problems that need no engine are found before connecting to one.
        let setups = prepare(pipeline, &plan, &host).map_err(RunError::Preflight)?;
        let engines = open_engines(pipeline, &plan, &host, events).await?;
        let mut plan = plan;
        let pulls = plan
            .tasks
            .iter()
            .any(|t| matches!(t.image, ImageSource::Pull { .. }));
        let setups = if pulls {
            resolve_pulls(&mut plan, &engines, options.rebuild, events).await;
            prepare(pipeline, &plan, &host).map_err(RunError::Preflight)?
        } else {
            setups
        };
        Run::start(pipeline, plan, setups, engines, options)
    }

    /// As [`Run::open`], with engines the caller made (a provider of its own, or the fake
    /// environment in tests). Every provider the plan uses must be among them.
    pub fn with_engines(
        pipeline: &Pipeline,
        plan: Plan,
        options: ApplyOptions,
        engines: BTreeMap<Provider, Engine>,
    ) -> Result<Run, RunError> {
        let host = host_lookup(&options);
        let mut plan = plan;
        // The caller's engines have what they have: a pull is taken as there.
        for task in &mut plan.tasks {
            if let ImageSource::Pull { image, fallback } = &task.image {
                task.image = if options.rebuild {
                    ImageSource::Build(*fallback)
                } else {
                    ImageSource::Prebuilt(image.clone())
                };
            }
        }
        let setups = prepare(pipeline, &plan, &host).map_err(RunError::Preflight)?;
        let missing: Vec<Problem> = Provider::all()
            .filter(|p| plan.uses(*p) && !engines.contains_key(p))
            .map(|p| {
                Problem::new(
                    ProblemKind::NoEngine,
                    format!("no engine was given for the provider `{p}` the plan uses"),
                )
                .fix(format!("give `Run::with_engines` an engine for `{p}`"))
            })
            .collect();
        if !missing.is_empty() {
            return Err(RunError::Preflight(Problems::of(missing)));
        }
        Run::start(pipeline, plan, setups, engines, options)
    }

    fn start(
        pipeline: &Pipeline,
        plan: Plan,
        setups: Vec<TrialSetup>,
        engines: BTreeMap<Provider, Engine>,
        options: ApplyOptions,
    ) -> Result<Run, RunError> {
        let store = RunStore::new(&plan.run_dir);
        let states = Assessment::of(&plan).states;
        let previous = states
            .iter()
            .zip(&setups)
            .map(|(state, setup)| {
                (*state == TrialState::Done)
                    .then(|| RunStore::read_result(&setup.dir))
                    .flatten()
            })
            .collect();
        LockFile::of(&plan)
            .write(store.dir())
            .map_err(|source| RunError::Write {
                path: store.lock_path(),
                source,
            })?;
        let concurrency = options
            .concurrency
            .unwrap_or(pipeline.manifest.pipeline.concurrency as usize)
            .max(1);
        let section = &pipeline.manifest.pipeline;
        // Under a spending bound a trial starts only once the cost of those before it is
        // known, so none is made ahead.
        let start_ahead = match (section.start_ahead, section.max_cost_usd) {
            (_, Some(_)) => 0,
            (Some(n), None) => n as usize,
            (None, None) => concurrency,
        };
        Ok(Run {
            start_ahead,
            budget: options.budget(pipeline),
            pressure: None,
            plan,
            setups,
            states,
            previous,
            engines,
            concurrency,
            options,
            store,
        })
    }

    /// What trials and builds on this machine may use at once.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Runs under `budget` instead of this machine's.
    #[cfg(test)]
    pub(crate) fn with_budget(mut self, budget: Budget) -> Run {
        self.budget = budget;
        self
    }

    /// Admits trials by `source`'s pressure instead of this machine's (`adaptive` only).
    pub fn with_pressure(mut self, source: Box<dyn PressureSource>) -> Run {
        self.pressure = Some(source);
        self
    }

    /// The run's directory (its lock file is there already).
    pub fn run_dir(&self) -> &std::path::Path {
        self.store.dir()
    }

    /// Runs every node of the plan as its predecessors finish; a cancel stops trials and
    /// builds cleanly, and what finished is kept.
    pub async fn execute(
        self,
        cancel: CancellationToken,
        events: UnboundedSender<RunEvent>,
    ) -> Result<RunOutcome, RunError> {
        let done = self
            .states
            .iter()
            .filter(|s| **s == TrialState::Done)
            .count();
        let _ = events.send(RunEvent::Started {
            run_dir: self.plan.run_dir.clone(),
            trials: self.plan.trials.len(),
            to_run: self.plan.trials.len() - done,
            done,
            builds: self.plan.builds.len(),
        });
        let _ = events.send(RunEvent::Resources {
            policy: self.budget.policy.as_str(),
            cpus: self.budget.cpus,
            memory_mb: self.budget.memory_mb,
            builds: self.budget.builds,
            concurrency: self.concurrency,
            pressure_target: self.budget.pressure_target,
        });
        install_agents(
            &self.plan,
            &self.states,
            &self.engines,
            &self.store,
            &self.options,
            &events,
        )
        .await?;
        let missing_images = ensure_prebuilt_images(&self.plan, &self.states, &self.engines).await;
        let labels = Labels::new(&self.plan.pipeline, self.options.labels.clone());
        let checked_builds = check_images(
            &self.plan,
            &self.states,
            &self.setups,
            &self.engines,
            &self.store,
            &labels,
            &missing_images,
            &events,
        )
        .await?;
        let gateways = Gateways::start(&self.setups, &self.states, &self.engines, &labels).await;
        let running = Arc::new(AtomicUsize::new(0));
        let watches: Vec<tokio::task::JoinHandle<()>> = self
            .engines
            .iter()
            .map(|(provider, engine)| {
                tokio::spawn(watch_engine(
                    *provider,
                    engine.clone(),
                    self.options.engine_stall,
                    running.clone(),
                    events.clone(),
                ))
            })
            .collect();
        let grace = Grace::new(cancel.clone());
        // Under `adaptive`: the pressure, sampled for as long as the run goes on; and the
        // cores verifiers (where timing-sensitive tests measure) take their declared CPUs
        // from, in thousandths.
        let sampler = self.budget.pressure_target.map(|_| {
            Sampler::start(
                self.pressure
                    .unwrap_or_else(|| Box::new(ProcPressure::new())),
            )
        });
        let pressure = sampler
            .as_ref()
            .zip(self.budget.pressure_target)
            .map(|(sampler, target)| Pressure::new(sampler.receiver(), target));
        let gate = pressure
            .clone()
            .map(|p| PressureGate::new(p, self.budget.cpus.ceil() as usize));
        let verifier_cores = pressure.map(|pressure| {
            let size = millicpus(self.budget.cpus).max(1);
            (Arc::new(Semaphore::new(size)), size, pressure)
        });
        let context = Arc::new(Context {
            verifier_cores,
            grace,
            running,
            gateways,
            labels,
            slots: Arc::new(Semaphore::new(self.concurrency)),
            build_logs: self
                .plan
                .builds
                .iter()
                .map(|b| self.store.build_log(&b.tag))
                .collect(),
            missing_images,
            checked_builds,
            plan: self.plan,
            setups: self.setups,
            states: self.states,
            engines: self.engines,
            options: self.options,
            store: self.store,
            cancel,
            events,
        });
        let networks = context.gateways.networks.clone();
        let engines = context.engines.clone();
        let grace = context.grace.clone();
        let outcome = Dispatcher::new(
            context,
            self.previous,
            self.concurrency,
            self.start_ahead,
            self.budget,
            gate,
        )
        .run()
        .await;
        // Every trial's container is gone by now; what cannot be removed, `helios gc` and
        // the next apply remove. After a Ctrl-C a wedged engine gets only the grace.
        for (provider, name) in networks {
            if let Some(engine) = engines.get(&provider) {
                let _ = grace.bound(engine.remove_network(&name)).await;
            }
        }
        for watch in watches {
            watch.abort();
        }
        outcome
    }
}

fn host_lookup(options: &ApplyOptions) -> impl Fn(&str) -> Option<String> + Sync + use<> {
    let variables = options.variables.clone();
    move |name: &str| variables.get(name)
}

/// The run's model gateways, one per provider and kind of network whose trials call one.
#[derive(Default)]
struct Gateways {
    /// By provider, and whether the trials' tasks have no network (their gateway listens on
    /// an isolated network of the run, the others' on the provider's default one).
    listening: BTreeMap<(Provider, bool), Result<Gateway, String>>,
    /// The isolated networks made for them, to remove when the run ends.
    networks: Vec<(Provider, String)>,
}

impl Gateways {
    /// Starts a gateway for each provider with trials still to run whose agents call their
    /// model through one, listening where that provider's sandboxes see this machine; for
    /// tasks without network, on a network of the run that reaches this machine only.
    async fn start(
        setups: &[TrialSetup],
        states: &[TrialState],
        engines: &BTreeMap<Provider, Engine>,
        labels: &Labels,
    ) -> Gateways {
        let wanted: BTreeSet<(Provider, bool)> = setups
            .iter()
            .zip(states)
            .filter(|(setup, state)| setup.gateway_route.is_some() && **state != TrialState::Done)
            .map(|(setup, _)| (setup.provider, setup.task.gateway_isolated()))
            .collect();
        let mut gateways = Gateways::default();
        for (provider, isolated) in wanted {
            let Some(engine) = engines.get(&provider) else {
                continue;
            };
            let host = if isolated {
                let name = labels.network_name();
                let made = engine
                    .create_isolated_network(&name, &labels.network())
                    .await;
                if matches!(made, Ok(Some(_))) {
                    gateways.networks.push((provider, name));
                }
                made
            } else {
                engine.host_address().await
            };
            let gateway = match host {
                Ok(Some(host)) => Gateway::start(host).await.map_err(|e| {
                    let mut message = e.to_string();
                    if let Some(source) = std::error::Error::source(&e) {
                        message.push_str(&format!(": {source}"));
                    }
                    message
                }),
                Ok(None) => continue,
                Err(e) => Err(format!(
                    "cannot find the address {provider} sandboxes see this machine on, for the \
                     model gateway: {e}"
                )),
            };
            gateways.listening.insert((provider, isolated), gateway);
        }
        gateways
    }

    /// The gateway of a trial, or why it has none.
    fn of(&self, setup: &TrialSetup) -> Option<Result<&Gateway, &str>> {
        let key = (setup.provider, setup.task.gateway_isolated());
        self.listening
            .get(&key)
            .map(|gateway| gateway.as_ref().map_err(String::as_str))
    }

    /// The isolated network of a trial's provider, for a trial of a task without network
    /// that calls the gateway.
    fn network_for(&self, setup: &TrialSetup) -> Option<&str> {
        (setup.gateway_route.is_some() && setup.task.gateway_isolated())
            .then(|| {
                self.networks
                    .iter()
                    .find(|(provider, _)| *provider == setup.provider)
                    .map(|(_, name)| name.as_str())
            })
            .flatten()
    }
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
        settings: pipeline.manifest.environment.provider_settings(),
        ..OpenOptions::default()
    };
    let mut engines = BTreeMap::new();
    for provider in Provider::all() {
        if !plan.uses(provider) {
            continue;
        }
        let preflight = |error: EnvError| match error {
            EnvError::Auth(message) => RunError::Credentials(Problems::one(Problem::new(
                ProblemKind::MissingCredentials,
                message,
            ))),
            other => RunError::Env(other),
        };
        let engine = Engine::open(provider, &options, host)
            .await
            .map_err(preflight)?;
        reap(provider, &engine, events).await?;
        engines.insert(provider, engine);
    }
    Ok(engines)
}

/// Decides where each task that names a prebuilt image and has a Dockerfile gets its
/// image: the prebuilt one when this machine has it or can pull it (as Harbor does),
/// else a build of its Dockerfile, said once per image; always the build with
/// `--rebuild`. Remote providers pull for themselves.
async fn resolve_pulls(
    plan: &mut Plan,
    engines: &BTreeMap<Provider, Engine>,
    rebuild: bool,
    events: &UnboundedSender<RunEvent>,
) {
    let mut pulled: BTreeMap<String, bool> = BTreeMap::new();
    for index in 0..plan.tasks.len() {
        let ImageSource::Pull { image, fallback } = plan.tasks[index].image.clone() else {
            continue;
        };
        let local = plan
            .trials
            .iter()
            .filter(|t| t.task as usize == index)
            .filter_map(|t| engines.get(&plan.provider(t)))
            .find(|e| e.builds_images());
        let resolved = match local {
            _ if rebuild => ImageSource::Build(fallback),
            None => ImageSource::Prebuilt(image.clone()),
            Some(engine) => {
                let available = match pulled.get(&image) {
                    Some(available) => *available,
                    None => {
                        let outcome = engine.ensure_image(&image).await;
                        if let Err(error) = &outcome {
                            let _ = events.send(RunEvent::PullFailed {
                                image: image.clone(),
                                tag: plan.builds[fallback].tag.clone(),
                                error: error.to_string(),
                            });
                        }
                        pulled.insert(image.clone(), outcome.is_ok());
                        outcome.is_ok()
                    }
                };
                if available {
                    ImageSource::Prebuilt(image)
                } else {
                    ImageSource::Build(fallback)
                }
            }
        };
        plan.tasks[index].image = resolved;
    }
}

/// Removes what dead runs left on `engine`. Only a refused key stops the run (for a remote
/// provider this is the first authenticated call); any other failure is a warning and the
/// run goes on: leftovers hold nothing the run needs, and the next apply reaps again.
/// Other applies may be reaping the same leftovers now: the provider's removal is
/// idempotent, so that is no failure either.
async fn reap(
    provider: Provider,
    engine: &Engine,
    events: &UnboundedSender<RunEvent>,
) -> Result<(), RunError> {
    match engine.reap_dead_runs().await {
        Ok(0) => {}
        Ok(count) => {
            let _ = events.send(RunEvent::Reaped { provider, count });
        }
        // A refused key is the provider's credentials, as when opening it.
        Err(EnvError::Auth(message)) => {
            return Err(RunError::Credentials(Problems::one(Problem::new(
                ProblemKind::MissingCredentials,
                message,
            ))));
        }
        Err(error) => {
            let _ = events.send(RunEvent::ReapFailed {
                provider,
                error: error.to_string(),
            });
        }
    }
    Ok(())
}

/// How often an engine that answers is asked again by [`watch_engine`].
const PING_EVERY: Duration = Duration::from_secs(5);

/// Watches an engine for the run: pings it, and when a ping goes unanswered for `stall`
/// (and each `stall` after), says so with the number of trials waiting on it; when it
/// answers again, says that too. A wedged daemon is then said, not silent. Ends when the
/// run aborts it.
async fn watch_engine(
    provider: Provider,
    engine: Engine,
    stall: Duration,
    running: Arc<AtomicUsize>,
    events: UnboundedSender<RunEvent>,
) {
    // Since when the engine has answered nothing, across pings that timed out.
    let mut silent_since: Option<tokio::time::Instant> = None;
    let mut said = 0u32;
    loop {
        let since = *silent_since.get_or_insert_with(tokio::time::Instant::now);
        let ping = engine.ping();
        tokio::pin!(ping);
        let answer = loop {
            let next = since + stall * (said + 1);
            tokio::select! {
                answer = &mut ping => break answer,
                _ = tokio::time::sleep_until(next) => {
                    said += 1;
                    let _ = events.send(RunEvent::EngineStalled {
                        provider,
                        seconds: (stall * said).as_secs_f64(),
                        trials: running.load(Ordering::SeqCst),
                    });
                }
            }
        };
        if let Err(EnvError::NoAnswer { .. }) = answer {
            // Its own deadline passed: still silent, ask again.
            continue;
        }
        if said > 0 {
            let _ = events.send(RunEvent::EngineAnswered {
                provider,
                seconds: since.elapsed().as_secs_f64(),
            });
        }
        silent_since = None;
        said = 0;
        tokio::time::sleep(PING_EVERY.min(stall)).await;
    }
}

/// The engine installed agents are installed on and run in: the one whose provider can
/// (the pre-flight refuses installed agents on the others).
fn installing(engines: &BTreeMap<Provider, Engine>) -> Option<&Engine> {
    engines.values().find(|e| e.capabilities().installed_agents)
}

/// Makes sure every installed agent that trials still to run use is installed, one install
/// at a time, before any trial starts; a failed install fails the run with the installer's
/// output.
async fn install_agents(
    plan: &Plan,
    states: &[TrialState],
    engines: &BTreeMap<Provider, Engine>,
    store: &RunStore,
    options: &ApplyOptions,
    events: &UnboundedSender<RunEvent>,
) -> Result<(), RunError> {
    let labels = Labels::new(&plan.pipeline, options.labels.clone());
    for install in &plan.installs {
        let needed = plan.trials.iter().zip(states).any(|(trial, state)| {
            *state != TrialState::Done
                && plan.agents[trial.agent as usize].recipe.as_ref() == Some(&install.recipe)
        });
        let Some(engine) = installing(engines).filter(|_| needed) else {
            continue;
        };
        let _ = events.send(RunEvent::InstallStarted {
            agents: install.agents.clone(),
            volume: install.volume.clone(),
        });
        let started = std::time::Instant::now();
        let installed = setup::install(
            engine,
            &install.recipe,
            &install.volume,
            &labels,
            &store.install_log(&install.volume),
        )
        .await
        .map_err(|error| setup_error(error, None, &install.agents.join(", ")))?;
        let _ = events.send(RunEvent::InstallFinished {
            agents: install.agents.clone(),
            volume: install.volume.clone(),
            installed,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(())
}

/// Checks, before any trial, that each task image that installed agents' trials still to
/// run use can run those agents: the agent's volume mounted, glibc's loader and the
/// agent's runtime are tried in a container of the image. An image to build is built here
/// first (its build node then finds it); those are returned. An image that cannot run an
/// agent fails the run, naming the task, the image, the agent and what is missing.
#[allow(clippy::too_many_arguments)]
async fn check_images(
    plan: &Plan,
    states: &[TrialState],
    setups: &[TrialSetup],
    engines: &BTreeMap<Provider, Engine>,
    store: &RunStore,
    labels: &Labels,
    missing_images: &BTreeMap<String, EnvError>,
    events: &UnboundedSender<RunEvent>,
) -> Result<BTreeSet<usize>, RunError> {
    let mut checked = BTreeSet::new();
    let Some(engine) = installing(engines) else {
        return Ok(checked);
    };
    let mut pairs: Vec<(usize, usize)> = plan
        .trials
        .iter()
        .zip(states)
        .filter(|(_, state)| **state != TrialState::Done)
        .filter(|(t, _)| plan.provider(t) == engine.provider())
        .filter(|(t, _)| plan.agents[t.agent as usize].recipe.is_some())
        .map(|(t, _)| (t.task as usize, t.agent as usize))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut probed = BTreeSet::new();
    for (task, agent) in pairs {
        let planned = &plan.tasks[task];
        let recipe = plan.agents[agent].recipe.as_ref().expect("filtered");
        let Some(install) = plan.installs.iter().find(|i| &i.recipe == recipe) else {
            continue;
        };
        let image = match &planned.image {
            ImageSource::Prebuilt(image) | ImageSource::Pull { image, .. }
                if missing_images.contains_key(image) =>
            {
                continue;
            }
            ImageSource::Prebuilt(image) | ImageSource::Pull { image, .. } => image.clone(),
            ImageSource::Build(b) => {
                let build = &plan.builds[*b];
                if checked.insert(*b) && !engine.image_exists(&build.tag).await? {
                    let timeout = setups
                        .iter()
                        .find(|s| s.task.name == planned.name)
                        .map_or(std::time::Duration::from_secs(600), |s| {
                            s.task.build_timeout
                        });
                    let _ = events.send(RunEvent::BuildStarted {
                        tag: build.tag.clone(),
                    });
                    let started = std::time::Instant::now();
                    let built = engine
                        .build(&BuildSpec {
                            context: &build.context,
                            dockerfile: &build.dockerfile,
                            tag: &build.tag,
                            labels: &labels.image(&plan.tasks[build.tasks[0]].name),
                            timeout,
                            log: &store.build_log(&build.tag),
                        })
                        .await;
                    let _ = events.send(RunEvent::BuildFinished {
                        tag: build.tag.clone(),
                        outcome: if built.is_ok() {
                            BuildOutcome::Built
                        } else {
                            BuildOutcome::Failed
                        },
                        seconds: started.elapsed().as_secs_f64(),
                    });
                    if built.is_err() {
                        // Its build node builds it again, and its trials report why.
                        checked.remove(b);
                        continue;
                    }
                }
                build.tag.clone()
            }
        };
        if !probed.insert((image.clone(), install.volume.clone())) {
            continue;
        }
        let agent_name = &plan.agents[agent].name;
        let fitness = setup::probe(engine, recipe, &image, &install.volume, labels)
            .await
            .map_err(|error| setup_error(error, Some(&planned.name), agent_name))?;
        if let Fitness::Unfit { missing, fix } = fitness {
            return Err(RunError::Env(EnvError::ImageUnfit(Box::new(ImageUnfit {
                task: planned.name.clone(),
                image: image.clone(),
                agent: agent_name.clone(),
                missing,
                fix: fix.to_string(),
            }))));
        }
    }
    Ok(checked)
}

/// The run's error for an install or probe that could not be done: a recipe that does not
/// render is a pre-flight problem of its agent; the engine's failures are the engine's.
fn setup_error(error: SetupError, task: Option<&str>, agent: &str) -> RunError {
    match error {
        SetupError::Template(e) => {
            let problem =
                Problem::new(ProblemKind::TemplateDoesNotRender, e.to_string()).agent(agent);
            RunError::Preflight(Problems::one(match task {
                Some(task) => problem.task(task),
                None => problem,
            }))
        }
        SetupError::Env(e) => RunError::Env(e),
    }
}

/// Pulls the prebuilt images of trials that will run on a provider that builds images
/// here; the ones that fail are returned.
async fn ensure_prebuilt_images(
    plan: &Plan,
    states: &[TrialState],
    engines: &BTreeMap<Provider, Engine>,
) -> BTreeMap<String, EnvError> {
    let mut images: Vec<(Provider, &str)> = plan
        .trials
        .iter()
        .zip(states)
        .filter(|(_, state)| **state != TrialState::Done)
        .flat_map(|(t, _)| {
            let task = &plan.tasks[t.task as usize];
            std::iter::once(&task.image)
                .chain(task.verifiers.iter().map(|v| &v.image))
                .filter_map(move |image| match image {
                    ImageSource::Prebuilt(image) => Some((plan.provider(t), image.as_str())),
                    ImageSource::Build(_) | ImageSource::Pull { .. } => None,
                })
        })
        .filter(|(provider, _)| engines.get(provider).is_some_and(|e| e.builds_images()))
        .collect();
    images.sort_unstable();
    images.dedup();
    let mut missing = BTreeMap::new();
    for (provider, image) in images {
        if let Err(error) = engines[&provider].ensure_image(image).await {
            missing.insert(image.to_string(), error);
        }
    }
    missing
}

/// What every build and trial task reads; nothing in it changes during the run.
struct Context {
    plan: Plan,
    setups: Vec<TrialSetup>,
    states: Vec<TrialState>,
    /// One engine per provider the plan's trials use.
    engines: BTreeMap<Provider, Engine>,
    labels: Labels,
    options: ApplyOptions,
    store: RunStore,
    build_logs: Vec<PathBuf>,
    /// Prebuilt images that could not be pulled, with why.
    missing_images: BTreeMap<String, EnvError>,
    /// Builds made (or found) before any trial to check them for installed agents: never
    /// built again, even with `--rebuild`.
    checked_builds: BTreeSet<usize>,
    /// The model gateways of the run's trials.
    gateways: Gateways,
    /// Places under `concurrency`: a trial takes one once its environment is ready, and
    /// gives it back before its environment is removed.
    slots: Arc<Semaphore>,
    /// Trials started and not finished, for the engine watch's message.
    running: Arc<AtomicUsize>,
    /// `adaptive`: the cores verifiers take their declared CPUs from, in thousandths, how
    /// many there are, and the pressure they wait to fall.
    verifier_cores: Option<(Arc<Semaphore>, usize, Pressure)>,
    /// How long clean-up may still wait on an engine after a Ctrl-C.
    grace: Grace,
    cancel: CancellationToken,
    events: UnboundedSender<RunEvent>,
}

impl Context {
    fn emit(&self, event: RunEvent) {
        let _ = self.events.send(event);
    }
}

/// What a build or trial task tells the dispatcher when it ends.
enum Finished {
    Build(usize, Result<(), EnvError>),
    Trial(usize, Box<TrialResult>),
}

/// Owns the run's state and decides what starts when.
struct Dispatcher {
    cx: Arc<Context>,
    /// Per node of the plan's graph: predecessors not finished yet.
    waiting: Vec<usize>,
    /// The graph node of each image build.
    build_nodes: Vec<NodeIndex>,
    builds: Vec<Option<Result<(), EnvError>>>,
    /// Per stage: the tasks its gate admitted (`None`: no gate, all of them).
    admitted: Vec<Option<HashSet<u32>>>,
    results: Vec<Option<TrialResult>>,
    skipped: Vec<Option<SkipReason>>,
    /// Trials whose predecessors are done, waiting for a place under the bound and for
    /// their resources; they start in plan order, a later one first when only it fits.
    queue: BTreeSet<usize>,
    /// Builds whose turn has not come (the build bound, a CPU each).
    build_queue: BTreeSet<usize>,
    /// Trials started: running, or making their environment ahead of a place.
    running_trials: usize,
    /// Trials that may be started: `concurrency` plus those made ahead.
    started_bound: usize,
    budget: Budget,
    ledger: Ledger,
    /// `adaptive`: admits trials beyond the cores by the measured pressure.
    gate: Option<PressureGate>,
    /// Why the first queued trial did not start, when one did not.
    wait_reason: Option<WaitReason>,
    /// Whether a queued trial waits for the pressure: the dispatcher looks again at the
    /// next sample.
    held_by_pressure: bool,
    /// What each trial takes from this machine while it runs.
    demands: Vec<Demand>,
    /// Queued trials and builds last reported as waiting, and why.
    reported_waiting: (usize, usize, Option<WaitReason>),
    /// What the trials this apply ran have cost so far, against `max_cost_usd`.
    spent_usd: f64,
    tasks: JoinSet<Finished>,
    summary_error: Option<RunError>,
}

impl Dispatcher {
    fn new(
        cx: Arc<Context>,
        previous: Vec<Option<TrialResult>>,
        concurrency: usize,
        start_ahead: usize,
        budget: Budget,
        gate: Option<PressureGate>,
    ) -> Self {
        let graph = &cx.plan.graph;
        let demands = cx
            .setups
            .iter()
            .map(|setup| {
                let here = cx
                    .engines
                    .get(&setup.provider)
                    .is_some_and(|e| e.runs_here());
                if here {
                    setup.task.demand()
                } else {
                    Demand::NONE
                }
            })
            .collect();
        let mut build_nodes = vec![NodeIndex::end(); cx.plan.builds.len()];
        for node in graph.node_indices() {
            if let Node::Build(b) = graph[node] {
                build_nodes[b] = node;
            }
        }
        Dispatcher {
            build_nodes,
            waiting: graph
                .node_indices()
                .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
                .collect(),
            builds: cx.plan.builds.iter().map(|_| None).collect(),
            admitted: cx.plan.stages.iter().map(|_| None).collect(),
            skipped: vec![None; previous.len()],
            results: previous,
            queue: BTreeSet::new(),
            build_queue: BTreeSet::new(),
            running_trials: 0,
            started_bound: concurrency.saturating_add(start_ahead),
            budget,
            ledger: Ledger::default(),
            gate,
            wait_reason: None,
            held_by_pressure: false,
            demands,
            reported_waiting: (0, 0, None),
            spent_usd: 0.0,
            tasks: JoinSet::new(),
            summary_error: None,
            cx,
        }
    }

    async fn run(mut self) -> Result<RunOutcome, RunError> {
        let roots: Vec<NodeIndex> = self
            .cx
            .plan
            .graph
            .node_indices()
            .filter(|n| self.waiting[n.index()] == 0)
            .collect();
        for node in roots {
            self.start(node);
        }
        loop {
            self.start_queued_builds();
            self.start_queued_trials();
            self.report_waiting();
            if self.tasks.is_empty() && self.queue.is_empty() && self.build_queue.is_empty() {
                break;
            }
            let held = self.held_by_pressure && self.gate.is_some();
            let finished = tokio::select! {
                finished = self.tasks.join_next(), if !self.tasks.is_empty() => finished,
                _ = async { self.gate.as_mut().expect("held by the gate").next_sample().await },
                    if held => continue,
                _ = self.cx.cancel.cancelled(), if !self.cx.cancel.is_cancelled() => {
                    self.cx.grace.start();
                    continue;
                }
            };
            match finished.expect("the set is not empty") {
                Ok(finished) => self.finished(finished),
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            }
        }
        self.outcome()
    }

    /// Starts `node`, whose predecessors have all finished. Gates, skipped trials and the
    /// report finish at once; builds and trials become tasks.
    fn start(&mut self, node: NodeIndex) {
        match self.cx.plan.graph[node] {
            Node::Build(b) => {
                self.build_queue.insert(b);
            }
            Node::Gate(s) => {
                self.admitted[s] = self.admitted_tasks(s);
                self.done(node);
            }
            Node::Trial(t) => match self.skip_reason(t) {
                Some(reason) => self.skip(t, reason),
                None => {
                    let demand = self.demands[t];
                    if self.budget.exceeded_by(demand) {
                        self.cx.emit(RunEvent::RunsAlone {
                            index: TrialIndex(t),
                            label: self.cx.setups[t].label.clone(),
                            cpus: demand.cpus,
                            memory_mb: demand.memory_mb,
                        });
                    }
                    self.queue.insert(t);
                }
            },
            Node::Report => {
                if let Err(error) = self.write_summary() {
                    self.summary_error = Some(error);
                }
                self.done(node);
            }
        }
    }

    /// Why trial `t` is not run, if it is not.
    fn skip_reason(&self, t: usize) -> Option<SkipReason> {
        let trial = &self.cx.plan.trials[t];
        if self.cx.states[t] == TrialState::Done {
            return Some(SkipReason::Done);
        }
        let gate = self.admitted[trial.stage as usize].as_ref();
        if gate.is_some_and(|admitted| !admitted.contains(&trial.task)) {
            return Some(SkipReason::GatedOut);
        }
        if self.over_budget() {
            return Some(SkipReason::OverBudget);
        }
        self.cx
            .cancel
            .is_cancelled()
            .then_some(SkipReason::Cancelled)
    }

    fn skip(&mut self, t: usize, reason: SkipReason) {
        self.skipped[t] = Some(reason);
        self.cx.emit(RunEvent::TrialSkipped {
            index: TrialIndex(t),
            reason,
        });
        self.done(self.cx.plan.trial_nodes[t]);
    }

    /// Starts queued builds while the build bound and the budget allow. Builds go before
    /// trials: trials wait for them.
    fn start_queued_builds(&mut self) {
        while let Some(&b) = self.build_queue.first() {
            if self.cx.cancel.is_cancelled() {
                self.build_queue.remove(&b);
                self.builds[b] = Some(Err(EnvError::Cancelled));
                self.done(self.build_nodes[b]);
                continue;
            }
            if !self.budget.build_fits(&self.ledger) {
                return;
            }
            self.build_queue.remove(&b);
            self.ledger.take_build();
            let cx = self.cx.clone();
            self.tasks
                .spawn(async move { Finished::Build(b, build(&cx, b).await) });
        }
    }

    /// Starts queued trials, in plan order, while there is room under the concurrency
    /// bound and the policy admits them.
    fn start_queued_trials(&mut self) {
        self.wait_reason = None;
        self.held_by_pressure = false;
        if self.cx.cancel.is_cancelled() {
            return self.cancel_queued();
        }
        while self.running_trials < self.started_bound {
            let Some((t, starting)) = self.next_admitted() else {
                return;
            };
            self.queue.remove(&t);
            if self.over_budget() {
                self.skip(t, SkipReason::OverBudget);
                continue;
            }
            let setup = &self.cx.setups[t];
            let planned = &self.cx.plan.tasks[self.cx.plan.trials[t].task as usize];
            let build_error = planned
                .builds()
                .find_map(|b| self.builds[b].as_ref().and_then(|r| r.as_ref().err()))
                .or_else(|| self.cx.missing_images.get(&setup.task.image))
                .or_else(|| {
                    planned.verifiers.iter().find_map(|v| match &v.image {
                        ImageSource::Prebuilt(image) => self.cx.missing_images.get(image),
                        ImageSource::Build(_) | ImageSource::Pull { .. } => None,
                    })
                })
                .cloned();
            let cx = self.cx.clone();
            self.running_trials += 1;
            self.cx.running.store(self.running_trials, Ordering::SeqCst);
            self.ledger.take(self.demands[t]);
            self.tasks.spawn(async move {
                let result = run_trial(&cx, t, build_error, starting).await;
                Finished::Trial(t, Box::new(result))
            });
        }
    }

    /// The first queued trial, in plan order, the policy lets start now; otherwise notes
    /// why the first one waits. A later trial starts first only when the earlier ones do
    /// not fit.
    fn next_admitted(&mut self) -> Option<(usize, Option<Starting>)> {
        for &t in &self.queue {
            match self.budget.verdict(&self.ledger, self.demands[t]) {
                Verdict::Start => return Some((t, None)),
                Verdict::IfPressureAllows => {
                    if let Some(starting) = self.gate.as_mut().and_then(PressureGate::admit) {
                        return Some((t, Some(starting)));
                    }
                    self.held_by_pressure = true;
                    self.wait_reason.get_or_insert(WaitReason::Pressure);
                }
                Verdict::Wait(reason) => {
                    self.wait_reason.get_or_insert(reason);
                }
            }
        }
        None
    }

    /// Tells reporters how many trials and builds wait, and why, when that changes.
    fn report_waiting(&mut self) {
        let trials = self.queue.len();
        let reason = if trials == 0 {
            None
        } else if self.running_trials >= self.started_bound {
            Some(WaitReason::Concurrency)
        } else {
            self.wait_reason
        };
        let waiting = (trials, self.build_queue.len(), reason);
        if waiting != self.reported_waiting {
            self.reported_waiting = waiting;
            self.cx.emit(RunEvent::WaitingForResources {
                trials,
                builds: waiting.1,
                reason,
            });
        }
    }

    /// Whether this apply's trials have spent the run's budget: no more may start (the
    /// ones running finish, so the spend can end above it by their cost).
    fn over_budget(&self) -> bool {
        self.cx
            .plan
            .max_cost_usd
            .is_some_and(|budget| self.spent_usd >= budget)
    }

    /// After the first Ctrl-C, queued trials are not started.
    fn cancel_queued(&mut self) {
        while let Some(t) = self.queue.pop_first() {
            self.skip(t, SkipReason::Cancelled);
        }
    }

    fn finished(&mut self, finished: Finished) {
        match finished {
            Finished::Build(b, result) => {
                self.ledger.give_back_build();
                self.builds[b] = Some(result);
                self.done(self.build_nodes[b]);
            }
            Finished::Trial(t, result) => {
                self.running_trials -= 1;
                self.cx.running.store(self.running_trials, Ordering::SeqCst);
                self.ledger.give_back(self.demands[t]);
                self.spent_usd += result.cost_usd.unwrap_or(0.0);
                self.results[t] = Some(*result);
                self.done(self.cx.plan.trial_nodes[t]);
            }
        }
    }

    /// Marks `node` finished and starts the nodes that waited only for it.
    fn done(&mut self, node: NodeIndex) {
        let next: Vec<NodeIndex> = self
            .cx
            .plan
            .graph
            .neighbors_directed(node, Direction::Outgoing)
            .collect();
        for next in next {
            self.waiting[next.index()] -= 1;
            if self.waiting[next.index()] == 0 {
                self.start(next);
            }
        }
    }

    /// The tasks a gated stage admits (`None`: all of them).
    fn admitted_tasks(&self, s: usize) -> Option<HashSet<u32>> {
        let plan = &self.cx.plan;
        let stage = &plan.stages[s];
        let gate = stage.gate.as_ref()?;
        let from = plan.stages.iter().find(|x| x.name == gate.stage)?;
        let admitted: HashSet<u32> = from
            .trials
            .clone()
            .filter(|&t| plan.agents[plan.trials[t].agent as usize].name == gate.agent)
            .filter(|&t| {
                self.results[t]
                    .as_ref()
                    .and_then(|r| r.reward)
                    .is_some_and(|r| r >= gate.min_reward)
            })
            .map(|t| plan.trials[t].task)
            .collect();
        let tasks: HashSet<u32> = stage.trials.clone().map(|t| plan.trials[t].task).collect();
        self.cx.emit(RunEvent::StageGated {
            stage: stage.name.clone(),
            admitted: tasks.intersection(&admitted).count(),
            tasks: tasks.len(),
        });
        Some(admitted)
    }

    /// The report node: `summary.json` from every result there is.
    fn write_summary(&self) -> Result<(), RunError> {
        let results: Vec<&TrialResult> = self.results.iter().flatten().collect();
        let summary = Summary::of(&self.cx.plan.pipeline, &results)
            .checked(&self.cx.plan.expect)
            .with_skipped(&self.cx.plan.skipped);
        self.cx
            .store
            .write_summary(&summary)
            .map_err(|source| RunError::Write {
                path: self.cx.store.summary_path(),
                source,
            })
    }

    fn outcome(self) -> Result<RunOutcome, RunError> {
        if let Some(error) = self.summary_error {
            return Err(error);
        }
        let cx = &self.cx;
        let (mut ran, mut already_done, mut gated_out, mut not_started) = (0, 0, 0, 0);
        let over_budget = self
            .skipped
            .iter()
            .filter(|s| **s == Some(SkipReason::OverBudget))
            .count();
        let mut trials = Vec::new();
        for (t, result) in self.results.into_iter().enumerate() {
            let ran_now = cx.states[t] != TrialState::Done;
            match (&result, self.skipped[t]) {
                (Some(_), _) if !ran_now => already_done += 1,
                (Some(_), _) => ran += 1,
                (None, Some(SkipReason::GatedOut)) => gated_out += 1,
                (None, _) => not_started += 1,
            }
            if let Some(result) = result {
                trials.push(TrialOutcome {
                    index: TrialIndex(t),
                    dir: cx.setups[t].dir.clone(),
                    result,
                    ran_now,
                });
            }
        }
        let results: Vec<&TrialResult> = trials.iter().map(|t| &t.result).collect();
        let summary = Summary::of(&cx.plan.pipeline, &results)
            .checked(&cx.plan.expect)
            .with_skipped(&cx.plan.skipped);
        cx.emit(RunEvent::Finished);
        Ok(RunOutcome {
            run_dir: cx.plan.run_dir.clone(),
            trials,
            ran,
            already_done,
            gated_out,
            not_started,
            over_budget,
            spent_usd: self.spent_usd,
            cancelled: cx.cancel.is_cancelled(),
            summary,
        })
    }
}

/// Runs trial `t` to its result and hands it to the store.
async fn run_trial(
    cx: &Context,
    t: usize,
    build_error: Option<EnvError>,
    starting: Option<Starting>,
) -> TrialResult {
    let setup = &cx.setups[t];
    let build = setup.task.build;
    let env = trial::TrialEnv {
        engine: cx
            .engines
            .get(&setup.provider)
            .expect("an engine is open for every provider the plan uses"),
        labels: &cx.labels,
        store: &cx.store,
        cancel: &cx.cancel,
        events: &cx.events,
        retry: cx.options.retry_policy(),
        build_log: build.map(|b| cx.build_logs[b].as_path()),
        gateway: cx.gateways.of(setup),
        isolated_network: cx.gateways.network_for(setup),
        slots: &cx.slots,
        grace: &cx.grace,
        starting: starting.as_ref(),
        verifier_cores: cx.verifier_cores.as_ref().and_then(|cores| {
            let here = cx
                .engines
                .get(&setup.provider)
                .is_some_and(|e| e.runs_here());
            // A verifier asks at most for the whole pool.
            let wanted = millicpus(setup.task.demand().cpus).min(cores.1);
            (here && wanted > 0).then_some((&cores.0, wanted, &cores.2))
        }),
    };
    trial::run(setup, &env, build_error.as_ref()).await
}

/// CPUs in thousandths, as semaphore permits.
fn millicpus(cpus: f64) -> usize {
    (cpus * 1000.0).round().max(0.0) as usize
}

/// Builds image `b` where its trials need it built here, retrying failures that may pass
/// (an engine hiccup, not a Dockerfile that fails) with backoff.
async fn build(cx: &Context, b: usize) -> Result<(), EnvError> {
    let plan = &cx.plan;
    let image = &plan.builds[b];
    let providers: Vec<Provider> = plan
        .trials
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            cx.states[*i] != TrialState::Done
                && plan.tasks[t.task as usize].builds().any(|used| used == b)
        })
        .map(|(_, t)| plan.provider(t))
        .collect();
    let engine = providers
        .iter()
        .filter_map(|p| cx.engines.get(p))
        .find(|e| e.builds_images());
    let Some(engine) = engine else {
        // Remote providers build the image themselves, from the Dockerfile's text.
        cx.emit(RunEvent::BuildFinished {
            tag: image.tag.clone(),
            outcome: if providers.is_empty() {
                BuildOutcome::NotNeeded
            } else {
                BuildOutcome::Remote
            },
            seconds: 0.0,
        });
        return Ok(());
    };
    let started = tokio::time::Instant::now();
    let outcome = build_image(cx, engine, b).await;
    cx.emit(RunEvent::BuildFinished {
        tag: image.tag.clone(),
        outcome: match &outcome {
            Ok(true) => BuildOutcome::Built,
            Ok(false) => BuildOutcome::Cached,
            Err(EnvError::Cancelled) => BuildOutcome::Cancelled,
            Err(_) => BuildOutcome::Failed,
        },
        seconds: started.elapsed().as_secs_f64(),
    });
    outcome.map(|_| ())
}

/// Builds (or finds) image `b`; `Ok(true)` when it was built now.
async fn build_image(cx: &Context, engine: &Engine, b: usize) -> Result<bool, EnvError> {
    let image = &cx.plan.builds[b];
    let log = &cx.build_logs[b];
    let first = &cx.plan.tasks[image.tasks[0]];
    let timeout = cx
        .setups
        .iter()
        .find(|s| s.task.name == first.name)
        .map_or(std::time::Duration::from_secs(600), |s| {
            s.task.build_timeout
        });
    let labels = cx.labels.image(&first.name);
    let spec = BuildSpec {
        context: &image.context,
        dockerfile: &image.dockerfile,
        tag: &image.tag,
        labels: &labels,
        timeout,
        log,
    };
    let mut delays = cx.options.retry_policy().delays();
    loop {
        // Dropping a build on Ctrl-C closes its connection: the engine stops the build and
        // removes its intermediate containers, so nothing of the run keeps running.
        let attempt = tokio::select! {
            biased;
            _ = cx.cancel.cancelled() => return Err(EnvError::Cancelled),
            attempt = find_or_build(cx, engine, &spec, b) => attempt,
        };
        let error = match attempt {
            Ok(built) => return Ok(built),
            Err(error) => error,
        };
        let wait = match delays.next() {
            Some(wait) if error.is_retryable() && !cx.cancel.is_cancelled() => wait,
            _ => return Err(error),
        };
        cx.emit(RunEvent::BuildRetry {
            tag: image.tag.clone(),
            error: error.to_string(),
            wait_seconds: wait.as_secs_f64(),
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cx.cancel.cancelled() => return Err(error),
        }
    }
}

/// One try: the image if it exists already (noted in its build log), else a build;
/// `Ok(true)` when it was built now.
async fn find_or_build(
    cx: &Context,
    engine: &Engine,
    spec: &BuildSpec<'_>,
    b: usize,
) -> Result<bool, EnvError> {
    let rebuild = cx.options.rebuild && !cx.checked_builds.contains(&b);
    if !rebuild && engine.image_exists(spec.tag).await? {
        if !spec.log.exists() {
            let note = format!(
                "image {} already existed (same environment digest); not rebuilt\n",
                spec.tag
            );
            write_atomic(spec.log, note.as_bytes())
                .map_err(|e| EnvError::io(format!("writing `{}`", spec.log.display()), e))?;
        }
        return Ok(false);
    }
    // Said only of an image that will be built: one found is `up to date`, nothing more.
    cx.emit(RunEvent::BuildStarted {
        tag: spec.tag.to_string(),
    });
    engine.build(spec).await.map(|()| true)
}
