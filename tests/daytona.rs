//! The Daytona provider against a fake Daytona in the test process (`common::daytona`):
//! whole trial lifecycles, faults of the service, and the rule that no sandbox is left
//! undeleted after success, failure or cancel. The fake's sandboxes are Docker containers,
//! so these tests need Docker (run `bash ../shared/docker-up.sh`).

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use common::daytona::{FakeDaytona, Faults, KEY};
use common::project::{Project, copy_tree, docker_ids, text};
use helios::env::DaytonaSettings;
use helios::env::daytona::Credentials;
use helios::{AgentRunner, RunEvent, RunStatus};
use serde_json::Value;

const PASS: &str = "echo 1 > /logs/verifier/reward.txt\n";

/// Settings that make sandboxes quick to poll in tests.
const FAST: &str = "poll_interval_sec = 0.05\n";

/// A pipeline running `agents` on every task, on Daytona.
fn pipeline(project: &Project, name: &str, agents: &str, daytona: &str) {
    project.write(
        &format!("{name}.toml"),
        &format!(
            "[pipeline]\nname = \"{name}\"\noutput_dir = \"runs\"\nconcurrency = 4\n\
             [environment]\nprovider = \"daytona\"\n[environment.daytona]\n{FAST}{daytona}\n\
             [[tasks]]\npath = \"tasks/*\"\n[[stages]]\nname = \"s\"\nagents = [{agents}]\n"
        ),
    );
}

/// `helios apply` with the fake's URL and key, off the runtime's threads.
async fn apply(project: &Project, fake: &FakeDaytona, name: &str) -> Output {
    let mut command = project.command(name);
    command
        .env("DAYTONA_API_URL", &fake.url)
        .env("DAYTONA_API_KEY", KEY)
        .env("DAYTONA_TARGET", "eu");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The sandboxes the run made are all deleted, and it made no container of its own.
fn assert_clean(fake: &FakeDaytona, project: &Project) {
    assert!(!fake.records().is_empty(), "no sandbox was made");
    assert_eq!(
        fake.undeleted(),
        Vec::<String>::new(),
        "sandboxes left undeleted"
    );
    assert_eq!(
        docker_ids("ps", &project.label),
        Vec::<String>::new(),
        "the Daytona provider made local containers"
    );
}

fn hello_project(name: &str) -> Project {
    let project = Project::new(name);
    std::fs::create_dir_all(project.path("tasks")).unwrap();
    copy_tree(
        "tasks/create-hello-file",
        project.path("tasks/create-hello-file"),
    );
    project
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oracle_trial_runs_its_whole_lifecycle_in_a_sandbox() {
    let fake = FakeDaytona::start(Faults::default()).await;
    let project = hello_project("daytona-oracle");
    pipeline(&project, "p", "\"oracle\", \"nop\"", "");
    let out = apply(&project, &fake, "p").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = project.results("p");
    let oracle = &results["create-hello-file/oracle"];
    let nop = &results["create-hello-file/nop"];
    assert_eq!(oracle["status"], "completed", "{oracle}");
    assert_eq!(oracle["reward"], 1.0, "{oracle}");
    assert_eq!(nop["reward"], 0.0, "{nop}");
    assert_eq!(oracle["provider"], "daytona");
    assert_eq!(oracle["teardown_errors"], serde_json::json!([]));

    // The result names the sandbox, and the sandbox was made as the task asks.
    let records = fake.records();
    assert_eq!(records.len(), 2);
    let id = oracle["container"].as_str().unwrap();
    let record = records
        .iter()
        .find(|r| r.id == id)
        .expect("the recorded sandbox");
    let body = &record.body;
    let dockerfile =
        std::fs::read_to_string("tasks/create-hello-file/environment/Dockerfile").unwrap();
    assert_eq!(body["buildInfo"]["dockerfileContent"], dockerfile.as_str());
    assert_eq!(body["cpu"], 1);
    assert_eq!(body["memory"], 1, "512 MB round up to 1 GiB");
    assert_eq!(body["target"], "eu");
    assert_eq!(body["autoStopInterval"], 0);
    assert_eq!(body["autoDeleteInterval"], 0);
    assert_eq!(body["networkBlockAll"], false);
    assert_eq!(record.labels["helios.managed"], "true");
    assert_eq!(record.labels["helios.task"], "create-hello-file");
    assert_eq!(
        record.labels["helios.trial"],
        oracle["trial_id"].as_str().unwrap()
    );
    assert_eq!(
        record.labels["helios-test"],
        project.label.split_once('=').unwrap().1
    );

    // The trial directory has the layout Docker's has.
    let trial = std::fs::read_dir(project.path("runs/p/s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("create-hello-file__oracle__")
        })
        .unwrap();
    for file in [
        "result.json",
        "agent/oracle.txt",
        "verifier/test-stdout.txt",
        "verifier/reward.txt",
    ] {
        assert!(trial.join(file).is_file(), "no {file}");
    }
    let phases: Vec<&str> = oracle["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["environment", "agent", "verifier", "collect", "teardown"]
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.starts_with("GET /sandbox/") && r.ends_with("/toolbox-proxy-url")),
        "the toolbox URL is asked of the API"
    );
    assert!(
        !project.path("runs/p/builds").exists(),
        "no local image was built"
    );
    assert_clean(&fake, &project);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_lost_answers_on_create_are_retried_and_strays_deleted() {
    // A 429 makes nothing; a 500 made a sandbox whose answer was lost.
    let fake = FakeDaytona::start(Faults {
        create: vec![429, 500],
        ..Faults::default()
    })
    .await;
    let project = hello_project("daytona-retry");
    pipeline(&project, "p", "\"oracle\"", "");
    let out = apply(&project, &fake, "p").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        project.results("p")["create-hello-file/oracle"]["reward"],
        1.0
    );
    assert_eq!(fake.count("POST /sandbox"), 3);
    assert_eq!(
        fake.records().len(),
        2,
        "the lost answer's sandbox and the trial's"
    );
    assert_clean(&fake, &project);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_that_never_becomes_ready_is_an_environment_error_and_is_deleted() {
    let fake = FakeDaytona::start(Faults {
        never_ready: true,
        ..Faults::default()
    })
    .await;
    let project = hello_project("daytona-never-ready");
    pipeline(&project, "p", "\"oracle\"", "ready_timeout_sec = 0.5\n");
    let out = apply(&project, &fake, "p").await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let result = &project.results("p")["create-hello-file/oracle"];
    assert_eq!(result["status"], "infra_error");
    assert_eq!(result["error"]["kind"], "sandbox_not_ready", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pending_build"),
        "{result}"
    );
    assert_clean(&fake, &project);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_that_fails_once_is_retried_and_a_given_toolbox_url_is_used() {
    let fake = FakeDaytona::start(Faults {
        delete_failures: 1,
        ..Faults::default()
    })
    .await;
    let project = hello_project("daytona-delete-once");
    // The toolbox at a given URL, as for servers without `toolbox-proxy-url`.
    let toolbox = format!("toolbox_url = \"{}/toolbox/{{id}}\"\n", fake.url);
    pipeline(&project, "p", "\"oracle\"", &toolbox);
    let out = apply(&project, &fake, "p").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result = &project.results("p")["create-hello-file/oracle"];
    assert_eq!(result["reward"], 1.0);
    assert_eq!(result["teardown_errors"], serde_json::json!([]));
    assert_eq!(fake.count("DELETE /sandbox/"), 2);
    assert!(
        !fake
            .requests()
            .iter()
            .any(|r| r.ends_with("/toolbox-proxy-url")),
        "the given toolbox URL is used"
    );
    assert_clean(&fake, &project);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_that_fails_for_good_names_the_sandbox_and_gc_deletes_it() {
    let fake = FakeDaytona::start(Faults {
        delete_failures: usize::MAX,
        ..Faults::default()
    })
    .await;
    let project = hello_project("daytona-delete-fails");
    pipeline(&project, "p", "\"oracle\"", "max_retries = 1\n");
    let out = apply(&project, &fake, "p").await;
    // The trial's own outcome stands; what is left is reported and recorded.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result = &project.results("p")["create-hello-file/oracle"];
    assert_eq!(result["reward"], 1.0);
    let id = result["container"].as_str().unwrap();
    let errors = result["teardown_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{result}");
    assert_eq!(errors[0]["kind"], "provider_error");
    assert_eq!(errors[0]["provider"], "daytona");
    assert!(
        errors[0]["message"].as_str().unwrap().contains(id),
        "{result}"
    );
    assert!(text(&out).contains(id), "{}", text(&out));
    assert_eq!(fake.undeleted(), vec![id.to_string()]);

    // `helios gc --provider daytona` finds it by its labels.
    fake.set_faults(Faults::default());
    let mut gc = std::process::Command::new(common::project::BINARY);
    gc.args(["gc", "--provider", "daytona", "--label", &project.label])
        .env("DAYTONA_API_URL", &fake.url)
        .env("DAYTONA_API_KEY", KEY);
    let gc = tokio::task::spawn_blocking(move || gc.output().unwrap())
        .await
        .unwrap();
    assert_eq!(gc.status.code(), Some(0), "{}", text(&gc));
    assert!(
        text(&gc).contains("deleted 1 Daytona sandbox"),
        "{}",
        text(&gc)
    );
    assert_clean(&fake, &project);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_and_timeouts_end_in_results_and_delete_their_sandboxes() {
    let fake = FakeDaytona::start(Faults::default()).await;
    let project = Project::new("daytona-failures");
    project.task("fails", "", "exit 3\n", PASS);
    project.task("no-reward", "", "true\n", "echo no reward here\n");
    project.task(
        "slow",
        "[agent]\ntimeout_sec = 1.0\n",
        "sleep 300 &\nsleep 300\n",
        // Reward 1 only if no `sleep 300` survived: the deadline killed the whole tree.
        "for c in /proc/[0-9]*/cmdline; do [ \"$(tr '\\0' ' ' < $c 2>/dev/null)\" = 'sleep 300 ' ] && { echo 0 > /logs/verifier/reward.txt; exit 0; }; done\necho 1 > /logs/verifier/reward.txt\n",
    );
    pipeline(&project, "p", "\"oracle\"", "");
    let out = apply(&project, &fake, "p").await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let results = project.results("p");
    let fails = &results["fails/oracle"];
    assert_eq!(fails["agent_exit_code"], 3, "{fails}");
    assert_eq!(
        fails["reward"], 1.0,
        "the verifier ran after a failing agent"
    );
    let no_reward = &results["no-reward/oracle"];
    assert_eq!(no_reward["status"], "failed");
    assert_eq!(no_reward["error"]["kind"], "reward_missing", "{no_reward}");
    let slow = &results["slow/oracle"];
    assert_eq!(slow["status"], "timed_out", "{slow}");
    assert_eq!(slow["error"]["kind"], "agent_timeout");
    assert_eq!(
        slow["reward"], 1.0,
        "the deadline killed the agent's processes: {slow}"
    );
    assert_eq!(fake.records().len(), 3);
    assert_clean(&fake, &project);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_calls_are_bounded() {
    let fake = FakeDaytona::start(Faults {
        create_delay: std::time::Duration::from_millis(300),
        ..Faults::default()
    })
    .await;
    let project = hello_project("daytona-bounded");
    project.write(
        "p.toml",
        &format!(
            "[pipeline]\nname = \"p\"\noutput_dir = \"runs\"\nconcurrency = 4\n\
             [environment]\nprovider = \"daytona\"\n[environment.daytona]\n{FAST}max_creates = 1\n\
             [[tasks]]\npath = \"tasks/*\"\n[[stages]]\nname = \"s\"\nagents = [\"nop\"]\nattempts = 4\n"
        ),
    );
    let out = apply(&project, &fake, "p").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fake.count("POST /sandbox"), 4);
    assert_eq!(fake.most_creating(), 1, "max_creates = 1");
    assert_clean(&fake, &project);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_stops_the_run_before_any_trial() {
    let fake = FakeDaytona::start(Faults::default()).await;
    let project = hello_project("daytona-no-key");
    pipeline(&project, "p", "\"oracle\"", "");
    let mut command = project.command("p");
    command
        .env("DAYTONA_API_URL", &fake.url)
        .env_remove("DAYTONA_API_KEY");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("DAYTONA_API_KEY"), "{}", text(&out));
    assert!(!project.path("runs/p").exists(), "nothing was written");

    // `helios run --provider daytona` says the same.
    let mut run = std::process::Command::new(common::project::BINARY);
    run.args(["run", "--provider", "daytona", "--output-dir"])
        .arg(project.path("out"))
        .arg(project.path("tasks/create-hello-file"))
        .env("DAYTONA_API_URL", &fake.url)
        .env_remove("DAYTONA_API_KEY");
    let out = tokio::task::spawn_blocking(move || run.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("DAYTONA_API_KEY"), "{}", text(&out));
    assert_eq!(
        fake.requests(),
        Vec::<String>::new(),
        "Daytona was not called"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_stops_the_run_before_any_trial() {
    let fake = FakeDaytona::start(Faults::default()).await;
    let project = hello_project("daytona-bad-key");
    pipeline(&project, "p", "\"oracle\"", "");
    let mut command = project.command("p");
    command
        .env("DAYTONA_API_URL", &fake.url)
        .env("DAYTONA_API_KEY", "not-the-key");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("refused") && said.contains("DAYTONA_API_KEY"),
        "{said}"
    );
    assert!(
        !said.contains("not-the-key"),
        "the key is never shown: {said}"
    );
    assert_eq!(fake.count("POST /sandbox"), 0);
    assert_eq!(
        fake.requests().len(),
        1,
        "one authenticated look, then nothing"
    );
    assert!(!project.path("runs/p").exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dockerfile_that_needs_its_build_context_is_refused_before_the_run() {
    let fake = FakeDaytona::start(Faults::default()).await;
    let project = Project::new("daytona-copy");
    std::fs::create_dir_all(project.path("tasks")).unwrap();
    copy_tree("tasks/fix-python-bug", project.path("tasks/fix-python-bug"));
    pipeline(&project, "p", "\"oracle\"", "");
    let out = apply(&project, &fake, "p").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("Dockerfile:6")
            && said.contains("COPY stats.py")
            && said.contains("docker_image"),
        "{said}"
    );
    assert_eq!(fake.count("POST /sandbox"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_can_run_on_daytona_while_the_pipeline_runs_on_docker() {
    let fake = FakeDaytona::start(Faults::default()).await;
    let project = hello_project("daytona-stage");
    project.write(
        "p.toml",
        &format!(
            "[pipeline]\nname = \"p\"\noutput_dir = \"runs\"\n\
             [environment.daytona]\n{FAST}\n[[tasks]]\npath = \"tasks/*\"\n\
             [[stages]]\nname = \"local\"\nagents = [\"oracle\"]\n\
             [[stages]]\nname = \"cloud\"\nneeds = [\"local\"]\nagents = [\"oracle\"]\nprovider = \"daytona\"\n"
        ),
    );
    let out = apply(&project, &fake, "p").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut by_stage: BTreeMap<String, Value> = BTreeMap::new();
    for stage in ["local", "cloud"] {
        for entry in std::fs::read_dir(project.path(&format!("runs/p/{stage}"))).unwrap() {
            let path = entry.unwrap().path().join("result.json");
            let value: Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            by_stage.insert(stage.to_string(), value);
        }
    }
    assert_eq!(by_stage["local"]["provider"], "docker");
    assert_eq!(by_stage["cloud"]["provider"], "daytona");
    assert_eq!(by_stage["local"]["reward"], 1.0);
    assert_eq!(by_stage["cloud"]["reward"], 1.0);
    let sandbox = by_stage["cloud"]["container"].as_str().unwrap();
    assert_eq!(fake.records().len(), 1);
    assert_eq!(fake.records()[0].id, sandbox);
    assert_eq!(fake.undeleted(), Vec::<String>::new());
    project.assert_clean();
}

fn runner(fake: &FakeDaytona, task: std::path::PathBuf, out: std::path::PathBuf) -> AgentRunner {
    AgentRunner::new(task)
        .agent("oracle")
        .provider("daytona")
        .daytona_credentials(Credentials {
            api_key: KEY.into(),
            api_url: Some(fake.url.clone()),
            target: None,
        })
        .daytona(DaytonaSettings {
            poll_interval_sec: Some(0.05),
            ..DaytonaSettings::default()
        })
        .output_dir(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_runner_runs_on_daytona_and_a_cancel_deletes_the_sandbox() {
    let fake = FakeDaytona::start(Faults::default()).await;
    let project = Project::new("daytona-cancel");
    project.task("hangs", "", "sleep 300\n", PASS);
    let run = runner(&fake, project.path("tasks/hangs"), project.path("out"));
    let mut stream = run.stream().await.unwrap();
    // Cancel while the agent's command runs in the sandbox: the second command there, after
    // unpacking the solution with /logs's directories.
    let mut started = false;
    while !started {
        match stream.next().await {
            Some(RunEvent::TrialPhase {
                phase: helios::events::Phase::Agent,
                ..
            }) => started = true,
            Some(_) => {}
            None => panic!("the run ended before its agent started"),
        }
    }
    fake.wait_for(|r| r.iter().filter(|l| l.ends_with("/process/execute")).count() >= 2)
        .await;
    stream.cancel();
    while stream.next().await.is_some() {}
    let result = stream.result().await.unwrap();
    assert_eq!(result.status, RunStatus::Cancelled, "{result:?}");
    assert_eq!(fake.records().len(), 1);
    assert_eq!(
        fake.undeleted(),
        Vec::<String>::new(),
        "the cancelled trial's sandbox"
    );

    // The same runner, not cancelled, runs to a result.
    project.task("ok", "", "true\n", PASS);
    let result = runner(&fake, project.path("tasks/ok"), project.path("out"))
        .run()
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::Completed, "{result:?}");
    assert_eq!(result.reward, Some(1.0));
    assert_eq!(fake.undeleted(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_while_the_sandbox_starts_deletes_it() {
    let fake = FakeDaytona::start(Faults {
        never_ready: true,
        ..Faults::default()
    })
    .await;
    let project = Project::new("daytona-cancel-start");
    project.task("ok", "", "true\n", PASS);
    let mut stream = runner(&fake, project.path("tasks/ok"), project.path("out"))
        .stream()
        .await
        .unwrap();
    fake.wait_for(|r| {
        r.iter()
            .filter(|l| l.starts_with("GET /sandbox/sbx-"))
            .count()
            >= 2
    })
    .await;
    stream.cancel();
    while stream.next().await.is_some() {}
    let result = stream.result().await.unwrap();
    assert_eq!(result.status, RunStatus::Cancelled, "{result:?}");
    assert_eq!(fake.records().len(), 1);
    assert_eq!(fake.undeleted(), Vec::<String>::new());
}
