//! One trial's lifecycle, in Harbor's conventions: start the environment (a container or a
//! sandbox), run the agent, copy the tests in and run them, collect `/logs`, remove the
//! environment, write `result.json`. Every ending is a result; none is a crash, and the
//! environment is removed after success, failure and cancel alike.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::events::RunEvent;
use super::prepare::TrialSetup;
use crate::agent::{self, AgentContext, AgentError, AgentRun};
use crate::env::{Engine, EnvError, ExecSpec, Instance, Labels};
use crate::results::trial::{
    ErrorInfo, PhaseTiming, RESULT_FORMAT, RetriedFailure, TrialResult, now_rfc3339,
};
use crate::results::{TrialStatus, write_atomic};
use crate::verify::reward::{self, RewardError, Rewards};
use crate::verify::steps::{self, StepRun};

/// What runs a trial needs from the run.
pub struct TrialEnv<'a> {
    /// The engine of the trial's provider.
    pub engine: &'a Engine,
    pub labels: &'a Labels,
    pub cancel: &'a CancellationToken,
    pub events: &'a UnboundedSender<RunEvent>,
    /// Infrastructure failures retried before giving up.
    pub retries: u32,
    /// The build log of the trial's image, linked into its directory.
    pub build_log: Option<&'a Path>,
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
}

/// Records phases as they happen.
struct Clock<'a> {
    timings: Vec<PhaseTiming>,
    events: &'a UnboundedSender<RunEvent>,
    index: usize,
}

impl Clock<'_> {
    fn start(&mut self, phase: &'static str) -> (usize, Instant) {
        let _ = self.events.send(RunEvent::TrialPhase {
            index: self.index,
            phase,
        });
        self.timings.push(PhaseTiming {
            phase: phase.to_string(),
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
        index: setup.index,
        label: setup.label.clone(),
    });
    let mut retried = Vec::new();
    let mut clock = Clock {
        timings: Vec::new(),
        events: env.events,
        index: setup.index,
    };
    let mut teardown_errors = Vec::new();
    let (outcome, environment) = loop {
        clock.timings.clear();
        if let Err(e) = reset_dir(&setup.dir, env.build_log) {
            break (Attempt::Infra(e), None);
        }
        if let Some(error) = build_error {
            break (Attempt::Infra(error.clone()), None);
        }
        // Starting is not raced against a cancel here: an environment created while its
        // future is dropped would be left behind. The engine itself stops early on a cancel
        // and removes what it made.
        let phase = clock.start("environment");
        let mut spec = setup.task.container.clone();
        spec.labels = env.labels.container(&setup.trial_id, &setup.task.name);
        let (outcome, environment) = match env.engine.start(&spec, env.cancel).await {
            Err(EnvError::Cancelled) => (Attempt::Cancelled, None),
            Err(error) => (Attempt::Infra(error), None),
            Ok(instance) => {
                let outcome = if env.cancel.is_cancelled() {
                    Attempt::Cancelled
                } else {
                    tokio::select! {
                        biased;
                        _ = env.cancel.cancelled() => Attempt::Cancelled,
                        outcome = work(setup, env, &instance, &mut clock, phase) => outcome,
                    }
                };
                let phase = clock.start("teardown");
                // A failed removal leaves a labelled environment that the next apply or
                // `helios gc` removes; it is recorded and reported, and the trial's own
                // outcome stands.
                if let Err(error) = instance.remove().await {
                    let _ = env.events.send(RunEvent::TeardownFailed {
                        index: setup.index,
                        label: setup.label.clone(),
                        provider: instance.provider(),
                        id: instance.id().to_string(),
                        error: error.to_string(),
                    });
                    teardown_errors.push(ErrorInfo::new(error.kind(), error.to_string()));
                }
                clock.stop(phase);
                (outcome, Some(instance.id().to_string()))
            }
        };
        match outcome {
            Attempt::Infra(error)
                if error.is_retryable() && (retried.len() as u32) < env.retries =>
            {
                let _ = env.events.send(RunEvent::TrialRetry {
                    index: setup.index,
                    label: setup.label.clone(),
                    error: error.to_string(),
                });
                retried.push(RetriedFailure {
                    at: now_rfc3339(),
                    error: ErrorInfo::new(error.kind(), error.to_string()),
                });
            }
            outcome => break (outcome, environment),
        }
    };
    let mut result = conclude(setup, outcome, environment, clock.timings, retried);
    result.teardown_errors = teardown_errors;
    let mut bytes = serde_json::to_vec_pretty(&result).expect("results serialize");
    bytes.push(b'\n');
    if let Err(e) = write_atomic(&setup.dir.join("result.json"), &bytes) {
        eprintln!("helios: cannot write the result of {}: {e}", setup.label);
    }
    let _ = env.events.send(RunEvent::TrialFinished {
        index: setup.index,
        label: setup.label.clone(),
        status: result.status,
        reward: result.reward,
        error_kind: result.error.as_ref().map(|e| e.kind.clone()),
    });
    result
}

/// A fresh trial directory (a rerun must not mix with old files), with the build log.
fn reset_dir(dir: &Path, build_log: Option<&Path>) -> Result<(), EnvError> {
    let io = |e: std::io::Error| EnvError::Io(format!("trial directory `{}`: {e}", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    for sub in ["agent", "verifier", "artifacts"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(io)?;
    }
    if let Some(log) = build_log.filter(|l| l.exists()) {
        let target = dir.join("build.log");
        if std::fs::hard_link(log, &target).is_err() {
            std::fs::copy(log, &target).map_err(io)?;
        }
    }
    Ok(())
}

async fn work(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    instance: &Instance,
    clock: &mut Clock<'_>,
    environment_phase: (usize, Instant),
) -> Attempt {
    match lifecycle(setup, env, instance, clock, environment_phase).await {
        Ok(ran) => Attempt::Ran(Box::new(ran)),
        Err(error) => Attempt::Infra(error),
    }
}

async fn lifecycle(
    setup: &TrialSetup,
    env: &TrialEnv<'_>,
    instance: &Instance,
    clock: &mut Clock<'_>,
    phase: (usize, Instant),
) -> Result<Ran, EnvError> {
    let task = &setup.task;
    instance.ready().await?;
    let mut dirs = String::from("mkdir -p /logs/agent /logs/verifier /logs/artifacts");
    if let Some(workdir) = &task.workdir {
        dirs.push_str(&format!(" {}", crate::env::shell_quote(workdir)));
    }
    let made = instance
        .exec(&ExecSpec {
            command: dirs,
            ..Default::default()
        })
        .await?;
    if made.exit_code != Some(0) {
        return Err(EnvError::Engine(format!(
            "cannot create /logs in {} `{}`: {}{}",
            instance.provider(),
            instance.id(),
            made.stdout.trim(),
            made.stderr.trim()
        )));
    }
    if let Some(desktop) = &task.desktop
        && let Err(error) = crate::env::desktop::start(instance, desktop).await
    {
        // Its logs say why; keep them with the trial (best effort: the error stands).
        let _ = instance.download_dir("/logs", &setup.dir).await;
        return Err(error);
    }
    clock.stop(phase);

    let mut ran = Ran::default();
    let phase = clock.start("agent");
    let cx = AgentContext {
        kind: setup.kind,
        task_dir: &task.dir,
        instruction: &task.instruction,
        workdir: task.workdir.clone(),
        solution_env: task.solution_env.clone(),
        agent_env: setup.agent_env.clone(),
        command: setup.command.as_deref(),
        timeout: task.agent_timeout,
        model_plan: setup.model_plan.as_deref(),
        trajectory_path: setup.dir.join("agent").join("trajectory.json"),
        session_id: &setup.trial_id,
        events: Some((env.events.clone(), setup.index)),
    };
    let agent_result = agent::run(instance, &cx).await;
    if let Err(AgentError::Env(e)) = &agent_result
        && !matches!(e, EnvError::Unsupported(_))
    {
        return Err(e.clone());
    }
    let agent_ok = agent_result.is_ok();
    ran.agent = Some(agent_result);
    clock.stop(phase);

    if agent_ok {
        let phase = clock.start("verifier");
        let tests = steps::run_tests(
            instance,
            &task.dir,
            task.workdir.clone(),
            task.verifier_env.clone(),
            task.verifier_timeout,
        )
        .await?;
        let tests_timed_out = tests.timed_out;
        ran.tests = Some(tests);
        if !tests_timed_out {
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
        }
        clock.stop(phase);
    }

    let phase = clock.start("collect");
    instance.download_dir("/logs", &setup.dir).await?;
    clock.stop(phase);
    Ok(ran)
}

/// Turns an attempt into the recorded result: status, rewards and a typed error.
fn conclude(
    setup: &TrialSetup,
    outcome: Attempt,
    environment: Option<String>,
    timings: Vec<PhaseTiming>,
    retried: Vec<RetriedFailure>,
) -> TrialResult {
    let mut result = TrialResult {
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
        helios_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let fail = |result: &mut TrialResult, status, kind: &str, message: String| {
        result.status = status;
        result.error = Some(ErrorInfo::new(kind, message));
    };
    let ran = match outcome {
        Attempt::Cancelled => {
            fail(
                &mut result,
                TrialStatus::Cancelled,
                "cancelled",
                "the run was interrupted".into(),
            );
            return result;
        }
        Attempt::Infra(error) => {
            fail(
                &mut result,
                TrialStatus::InfraError,
                error.kind(),
                error.to_string(),
            );
            return result;
        }
        Attempt::Ran(ran) => ran,
    };
    match ran.agent {
        Some(Err(error)) => {
            fail(
                &mut result,
                TrialStatus::Failed,
                error.kind(),
                error.to_string(),
            );
            return result;
        }
        Some(Ok(agent)) => {
            result.agent_exit_code = agent.exit_code;
            result.usage = agent.usage;
            result.cost_usd = agent.cost_usd;
            if let Some(stop) = &agent.stop {
                let status = if stop.timed_out {
                    TrialStatus::TimedOut
                } else {
                    TrialStatus::Failed
                };
                fail(
                    &mut result,
                    status,
                    &stop.kind,
                    format!("{}; the verifier ran", stop.message),
                );
            }
            if agent.timed_out {
                let limit = setup.task.agent_timeout.map_or(0.0, |d| d.as_secs_f64());
                fail(
                    &mut result,
                    TrialStatus::TimedOut,
                    "agent_timeout",
                    format!(
                        "the agent did not finish within {limit}s; it was stopped and the verifier ran"
                    ),
                );
            }
        }
        None => {}
    }
    let Some(tests) = ran.tests else {
        return result;
    };
    result.verifier_exit_code = tests.exit_code;
    if tests.timed_out {
        let limit = setup.task.verifier_timeout.as_secs_f64();
        fail(
            &mut result,
            TrialStatus::TimedOut,
            "verifier_timeout",
            format!("tests/test.sh did not finish within {limit}s"),
        );
        return result;
    }
    match combine_rewards(&setup.dir, &ran.steps, &setup.steps) {
        Ok((rewards, primary)) => {
            result.rewards = rewards;
            result.reward = primary;
        }
        Err(error) => {
            if result.error.is_none() {
                fail(
                    &mut result,
                    TrialStatus::Failed,
                    error.kind(),
                    error.to_string(),
                );
            }
        }
    }
    result
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
