//! One trial's lifecycle, in Harbor's conventions: start the environment (a container or a
//! sandbox), run the agent, copy the tests in and run them, collect `/logs`, remove the
//! environment, write `result.json`. Every ending is a result; none is a crash, and the
//! environment is removed after success, failure and cancel alike.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::prepare::TrialSetup;
use crate::agent::{self, AgentContext, AgentError, AgentKind, AgentRun};
use crate::env::{Engine, EnvError, ExecSpec, Instance, Labels};
use crate::events::{ErrorKind, Phase, RunEvent, TrialIndex, TrialStatus, now_rfc3339};
use crate::gateway::{Gateway, Lease};
use crate::retry::RetryPolicy;
use crate::store::RunStore;
use crate::store::trial::{
    ErrorInfo, HookRun, LogsCut, PhaseTiming, RESULT_FORMAT, RetriedFailure, StepResult,
    TrialResult,
};
use crate::verify::Isolation;
use crate::verify::reward::{self, RewardError, Rewards};
use crate::verify::steps::{self, StepRun};

/// How long clean-up may still wait on an engine after a Ctrl-C: a wedged engine must not
/// hold the user's terminal (helios ends within seconds, says what it left, and the next
/// apply reaps it).
pub const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// The run's grace after a cancel: every wait on an engine that a cancel does not stop at
/// once (making an environment, removing it) ends at the latest [`CANCEL_GRACE`] after
/// the cancel was first seen, the same moment for every trial.
#[derive(Clone)]
pub struct Grace {
    cancel: CancellationToken,
    since: Arc<OnceLock<Instant>>,
}

impl Grace {
    pub fn new(cancel: CancellationToken) -> Grace {
        Grace {
            cancel,
            since: Arc::default(),
        }
    }

    /// The run's cancel.
    pub(crate) fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Notes that the cancel fired now, unless someone saw it first.
    pub fn start(&self) -> Instant {
        *self.since.get_or_init(Instant::now)
    }

    /// Resolves when the grace after the cancel is over (never, without a cancel).
    pub async fn over(&self) {
        self.cancel.cancelled().await;
        tokio::time::sleep_until(self.start() + CANCEL_GRACE).await;
    }

    /// `work`'s answer, or `None` when the run was cancelled and the grace ran out first.
    pub async fn bound<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            answer = work => Some(answer),
            () = self.over() => None,
        }
    }

    /// Removes `instance`, waiting no longer than the grace after a cancel: an engine that
    /// does not answer by then is said to, and what it holds is left for the next apply.
    pub(crate) async fn remove(&self, instance: &Instance) -> Result<(), EnvError> {
        self.bound(instance.remove()).await.unwrap_or_else(|| {
            Err(EnvError::NoAnswer {
                provider: instance.provider(),
                call: format!("remove {}", instance.id()),
                seconds: CANCEL_GRACE.as_secs_f64(),
            })
        })
    }
}

/// The directories of `/logs` a trial's agent and verifier write into.
pub(crate) const LOG_DIRS: &[&str] = &["/logs", "/logs/agent", "/logs/verifier", "/logs/artifacts"];

/// What runs a trial needs from the run.
pub struct TrialEnv<'a> {
    /// The engine of the trial's provider.
    pub engine: &'a Engine,
    pub labels: &'a Labels,
    pub store: &'a RunStore,
    pub cancel: &'a CancellationToken,
    pub events: &'a UnboundedSender<RunEvent>,
    /// How infrastructure failures are retried.
    pub retry: RetryPolicy,
    /// The build log of the trial's image, linked into its directory.
    pub build_log: Option<&'a Path>,
    /// The run's model gateway where the trial's provider can reach one, or why not.
    pub gateway: Option<Result<&'a Gateway, &'a str>>,
    /// For a task without network whose agent calls the gateway: the run's network that
    /// reaches this machine only.
    pub isolated_network: Option<&'a str>,
    /// The run's places under `concurrency`: the trial's environment is made before it
    /// has one, and removed after it gave it back.
    pub slots: &'a Arc<Semaphore>,
    /// How long clean-up may wait on the engine after a cancel.
    pub grace: &'a Grace,
    /// A trial the pressure gate admitted: told when its environment is ready.
    pub starting: Option<&'a super::pressure::Starting>,
    /// `adaptive`: the cores verifiers take their declared CPUs from (in thousandths),
    /// how many this trial's verifier takes, and the pressure it waits to fall.
    pub verifier_cores: Option<(&'a Arc<Semaphore>, usize, &'a super::pressure::Pressure)>,
}

impl TrialEnv<'_> {
    /// The trial's declared CPUs for its verifier, once free and the machine's CPU
    /// pressure is under the target (`adaptive`; nothing to wait for otherwise):
    /// timing-sensitive tests run with the cores they asked for while agents, mostly
    /// waiting on models, are admitted by pressure.
    async fn verifier_cores(
        &self,
    ) -> Option<(
        tokio::sync::OwnedSemaphorePermit,
        Option<super::pressure::Hold>,
    )> {
        let (pool, wanted, pressure) = self.verifier_cores?;
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        let cores = pool
            .clone()
            .acquire_many_owned(wanted)
            .await
            .expect("the verifiers' cores are never closed");
        let hold = pressure.calm().await;
        Some((cores, hold))
    }
}

/// How one attempt ended, before it becomes a result.
enum Attempt {
    Ran(Box<Ran>),
    Infra(EnvError),
    Cancelled,
}

#[derive(Default)]
struct Ran {
    agent: Option<Result<AgentRun, AgentError>>,
    tests: Option<StepRun>,
    steps: Vec<(String, StepRun)>,
    /// What collecting `/logs` cut at the cap, if anything.
    logs_cut: Option<LogsCut>,
    /// The agent ran and its tests are to run apart (`isolation = "separate"`).
    apart: bool,
    /// The trial's place under `concurrency`, held until its last command has run.
    slot: Option<OwnedSemaphorePermit>,
    /// How the collect hooks ran.
    hooks: Vec<HookRun>,
    /// A multi-step task's steps, as far as they ran.
    steps_ran: Vec<StepRan>,
    /// The network of each phase, for a trial whose network changes between them.
    networks: Networks,
}

/// How one step of a multi-step task ran.
struct StepRan {
    name: String,
    /// Why its `workdir/setup.sh` failed, if it did (nothing else of the step ran).
    setup_failed: Option<String>,
    agent: Option<Result<AgentRun, AgentError>>,
    tests: Option<StepRun>,
    rewards: Option<Result<Rewards, RewardError>>,
    hooks: Vec<HookRun>,
    timings: Vec<PhaseTiming>,
    gate_passed: Option<bool>,
}

impl Ran {
    fn awaits_verification(&self) -> bool {
        self.apart && self.tests.is_none() && matches!(self.agent, Some(Ok(_)))
    }
}

/// Records phases as they happen.
struct Clock<'a> {
    timings: Vec<PhaseTiming>,
    events: &'a UnboundedSender<RunEvent>,
    index: TrialIndex,
}

impl Clock<'_> {
    fn start(&mut self, phase: Phase) -> (usize, Instant) {
        let _ = self.events.send(RunEvent::TrialPhase {
            index: self.index,
            phase,
        });
        self.timings.push(PhaseTiming {
            phase,
            started_at: now_rfc3339(),
            seconds: 0.0,
        });
        (self.timings.len() - 1, Instant::now())
    }

    fn stop(&mut self, (slot, started): (usize, Instant)) {
        self.timings[slot].seconds = started.elapsed().as_secs_f64();
    }
}

/// Runs the trial to a result (retrying infrastructure failures) and writes it.
pub async fn run(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    build_error: Option<&EnvError>,
) -> TrialResult {
    let _ = env.events.send(RunEvent::TrialStarted {
        index: TrialIndex(setup.index),
        label: setup.label.clone(),
    });
    let mut retried = Vec::new();
    let mut clock = Clock {
        timings: Vec::new(),
        events: env.events,
        index: TrialIndex(setup.index),
    };
    let mut teardown_errors = Vec::new();
    let mut delays = env.retry.delays();
    let (outcome, environment) = loop {
        clock.timings.clear();
        if let Err(e) = reset_trial(env, &setup.dir).await {
            let context = format!("trial directory `{}`", setup.dir.display());
            break (Attempt::Infra(EnvError::io(context, e)), None);
        }
        if let Some(error) = build_error {
            break (Attempt::Infra(error.clone()), None);
        }
        // Starting is not raced against a cancel here: an environment created while its
        // future is dropped would be left behind. The engine itself stops early on a cancel
        // and removes what it made. Only an engine that does not answer within the grace
        // after a cancel is left: what it may still make carries this run's labels, so the
        // next apply reaps it, and the user is told.
        let phase = clock.start(Phase::Environment);
        let mut spec = setup.task.container.clone();
        spec.labels = env.labels.container(&setup.trial_id, &setup.task.name);
        spec.isolated_network = env.isolated_network.map(str::to_string);
        spec.mounts.extend(setup.mount.clone());
        if let Some(compose) = &setup.task.compose {
            let host = |name: &str| std::env::var(name).ok();
            match compose.spec(
                &super::services::project_name(&setup.trial_id),
                &setup.dir,
                (spec.cpus, spec.memory_mb),
                setup.task.build_timeout,
                &host,
            ) {
                Ok(services) => spec.services = Some(services),
                Err(problem) => {
                    break (Attempt::Infra(EnvError::Unsupported(problem)), None);
                }
            }
        }
        let created = env.grace.bound(env.engine.create(&spec, env.cancel)).await;
        let (outcome, environment) = match created.unwrap_or_else(|| {
            let _ = env.events.send(RunEvent::CreateAbandoned {
                index: TrialIndex(setup.index),
                label: setup.label.clone(),
                provider: env.engine.provider(),
            });
            Err(EnvError::Cancelled)
        }) {
            Err(EnvError::Cancelled) => (Attempt::Cancelled, None),
            Err(error) => (Attempt::Infra(error), None),
            Ok(instance) => {
                let mut outcome = if env.cancel.is_cancelled() {
                    Attempt::Cancelled
                } else {
                    tokio::select! {
                        biased;
                        _ = env.cancel.cancelled() => Attempt::Cancelled,
                        outcome = work(setup, env, &instance, &mut clock, phase) => outcome,
                    }
                };
                if let Attempt::Ran(ran) = &mut outcome
                    && ran.awaits_verification()
                    && !env.cancel.is_cancelled()
                {
                    let ran = std::mem::take(&mut **ran);
                    outcome =
                        verify_apart(setup, env, &instance, &mut clock, ran, &mut teardown_errors)
                            .await;
                }
                if let Attempt::Ran(ran) = &mut outcome {
                    ran.slot = None;
                }
                let phase = clock.start(Phase::Teardown);
                // A failed removal leaves a labelled environment that the next apply or
                // `helios gc` removes; it is recorded and reported, and the trial's own
                // outcome stands. After a cancel it waits on the engine no longer than the
                // grace.
                let removed = env.grace.remove(&instance).await;
                if let Err(error) = removed {
                    let _ = env.events.send(RunEvent::TeardownFailed {
                        index: TrialIndex(setup.index),
                        label: setup.label.clone(),
                        provider: instance.provider(),
                        id: instance.id().to_string(),
                        error: error.to_string(),
                    });
                    teardown_errors.push(ErrorInfo::from_env(&error));
                }
                clock.stop(phase);
                (outcome, Some(instance.id().to_string()))
            }
        };
        let (error, wait) = match outcome {
            Attempt::Infra(error) if error.is_retryable() => match delays.next() {
                Some(wait) => (error, wait),
                None => break (Attempt::Infra(error), environment),
            },
            outcome => break (outcome, environment),
        };
        let kind = ErrorKind::from(&error);
        let _ = env.events.send(RunEvent::TrialRetry {
            index: TrialIndex(setup.index),
            label: setup.label.clone(),
            kind,
            error: error.to_string(),
            wait_seconds: wait.as_secs_f64(),
        });
        retried.push(RetriedFailure {
            at: now_rfc3339(),
            error: ErrorInfo::from_env(&error),
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = env.cancel.cancelled() => break (Attempt::Cancelled, environment),
        }
    };
    let mut result = conclude(setup, outcome, environment, clock.timings, retried);
    result.teardown_errors = teardown_errors;
    if let Err(e) = write_result(&setup.dir, &result).await {
        // The result still reaches the run's outcome and summary; the event says why the
        // file is missing.
        result.error.get_or_insert_with(|| {
            ErrorInfo::new(
                ErrorKind::IoError,
                format!("cannot write `{}/result.json`: {e}", setup.dir.display()),
            )
        });
    }
    let _ = env.events.send(RunEvent::TrialFinished {
        index: TrialIndex(setup.index),
        label: setup.label.clone(),
        status: result.status,
        reward: result.reward,
        error_kind: result.error.as_ref().map(|e| e.kind),
    });
    result
}

/// Empties the trial's directory, off the runtime's threads: removing an earlier
/// attempt's files can take a while.
async fn reset_trial(env: &TrialEnv<'_>, dir: &Path) -> std::io::Result<()> {
    let store = env.store.clone();
    let (dir, build_log) = (dir.to_path_buf(), env.build_log.map(Path::to_path_buf));
    tokio::task::spawn_blocking(move || store.reset_trial(&dir, build_log.as_deref()))
        .await
        .map_err(std::io::Error::other)?
}

/// Writes `result.json` off the runtime's threads (it is flushed to disk before it is
/// renamed into place, which would stall every trial sharing the thread).
async fn write_result(dir: &Path, result: &TrialResult) -> std::io::Result<()> {
    let (dir, result) = (dir.to_path_buf(), result.clone());
    tokio::task::spawn_blocking(move || RunStore::write_result(&dir, &result))
        .await
        .map_err(std::io::Error::other)?
}

async fn work(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    instance: &Instance,
    clock: &mut Clock<'_>,
    environment_phase: (usize, Instant),
) -> Attempt {
    let verify_here = setup.task.isolation == Isolation::Shared;
    match lifecycle(setup, env, instance, clock, environment_phase, verify_here).await {
        Ok(ran) => Attempt::Ran(Box::new(ran)),
        Err(error) => Attempt::Infra(error),
    }
}

/// The environment made ready, the agent, and with `verify_here` the verification and the
/// collection of `/logs` in the same environment.
async fn lifecycle(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    instance: &Instance,
    clock: &mut Clock<'_>,
    phase: (usize, Instant),
    verify_here: bool,
) -> Result<Ran, EnvError> {
    let task = &setup.task;
    instance.ready().await?;
    let mut networks = Networks::default();
    networks
        .set(setup, env, instance, "environment", None)
        .await?;
    // Made with the first upload (the oracle's solution, the tests) rather than by a
    // command of their own: one engine round trip fewer. World-writable, as Harbor's
    // mounted log directories are, so an image's non-root user can write its logs.
    instance.stage_dirs(LOG_DIRS, 0o777)?;
    if let Some(workdir) = task
        .workdir
        .as_deref()
        .filter(|_| !instance.makes_workdir())
    {
        let made = instance
            .exec(&ExecSpec {
                command: format!("mkdir -p {}", crate::env::shell_quote(workdir)),
                ..Default::default()
            })
            .await?;
        if made.exit_code != Some(0) {
            return Err(EnvError::engine(
                instance.provider(),
                format!(
                    "cannot create the workdir `{workdir}` in {} `{}`: {}{}",
                    instance.provider(),
                    instance.id(),
                    made.stdout.trim(),
                    made.stderr.trim()
                ),
            ));
        }
    }
    if let Some(desktop) = &task.desktop
        && let Err(error) = crate::env::desktop::start(instance, desktop).await
    {
        // Its logs say why; keep them with the trial (best effort: the error stands).
        let _ = instance
            .download_dir("/logs", &setup.dir, crate::env::tarball::LOGS_CAP)
            .await;
        return Err(error);
    }
    if let Some(check) = &task.healthcheck {
        super::health::wait_healthy(instance, check, task.workdir.clone(), None).await?;
    }
    clock.stop(phase);
    if let Some(starting) = env.starting {
        starting.ready();
    }

    let mut ran = Ran {
        networks,
        slot: Some(
            env.slots
                .clone()
                .acquire_owned()
                .await
                .expect("the run's slots are never closed"),
        ),
        ..Ran::default()
    };
    if !task.steps.is_empty() {
        multi_step(setup, env, instance, clock, &mut ran).await?;
        return Ok(ran);
    }
    let mut networks = std::mem::take(&mut ran.networks);
    networks
        .set(setup, env, instance, "agent", Some(task.agent_network))
        .await?;
    ran.networks = networks;
    let phase = clock.start(Phase::Agent);
    let agent = AgentTurn {
        instruction: &task.instruction,
        solution_dir: task.dir.join("solution"),
        timeout: task.agent_timeout,
        user: task.agent_user.clone(),
        dir: setup.dir.clone(),
    };
    let agent_result = match run_agent(setup, env, instance, &agent).await? {
        Ok(result) => result,
        Err(problem) => {
            ran.agent = Some(Err(AgentError::Env(EnvError::Unsupported(problem))));
            clock.stop(phase);
            ran.logs_cut = collect(setup, instance, clock).await?;
            return Ok(ran);
        }
    };
    let agent_ok = agent_result.is_ok();
    ran.agent = Some(agent_result);
    clock.stop(phase);
    ran.hooks = super::artifacts::run_hooks(instance, &task.collect, task.workdir.clone()).await?;
    super::artifacts::collect(
        instance,
        &task.artifacts,
        task.workdir.clone(),
        &setup.dir.join("artifacts"),
    )
    .await?;

    if let Some(verifier) = task.verifier(None) {
        // Harbor's separate verifier: the agent's logs first, then the tests in an
        // environment of their own that gets the artifacts.
        ran.logs_cut = collect(setup, instance, clock).await?;
        if agent_ok {
            let _cores = env.verifier_cores().await;
            let phase = clock.start(Phase::Verifier);
            let tests = steps::TestsSpec {
                dirs: &[],
                workdir: verifier.container.workdir.clone(),
                env: task.verifier_env.clone(),
                timeout: task.verifier_timeout,
                user: task.verifier_user.clone(),
            };
            ran.tests = Some(
                verify_separately(setup, env, verifier, &task.artifacts, &setup.dir, &tests)
                    .await?,
            );
            clock.stop(phase);
        }
        return Ok(ran);
    }
    if agent_ok && !verify_here {
        // Verified apart, in a fresh environment; `/logs` is collected from there.
        ran.apart = true;
        return Ok(ran);
    }
    if agent_ok {
        let mut networks = std::mem::take(&mut ran.networks);
        networks
            .set(
                setup,
                env,
                instance,
                "verifier",
                Some(task.verifier_network),
            )
            .await?;
        ran.networks = networks;
        let _cores = env.verifier_cores().await;
        let phase = clock.start(Phase::Verifier);
        verify(setup, instance, &mut ran).await?;
        clock.stop(phase);
    }
    ran.logs_cut = collect(setup, instance, clock).await?;
    Ok(ran)
}

/// The networks a trial whose network changes between phases was on, phase by phase.
#[derive(Default)]
struct Networks {
    /// `phase` (or `step/phase`) → `public`, `allowlist` or `no-network`.
    by_phase: BTreeMap<String, String>,
}

impl Networks {
    /// Before `phase`: puts the trial's environment on the network `mode` says (the
    /// environment's with `None`), and notes it. Nothing for a trial whose network does not
    /// change.
    async fn set(
        &mut self,
        setup: &TrialSetup,
        env: &TrialEnv<'_>,
        instance: &Instance,
        phase: &str,
        mode: Option<crate::manifest::task::NetworkMode>,
    ) -> Result<(), EnvError> {
        if !setup.task.container.switches_network {
            return Ok(());
        }
        let public = match mode {
            Some(mode) => mode != crate::manifest::task::NetworkMode::NoNetwork,
            None => !setup.task.container.no_network,
        };
        // Under `allowlist`: the phase's hosts, and the model gateway always.
        let gateway = env
            .gateway
            .and_then(Result::ok)
            .map(|gateway| gateway.address());
        let allowlist = public
            .then(|| setup.task.allowlists.get(phase))
            .flatten()
            .map(|hosts| crate::env::Allowlist {
                hosts: hosts.clone(),
                gateway,
                ..Default::default()
            });
        let plan = crate::env::NetworkPlan {
            public,
            isolated: env.isolated_network.map(str::to_string),
            allowlist,
            gateway,
        };
        instance.set_network(&plan).await?;
        self.by_phase
            .insert(phase.to_string(), plan.mode().to_string());
        Ok(())
    }
}

/// One run of the agent: a task's, or a step's.
struct AgentTurn<'a> {
    instruction: &'a str,
    solution_dir: std::path::PathBuf,
    timeout: Option<std::time::Duration>,
    user: Option<String>,
    /// Where its files go: the trial's directory, or the step's (`agent/` there holds its
    /// trajectory and its model calls).
    dir: std::path::PathBuf,
}

/// Runs the agent with its access to the gateway; `Ok(Err(problem))` when it cannot have
/// the access it needs. A failure of the environment under it is the attempt's error.
async fn run_agent(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    instance: &Instance,
    turn: &AgentTurn<'_>,
) -> Result<Result<Result<AgentRun, AgentError>, String>, EnvError> {
    let task = &setup.task;
    // What the agent is asked stays with its results, for people reading them later.
    std::fs::create_dir_all(&turn.dir)
        .and_then(|()| {
            std::fs::write(
                turn.dir.join(crate::store::INSTRUCTION_FILE),
                turn.instruction,
            )
        })
        .map_err(|e| EnvError::io(format!("writing `{}`", turn.dir.display()), e))?;
    let lease = match open_lease(setup, env, &turn.dir) {
        Ok(lease) => lease,
        Err(problem) => return Ok(Err(problem)),
    };
    let mut agent_env = setup.agent_env.clone();
    if let Some(lease) = &lease {
        crate::gateway::merge_env(&mut agent_env, lease.env());
    }
    let cx = AgentContext {
        kind: setup.kind,
        solution_dir: &turn.solution_dir,
        user: turn.user.clone(),
        instruction: turn.instruction,
        workdir: task.workdir.clone(),
        solution_env: task.solution_env.clone(),
        agent_env,
        command: setup.command.as_deref(),
        timeout: turn.timeout,
        model_plan: setup.model_plan.as_deref(),
        trajectory_path: turn.dir.join(crate::store::TRAJECTORY_FILE),
        session_id: &setup.trial_id,
        events: Some((env.events.clone(), TrialIndex(setup.index))),
    };
    let agent_result = agent::run(instance, &cx).await;
    let agent_result = match lease {
        Some(lease) => agent_result.map(|run| with_gateway_usage(run, lease)),
        None => agent_result,
    };
    if let Err(AgentError::Env(e)) = &agent_result
        && !matches!(e, EnvError::Unsupported(_))
    {
        return Err(e.clone());
    }
    Ok(Ok(agent_result))
}

/// A multi-step task's steps, in order, in one environment: each step's `workdir/` and
/// `setup.sh`, healthcheck, agent, collect hooks and artifacts, and tests (the task's
/// `tests/` with the step's over them); its `/logs` go to `steps/<name>/` of the trial, and
/// a step below its `min_reward` ends the trial there.
async fn multi_step(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    instance: &Instance,
    clock: &mut Clock<'_>,
    ran: &mut Ran,
) -> Result<(), EnvError> {
    let task = &setup.task;
    let workdir = match &task.workdir {
        Some(workdir) => workdir.clone(),
        None => {
            let pwd = instance
                .exec(&ExecSpec {
                    command: "pwd".into(),
                    ..Default::default()
                })
                .await?;
            pwd.stdout.trim().to_string()
        }
    };
    for (number, step) in task.steps.iter().enumerate() {
        let _ = env.events.send(RunEvent::TrialStep {
            index: TrialIndex(setup.index),
            label: setup.label.clone(),
            step: step.name.clone(),
            number: number + 1,
            of: task.steps.len(),
        });
        let step_dir = setup.dir.join("steps").join(&step.name);
        let first_timing = clock.timings.len();
        let mut outcome = StepRan {
            name: step.name.clone(),
            setup_failed: None,
            agent: None,
            tests: None,
            rewards: None,
            hooks: Vec::new(),
            timings: Vec::new(),
            gate_passed: None,
        };
        // A step's setup runs on the environment's network, its phases on their own.
        ran.networks
            .set(
                setup,
                env,
                instance,
                &format!("{}/environment", step.name),
                None,
            )
            .await?;
        let phase = clock.start(Phase::Environment);
        let files = step.dir.join("workdir");
        if files.is_dir() {
            instance
                .upload_dir(&files, workdir.trim_start_matches('/'))
                .await?;
            if files.join("setup.sh").is_file() {
                let output = instance
                    .exec(&ExecSpec {
                        command: "bash ./setup.sh".into(),
                        workdir: Some(workdir.clone()),
                        user: step.agent_user.clone(),
                        ..Default::default()
                    })
                    .await?;
                if output.exit_code != Some(0) {
                    let mut text = output.stdout;
                    text.push_str(&output.stderr);
                    outcome.setup_failed = Some(format!(
                        "steps/{}/workdir/setup.sh exited with {}: {}",
                        step.name,
                        output
                            .exit_code
                            .map_or("no status".to_string(), |c| c.to_string()),
                        text.trim()
                    ));
                }
            }
        }
        if outcome.setup_failed.is_none()
            && let Some(check) = &step.healthcheck
        {
            super::health::wait_healthy(
                instance,
                check,
                Some(workdir.clone()),
                step.agent_user.clone(),
            )
            .await?;
        }
        clock.stop(phase);
        if outcome.setup_failed.is_none() {
            ran.networks
                .set(
                    setup,
                    env,
                    instance,
                    &format!("{}/agent", step.name),
                    Some(step.agent_network),
                )
                .await?;
            let phase = clock.start(Phase::Agent);
            let turn = AgentTurn {
                instruction: &step.instruction,
                solution_dir: step.dir.join("solution"),
                timeout: step.agent_timeout,
                user: step.agent_user.clone(),
                dir: step_dir.clone(),
            };
            outcome.agent = Some(match run_agent(setup, env, instance, &turn).await? {
                Ok(result) => result,
                Err(problem) => Err(AgentError::Env(EnvError::Unsupported(problem))),
            });
            clock.stop(phase);
            outcome.hooks =
                super::artifacts::run_hooks(instance, &step.collect, Some(workdir.clone())).await?;
            super::artifacts::collect(
                instance,
                &step.artifacts,
                Some(workdir.clone()),
                &step_dir.join("artifacts"),
            )
            .await?;
            let cores = env.verifier_cores().await;
            let phase = clock.start(Phase::Verifier);
            if let Some(verifier) = task.verifier(Some(&step.name)) {
                // The agent's `/logs/artifacts` go with the declared artifacts.
                instance
                    .download_dir(
                        "/logs/artifacts",
                        &step_dir.join("artifacts"),
                        crate::env::tarball::LOGS_CAP,
                    )
                    .await?;
                let tests = steps::TestsSpec {
                    dirs: &[],
                    workdir: verifier.container.workdir.clone(),
                    env: step.verifier_env.clone(),
                    timeout: step.verifier_timeout,
                    user: step.verifier_user.clone(),
                };
                outcome.tests = Some(
                    verify_separately(setup, env, verifier, &step.artifacts, &step_dir, &tests)
                        .await?,
                );
            } else {
                ran.networks
                    .set(
                        setup,
                        env,
                        instance,
                        &format!("{}/verifier", step.name),
                        Some(step.verifier_network),
                    )
                    .await?;
                // The previous step's tests are gone before this step's are copied in.
                instance
                    .exec(&ExecSpec {
                        command: "rm -rf /tests".into(),
                        ..Default::default()
                    })
                    .await?;
                let dirs = [task.dir.join("tests"), step.dir.join("tests")];
                outcome.tests = Some(
                    steps::run_tests(
                        instance,
                        &steps::TestsSpec {
                            dirs: &dirs,
                            workdir: Some(workdir.clone()),
                            env: step.verifier_env.clone(),
                            timeout: step.verifier_timeout,
                            user: step.verifier_user.clone(),
                        },
                    )
                    .await?,
                );
            }
            clock.stop(phase);
            drop(cores);
        }
        let phase = clock.start(Phase::Collect);
        let collected = instance
            .download_dir("/logs", &step_dir, crate::env::tarball::LOGS_CAP)
            .await?;
        ran.logs_cut = LogsCut::of(&collected).or(ran.logs_cut.take());
        // The next step starts with empty logs, as its own files go to its own directory.
        instance
            .exec(&ExecSpec {
                command: "rm -rf /logs/agent/* /logs/verifier/* /logs/artifacts/*".into(),
                ..Default::default()
            })
            .await?;
        clock.stop(phase);
        if outcome.tests.as_ref().is_some_and(|t| !t.timed_out) {
            outcome.rewards = Some(reward::read(&step_dir.join("verifier"), "/logs/verifier"));
        }
        if let Some(thresholds) = &step.min_reward {
            let rewards = outcome.rewards.as_ref().and_then(|r| r.as_ref().ok());
            let passed = thresholds.iter().all(|(key, min)| {
                rewards
                    .and_then(|r| r.get(key))
                    .is_some_and(|value| value >= min)
            });
            outcome.gate_passed = Some(passed);
        }
        outcome.timings = clock.timings[first_timing..].to_vec();
        let stop = outcome.setup_failed.is_some() || outcome.gate_passed == Some(false);
        ran.steps_ran.push(outcome);
        if stop {
            break;
        }
    }
    Ok(())
}

/// Harbor's separate verifier: a fresh environment of the verifier's own image, given the
/// agent's `/logs/artifacts` (as collected into `dir/artifacts/`) and each declared
/// artifact at its path; the tests its image holds run there, and its `/logs/verifier`
/// goes to `dir/verifier/`. The environment is removed whatever happens.
async fn verify_separately(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    verifier: &super::prepare::VerifierRuntime,
    artifacts: &[crate::manifest::task::ArtifactSpec],
    dir: &Path,
    tests: &steps::TestsSpec<'_>,
) -> Result<StepRun, EnvError> {
    let mut spec = verifier.container.clone();
    spec.labels = env.labels.container(&setup.trial_id, &setup.task.name);
    let verified =
        super::separate::verify(env.engine, &spec, env.grace, artifacts, dir, tests).await;
    if let Some((instance, error)) = verified.leftover {
        let _ = env.events.send(RunEvent::TeardownFailed {
            index: TrialIndex(setup.index),
            label: setup.label.clone(),
            provider: instance.provider(),
            id: instance.id().to_string(),
            error: error.to_string(),
        });
    }
    verified.outcome
}

/// The trial's access to the model gateway, for a `command` agent with a model; why it has
/// none when its provider cannot reach the gateway.
fn open_lease(setup: &TrialSetup, env: &TrialEnv<'_>, dir: &Path) -> Result<Option<Lease>, String> {
    let Some(route) = &setup.gateway_route else {
        return Ok(None);
    };
    match env.gateway {
        Some(Ok(gateway)) => Ok(Some(gateway.open(
            route,
            dir.to_path_buf(),
            &setup.trial_id,
            Some((env.events.clone(), TrialIndex(setup.index))),
        ))),
        Some(Err(problem)) => Err(problem.to_string()),
        None if setup.task.container.no_network => Err(format!(
            "agent `{}` calls its model through helios's model gateway, but task `{}` has no \
             network and {} cannot give it one that reaches only this machine",
            setup.agent, setup.task.name, setup.provider
        )),
        None => Err(format!(
            "agent `{}` calls its model through helios's model gateway, which {} sandboxes \
             cannot reach; run it with `provider = \"docker\"`",
            setup.agent, setup.provider
        )),
    }
}

/// A `command` agent's run with what its calls through the gateway came to: usage, cost,
/// and the limit it reached (the trial's error; the verifier still runs).
fn with_gateway_usage(mut run: AgentRun, lease: Lease) -> AgentRun {
    let used = lease.close();
    if used.calls > 0 {
        run.usage = Some(used.usage);
        run.cost_usd = used.cost_usd;
    }
    if let Some((kind, message)) = used.limit
        && run.stop.is_none()
    {
        run.stop = Some(agent::AgentStop {
            timed_out: false,
            kind,
            message,
        });
    }
    run
}

/// Copies `/logs` of the environment into the trial's directory.
async fn collect(
    setup: &TrialSetup,
    instance: &Instance,
    clock: &mut Clock<'_>,
) -> Result<Option<LogsCut>, EnvError> {
    let phase = clock.start(Phase::Collect);
    let collected = instance
        .download_dir("/logs", &setup.dir, crate::env::tarball::LOGS_CAP)
        .await?;
    clock.stop(phase);
    Ok(LogsCut::of(&collected))
}

/// Runs the task's tests and then the pipeline's extra steps in `instance`.
async fn verify(setup: &TrialSetup, instance: &Instance, ran: &mut Ran) -> Result<(), EnvError> {
    let task = &setup.task;
    let tests = steps::run_tests(
        instance,
        &steps::TestsSpec {
            dirs: &[task.dir.join("tests")],
            workdir: task.workdir.clone(),
            env: task.verifier_env.clone(),
            timeout: task.verifier_timeout,
            user: task.verifier_user.clone(),
        },
    )
    .await?;
    let tests_timed_out = tests.timed_out;
    ran.tests = Some(tests);
    if tests_timed_out {
        return Ok(());
    }
    for step in setup.steps.iter() {
        let Some(command) = &step.command else {
            continue;
        };
        let timeout = step
            .timeout_sec
            .map_or(task.verifier_timeout, std::time::Duration::from_secs_f64);
        let run = steps::run_step(
            instance,
            &step.name,
            command,
            task.workdir.clone(),
            task.verifier_env.clone(),
            timeout,
        )
        .await?;
        ran.steps.push((step.name.clone(), run));
    }
    Ok(())
}

/// `isolation = "separate"`: the agent's environment is frozen into an image and removed,
/// so none of its processes survive; the tests run in a fresh environment made from that
/// image, and `/logs` is collected from it. Making the environments is not raced against
/// a cancel (see [`run`]); the verification is.
async fn verify_apart(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    agent_instance: &Instance,
    clock: &mut Clock<'_>,
    mut ran: Ran,
    teardown_errors: &mut Vec<ErrorInfo>,
) -> Attempt {
    let _cores = tokio::select! {
        cores = env.verifier_cores() => cores,
        _ = env.cancel.cancelled() => return Attempt::Cancelled,
    };
    let phase = clock.start(Phase::Verifier);
    let labels = env.labels.container(&setup.trial_id, &setup.task.name);
    let image = match env.grace.bound(agent_instance.freeze(&labels)).await {
        Some(Ok(image)) => image,
        Some(Err(error)) => return Attempt::Infra(error),
        None => return Attempt::Cancelled,
    };
    // The agent's environment goes now, so none of its processes survive into the tests.
    // `run` asks again in its teardown and gets this answer (the instance owns its one
    // removal), and reports a failure there, once.
    let _ = env.grace.bound(agent_instance.remove()).await;
    let mut spec = setup.task.container.clone();
    spec.image = image.clone();
    spec.labels = labels;
    let created = env.grace.bound(env.engine.create(&spec, env.cancel)).await;
    let outcome = match created.unwrap_or(Err(EnvError::Cancelled)) {
        Err(EnvError::Cancelled) => Attempt::Cancelled,
        Err(error) => Attempt::Infra(error),
        Ok(verifier) => {
            let outcome = tokio::select! {
                biased;
                _ = env.cancel.cancelled() => Attempt::Cancelled,
                done = async {
                    verifier.ready().await?;
                    verify(setup, &verifier, &mut ran).await?;
                    clock.stop(phase);
                    ran.logs_cut = collect(setup, &verifier, clock).await?;
                    Ok::<(), EnvError>(())
                } => match done {
                    Ok(()) => Attempt::Ran(Box::new(std::mem::take(&mut ran))),
                    Err(error) => Attempt::Infra(error),
                },
            };
            let removed = env.grace.remove(&verifier).await;
            if let Err(error) = removed {
                teardown_errors.push(ErrorInfo::from_env(&error));
            }
            outcome
        }
    };
    let removed = env.grace.bound(env.engine.remove_image(&image)).await;
    if let Some(Err(error)) = removed {
        teardown_errors.push(ErrorInfo::from_env(&error));
    }
    outcome
}

/// Turns an attempt into the recorded result: status, rewards and a typed error.
fn conclude(
    setup: &TrialSetup,
    outcome: Attempt,
    environment: Option<String>,
    timings: Vec<PhaseTiming>,
    retried: Vec<RetriedFailure>,
) -> TrialResult {
    let mut result = blank_result(setup, environment, timings, retried);
    match outcome {
        Attempt::Cancelled => result.fail(
            TrialStatus::Cancelled,
            ErrorKind::Cancelled,
            "the run was interrupted",
        ),
        Attempt::Infra(error) => {
            result.status = TrialStatus::InfraError;
            result.error = Some(ErrorInfo::from_env(&error));
        }
        Attempt::Ran(ran) => {
            let ran = *ran;
            result.logs_cut = ran.logs_cut;
            result.collect = ran.hooks;
            result.network = ran.networks.by_phase;
            if !ran.steps_ran.is_empty() {
                record_steps(setup, &mut result, ran.steps_ran);
            } else if record_agent(setup, &mut result, ran.agent)
                && let Some(tests) = ran.tests
            {
                record_verification(setup, &mut result, tests, &ran.steps);
            }
        }
    }
    result
}

/// A completed result with the trial's identity and nothing else yet.
fn blank_result(
    setup: &TrialSetup,
    environment: Option<String>,
    timings: Vec<PhaseTiming>,
    retried: Vec<RetriedFailure>,
) -> TrialResult {
    TrialResult {
        format: RESULT_FORMAT,
        trial_id: setup.trial_id.clone(),
        full_id: setup.full_id.clone(),
        task: setup.task.name.clone(),
        stage: setup.stage.clone(),
        agent: setup.agent.clone(),
        model: setup.model.clone(),
        params: setup.params.clone(),
        attempt: setup.attempt,
        status: TrialStatus::Completed,
        rewards: BTreeMap::new(),
        reward: None,
        error: None,
        timings,
        agent_exit_code: None,
        verifier_exit_code: None,
        usage: None,
        cost_usd: None,
        image: setup.task.image.clone(),
        provider: setup.provider,
        container: environment,
        retried,
        teardown_errors: Vec::new(),
        logs_cut: None,
        tampering_suspected: false,
        tampering: Vec::new(),
        collect: Vec::new(),
        steps: Vec::new(),
        regraded_from: None,
        network: BTreeMap::new(),
        warnings: setup.warnings.clone(),
        helios_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Records how the agent ended; `false` when it could not run at all (nothing to verify).
fn record_agent(
    setup: &TrialSetup,
    result: &mut TrialResult,
    agent: Option<Result<AgentRun, AgentError>>,
) -> bool {
    let agent = match agent {
        None => return true,
        Some(Err(error)) => {
            result.fail(TrialStatus::Failed, error.kind(), error.to_string());
            return false;
        }
        Some(Ok(agent)) => agent,
    };
    result.agent_exit_code = agent.exit_code;
    result.usage = agent.usage;
    result.cost_usd = agent.cost_usd;
    if setup.kind == AgentKind::Installed
        && !agent.timed_out
        && let Some(code) = agent.exit_code.filter(|&c| c != 0)
    {
        result.fail(
            TrialStatus::Failed,
            ErrorKind::AgentExit,
            format!(
                "agent `{}` exited with {code} (its output is in agent/{}); the verifier ran",
                setup.agent,
                crate::agent::installed::STDERR_LOG
            ),
        );
    }
    if let Some(stop) = &agent.stop {
        let status = if stop.timed_out {
            TrialStatus::TimedOut
        } else {
            TrialStatus::Failed
        };
        result.fail(
            status,
            stop.kind,
            format!("{}; the verifier ran", stop.message),
        );
    }
    if agent.timed_out {
        let limit = setup.task.agent_timeout.map_or(0.0, |d| d.as_secs_f64());
        result.fail(
            TrialStatus::TimedOut,
            ErrorKind::AgentTimeout,
            format!(
                "the agent did not finish within {limit}s; it was stopped and the verifier ran"
            ),
        );
    }
    true
}

/// Records a multi-step trial: each step's outcome, the trial's rewards by the task's
/// strategy, and the first step's error as the trial's.
fn record_steps(setup: &TrialSetup, result: &mut TrialResult, steps: Vec<StepRan>) {
    let task = &setup.task;
    let mut first_error: Option<(TrialStatus, ErrorInfo)> = None;
    for step in steps {
        let mut recorded = StepResult {
            name: step.name.clone(),
            rewards: BTreeMap::new(),
            reward: None,
            error: None,
            agent_exit_code: None,
            verifier_exit_code: None,
            timings: step.timings,
            gate_passed: step.gate_passed,
            collect: step.hooks,
            usage: None,
        };
        let mut fail = |status: TrialStatus, kind: ErrorKind, message: String| {
            if recorded.error.is_none() {
                recorded.error = Some(ErrorInfo::new(kind, message.clone()));
            }
            if first_error.is_none() {
                first_error = Some((
                    status,
                    ErrorInfo::new(kind, format!("step `{}`: {message}", step.name)),
                ));
            }
        };
        if let Some(why) = step.setup_failed {
            fail(TrialStatus::Failed, ErrorKind::StepSetupFailed, why);
        }
        match step.agent {
            Some(Err(error)) => fail(TrialStatus::Failed, error.kind(), error.to_string()),
            Some(Ok(agent)) => {
                recorded.agent_exit_code = agent.exit_code;
                // The trial's tokens and cost are its steps' together.
                recorded.usage = agent.usage;
                if let Some(usage) = agent.usage {
                    *result.usage.get_or_insert_with(Default::default) += usage;
                }
                if let Some(cost) = agent.cost_usd {
                    *result.cost_usd.get_or_insert(0.0) += cost;
                }
                if let Some(stop) = &agent.stop {
                    let status = if stop.timed_out {
                        TrialStatus::TimedOut
                    } else {
                        TrialStatus::Failed
                    };
                    fail(
                        status,
                        stop.kind,
                        format!("{}; the verifier ran", stop.message),
                    );
                }
                if agent.timed_out {
                    fail(
                        TrialStatus::TimedOut,
                        ErrorKind::AgentTimeout,
                        "the agent did not finish in time; it was stopped and the verifier ran"
                            .into(),
                    );
                }
            }
            None => {}
        }
        if let Some(tests) = &step.tests {
            recorded.verifier_exit_code = tests.exit_code;
            if tests.timed_out {
                fail(
                    TrialStatus::TimedOut,
                    ErrorKind::VerifierTimeout,
                    "the step's tests did not finish in time".into(),
                );
            }
        }
        match step.rewards {
            Some(Ok(rewards)) => {
                recorded.reward = reward::primary(&rewards);
                recorded.rewards = rewards;
            }
            Some(Err(error)) => fail(TrialStatus::Failed, error.kind(), error.to_string()),
            None => {}
        }
        result.steps.push(recorded);
    }
    let (rewards, primary) = combine_steps(task.reward_strategy, &result.steps);
    result.rewards = rewards;
    result.reward = primary;
    if let Some((status, error)) = first_error {
        result.status = status;
        result.error = Some(error);
    }
}

/// A multi-step trial's rewards: the last step's (`final`), or each key's mean over the
/// steps that wrote rewards, a key a step lacks counting 0 (`mean`).
fn combine_steps(
    strategy: crate::manifest::task::RewardStrategy,
    steps: &[StepResult],
) -> (Rewards, Option<f64>) {
    use crate::manifest::task::RewardStrategy;
    let rewards = match strategy {
        RewardStrategy::Final => steps.last().map(|s| s.rewards.clone()).unwrap_or_default(),
        RewardStrategy::Mean => {
            let scored: Vec<&Rewards> = steps
                .iter()
                .map(|s| &s.rewards)
                .filter(|r| !r.is_empty())
                .collect();
            let keys: std::collections::BTreeSet<&String> =
                scored.iter().flat_map(|r| r.keys()).collect();
            keys.into_iter()
                .map(|key| {
                    let sum: f64 = scored
                        .iter()
                        .map(|r| r.get(key).copied().unwrap_or(0.0))
                        .sum();
                    (key.clone(), sum / scored.len() as f64)
                })
                .collect()
        }
    };
    let primary = reward::primary(&rewards);
    (rewards, primary)
}

/// Records the verifier's exit, its timeout, and the rewards it wrote.
fn record_verification(
    setup: &TrialSetup,
    result: &mut TrialResult,
    tests: StepRun,
    steps: &[(String, StepRun)],
) {
    result.verifier_exit_code = tests.exit_code;
    result.tampering = steps::tampering(&tests, &setup.dir.join("verifier"));
    result.tampering_suspected = !result.tampering.is_empty();
    if tests.timed_out {
        let limit = setup.task.verifier_timeout.as_secs_f64();
        result.fail(
            TrialStatus::TimedOut,
            ErrorKind::VerifierTimeout,
            format!("tests/test.sh did not finish within {limit}s"),
        );
        return;
    }
    match combine_rewards(&setup.dir, steps, &setup.steps) {
        Ok((rewards, primary)) => {
            result.rewards = rewards;
            result.reward = primary;
        }
        Err(error) if result.error.is_none() => {
            result.fail(TrialStatus::Failed, error.kind(), error.to_string());
        }
        Err(_) => {}
    }
}

/// The tests' rewards, and with extra steps, each step's reward under its name and a
/// weighted mean as the primary reward.
fn combine_rewards(
    trial_dir: &Path,
    ran: &[(String, StepRun)],
    steps: &[crate::manifest::pipeline::VerifyStep],
) -> Result<(Rewards, Option<f64>), RewardError> {
    let verifier = trial_dir.join("verifier");
    let mut rewards = reward::read(&verifier, "/logs/verifier")?;
    let tests_primary = reward::primary(&rewards);
    if ran.is_empty() {
        return Ok((rewards, tests_primary));
    }
    let weight_of = |name: &str| {
        steps
            .iter()
            .find(|s| s.name == name)
            .map_or(1.0, |s| s.weight)
    };
    let mut weighted = tests_primary.map(|r| (r * weight_of("tests"), weight_of("tests")));
    for (name, run) in ran {
        if run.timed_out {
            return Err(RewardError::Invalid {
                file: format!("/logs/verifier/{name}"),
                reason: "the step timed out".into(),
            });
        }
        let step_rewards = reward::read(&verifier.join(name), &format!("/logs/verifier/{name}"))?;
        let value = reward::primary(&step_rewards);
        if let (Some(value), Some((sum, total))) = (value, weighted.as_mut()) {
            *sum += value * weight_of(name);
            *total += weight_of(name);
        } else {
            weighted = None;
        }
        if let Some(value) = value {
            rewards.insert(name.clone(), value);
        }
    }
    let primary = weighted.and_then(|(sum, total)| (total > 0.0).then(|| sum / total));
    Ok((rewards, primary))
}
