//! The web viewer end to end: a real run built by the test (real Docker), served by the
//! real binary, looked at by Debian's Chromium through chromedriver.

mod common;

use std::process::Command;
use std::time::Duration;

use common::browser::{Browser, Served};
use common::project::{BINARY, Project, copy_tree, docker_ids, text};
use fantoccini::Locator;

/// create-hello-file with the oracle, nop, and the terminal agent driven by the scripted model.
fn hello_project() -> Project {
    let project = Project::new("viewer");
    std::fs::create_dir_all(project.path("tasks")).unwrap();
    copy_tree("tasks/create-hello-file", project.path("tasks"));
    copy_tree("pipelines/scripts", project.path("scripts"));
    copy_tree("pipelines/prompts", project.path("prompts"));
    project.write(
        "viewer.toml",
        r#"
[pipeline]
name = "viewer"
output_dir = "runs"

[vars]
language = "English"

[[tasks]]
path = "tasks/*"

[models.hello-script]
id = "scripted"
script = "scripts/hello-file.yaml"
price = { input_per_mtok = 3.0, output_per_mtok = 15.0 }

[agents.terminal]
kind = "terminal"
system_prompt = "prompts/terminal.j2"

[[stages]]
name = "s"
agents = ["oracle", "nop"]

[[stages]]
name = "model"
agents = ["terminal"]
models = ["hello-script"]
"#,
    );
    project
}

fn view(project: &Project) -> Served {
    let mut command = Command::new(BINARY);
    command
        .args(["view", "--port", "0"])
        .arg(project.path("runs"));
    Served::spawn(command, "serving")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_matrix_and_a_trial_page_show_a_real_run() {
    let project = hello_project();
    let out = project.apply("viewer");
    // nop fails its verifier: exit 0 is not expected, a reward of 0 is a result.
    assert!(
        project.path("runs/viewer/summary.json").exists(),
        "{}",
        text(&out)
    );
    let served = view(&project);
    let browser = Browser::start().await;
    let client = &browser.client;

    // The list of runs links to the run.
    client.goto(&served.base()).await.unwrap();
    browser.wait_for("#runs a").await.click().await.unwrap();

    // The matrix: one row for the task, a column per stage · agent · model, with rates.
    browser.wait_for("#matrix").await;
    let columns = browser.texts("#matrix thead th.column").await;
    assert_eq!(
        columns,
        ["s · oracle", "s · nop", "model · terminal · hello-script"],
        "{columns:?}"
    );
    assert_eq!(
        browser.texts("#matrix th.task").await,
        ["create-hello-file"]
    );
    assert_eq!(
        browser.texts("#matrix tr.pass-rate td").await,
        ["100%", "0%", "100%"]
    );
    assert_eq!(
        browser.texts("#matrix tr.mean-reward td").await,
        ["1.000", "0.000", "1.000"]
    );
    let summary = browser.texts("#run-summary").await.join("");
    assert!(
        summary.contains("3 of 3 trials finished") && summary.contains("pass rate 67%"),
        "{summary}"
    );
    browser.screenshot("matrix").await;

    // A filter keeps only the matching column, and the address remembers it.
    let agent_filter = client
        .find(Locator::Css("#filters select[name=agent]"))
        .await
        .unwrap();
    agent_filter.select_by_value("nop").await.unwrap();
    browser.wait_for("#matrix").await;
    assert_eq!(browser.texts("#matrix thead th.column").await, ["s · nop"]);
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("agent=nop")
    );
    agent_filter.select_by_value("").await.unwrap();

    // The trial page of the model-driven trial: phases, every tool call, the verifier.
    browser
        .wait_for("a.attempt[data-key^='model/']")
        .await
        .click()
        .await
        .unwrap();
    let title = browser.wait_for("#trial-title").await.text().await.unwrap();
    assert!(
        title.starts_with("create-hello-file · terminal · hello-script"),
        "{title}"
    );
    assert_eq!(browser.texts("#trial-status").await, ["completed"]);
    assert_eq!(browser.texts("#trial-reward").await, ["1"]);
    let phases = browser.texts("#phases tbody td:first-child").await;
    assert_eq!(
        phases,
        ["environment", "agent", "verifier", "collect", "teardown"]
    );
    let tools = browser.texts("#trajectory .tool-call .tool-name").await;
    assert_eq!(tools.first().map(String::as_str), Some("bash"), "{tools:?}");
    assert_eq!(
        tools.last().map(String::as_str),
        Some("finish"),
        "{tools:?}"
    );
    let inputs = browser.texts("#trajectory .tool-input").await.join("\n");
    assert!(inputs.contains("Hello, world!"), "{inputs}");
    let outputs = browser.texts("#trajectory .tool-output").await.join("\n");
    assert!(outputs.contains("exit code: 0"), "{outputs}");
    let metrics = browser.texts("#trajectory .metrics").await;
    assert!(
        metrics.iter().any(|m| m.contains("in") && m.contains('$')),
        "tokens and cost per step: {metrics:?}"
    );
    let verifier = browser.texts("#verifier").await.join("\n");
    assert!(
        verifier.contains("reward = 1") && verifier.contains("hello.txt is correct"),
        "{verifier}"
    );
    assert_eq!(browser.texts("#build-log summary").await.len(), 1);
    browser.screenshot("trial").await;

    // Read-only, and nothing outside the results directory is served.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let outside = reqwest::get(format!(
        "{}api/runs/viewer/files/..%2f..%2fviewer.toml",
        served.base()
    ))
    .await
    .unwrap();
    assert_eq!(outside.status(), 403);
    let post = reqwest::Client::new()
        .post(format!("{}api/runs", served.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);

    browser.close().await;
    let (code, _) = served.interrupt();
    assert_eq!(code, Some(0));
    project.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_run_updates_the_page_while_it_goes_on() {
    let project = Project::new("viewer-live");
    // The agent waits on a FIFO until the test writes to it: the trial stays `running`
    // exactly as long as the test wants.
    project.task(
        "gate",
        "",
        "true\n",
        "#!/bin/bash\ngrep -q go /app/out.txt && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt\n",
    );
    project.write(
        "live.toml",
        r#"
[pipeline]
name = "live"
output_dir = "runs"

[[tasks]]
path = "tasks/*"

[agents.waiter]
kind = "command"
command = "mkfifo /tmp/go && cat /tmp/go > /app/out.txt"

[[stages]]
name = "s"
agents = ["waiter"]
"#,
    );
    let mut command = project.command("live");
    command.args(["--watch", "--port", "0"]);
    let served = Served::spawn(command, "watch the run at");
    assert!(served.url.contains("#/run/live"), "{}", served.url);

    let browser = Browser::start().await;
    browser.client.goto(&served.url).await.unwrap();
    // Pushed over server-sent events: the page is never reloaded.
    browser.wait_for("a.attempt[data-status='running']").await;
    browser.wait_for("body[data-stream='open']").await;
    assert_eq!(browser.texts("#live-state").await, ["live: running"]);
    browser.screenshot("live-running").await;

    // A trial shows `running` from when it has its place, which can be before its
    // container exists on a loaded machine (tests of other binaries run meanwhile).
    let mut containers = Vec::new();
    let appeared = common::wait_until(Duration::from_secs(120), || {
        containers = docker_ids("ps", &project.label);
        !containers.is_empty()
    });
    assert!(appeared && containers.len() == 1, "{containers:?}");
    let release = Command::new("docker")
        .args(["exec", &containers[0], "sh", "-c"])
        .arg("while [ ! -p /tmp/go ]; do sleep 0.05; done; echo go > /tmp/go")
        .output()
        .unwrap();
    assert!(release.status.success(), "{}", text(&release));

    let cell = browser.wait_for("a.attempt[data-status='completed']").await;
    assert_eq!(cell.text().await.unwrap(), "1");
    browser.wait_for("#live-state[data-state='finished']").await;
    let finished = browser.texts("#matrix tr.finished td").await;
    assert_eq!(finished, ["1 / 1"]);
    browser.screenshot("live-finished").await;

    browser.close().await;
    let (code, rest) = served.interrupt();
    assert_eq!(code, Some(0), "{rest}");
    assert!(rest.contains("still serves"), "{rest}");
    project.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn images_in_a_trajectory_are_shown_inline() {
    let browser = Browser::start().await;
    // Any real PNG will do as the agent's screenshot: the browser's own.
    browser.client.goto("about:blank").await.unwrap();
    let png = browser.client.screenshot().await.unwrap();

    let root = tempfile::tempdir().unwrap();
    let trial = root.path().join("pics/s/desk__cu__a1__0000000000000000");
    std::fs::create_dir_all(trial.join("agent/screenshots")).unwrap();
    std::fs::write(root.path().join("pics/summary.json"), "{}").unwrap();
    std::fs::write(trial.join("agent/screenshots/0001.png"), &png).unwrap();
    std::fs::write(
        trial.join("result.json"),
        serde_json::json!({"task": "desk", "stage": "s", "agent": "cu", "model": null,
            "attempt": 1, "status": "completed", "reward": 1.0, "error": null,
            "cost_usd": null, "usage": null})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        trial.join("agent/trajectory.json"),
        serde_json::json!({"schema_version": "ATIF-v1.4", "session_id": "x",
            "agent": {"name": "cu", "version": "1"},
            "steps": [{"step_id": 1, "timestamp": "t", "source": "agent", "message": "Looking.",
                "tool_calls": [{"tool_call_id": "c1", "function_name": "computer",
                    "arguments": {"action": "screenshot"}}],
                "observation": {"results": [{"source_call_id": "c1", "content": [
                    {"type": "text", "text": "the desktop"},
                    {"type": "image", "source": {"media_type": "image/png",
                        "path": "screenshots/0001.png"}}]}]}}],
            "final_metrics": {"total_prompt_tokens": 0, "total_completion_tokens": 0,
                "total_cached_tokens": 0, "total_steps": 1}})
        .to_string(),
    )
    .unwrap();

    let mut command = Command::new(BINARY);
    command.args(["view", "--port", "0"]).arg(root.path());
    let served = Served::spawn(command, "serving");
    browser
        .client
        .goto(&format!(
            "{}#/run/pics/trial/s/desk__cu__a1__0000000000000000",
            served.base()
        ))
        .await
        .unwrap();
    browser.wait_for("#trajectory img.shot").await;
    let width = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const img = document.querySelector('#trajectory img.shot');
             if (img.complete) done(img.naturalWidth); else img.onload = () => done(img.naturalWidth);",
            vec![],
        )
        .await
        .unwrap();
    assert!(width.as_u64().unwrap() > 0, "the image loaded: {width}");
    assert_eq!(
        browser.texts("#trajectory .tool-output pre").await,
        ["the desktop"]
    );
    browser.close().await;
    let (code, _) = served.interrupt();
    assert_eq!(code, Some(0));
}

#[test]
fn a_watched_run_that_cannot_start_exits_and_leaves_nothing() {
    let project = Project::new("viewer-preflight");
    project.task("t", "", "true\n", "echo 1 > /logs/verifier/reward.txt\n");
    project.write(
        "nokey.toml",
        r#"
[pipeline]
name = "nokey"
output_dir = "runs"

[[tasks]]
path = "tasks/*"

[models.claude]
id = "anthropic/claude-sonnet-4-20250514"
api_key_env = "HELIOS_TEST_MISSING_KEY"

[agents.terminal]
kind = "terminal"
model = "claude"

[[stages]]
name = "s"
agents = ["terminal"]
"#,
    );
    let out = project
        .command("nokey")
        .args(["--watch", "--port", "0"])
        .env_remove("HELIOS_TEST_MISSING_KEY")
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("HELIOS_TEST_MISSING_KEY"), "{said}");
    assert!(!said.contains("still serves"), "{said}");
    assert!(
        !project.path("runs/nokey").exists(),
        "no run is left for the viewer to list"
    );
    project.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_page_shows_intervals_and_pass_at_k_and_two_runs_compare() {
    let project = Project::new("viewer-stats");
    let reward_if_done =
        "if [ -f /app/done ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n";
    project.task("flip", "", "touch /app/done\n", reward_if_done);
    project.task("steady", "", "touch /app/done\n", reward_if_done);
    let pipeline = |name: &str| {
        format!(
            "[pipeline]\nname = \"{name}\"\noutput_dir = \"runs\"\n[[tasks]]\npath = \"tasks/*\"\n\
             [[stages]]\nname = \"s\"\nagents = [\"oracle\"]\nattempts = 2\n"
        )
    };
    project.write("first.toml", &pipeline("first"));
    let out = project.apply("first");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // In the second run `flip`'s solution does nothing: it goes from pass to fail.
    project.write("tasks/flip/solution/solve.sh", "true\n");
    project.write("second.toml", &pipeline("second"));
    let out = project.apply("second");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let served = view(&project);
    let browser = Browser::start().await;
    let client = &browser.client;
    client
        .goto(&format!("{}#/run/second", served.base()))
        .await
        .unwrap();
    browser.wait_for("#run-stats").await;
    assert_eq!(
        browser.texts("#run-stats thead th").await,
        [
            "group",
            "scored",
            "left out",
            "mean reward [95% CI]",
            "pass rate [95% CI]",
            "pass@1",
            "pass@2"
        ]
    );
    // steady passes twice, flip fails twice: 0.5 with a (clipped) interval; pass@k 0.5.
    assert_eq!(
        browser.texts("#run-stats td.mean-ci").await,
        ["0.500 [0.000, 1.000]"]
    );
    assert_eq!(
        browser.texts("#run-stats td.pass-at-k").await,
        ["0.500", "0.500"]
    );
    browser.screenshot("run-stats").await;

    // The list of runs offers a comparison; B is `second`, A `first`.
    client.goto(&served.base()).await.unwrap();
    browser.wait_for("#compare-form").await;
    client
        .find(Locator::Css("#compare-form select[name=b]"))
        .await
        .unwrap()
        .select_by_value("second")
        .await
        .unwrap();
    client
        .find(Locator::Css("#compare-form select[name=a]"))
        .await
        .unwrap()
        .select_by_value("first")
        .await
        .unwrap();
    client
        .find(Locator::Css("#compare-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("#compare tbody tr").await;
    assert_eq!(browser.texts("#compare td.pass-to-fail").await, ["flip"]);
    assert_eq!(browser.texts("#compare td.fail-to-pass").await, ["—"]);
    let difference = browser.texts("#compare td.difference").await.join("");
    assert!(difference.starts_with("-0.500"), "{difference}");
    browser.screenshot("compare").await;
    browser.close().await;
    let (code, _) = served.interrupt();
    assert_eq!(code, Some(0));
}

/// A finished trial's `result.json`, as helios writes it.
fn result_json(task: &str, agent: &str, reward: f64) -> String {
    serde_json::json!({
        "format": 1, "trial_id": "0123456789abcdef", "full_id": "0123456789abcdef",
        "task": task, "stage": "s", "agent": agent, "model": null, "params": {},
        "attempt": 1, "status": "completed", "rewards": {"reward": reward}, "reward": reward,
        "error": null, "timings": [], "agent_exit_code": 0, "verifier_exit_code": 0,
        "usage": null, "cost_usd": null, "image": "helios/task:x", "container": null,
        "retried": [], "helios_version": "test"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_of_many_tasks_pages_its_matrix_and_keeps_its_totals() {
    // 250 tasks with `oracle` (reward 1), the first 30 also with `nop` (reward 0): results
    // on disk as helios leaves them, no Docker needed.
    let project = Project::new("viewer-paging");
    project.write("runs/many/summary.json", "{}");
    for task in 0..250 {
        let name = format!("task-{task:04}");
        project.write(
            &format!("runs/many/s/{name}__oracle__a1/result.json"),
            &result_json(&name, "oracle", 1.0),
        );
        if task < 30 {
            project.write(
                &format!("runs/many/s/{name}__nop__a1/result.json"),
                &result_json(&name, "nop", 0.0),
            );
        }
    }
    let served = view(&project);

    // The page asks for its rows compactly; scripts still get objects.
    let base = served.base();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let compact: serde_json::Value = reqwest::get(format!("{base}api/runs/many?rows=compact"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(compact["rows"]["rows"].as_array().unwrap().len(), 280);
    assert_eq!(compact["rows"]["fields"][0], "key");
    let full: serde_json::Value = reqwest::get(format!("{base}api/runs/many"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(full["rows"].as_array().unwrap().len(), 280);
    assert_eq!(full["summary"]["trials"], 280);
    let bad = reqwest::get(format!("{base}api/runs/many?rows=sideways"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&format!("{base}#/run/many")).await.unwrap();
    browser.wait_for("#pager").await;
    assert_eq!(
        browser.texts("#pager .page-of").await,
        ["tasks 1–100 of 250 · page 1 of 3"]
    );
    let tasks = browser.texts("#matrix th.task").await;
    assert_eq!((tasks.len(), tasks[0].as_str()), (100, "task-0000"));
    // The totals under the matrix are over every task, not the page's (columns in the
    // order of the trial directories: `nop` sorts first).
    assert_eq!(
        browser.texts("#matrix tr.finished td").await,
        ["30 / 30", "250 / 250"]
    );
    assert_eq!(
        browser.texts("#matrix tr.pass-rate td").await,
        ["0%", "100%"]
    );
    browser.screenshot("paged-matrix").await;

    client
        .find(Locator::Css("#pager button.next"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("#pager[data-page='2']").await;
    assert_eq!(browser.texts("#matrix th.task").await[0], "task-0100");
    let url = client.current_url().await.unwrap();
    assert_eq!(url.fragment(), Some("/run/many?page=2"));

    // The page is in the address: opening it shows that page.
    client.goto("about:blank").await.unwrap();
    client
        .goto(&format!("{base}#/run/many?page=3"))
        .await
        .unwrap();
    browser.wait_for("#pager[data-page='3']").await;
    let tasks = browser.texts("#matrix th.task").await;
    assert_eq!((tasks.len(), tasks[0].as_str()), (50, "task-0200"));
    assert!(
        client
            .find(Locator::Css("#pager button.next"))
            .await
            .unwrap()
            .attr("disabled")
            .await
            .unwrap()
            .is_some(),
        "the last page has no next one"
    );

    // A filter starts again at the first page; 30 tasks need no pager.
    client
        .find(Locator::Css("#filters select[name=agent]"))
        .await
        .unwrap()
        .select_by_value("nop")
        .await
        .unwrap();
    browser
        .wait_for("#run-body:not(:has(#pager)) #matrix")
        .await;
    assert_eq!(browser.texts("#matrix th.task").await.len(), 30);
    assert_eq!(browser.texts("#matrix tr.finished td").await, ["30 / 30"]);
    let url = client.current_url().await.unwrap();
    assert_eq!(url.fragment(), Some("/run/many?agent=nop"));
    browser.close().await;
    let (code, _) = served.interrupt();
    assert_eq!(code, Some(0));
}
