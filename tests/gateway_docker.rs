//! The model gateway end to end with real Docker: command agents inside containers call
//! it through the official Anthropic and OpenAI Python SDKs and curl, streamed and not, in
//! all three formats, against scripted replies; no API key enters a container or the run
//! directory; limits end trials and the verifier still runs.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::project::{Project, docker_ids, text};
use common::wait_until;
use helios::env::Environment;
use helios::gateway::{Gateway, read_calls};
use serde_json::Value;

/// A key recognisable anywhere it might leak to, split so this file itself holds it whole
/// nowhere but at run time.
fn fake_key() -> String {
    ["sk-helios", "fake-host-key", "5c2e9a"].join("-")
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

#[test]
fn command_agents_call_the_gateway_through_the_official_sdks_and_no_key_leaks() {
    let project = Project::new("gateway");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gateway");
    for entry in ["gateway.toml", "scripts", "tasks"] {
        common::project::copy_tree(format!("{fixture}/{entry}"), project.dir.path());
    }
    // The same task without network: its agent reaches the gateway and nothing else.
    common::project::copy_tree(
        project.path("tasks/sdk-calls"),
        project.path("tasks/sdk-calls-offline"),
    );
    let toml = project.path("tasks/sdk-calls-offline/task.toml");
    let task_toml = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        task_toml.replace(
            "[environment]\n",
            "[environment]\nnetwork_mode = \"no-network\"\n",
        ),
    )
    .unwrap();
    let pipeline = project.path("gateway.toml");
    let mut manifest = std::fs::read_to_string(&pipeline).unwrap();
    manifest.push_str(
        "\n[agents.offline]\nkind = \"command\"\n\
         command = \"python3 /opt/gateway-agent/agent.py offline\"\nmodel = \"chatty\"\n\n\
         [[stages]]\nname = \"offline\"\ntasks = [\"sdk-calls-offline\"]\nagents = [\"offline\"]\n",
    );
    std::fs::write(&pipeline, manifest).unwrap();

    let key = fake_key();
    let mut apply = project
        .command("gateway")
        .env("ANTHROPIC_API_KEY", &key)
        .env("OPENAI_API_KEY", &key)
        .env("GEMINI_API_KEY", &key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // While the `sdk` agent waits, inspect every container of the run, and search its
    // filesystem, for the key; then let the agent finish.
    let mut inspected = Vec::new();
    let mut exited = None;
    let sdk_done = || {
        // An apply that ended before the agent got its replies will not get them.
        if let Ok(Some(status)) = apply.try_wait() {
            exited = Some(status);
            return true;
        }
        for id in docker_ids("ps", &project.label) {
            if inspected.contains(&id) {
                continue;
            }
            let replies = docker(&["exec", &id, "cat", "/app/replies.txt"]);
            if String::from_utf8_lossy(&replies.stdout).lines().count() < 8 {
                continue;
            }
            let inspect = docker(&["inspect", &id]);
            assert!(inspect.status.success());
            let inspect = String::from_utf8_lossy(&inspect.stdout).to_string();
            assert!(!inspect.contains(&key), "the key is in `docker inspect`");
            assert!(inspect.contains("helios"), "{inspect}");
            let search = docker(&[
                "exec",
                &id,
                "grep",
                "-rIlF",
                "--exclude-dir=proc",
                "--exclude-dir=sys",
                "--exclude-dir=dev",
                &key,
                "/",
            ]);
            assert_eq!(
                String::from_utf8_lossy(&search.stdout),
                "",
                "files in the container hold the key"
            );
            let environ = docker(&["exec", &id, "sh", "-c", "cat /proc/*/environ"]);
            assert!(!String::from_utf8_lossy(&environ.stdout).contains(&key));
            assert!(
                docker(&["exec", &id, "touch", "/app/inspected"])
                    .status
                    .success()
            );
            inspected.push(id);
            return true;
        }
        false
    };
    assert!(
        wait_until(Duration::from_secs(900), sdk_done),
        "the sdk agent never got its eight replies"
    );
    let out = apply.wait_with_output().unwrap();
    assert!(
        !inspected.is_empty(),
        "apply ended ({exited:?}) before the sdk agent got its eight replies:\n{}",
        text(&out)
    );
    let results = project.results("gateway");
    assert_eq!(results.len(), 3, "{}", text(&out));

    let sdk = &results["sdk-calls/sdk"];
    assert_eq!(sdk["reward"], 1.0, "{sdk:#}\n{}", text(&out));
    assert_eq!(sdk["usage"]["input_tokens"], 420, "{sdk:#}");
    assert_eq!(sdk["usage"]["output_tokens"], 42, "{sdk:#}");
    let run = project.path("runs/gateway/s");
    let trial_dir = |result: &Value| {
        std::fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                std::fs::read_to_string(p.join("result.json"))
                    .is_ok_and(|t| t.contains(result["trial_id"].as_str().unwrap()))
            })
            .unwrap()
    };
    let sdk_dir = trial_dir(sdk);
    let calls = read_calls(&sdk_dir).unwrap();
    let formats: Vec<(String, bool)> = calls.iter().map(|c| (c.format.clone(), c.stream)).collect();
    let expected: Vec<(String, bool)> = [
        ("anthropic", false),
        ("anthropic", false),
        ("anthropic", true),
        ("openai-chat", false),
        ("openai-chat", true),
        ("openai-responses", false),
        ("openai-responses", true),
        ("gemini", false),
        ("gemini", true),
    ]
    .iter()
    .map(|(f, s)| (f.to_string(), *s))
    .collect();
    assert_eq!(formats, expected);
    assert!(calls.iter().all(|c| c.status == 200));
    let trajectory: Value = serde_json::from_slice(
        &std::fs::read(sdk_dir.join(helios::store::TRAJECTORY_FILE)).unwrap(),
    )
    .unwrap();
    let tool_calls: Vec<&Value> = trajectory["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tool_calls"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(tool_calls.len(), 1, "{trajectory:#}");
    assert_eq!(tool_calls[0]["function_name"], "write_file");
    let observed = trajectory.to_string();
    assert!(
        observed.contains("written"),
        "the tool result the agent sent back: {trajectory:#}"
    );

    for (agent, kind) in [
        ("tokens-capped", "token_limit"),
        ("cost-capped", "cost_limit"),
    ] {
        let result = &results[&format!("sdk-calls/{agent}")];
        assert_eq!(result["error"]["kind"], kind, "{result:#}");
        assert_eq!(result["status"], "failed", "{result:#}");
        assert_eq!(result["reward"], 0.0, "the verifier still ran: {result:#}");
        assert!(result["verifier_exit_code"].is_number(), "{result:#}");
        let dir = trial_dir(result);
        let refused: Value =
            serde_json::from_slice(&std::fs::read(dir.join("agent/refused.json")).unwrap())
                .unwrap();
        assert_eq!(refused["status"], 400, "{refused}");
        assert_eq!(
            read_calls(&dir).unwrap().len(),
            4,
            "three answered, one refused"
        );
    }

    let offline_stage = project.path("runs/gateway/offline");
    let offline_dir = std::fs::read_dir(&offline_stage)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("result.json").is_file())
        .expect("the offline trial ran");
    let seen: Value = match std::fs::read(offline_dir.join("agent/offline.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(e) => panic!(
            "the offline agent wrote nothing ({e}); its output:\n{}\nits result:\n{}",
            std::fs::read_to_string(offline_dir.join("agent/command.txt")).unwrap_or_default(),
            std::fs::read_to_string(offline_dir.join("result.json")).unwrap_or_default()
        ),
    };
    assert_eq!(seen["gateway"], "one", "the gateway answered: {seen}");
    assert_eq!(seen["internet"], false, "no route out: {seen}");
    assert!(
        docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label={}", project.label)
        ])
        .stdout
        .is_empty(),
        "the run's isolated network is removed"
    );

    let grep = Command::new("grep")
        .args(["-rlF", &key])
        .arg(project.path("runs"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&grep.stdout),
        "",
        "the run directory holds the key"
    );
    project.assert_clean();
}

#[tokio::test]
async fn the_gateway_answers_on_the_docker_bridge_and_nowhere_else() {
    let engine = helios::env::docker::DockerEngine::connect(4).await.unwrap();
    let bridge = engine
        .host_address()
        .await
        .unwrap()
        .expect("a bridge address");
    let gateway = Gateway::start(bridge).await.unwrap();
    let port = gateway.address().port();
    let _ = client();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let at = |ip: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{ip}:{port}/v1/models"))
                .send()
                .await
        }
    };
    let answer = at(bridge.to_string()).await.unwrap();
    assert_eq!(
        answer.status().as_u16(),
        401,
        "no token, so refused, but answered"
    );

    let hostname = Command::new("hostname").arg("-I").output().unwrap();
    let mut elsewhere: Vec<String> = String::from_utf8_lossy(&hostname.stdout)
        .split_whitespace()
        .filter(|ip| *ip != bridge.to_string() && !ip.contains(':'))
        .map(str::to_string)
        .collect();
    elsewhere.push("127.0.0.1".into());
    for ip in elsewhere {
        let refused = at(ip.clone()).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.is_connect()),
            "the gateway answered on {ip}: {refused:?}"
        );
    }
}

/// An HTTP client (its TLS needs a crypto provider installed, once per process).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
