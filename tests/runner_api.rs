//! The library API (`AgentRunner`, `RunConfig`, `RunResult`, `RunStatus`, streaming)
//! against the real Docker engine, and the bundled examples.

mod common;

use std::process::Command;

use common::project::{Project, docker_ids};
use helios::{AgentRunner, RunConfig, RunEvent, RunStatus};

/// A runner on a bundled task whose results and containers are this test's own.
fn runner(project: &Project, task: &str) -> AgentRunner {
    let (key, value) = project.label.split_once('=').unwrap();
    AgentRunner::new(task)
        .output_dir(project.path("out"))
        .label(key, value)
}

fn script(project: &Project, name: &str, replies: &str) -> std::path::PathBuf {
    project.write(name, replies);
    project.path(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oracle_succeeds_with_reward_1() {
    let project = Project::new("api-oracle");
    let result = runner(&project, "tasks/create-hello-file")
        .agent("oracle")
        .run()
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::Completed);
    assert!(result.success);
    assert_eq!(result.reward, Some(1.0));
    assert!(result.output_dir.join("result.json").is_file());
    project.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scripted_model_gives_a_trajectory_of_tool_calls() {
    let project = Project::new("api-scripted");
    let result = runner(&project, "tasks/create-hello-file")
        .model("scripted")
        .script("pipelines/scripts/hello-file.yaml")
        .run()
        .await
        .unwrap();
    assert!(result.success, "{result:?}");
    assert_eq!(result.turn_count, 3);
    let names: Vec<&str> = result
        .trajectory
        .iter()
        .map(|s| s.tool_name.as_str())
        .collect();
    assert_eq!(names, ["bash", "bash", "finish"]);
    assert_eq!(result.trajectory[0].tool_input["command"], "pwd && ls -la");
    assert!(
        result.trajectory[1].tool_output.contains("Hello, world!"),
        "{:?}",
        result.trajectory[1]
    );
    project.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_yields_events_in_order() {
    let project = Project::new("api-stream");
    let mut stream = runner(&project, "tasks/create-hello-file")
        .model("scripted")
        .script("pipelines/scripts/hello-file.yaml")
        .stream()
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while let Some(event) = stream.next().await {
        kinds.push(match event {
            RunEvent::TrialStarted { .. } => "started",
            RunEvent::AgentTurn { .. } => "turn",
            RunEvent::AgentText { .. } => "text",
            RunEvent::ToolCall { .. } => "call",
            RunEvent::ToolResult { .. } => "result",
            RunEvent::TrialFinished { .. } => "finished",
            RunEvent::Finished => "end",
            _ => continue,
        });
    }
    assert_eq!(stream.context().turn_count, 3);
    let expected = [
        "started", "turn", "text", "call", "result", "turn", "text", "call", "result", "turn",
        "text", "call", "result", "finished", "end",
    ];
    assert_eq!(kinds, expected);
    assert!(stream.result().await.unwrap().success);
    project.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn max_turns_and_max_time_end_the_run_with_their_status() {
    let project = Project::new("api-limits");
    let chatty = script(
        &project,
        "chatty.yaml",
        "replies:\n  - tool_calls: [{ name: bash, input: { command: 'true' } }]\n  - tool_calls: [{ name: bash, input: { command: 'true' } }]\n",
    );
    let result = runner(&project, "tasks/create-hello-file")
        .model("scripted")
        .script(&chatty)
        .config(RunConfig {
            max_turns: 1,
            ..RunConfig::default()
        })
        .run()
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::Failed);
    assert_eq!(
        result.error.as_ref().unwrap().kind,
        helios::events::ErrorKind::MaxTurns
    );
    assert_eq!(result.reward, Some(0.0), "the verifier still ran");

    let slow = script(
        &project,
        "slow.yaml",
        "replies:\n  - tool_calls: [{ name: bash, input: { command: 'sleep 300' } }]\n  - text: done\n",
    );
    let result = runner(&project, "tasks/create-hello-file")
        .model("scripted")
        .script(&slow)
        .config(RunConfig {
            max_time: 2.0,
            ..RunConfig::default()
        })
        .run()
        .await
        .unwrap();
    assert_eq!(result.status, RunStatus::TimedOut, "{result:?}");
    assert_eq!(
        result.error.as_ref().unwrap().kind,
        helios::events::ErrorKind::AgentTimeout
    );
    project.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_leaves_no_container() {
    let project = Project::new("api-cancel");
    let slow = script(
        &project,
        "slow.yaml",
        "replies:\n  - tool_calls: [{ name: bash, input: { command: 'sleep 300' } }]\n",
    );
    let mut stream = runner(&project, "tasks/create-hello-file")
        .model("scripted")
        .script(&slow)
        .stream()
        .await
        .unwrap();
    while let Some(event) = stream.next().await {
        if matches!(event, RunEvent::ToolCall { .. }) {
            stream.cancel();
        }
    }
    let result = stream.result().await.unwrap();
    assert_eq!(result.status, RunStatus::Cancelled);
    assert_eq!(docker_ids("ps", &project.label), Vec::<String>::new());
    project.assert_clean();
}

/// The examples are built by `cargo test`; two of them run here (with the scripted model
/// when no API key is set).
#[test]
fn the_basic_and_error_handling_examples_run() {
    let examples = std::path::Path::new(env!("CARGO_BIN_EXE_helios"))
        .parent()
        .unwrap()
        .join("examples");
    for name in ["basic", "error_handling"] {
        let out = Command::new(examples.join(name))
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        match name {
            "basic" => assert!(
                text.contains("Success: true") && text.contains("Tool: bash"),
                "{text}"
            ),
            _ => assert!(
                text.contains("Invalid task") && text.contains("Task completed successfully"),
                "{text}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_serves_the_run_in_the_viewer_while_it_goes_on() {
    let project = Project::new("api-watch");
    let mut stream = runner(&project, "tasks/create-hello-file")
        .agent("oracle")
        .watch(true)
        .stream()
        .await
        .unwrap();
    let url = stream.viewer_url().expect("a viewer address").to_string();
    let (base, fragment) = url.split_once('#').unwrap();
    let run = fragment.trim_start_matches("/run/").to_string();
    // Before the first event, the run is listed and followed live.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let page: serde_json::Value = reqwest::get(format!("{base}api/runs/{run}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["live"], "running", "{page}");
    assert_eq!(page["rows"].as_array().unwrap().len(), 1);
    while stream.next().await.is_some() {}
    let result = stream.result().await.unwrap();
    assert_eq!(result.reward, Some(1.0));
    project.assert_clean();
}
