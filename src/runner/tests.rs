//! The dispatcher and trial lifecycle on the in-memory environment, on tokio's paused
//! clock: no Docker, no sleeps, and time that passes only as the fake says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::env::fake::{self, FakeCall, FakeEngine, FakeReply};
use crate::events::{ErrorKind, TrialIndex, WaitReason};
use crate::manifest::load_pipeline;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A scratch project with `tasks` tasks (`t0`, `t1`, …) whose `task.toml` is `task_toml`,
/// each with a solution, and a pipeline whose body follows a `[pipeline]` table naming
/// the output directory.
fn project(tasks: usize, task_toml: &str, pipeline: &str) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    for t in 0..tasks {
        let dir = root.path().join(format!("tasks/t{t}"));
        write(&dir.join("task.toml"), task_toml);
        write(&dir.join("instruction.md"), "Write the file.\n");
        write(
            &dir.join("environment/Dockerfile"),
            "FROM debian:bookworm-slim\n",
        );
        write(
            &dir.join("tests/test.sh"),
            "echo 1 > /logs/verifier/reward.txt\n",
        );
        write(&dir.join("solution/solve.sh"), "touch /app/done\n");
    }
    let path = root.path().join("pipeline.toml");
    write(
        &path,
        &format!(
            "[pipeline]\nname = \"p\"\noutput_dir = \"runs\"\n{pipeline}\n\n[[tasks]]\npath = \"tasks/*\"\n"
        ),
    );
    (root, path)
}

/// A scratch project whose task `t{i}` has `task_tomls[i]` as its `task.toml` and, with
/// `own_images`, an environment of its own (so each task is one image build).
fn project_of(
    task_tomls: &[&str],
    own_images: bool,
    pipeline: &str,
) -> (tempfile::TempDir, PathBuf) {
    let (root, path) = project(task_tomls.len(), "", pipeline);
    for (t, toml) in task_tomls.iter().enumerate() {
        let dir = root.path().join(format!("tasks/t{t}"));
        write(&dir.join("task.toml"), toml);
        if own_images {
            write(
                &dir.join("environment/Dockerfile"),
                &format!("FROM debian:bookworm-slim\nRUN echo t{t}\n"),
            );
        }
    }
    (root, path)
}

/// Options of the `reserve` policy: each trial holds its task's declared CPUs.
fn budget(cpus: f64, memory_mb: u64, builds: usize) -> ApplyOptions {
    ApplyOptions {
        resources: Some(ResourcePolicy::Reserve),
        cpus: Some(cpus),
        memory_mb: Some(memory_mb),
        build_concurrency: Some(builds),
        concurrency: Some(8),
        ..ApplyOptions::default()
    }
}

/// Whether two sandboxes of the record ever existed at the same time.
fn overlapping(record: &crate::env::fake::FakeRecord) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, a) in record.lifetimes.iter().enumerate() {
        for b in &record.lifetimes[i + 1..] {
            let (a_end, b_end) = (a.2.unwrap(), b.2.unwrap());
            if a.1 < b_end && b.1 < a_end {
                out.push((a.0.clone(), b.0.clone()));
            }
        }
    }
    out
}

/// Oracle runs pass, nop runs fail: the verifier rewards what the solution did.
fn honest(call: &FakeCall) -> FakeReply {
    if call.command.contains("/solution/solve.sh") {
        FakeReply::ok()
            .taking(Duration::from_secs(10))
            .writing("/app/done", "")
    } else if call.command.contains("/tests/test.sh") {
        FakeReply::ok().taking(Duration::from_secs(5))
    } else {
        FakeReply::ok()
    }
}

struct Ran {
    outcome: RunOutcome,
    events: Vec<RunEvent>,
}

impl Ran {
    fn results(&self) -> Vec<&crate::store::trial::TrialResult> {
        self.outcome.results().collect()
    }
}

/// A pressure that is a function of the time since the run began (tokio's clock).
struct FakePressure(Box<dyn Fn(Duration) -> f64 + Send>, tokio::time::Instant);

impl FakePressure {
    fn of(pressure: impl Fn(Duration) -> f64 + Send + 'static) -> Box<FakePressure> {
        Box::new(FakePressure(
            Box::new(pressure),
            tokio::time::Instant::now(),
        ))
    }
}

impl PressureSource for FakePressure {
    fn sample(&mut self) -> Option<f64> {
        Some((self.0)(self.1.elapsed()))
    }
}

/// Runs the pipeline at `path` on `fake`, cancelling with `cancel`; the machine is calm
/// (no CPU pressure) for the `adaptive` policy.
async fn run_on(
    path: &Path,
    fake: &FakeEngine,
    options: ApplyOptions,
    cancel: CancellationToken,
) -> Ran {
    run_with(path, fake, options, cancel, |run| {
        run.with_pressure(FakePressure::of(|_| 0.0))
    })
    .await
}

/// As [`run_on`], with the run as `adjust` makes it.
async fn run_with(
    path: &Path,
    fake: &FakeEngine,
    options: ApplyOptions,
    cancel: CancellationToken,
    adjust: impl FnOnce(Run) -> Run,
) -> Ran {
    let pipeline = load_pipeline(path)
        .unwrap_or_else(|e| panic!("{}", e.report))
        .value;
    let plan = Plan::of(&pipeline).unwrap();
    let engines = BTreeMap::from([(Provider::default(), Engine::new(fake.clone()))]);
    let run = adjust(Run::with_engines(&pipeline, plan, options, engines).unwrap());
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let outcome = run.execute(cancel, sender).await.unwrap();
    Ran {
        outcome,
        events: drain(receiver),
    }
}

fn drain(mut receiver: UnboundedReceiver<RunEvent>) -> Vec<RunEvent> {
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    events
}

/// The verifier writes a reward of 1 when the solution ran, else 0.
fn rewarding(fake_files: Arc<Mutex<BTreeMap<String, bool>>>) -> impl Fn(&FakeCall) -> FakeReply {
    move |call| {
        let mut solved = fake_files.lock().unwrap();
        if call.command.contains("/solution/solve.sh") {
            solved.insert(call.sandbox.clone(), true);
            return honest(call);
        }
        if call.command.contains("/tests/test.sh") {
            let reward = if solved.get(&call.sandbox).copied().unwrap_or(false) {
                "1"
            } else {
                "0"
            };
            return honest(call).writing("/logs/verifier/reward.txt", reward);
        }
        honest(call)
    }
}

fn rewarding_fake() -> FakeEngine {
    FakeEngine::new(rewarding(Arc::default()))
}

#[tokio::test(start_paused = true)]
async fn oracle_passes_and_nop_fails_on_the_fake_environment() {
    let (_root, path) = project(
        2,
        "",
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\", \"nop\"]",
    );
    let fake = rewarding_fake();
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let rewards: Vec<(String, Option<f64>)> = ran
        .results()
        .iter()
        .map(|r| (format!("{}/{}", r.task, r.agent), r.reward))
        .collect();
    assert_eq!(
        rewards,
        [
            ("t0/oracle".to_string(), Some(1.0)),
            ("t1/oracle".to_string(), Some(1.0)),
            ("t0/nop".to_string(), Some(0.0)),
            ("t1/nop".to_string(), Some(0.0)),
        ]
    );
    assert_eq!(ran.outcome.ran, 4);
    let record = fake.record();
    assert_eq!(
        (record.created, record.removed),
        (4, 4),
        "every sandbox removed"
    );
    assert_eq!(
        record.builds.len(),
        1,
        "one image for two identical environments"
    );
    for trial in &ran.outcome.trials {
        assert!(trial.dir.join("result.json").is_file(), "{:?}", trial.dir);
    }
    assert!(matches!(ran.events.last(), Some(RunEvent::Finished)));
}

/// Options where only `concurrency` bounds the trials: the bound on trials, not the
/// machine's cores, is what is tested.
fn cpus_for_all() -> ApplyOptions {
    ApplyOptions {
        resources: Some(ResourcePolicy::None),
        ..ApplyOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn never_more_trials_at_once_than_the_concurrency_bound() {
    let (_root, path) = project(
        6,
        "",
        "concurrency = 2\n[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\nattempts = 2",
    );
    let fake = rewarding_fake();
    let ran = run_on(&path, &fake, cpus_for_all(), CancellationToken::new()).await;
    assert_eq!(ran.results().len(), 12);
    let record = fake.record();
    assert_eq!(
        record.most_commands_at_once, 2,
        "the bound is reached and never passed"
    );
    assert_eq!(
        record.most_at_once, 4,
        "as many environments again are made ahead, and no more"
    );
    assert_eq!(record.created, 12);
    let overridden = ApplyOptions {
        concurrency: Some(5),
        ..cpus_for_all()
    };
    let (_root, path) = project(
        6,
        "",
        "[[stages]]\nname = \"s\"\nagents = [\"nop\"]\nattempts = 2",
    );
    let fake = rewarding_fake();
    run_on(&path, &fake, overridden, CancellationToken::new()).await;
    assert_eq!(fake.record().most_commands_at_once, 5);
}

#[tokio::test(start_paused = true)]
async fn without_start_ahead_no_environment_is_made_before_a_place_is_free() {
    let (_root, path) = project(
        6,
        "",
        "concurrency = 2\nstart_ahead = 0\n[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let ran = run_on(&path, &fake, cpus_for_all(), CancellationToken::new()).await;
    assert_eq!(ran.results().len(), 6);
    let record = fake.record();
    assert_eq!(record.most_at_once, 2);
    assert_eq!(record.most_commands_at_once, 2);
}

#[tokio::test(start_paused = true)]
async fn an_environment_made_ahead_is_ready_when_a_place_frees_and_removed_after_it() {
    // One place: the second trial's container is made while the first trial runs, and
    // the first one's removal is not waited for before the second's agent starts.
    let (_root, path) = project(
        2,
        "",
        "concurrency = 1\n[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let ran = run_on(&path, &fake, cpus_for_all(), CancellationToken::new()).await;
    assert!(ran.results().iter().all(|r| r.reward == Some(1.0)));
    let record = fake.record();
    assert_eq!(record.most_commands_at_once, 1);
    let (first, second) = (&record.lifetimes[0], &record.lifetimes[1]);
    let first_removed = first.2.expect("removed");
    assert!(second.1 < first_removed, "made ahead: {record:#?}");
    let second_solve = record
        .commands
        .iter()
        .find(|(id, command, _)| *id == second.0 && command.contains("solve.sh"))
        .expect("the second trial's agent ran")
        .2;
    let first_tests = record
        .commands
        .iter()
        .find(|(id, command, _)| *id == first.0 && command.contains("test.sh"))
        .expect("the first trial's tests ran")
        .2;
    assert!(first_tests < second_solve, "one trial's commands at a time");
}

#[tokio::test(start_paused = true)]
async fn a_gated_stage_runs_only_the_tasks_whose_oracle_passed() {
    // t1's solution is told apart by its variables, not by the order sandboxes are made in
    // (which trials racing to start do not fix).
    let (_root, path) = project_of(
        &["", "[solution.env]\nFAILS = \"yes\"\n", ""],
        false,
        r#"start_ahead = 0
[[stages]]
name = "sanity"
agents = ["oracle"]

[[stages]]
name = "eval"
needs = ["sanity"]
gate = { stage = "sanity" }
agents = ["nop"]
"#,
    );
    // The oracle of t1 fails: its solution exits 1 and solves nothing.
    let solved: Arc<Mutex<BTreeMap<String, bool>>> = Arc::default();
    let honest_rewards = rewarding(solved.clone());
    let fake = FakeEngine::new(move |call| {
        if call.command.contains("/solution/solve.sh") && call.env.contains_key("FAILS") {
            return FakeReply::ok().exiting(1);
        }
        honest_rewards(call)
    });
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let eval: Vec<&str> = ran
        .results()
        .iter()
        .filter(|r| r.stage == "eval")
        .map(|r| r.task.as_str())
        .collect();
    assert_eq!(eval, ["t0", "t2"]);
    assert_eq!(ran.outcome.gated_out, 1);
    assert!(ran.events.iter().any(|e| matches!(
        e,
        RunEvent::StageGated { stage, admitted: 2, tasks: 3 } if stage == "eval"
    )));
    // The gate waited for every sanity trial: no eval sandbox before the last sanity one.
    let record = fake.record();
    let first_eval = record
        .commands
        .iter()
        .position(|(id, _, _)| id == "fake-4")
        .unwrap();
    assert!(
        record.commands[..first_eval]
            .iter()
            .all(|(id, _, _)| id != "fake-4")
    );
    let last_sanity = record
        .commands
        .iter()
        .rposition(|(id, _, _)| id == "fake-3")
        .unwrap();
    assert!(last_sanity < first_eval);
}

#[tokio::test(start_paused = true)]
async fn an_infrastructure_failure_is_retried_with_backoff_and_counted_apart() {
    let (_root, path) = project(
        2,
        "",
        "start_ahead = 0\n[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    // The first two creates fail as an engine hiccup; t1's trial then runs normally.
    let fake = rewarding_fake().on_create(|n| {
        if n < 2 {
            Err(fake::engine_error("connection reset"))
        } else {
            Ok(())
        }
    });
    let options = ApplyOptions {
        concurrency: Some(1),
        retries: 2,
        ..ApplyOptions::default()
    };
    let started = tokio::time::Instant::now();
    let ran = run_on(&path, &fake, options, CancellationToken::new()).await;
    let results = ran.results();
    assert_eq!(
        results[0].status,
        TrialStatus::Completed,
        "{:#?}",
        results[0]
    );
    assert_eq!(fake.record().create_calls, 4, "{:#?}", ran.events);
    assert_eq!(results[0].reward, Some(1.0));
    assert_eq!(
        results[0].retried.len(),
        2,
        "two failures before the attempt that ran"
    );
    assert_eq!(results[0].retried[0].error.kind, ErrorKind::ProviderError);
    assert_eq!(
        results[0].retried[0].error.provider,
        Some(crate::env::Environment::provider(&fake)),
        "a provider's failure names the provider"
    );
    let waits: Vec<f64> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            RunEvent::TrialRetry { wait_seconds, .. } => Some(*wait_seconds),
            _ => None,
        })
        .collect();
    assert_eq!(waits.len(), 2);
    assert!(
        waits[0] >= 2.0,
        "the first retry waits the policy's minimum: {waits:?}"
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        elapsed >= waits.iter().sum::<f64>(),
        "the waits really passed: {elapsed}"
    );
    assert_eq!(ran.outcome.infrastructure_errors(), 0);

    // Past the retries, the failure is the trial's result, apart from agent failures.
    let (_root, path) = project(
        2,
        "",
        "start_ahead = 0\n[[stages]]\nname = \"s\"\nagents = [\"oracle\", \"nop\"]",
    );
    let fake = rewarding_fake().on_create(|n| {
        if n < 3 {
            Err(fake::engine_error("connection reset"))
        } else {
            Ok(())
        }
    });
    let options = ApplyOptions {
        concurrency: Some(1),
        retries: 2,
        ..ApplyOptions::default()
    };
    let ran = run_on(&path, &fake, options, CancellationToken::new()).await;
    let results = ran.results();
    assert_eq!(results[0].status, TrialStatus::InfraError);
    assert_eq!(
        results[0].error.as_ref().unwrap().kind,
        ErrorKind::ProviderError
    );
    assert_eq!(ran.outcome.infrastructure_errors(), 1);
    assert_eq!(ran.outcome.count(TrialStatus::InfraError), 1);
    assert_eq!(ran.outcome.summary.rows.len(), 2);
    let failed_by_agents = results.iter().filter(|r| r.reward == Some(0.0)).count();
    assert_eq!(
        failed_by_agents, 2,
        "nop's rewards of 0 are not infrastructure errors"
    );
}

#[tokio::test(start_paused = true)]
async fn a_build_that_fails_is_not_retried_and_its_trials_are_infrastructure_errors() {
    let (_root, path) = project(2, "", "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]");
    let fake = rewarding_fake().failing_builds(EnvError::BuildFailed {
        tag: "t".into(),
        reason: "RUN exited 1".into(),
        log: "build.log".into(),
    });
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        fake.record().builds.len(),
        1,
        "a failing Dockerfile is built once"
    );
    assert_eq!(
        fake.record().created,
        0,
        "no trial starts on an image that is not there"
    );
    for result in ran.results() {
        assert_eq!(result.status, TrialStatus::InfraError);
        assert_eq!(result.error.as_ref().unwrap().kind, ErrorKind::BuildFailed);
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_past_its_timeout_is_stopped_and_the_verifier_still_runs() {
    let (_root, path) = project(
        1,
        "[agent]\ntimeout_sec = 30.0\n",
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = FakeEngine::new(|call| {
        if call.command.contains("/solution/solve.sh") {
            FakeReply::ok().taking(Duration::from_secs(3600))
        } else if call.command.contains("/tests/test.sh") {
            FakeReply::ok().writing("/logs/verifier/reward.txt", "0")
        } else {
            FakeReply::ok()
        }
    });
    let started = tokio::time::Instant::now();
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let result = ran.results()[0];
    assert_eq!(result.status, TrialStatus::TimedOut);
    assert_eq!(result.error.as_ref().unwrap().kind, ErrorKind::AgentTimeout);
    assert_eq!(
        result.reward,
        Some(0.0),
        "the verifier ran after the timeout"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(30) && elapsed < Duration::from_secs(3600),
        "stopped at its limit: {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_verifier_past_its_timeout_ends_the_trial_timed_out() {
    let (_root, path) = project(
        1,
        "[verifier]\ntimeout_sec = 60.0\n",
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = FakeEngine::new(|call| {
        if call.command.contains("/tests/test.sh") {
            FakeReply::ok()
                .taking(Duration::from_secs(600))
                .writing("/logs/verifier/reward.txt", "1")
        } else {
            FakeReply::ok()
        }
    });
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let result = ran.results()[0];
    assert_eq!(result.status, TrialStatus::TimedOut);
    assert_eq!(
        result.error.as_ref().unwrap().kind,
        ErrorKind::VerifierTimeout
    );
    assert_eq!(
        result.reward, None,
        "no reward from a verifier that was killed"
    );
    assert_eq!(fake.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_stops_running_trials_starts_no_more_and_removes_every_sandbox() {
    let (_root, path) = project(
        4,
        "",
        "concurrency = 2\nstart_ahead = 0\n[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = FakeEngine::new(|call| {
        if call.command.contains("/solution/solve.sh") {
            FakeReply::ok().taking(Duration::from_secs(100))
        } else {
            FakeReply::ok()
        }
    });
    let cancel = CancellationToken::new();
    let cancelling = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(50)).await;
        cancelling.cancel();
    });
    let ran = run_on(&path, &fake, ApplyOptions::default(), cancel).await;
    assert!(ran.outcome.cancelled);
    let results = ran.results();
    assert_eq!(results.len(), 2, "the two running trials end as results");
    assert!(results.iter().all(|r| r.status == TrialStatus::Cancelled));
    assert_eq!(
        ran.outcome.not_started, 2,
        "the two queued trials never start"
    );
    let record = fake.record();
    assert_eq!(record.created, 2);
    assert_eq!(record.removed, 2);
    assert_eq!(fake.live(), 0);
    assert_eq!(
        ran.events
            .iter()
            .filter(|e| matches!(
                e,
                RunEvent::TrialSkipped {
                    reason: SkipReason::Cancelled,
                    ..
                }
            ))
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_run_skips_what_is_done_and_reruns_what_was_cancelled() {
    let (_root, path) = project(2, "", "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]");
    let fake = rewarding_fake();
    let first = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(first.outcome.ran, 2);
    let again = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!((again.outcome.ran, again.outcome.already_done), (0, 2));
    assert_eq!(
        again.outcome.trials.len(),
        2,
        "done results are part of the outcome"
    );
    assert!(again.outcome.trials.iter().all(|t| !t.ran_now));
    assert_eq!(fake.record().created, 2, "nothing ran the second time");
}

#[tokio::test(start_paused = true)]
async fn never_more_cpus_or_memory_in_use_than_the_budget() {
    let one_cpu = "[environment]\ncpus = 1.0\nmemory_mb = 1024\n";
    let (_root, path) = project_of(
        &[one_cpu; 6],
        false,
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let ran = run_on(
        &path,
        &fake,
        budget(2.0, 64 * 1024, 1),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(ran.results().len(), 6);
    let record = fake.record();
    assert_eq!(
        record.most_cpus_at_once, 2.0,
        "two 1-CPU trials on 2 CPUs, never three"
    );
    // Memory binds before CPUs: 4 CPUs free but room for two 1 GiB trials only.
    let half_cpu = "[environment]\ncpus = 0.5\nmemory_mb = 1024\n";
    let (_root, path) = project_of(
        &[half_cpu; 6],
        false,
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    run_on(&path, &fake, budget(4.0, 2048, 1), CancellationToken::new()).await;
    let record = fake.record();
    assert_eq!(record.most_memory_at_once, 2048);
    assert_eq!(record.most_at_once, 2);
}

#[tokio::test(start_paused = true)]
async fn two_one_cpu_trials_on_a_one_cpu_budget_never_overlap() {
    let one_cpu = "[environment]\ncpus = 1.0\n";
    let (_root, path) = project_of(
        &[one_cpu; 2],
        false,
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let ran = run_on(
        &path,
        &fake,
        budget(1.0, 64 * 1024, 1),
        CancellationToken::new(),
    )
    .await;
    assert!(ran.results().iter().all(|r| r.reward == Some(1.0)));
    assert_eq!(overlapping(&fake.record()), Vec::<(String, String)>::new());
    assert!(
        ran.events
            .iter()
            .any(|e| matches!(e, RunEvent::WaitingForResources { trials: 1, .. })),
        "the second trial is reported waiting for resources"
    );
}

#[tokio::test(start_paused = true)]
async fn image_builds_are_bounded_and_count_against_the_cpus() {
    let (_root, path) = project_of(
        &[""; 4],
        true,
        "[[stages]]\nname = \"s\"\nagents = [\"nop\"]",
    );
    let fake = rewarding_fake().building_takes(Duration::from_secs(60));
    run_on(
        &path,
        &fake,
        budget(8.0, 64 * 1024, 2),
        CancellationToken::new(),
    )
    .await;
    let record = fake.record();
    assert_eq!(record.builds.len(), 4);
    assert_eq!(
        record.most_builds_at_once, 2,
        "build_concurrency bounds builds"
    );
    // On one CPU a build and a trial take turns.
    let (_root, path) = project_of(
        &[""; 2],
        true,
        "[[stages]]\nname = \"s\"\nagents = [\"nop\"]",
    );
    let fake = rewarding_fake().building_takes(Duration::from_secs(60));
    let started = tokio::time::Instant::now();
    run_on(
        &path,
        &fake,
        budget(1.0, 64 * 1024, 4),
        CancellationToken::new(),
    )
    .await;
    let record = fake.record();
    assert_eq!(
        record.most_builds_at_once, 1,
        "each build holds the only CPU"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(120),
        "the builds ran one after the other"
    );
    let first_trial = record.lifetimes[0].1;
    assert!(
        first_trial >= Duration::from_secs(60),
        "no trial during the first build"
    );
}

#[tokio::test(start_paused = true)]
async fn a_trial_bigger_than_the_budget_runs_alone_with_a_warning() {
    let tomls = [
        "[environment]\ncpus = 1.0\n",
        "[environment]\ncpus = 4.0\n",
        "[environment]\ncpus = 1.0\n",
    ];
    let (_root, path) = project_of(
        &tomls,
        false,
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let ran = run_on(
        &path,
        &fake,
        budget(2.0, 64 * 1024, 1),
        CancellationToken::new(),
    )
    .await;
    assert!(
        ran.results().iter().all(|r| r.reward == Some(1.0)),
        "all three ran"
    );
    assert!(ran.events.iter().any(|e| matches!(
        e,
        RunEvent::RunsAlone { index: TrialIndex(1), cpus, .. } if *cpus == 4.0
    )));
    let record = fake.record();
    let big = record
        .lifetimes
        .iter()
        .find(|l| l.3 == 4.0)
        .unwrap()
        .0
        .clone();
    let overlaps = overlapping(&record);
    assert!(
        overlaps.iter().all(|(a, b)| *a != big && *b != big),
        "nothing ran beside the big trial: {overlaps:?}"
    );
    assert_eq!(overlaps.len(), 1, "the two small ones shared the budget");
}

/// The `adaptive` budget of a machine of `cores`, with memory for `memory_mb`.
fn adaptive(cores: usize, memory_mb: u64) -> Budget {
    Budget::with_policy(ResourcePolicy::Adaptive, cores, None, memory_mb, Some(1))
}

/// Runs the pipeline at `path` on `fake` under `budget` (8 trials at once), the machine's
/// CPU pressure as `pressure` says.
async fn run_adaptive(
    path: &Path,
    fake: &FakeEngine,
    budget: Budget,
    pressure: impl Fn(Duration) -> f64 + Send + 'static,
) -> Ran {
    let options = ApplyOptions {
        concurrency: Some(8),
        ..ApplyOptions::default()
    };
    run_with(path, fake, options, CancellationToken::new(), |run| {
        run.with_budget(budget)
            .with_pressure(FakePressure::of(pressure))
    })
    .await
}

/// The most sandboxes alive at once among the moments one was made before `until`.
fn most_alive_before(record: &crate::env::fake::FakeRecord, until: Duration) -> usize {
    record
        .lifetimes
        .iter()
        .filter(|l| l.1 < until)
        .map(|made| {
            record
                .lifetimes
                .iter()
                .filter(|l| l.1 <= made.1 && l.2.is_none_or(|end| end > made.1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn waited_for(ran: &Ran, why: WaitReason) -> bool {
    ran.events
        .iter()
        .any(|e| matches!(e, RunEvent::WaitingForResources { reason: Some(r), .. } if *r == why))
}

#[tokio::test(start_paused = true)]
async fn adaptive_starts_trials_beyond_the_cores_while_pressure_is_low() {
    let one_cpu = "[environment]\ncpus = 1.0\n";
    let (_root, path) = project_of(
        &[one_cpu; 8],
        false,
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let ran = run_adaptive(&path, &fake, adaptive(2, 64 * 1024), |_| 0.05).await;
    assert!(ran.results().iter().all(|r| r.reward == Some(1.0)));
    let record = fake.record();
    assert_eq!(record.most_at_once, 8, "eight 1-CPU trials on 2 cores");
    // Beyond the cores, at most the cores' worth per sample: not a burst of all of them
    // before the pressure can show.
    let made: Vec<Duration> = record.lifetimes.iter().map(|l| l.1).collect();
    let at = |t: Duration| made.iter().filter(|m| **m == t).count();
    assert_eq!(
        at(Duration::ZERO),
        2,
        "the cores' two start at once: {made:?}"
    );
    assert!(made.iter().all(|t| at(*t) <= 2), "{made:?}");
    assert!(
        made.iter().max().unwrap() >= &(pressure::SAMPLE_INTERVAL * 3),
        "{made:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn adaptive_holds_trials_beyond_the_cores_while_pressure_is_high() {
    let one_cpu = "[environment]\ncpus = 1.0\n";
    let (_root, path) = project_of(
        &[one_cpu; 8],
        false,
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let busy_until = Duration::from_secs(40);
    let ran = run_adaptive(&path, &fake, adaptive(2, 64 * 1024), move |t| {
        if t < busy_until { 0.6 } else { 0.0 }
    })
    .await;
    assert!(ran.results().iter().all(|r| r.reward == Some(1.0)));
    let record = fake.record();
    assert_eq!(
        most_alive_before(&record, busy_until),
        2,
        "while the pressure is high, only what the cores reserve runs"
    );
    assert!(record.most_at_once > 2, "then more start");
    assert!(waited_for(&ran, WaitReason::Pressure));
}

#[tokio::test(start_paused = true)]
async fn adaptive_never_overcommits_declared_memory() {
    let half_cpu = "[environment]\ncpus = 0.5\nmemory_mb = 1024\n";
    let (_root, path) = project_of(
        &[half_cpu; 6],
        false,
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let ran = run_adaptive(&path, &fake, adaptive(2, 2048), |_| 0.0).await;
    assert_eq!(ran.results().len(), 6);
    let record = fake.record();
    assert_eq!(record.most_memory_at_once, 2048);
    assert_eq!(
        record.most_at_once, 2,
        "memory binds, calm as the machine is"
    );
    assert!(waited_for(&ran, WaitReason::Memory));
}

#[tokio::test(start_paused = true)]
async fn adaptive_verifiers_take_their_declared_cpus() {
    let one_cpu = "[environment]\ncpus = 1.0\n";
    let (_root, path) = project_of(
        &[one_cpu; 4],
        false,
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = rewarding_fake();
    let ran = run_adaptive(&path, &fake, adaptive(1, 64 * 1024), |_| 0.0).await;
    assert!(ran.results().iter().all(|r| r.reward == Some(1.0)));
    let record = fake.record();
    assert_eq!(record.most_at_once, 4, "the agents ran side by side");
    // Each test run takes 5 s (`honest`); on one core they take turns.
    let mut tests: Vec<Duration> = record
        .commands
        .iter()
        .filter(|c| c.1.contains("/tests/test.sh"))
        .map(|c| c.2)
        .collect();
    tests.sort();
    assert_eq!(tests.len(), 4);
    for pair in tests.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(5), "{tests:?}");
    }
}

/// The oracle writes reward 1 itself; the tests give 0.
fn forging(call: &FakeCall) -> FakeReply {
    if call.command.contains("/solution/solve.sh") {
        FakeReply::ok().writing("/logs/verifier/reward.txt", "1")
    } else if call.command.contains("/tests/test.sh") {
        FakeReply::ok().writing("/logs/verifier/reward.txt", "0")
    } else {
        FakeReply::ok()
    }
}

#[tokio::test(start_paused = true)]
async fn separate_verification_runs_the_tests_in_a_fresh_sandbox_of_the_frozen_files() {
    let (_root, path) = project(
        1,
        "[verifier]\nisolation = \"separate\"\n",
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = FakeEngine::new(forging);
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let result = ran.results()[0];
    assert_eq!(
        result.reward,
        Some(0.0),
        "the tests' reward, not the agent's"
    );
    assert!(result.tampering_suspected, "{:?}", result.tampering);
    let record = fake.record();
    assert_eq!(record.frozen, 1);
    assert_eq!(record.created, 2, "the agent's sandbox and the verifier's");
    assert_eq!(record.removed, 2);
    assert_eq!(record.images_removed, 1, "the frozen image is removed");
    let verifier_commands: Vec<&str> = record
        .commands
        .iter()
        .filter(|(id, _, _)| id == "fake-2")
        .map(|(_, command, _)| command.as_str())
        .collect();
    assert!(
        verifier_commands
            .iter()
            .any(|c| c.contains("/tests/test.sh"))
    );
    assert!(!verifier_commands.iter().any(|c| c.contains("solve.sh")));
    assert!(
        !record
            .commands
            .iter()
            .any(|(id, c, _)| id == "fake-1" && c.contains("/tests/test.sh")),
        "no tests in the agent's sandbox"
    );
}

#[tokio::test(start_paused = true)]
async fn shared_verification_flags_a_reward_file_the_agent_left() {
    let (_root, path) = project(1, "", "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]");
    let fake = FakeEngine::new(forging);
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let result = ran.results()[0];
    assert!(result.tampering_suspected);
    assert_eq!(
        result.tampering,
        ["`/logs/verifier/reward.txt` existed before the verifier started"]
    );
    assert_eq!(fake.record().created, 1);
    // An honest agent is not flagged.
    let (_root, path) = project(1, "", "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]");
    let ran = run_on(
        &path,
        &rewarding_fake(),
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        !ran.results()[0].tampering_suspected,
        "{:?}",
        ran.results()[0].tampering
    );
}

#[tokio::test(start_paused = true)]
async fn once_the_budget_is_spent_no_trial_starts_and_apply_again_resumes() {
    // Each trial's one model reply costs $1 (a million input tokens at $1 per million).
    let (root, path) = project(
        4,
        "",
        "max_cost_usd = 1.5\nconcurrency = 1\n\n\
         [models.paid]\nid = \"scripted\"\nscript = \"reply.yaml\"\n\
         price = { input_per_mtok = 1.0, output_per_mtok = 1.0 }\n\n\
         [agents.terminal]\nkind = \"terminal\"\n\n\
         [[stages]]\nname = \"s\"\nagents = [\"terminal\"]\nmodels = [\"paid\"]",
    );
    write(
        &root.path().join("reply.yaml"),
        "replies:\n  - text: done\n    tool_calls:\n      - name: finish\n        input: { summary: done }\n    usage: { input_tokens: 1000000, output_tokens: 0 }\n",
    );
    let fake = rewarding_fake();
    let first = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    // $1 after the first trial is under $1.50, so a second starts; then none.
    assert_eq!(first.outcome.ran, 2);
    assert_eq!(first.outcome.over_budget, 2);
    assert_eq!(first.outcome.not_started, 2);
    assert!((first.outcome.spent_usd - 2.0).abs() < 1e-9);
    let skipped = first
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                RunEvent::TrialSkipped {
                    reason: SkipReason::OverBudget,
                    ..
                }
            )
        })
        .count();
    assert_eq!(skipped, 2);
    let again = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!((again.outcome.ran, again.outcome.already_done), (2, 2));
    assert_eq!(again.outcome.over_budget, 0);
}

#[tokio::test(start_paused = true)]
async fn logs_past_the_collect_cap_are_cut_and_said_in_the_result() {
    let (_root, path) = project(1, "", "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]");
    let big = "x".repeat(4096);
    let fake = FakeEngine::new(move |call| {
        if call.command.contains("/solution/solve.sh") {
            honest(call).writing("/logs/artifacts/big.log", &big)
        } else if call.command.contains("/tests/test.sh") {
            honest(call).writing("/logs/verifier/reward.txt", "1")
        } else {
            honest(call)
        }
    })
    .collecting_at_most(1000);
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let result = ran.results()[0].clone();
    // The reward is kept whatever the cap; the artifact is cut and the result says so.
    assert_eq!(result.reward, Some(1.0));
    let cut = result.logs_cut.expect("logs_cut is recorded");
    assert_eq!(
        (cut.cap_bytes, cut.files, cut.paths),
        (1000, 1, vec!["artifacts/big.log".to_string()])
    );
    let dir = &ran.outcome.trials[0].dir;
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap();
    assert_eq!(json["logs_cut"]["files"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_command_agent_with_a_model_runs_with_the_gateway_and_no_host_key() {
    let (root, path) = project(
        1,
        "",
        "[models.demo]\nid = \"scripted\"\nscript = \"demo.yaml\"\n\n\
         [agents.mine]\nkind = \"command\"\ncommand = \"my-agent\"\nmodel = \"demo\"\n\
         env = { OWN = \"kept\", NO_PROXY = \"internal.example\" }\n\n\
         [agents.plain]\nkind = \"command\"\ncommand = \"plain-agent\"\n\n\
         [[stages]]\nname = \"s\"\nagents = [\"mine\", \"plain\"]",
    );
    write(&root.path().join("demo.yaml"), "replies:\n  - text: hi\n");
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let fake = FakeEngine::new({
        let seen = seen.clone();
        move |call| {
            for agent in ["my-agent", "plain-agent"] {
                if call.command.contains(agent) {
                    seen.lock().unwrap().insert(agent, call.env.clone());
                }
            }
            honest(call)
        }
    });
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(ran.results().len(), 2);
    let seen = seen.lock().unwrap();
    let mine = &seen["my-agent"];
    let token = &mine["HELIOS_GATEWAY_TOKEN"];
    assert!(token.starts_with("helios-") && token.len() > 60, "{token}");
    for key in ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"] {
        assert_eq!(&mine[key], token, "{key} is the trial's token");
    }
    assert!(mine["OPENAI_BASE_URL"].starts_with("http://127.0.0.1:"));
    assert!(mine["OPENAI_BASE_URL"].ends_with("/v1"));
    assert_eq!(mine["OWN"], "kept");
    assert_eq!(mine["NO_PROXY"], "internal.example,127.0.0.1");
    assert_eq!(mine["HELIOS_MODEL"], "scripted");
    let plain = &seen["plain-agent"];
    assert!(
        !plain.contains_key("HELIOS_GATEWAY_TOKEN") && !plain.contains_key("OPENAI_API_KEY"),
        "an agent without a model gets no gateway: {plain:?}"
    );
}

/// Issue 27: two applies started after a crash both reap the dead run's container. The
/// first one's removal is in progress when the second asks (Docker answers 409); the
/// second waits for it to end, counts it as removed by someone else, and neither run
/// fails. A container of a run alive in another process is never touched.
#[tokio::test(start_paused = true)]
async fn two_applies_reaping_the_same_dead_container_both_go_on() {
    let host = crate::env::fake::FakeHost::new(Duration::from_secs(2));
    host.leave_dead("dead-run");
    host.leave_alive("live-run");
    let first = Engine::new(FakeEngine::default().on_host(host.clone()));
    let second = Engine::new(FakeEngine::default().on_host(host.clone()));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let (a, b) = tokio::join!(
        reap(Provider::default(), &first, &sender),
        reap(Provider::default(), &second, &sender)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(host.ids(), vec!["live-run".to_string()]);
    let (calls, busy) = host.calls();
    assert!(busy >= 1, "the second removal met the first in progress");
    assert_eq!(calls, busy + 2, "one removal, the busy answers, one `gone`");
    let events = drain(receiver);
    assert_eq!(
        events,
        vec![RunEvent::Reaped {
            provider: Provider::default(),
            count: 1
        }],
        "removed once, said once, no failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reap_that_fails_is_a_warning_and_the_run_goes_on() {
    let host = crate::env::fake::FakeHost::new(Duration::ZERO);
    host.leave_dead("dead-run");
    host.failing_removals(fake::engine_error("no space left on device"));
    let engine = Engine::new(FakeEngine::default().on_host(host));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    reap(Provider::default(), &engine, &sender).await.unwrap();
    let events = drain(receiver);
    assert!(
        matches!(&events[..], [RunEvent::ReapFailed { error, .. }] if error.contains("no space")),
        "{events:?}"
    );
}

/// The agent's sandbox of a separately verified trial is removed before its tests run and
/// asked again in the trial's teardown: the instance owns its one removal, so the engine is
/// asked once per sandbox.
#[tokio::test(start_paused = true)]
async fn every_sandbox_is_removed_by_one_call_even_when_verified_apart() {
    let (_root, path) = project(
        2,
        "[verifier]\nisolation = \"separate\"\n",
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]",
    );
    let fake = FakeEngine::new(honest);
    run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let record = fake.record();
    assert_eq!(record.created, 4);
    assert_eq!(record.removal_calls, 4, "one removal call per sandbox");
}

/// A wedged engine is said: a ping unanswered for the threshold gives `EngineStalled`
/// (with the trials waiting), again each threshold after, and `EngineAnswered` when it
/// answers; the run itself goes on.
#[tokio::test(start_paused = true)]
async fn an_engine_that_does_not_answer_is_said_and_said_again_when_it_does() {
    let (_root, path) = project(2, "", "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]");
    let fake = FakeEngine::new(|call| {
        if call.command.contains("/solution/solve.sh") {
            FakeReply::ok().taking(Duration::from_secs(200))
        } else {
            FakeReply::ok()
        }
    })
    .wedged_between(Duration::from_secs(20), Duration::from_secs(90));
    let options = ApplyOptions {
        engine_stall: Duration::from_secs(30),
        ..ApplyOptions::default()
    };
    let ran = run_on(&path, &fake, options, CancellationToken::new()).await;
    let said: Vec<(f64, usize)> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            RunEvent::EngineStalled {
                provider,
                seconds,
                trials,
            } if *provider == Provider::default() => Some((*seconds, *trials)),
            _ => None,
        })
        .collect();
    assert_eq!(said, vec![(30.0, 2), (60.0, 2)], "{:?}", ran.events);
    let answered: Vec<f64> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            RunEvent::EngineAnswered { seconds, .. } => Some(*seconds),
            _ => None,
        })
        .collect();
    assert_eq!(answered.len(), 1);
    assert!(answered[0] >= 60.0 && answered[0] <= 70.0, "{answered:?}");
    assert!(
        ran.results()
            .iter()
            .all(|r| r.status != TrialStatus::InfraError && r.retried.is_empty()),
        "the trials waited and went on"
    );
}

/// A call that the engine does not answer in time is an infrastructure error like any
/// other: retried with backoff, and the trial completes once the engine answers.
#[tokio::test(start_paused = true)]
async fn a_call_the_engine_did_not_answer_is_retried() {
    let (_root, path) = project(1, "", "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]");
    let failed = Arc::new(Mutex::new(false));
    let fake = FakeEngine::new(move |call| {
        let mut failed = failed.lock().unwrap();
        if call.command.contains("/solution/solve.sh") && !*failed {
            *failed = true;
            FakeReply::failing(EnvError::NoAnswer {
                provider: Provider::default(),
                call: "start exec".into(),
                seconds: 120.0,
            })
        } else {
            honest(call)
        }
    });
    let ran = run_on(
        &path,
        &fake,
        ApplyOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let result = ran.results()[0];
    assert_ne!(result.status, TrialStatus::InfraError, "{result:?}");
    assert_eq!(result.retried.len(), 1);
    assert_eq!(result.retried[0].error.kind, ErrorKind::ProviderError);
}

/// Ctrl-C while the engine does not answer removals: the run still ends, within the grace
/// after the cancel, with the trial cancelled and what could not be removed said.
#[tokio::test(start_paused = true)]
async fn a_cancel_on_a_wedged_engine_ends_within_the_grace_and_says_what_is_left() {
    let (_root, path) = project(1, "", "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]");
    let fake = FakeEngine::new(|call| {
        if call.command.contains("/solution/solve.sh") {
            FakeReply::ok().taking(Duration::from_secs(100))
        } else {
            FakeReply::ok()
        }
    })
    .hanging_removals();
    let cancel = CancellationToken::new();
    let cancelling = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        cancelling.cancel();
    });
    let started = tokio::time::Instant::now();
    let ran = run_on(&path, &fake, ApplyOptions::default(), cancel).await;
    // Tokio's paused clock: the run's own time, not the wall's.
    assert!(started.elapsed() <= Duration::from_secs(10) + CANCEL_GRACE);
    assert_eq!(ran.results()[0].status, TrialStatus::Cancelled);
    assert_eq!(ran.results()[0].teardown_errors.len(), 1);
    assert!(
        ran.events.iter().any(|e| matches!(
            e,
            RunEvent::TeardownFailed { id, .. } if id == "fake-1"
        )),
        "{:?}",
        ran.events
    );
}

/// The problems `Run::with_engines` finds in `path`'s pipeline; panics when the run opens.
fn preflight_problems(path: &Path) -> Vec<Problem> {
    let pipeline = load_pipeline(path)
        .unwrap_or_else(|e| panic!("{}", e.report))
        .value;
    let plan = Plan::of(&pipeline).unwrap();
    let engines = BTreeMap::from([(Provider::default(), Engine::new(FakeEngine::new(honest)))]);
    match Run::with_engines(&pipeline, plan, ApplyOptions::default(), engines) {
        Err(RunError::Preflight(problems)) => problems.0,
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("the run opened"),
    }
}

#[test]
fn pre_flight_problems_name_their_kind_task_agent_and_fix() {
    let (_root, path) = project(
        1,
        "",
        "[agents.cmd]\nkind = \"command\"\ncommand = \"true\"\n\
         env = { TOKEN = \"${HELIOS_TEST_UNSET_TOKEN}\" }\n\
         [[stages]]\nname = \"s\"\nagents = [\"cmd\"]\n",
    );
    let unset = preflight_problems(&path);
    assert_eq!(unset.len(), 1, "{unset:#?}");
    assert_eq!(
        (
            unset[0].kind,
            unset[0].task.as_deref(),
            unset[0].agent.as_deref()
        ),
        (ProblemKind::UnsetVariable, None, Some("cmd"))
    );

    let (root, path) = project(
        1,
        "",
        "[models.m]\nid = \"scripted\"\nscript = \"script.yaml\"\n\
         [agents.cu]\nkind = \"computer-use\"\nmodel = \"m\"\n\
         [[stages]]\nname = \"s\"\nagents = [\"cu\"]\n",
    );
    write(
        &root.path().join("script.yaml"),
        "format: anthropic\nreplies:\n  - {id: m, type: message, role: assistant, content: [], \
         stop_reason: end_turn, usage: {input_tokens: 1, output_tokens: 1}}\n",
    );
    let unfit = preflight_problems(&path);
    assert_eq!(unfit.len(), 1, "{unfit:#?}");
    assert_eq!(
        (
            unfit[0].kind,
            unfit[0].task.as_deref(),
            unfit[0].agent.as_deref()
        ),
        (ProblemKind::AgentUnfit, Some("t0"), Some("cu"))
    );
    let shown = RunError::Preflight(Problems::of(unfit)).to_string();
    assert!(
        shown.contains("has no desktop\n    hint: add `[environment.desktop]`"),
        "{shown}"
    );
}
