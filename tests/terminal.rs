//! The `terminal` agent end to end, in real containers: driven by the `scripted` model it
//! solves tasks; driven by a model server (local, in this process) that fails for good it
//! ends with a clear error; and no API key ever reaches the results.

mod common;

use std::path::Path;

use common::http::{Reply, Server, ok, status};
use common::project::{Project, copy_tree as copy, text};
use helios::agent::trajectory::Trajectory;
use serde_json::json;

const KEY: &str = "sk-helios-test-key-0f1e2d3c4b5a";

fn trajectory(project: &Project, stage: &str) -> Trajectory {
    let dir = std::fs::read_dir(project.path(&format!("runs/{stage}")))
        .map(|mut d| d.next().unwrap().unwrap().path())
        .unwrap();
    serde_json::from_str(&std::fs::read_to_string(dir.join("agent/trajectory.json")).unwrap())
        .unwrap()
}

#[test]
fn the_scripted_model_drives_the_terminal_agent_through_two_tasks() {
    let project = Project::new("scripted");
    copy("tasks", project.dir.path());
    copy("pipelines", project.dir.path());
    // The copied pipeline writes its results to `../runs`: under the project.
    let out = project.apply("pipelines/scripted");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    for (stage, file) in [
        ("hello", "hello-file.yaml"),
        ("data", "transform-data.yaml"),
    ] {
        let dir = std::fs::read_dir(project.path(&format!("runs/scripted/{stage}")))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(result["status"], "completed", "{result}");
        assert_eq!(result["reward"], 1.0, "{result}");
        let trajectory: Trajectory = serde_json::from_str(
            &std::fs::read_to_string(dir.join("agent/trajectory.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(trajectory.schema_version, "ATIF-v1.4");
        let steps = trajectory.tool_steps();
        assert!(steps.len() >= 3, "{steps:?}");
        assert_eq!(steps[0].tool_name, "bash");
        assert!(steps[0].tool_input["command"].is_string());
        assert!(
            steps[0].tool_output.starts_with("exit code: 0"),
            "{:?}",
            steps[0]
        );
        assert_eq!(steps.last().unwrap().tool_name, "finish");
        // Usage in the result and the trajectory is the sum of the script's replies.
        let script: serde_json::Value = serde_saphyr::from_str(
            &std::fs::read_to_string(format!("pipelines/scripts/{file}")).unwrap(),
        )
        .unwrap();
        let input: u64 = script["replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["usage"]["input_tokens"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(result["usage"]["input_tokens"], input);
        assert_eq!(trajectory.final_metrics.total_prompt_tokens, input);
    }
    // The hello model has a price: 612+731+(802-600) fresh at $3, 600 cached at $0.30, 126 out at $15.
    let hello = trajectory(&project, "scripted/hello");
    let expected = (1545.0 * 3.0 + 600.0 * 0.3 + 126.0 * 15.0) / 1e6;
    assert!((hello.final_metrics.total_cost_usd.unwrap() - expected).abs() < 1e-9);
    project.assert_clean();
}

/// A pipeline with the terminal agent on `create-hello-file` and an OpenAI-compatible model at `url`.
fn openai_pipeline(project: &Project, url: &str, extra: &str) {
    std::fs::create_dir_all(project.path("tasks")).unwrap();
    copy(
        "tasks/create-hello-file",
        project.path("tasks/create-hello-file"),
    );
    project.write(
        "p.toml",
        &format!(
            "[pipeline]\nname = \"p\"\noutput_dir = \"runs\"\n[[tasks]]\npath = \"tasks/*\"\n\
             [models.local]\nid = \"openai/test-model\"\nbase_url = \"{url}\"\n{extra}\n\
             [agents.terminal]\nkind = \"terminal\"\nmodel = \"local\"\n\
             [[stages]]\nname = \"s\"\nagents = [\"terminal\"]\n"
        ),
    );
}

/// `helios apply p.toml` with the API key set, off the async runtime that serves the model.
async fn apply_with_key(project: &Project) -> std::process::Output {
    let mut command = project.command("p");
    command.env("OPENAI_API_KEY", KEY);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn tool_call(id: &str, name: &str, arguments: serde_json::Value) -> Reply {
    ok(
        json!({"id": id, "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}),
    )
}

/// Every file under `dir`, as bytes.
fn every_file(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_compatible_server_drives_the_agent_and_the_key_stays_secret() {
    let server = Server::start(vec![
        tool_call(
            "call_1",
            "bash",
            json!({"command": "printf 'Hello, world!\\n' > /app/hello.txt"}),
        ),
        tool_call("call_2", "finish", json!({"summary": "done"})),
    ])
    .await;
    let project = Project::new("openai-agent");
    openai_pipeline(&project, &server.url(), "");
    let out = apply_with_key(&project).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result = &project.results("p")["create-hello-file/terminal"];
    assert_eq!(result["reward"], 1.0, "{result}");
    assert_eq!(result["usage"]["input_tokens"], 200);
    // The key went to the server, and nowhere else: not in any file of the run, nor in what
    // helios printed.
    let requests = server.requests();
    assert!(
        requests[0]
            .headers
            .contains(&format!("authorization: Bearer {KEY}"))
    );
    assert_eq!(requests[1].body["messages"][3]["role"], "tool");
    for (path, bytes) in every_file(&project.path("runs")) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "the API key is in {}",
            path.display()
        );
    }
    assert!(!text(&out).contains(KEY));
    project.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_server_that_fails_for_good_ends_the_trial_with_a_clear_error() {
    let failure = || {
        status(
            500,
            json!({"error": {"message": "the model server is down", "type": "server_error"}}),
        )
    };
    let server = Server::start(vec![failure(), failure(), failure()]).await;
    let project = Project::new("failing-model");
    openai_pipeline(&project, &server.url(), "max_retries = 1");
    let out = apply_with_key(&project).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let result = &project.results("p")["create-hello-file/terminal"];
    assert_eq!(result["status"], "failed");
    assert_eq!(result["error"]["kind"], "model_server_error");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 500") && message.contains("the model server is down"),
        "{message}"
    );
    assert_eq!(result["reward"], 0.0, "the verifier still ran");
    assert_eq!(server.requests().len(), 2, "one try and one retry");
    project.assert_clean();
}

#[test]
fn a_missing_api_key_stops_the_run_before_it_starts() {
    let project = Project::new("no-key");
    openai_pipeline(
        &project,
        "http://127.0.0.1:9",
        "api_key_env = \"HELIOS_TEST_UNSET_KEY\"",
    );
    let out = project
        .command("p")
        .env_remove("HELIOS_TEST_UNSET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("set the environment variable `HELIOS_TEST_UNSET_KEY`"),
        "{}",
        text(&out)
    );
    assert!(!project.path("runs/p/s").exists());
    project.assert_clean();
}
