//! Installed agents end to end on real Docker: each catalog agent is installed for real from
//! the package registries into a labelled volume, once, and runs on two tasks (hello-file
//! and the bundled transform-data) against scripted replies served by the model gateway
//! (no network to any model provider); a second apply installs nothing; a bad version
//! fails the run before any trial, with the installer's output. One test, so that the
//! install is shared.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::project::{BINARY, Project, copy_tree, text};
use helios::gateway::read_calls;
use serde_json::Value;

fn fixture(project: &Project) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/installed");
    for entry in ["installed-agents.toml", "tasks"] {
        copy_tree(format!("{fixture}/{entry}"), project.dir.path());
    }
    let repo = env!("CARGO_MANIFEST_DIR");
    copy_tree(
        format!("{repo}/pipelines/scripts/installed"),
        project.path("scripts"),
    );
    copy_tree(
        format!("{repo}/tasks/transform-data"),
        project.path("tasks"),
    );
}

/// The catalog's agents, all of which the fixture runs.
const AGENTS: [&str; 6] = [
    "claude-code",
    "codex",
    "gemini-cli",
    "opencode",
    "mini-swe-agent",
    "aider",
];

/// The trial directory of a result.
fn trial_dir(project: &Project, result: &Value) -> std::path::PathBuf {
    std::fs::read_dir(project.path("runs/installed/s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p.join("result.json"))
                .is_ok_and(|t| t.contains(result["trial_id"].as_str().unwrap()))
        })
        .unwrap()
}

/// The tool calls of a trial's ATIF trajectory, by function name.
fn tool_calls(dir: &std::path::Path) -> Vec<String> {
    let trajectory: Value =
        serde_json::from_slice(&std::fs::read(dir.join(helios::store::TRAJECTORY_FILE)).unwrap())
            .unwrap();
    trajectory["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tool_calls"].as_array().into_iter().flatten())
        .map(|c| c["function_name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The names of the volumes carrying `label`.
fn volumes(label: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// What a catalog agent's trials must show.
struct Solved {
    agent: &'static str,
    /// Input and output tokens, the script's, on hello-file and on transform-data.
    tokens: [(u64, u64); 2],
    /// The wire format of every call it made.
    format: &'static str,
    /// The tool calls of its trajectory on each task (the same on both).
    tools: &'static [&'static str],
    /// Its own log in `agent/`, and a line of it.
    own_log: (&'static str, &'static str),
}

impl Solved {
    fn check(&self, project: &Project, results: &BTreeMap<String, Value>, log: &str) {
        for (task, tokens) in ["hello-file", "transform-data"].iter().zip(self.tokens) {
            let result = &results[&format!("{task}/{}", self.agent)];
            assert_eq!(result["reward"], 1.0, "{result:#}\n{log}");
            assert_eq!(result["usage"]["input_tokens"], tokens.0, "{result:#}");
            assert_eq!(result["usage"]["output_tokens"], tokens.1, "{result:#}");
            let dir = trial_dir(project, result);
            let calls = read_calls(&dir).unwrap();
            assert!(calls.iter().all(|c| c.format == self.format), "{calls:?}");
            assert_eq!(tool_calls(&dir), self.tools, "{task}/{}", self.agent);
            let own = std::fs::read_to_string(dir.join("agent").join(self.own_log.0)).unwrap();
            assert!(own.contains(self.own_log.1), "{task}/{}: {own}", self.agent);
        }
    }
}

fn plan(project: &Project, pipeline: &str) -> String {
    let out = Command::new(BINARY)
        .arg("plan")
        .arg(project.path(&format!("{pipeline}.toml")))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    text(&out)
}

#[test]
fn catalog_agents_install_once_and_solve_tasks_through_the_gateway() {
    let project = Project::new("installed");
    fixture(&project);

    let before = plan(&project, "installed-agents");
    assert!(before.contains("agent installs: 7"), "{before}");

    let out = project.apply("installed-agents");
    let log = text(&out);
    // Installed now, or by an earlier run on this machine (the volume is shared by
    // content address).
    let installed_now = log.contains("installed claude-code into helios-agent-claude-code-");
    let others_now = AGENTS[1..]
        .iter()
        .filter(|a| log.contains(&format!("installed {a} into helios-agent-{a}-")))
        .count();
    assert!(
        installed_now || log.contains("claude-code already installed"),
        "{log}"
    );
    let results = project.results("installed");
    for solved in [
        Solved {
            agent: "claude-code",
            tokens: [(2500, 48), (3000, 100)],
            format: "anthropic",
            tools: &["Bash"],
            own_log: ("claude-code.jsonl", "\"type\":\"result\""),
        },
        Solved {
            agent: "codex",
            tokens: [(1900, 37), (2400, 89)],
            format: "openai-responses",
            tools: &["exec_command"],
            own_log: ("codex.jsonl", "\"type\":\"command_execution\""),
        },
        Solved {
            agent: "gemini-cli",
            tokens: [(1700, 31), (2200, 78)],
            format: "gemini",
            tools: &["run_shell_command"],
            own_log: ("gemini-cli.json", "\"response\": \""),
        },
        // Its session-title request (no tools, 300 + 4 tokens) comes beside its first turn,
        // in either order: the script's `when` answers it.
        Solved {
            agent: "opencode",
            tokens: [(2600, 38), (3100, 86)],
            format: "openai-chat",
            tools: &["bash"],
            own_log: ("opencode.jsonl", "\"type\":\"tool_use\""),
        },
        // Its one `bash` tool, twice: the command, then the submission.
        Solved {
            agent: "mini-swe-agent",
            tokens: [(1500, 40), (2000, 90)],
            format: "openai-chat",
            tools: &["bash", "bash"],
            own_log: (
                "mini-swe-agent.traj.json",
                "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT",
            ),
        },
        // No tools: its edits are in the model's text, applied by Aider.
        Solved {
            agent: "aider",
            tokens: [(600, 20), (700, 60)],
            format: "openai-chat",
            tools: &[],
            own_log: ("aider.chat.history.md", "Applied edit to"),
        },
    ] {
        solved.check(&project, &results, &log);
    }

    assert_eq!(results.len(), 2 * (AGENTS.len() + 1), "{results:#?}");
    let failing = &results["hello-file/failing"];
    assert_eq!(failing["error"]["kind"], "agent_exit", "{failing:#}");
    assert_eq!(failing["agent_exit_code"], 3, "{failing:#}");
    assert_eq!(failing["reward"], 0.0, "the verifier ran: {failing:#}");
    assert!(failing["verifier_exit_code"].is_number(), "{failing:#}");
    let stderr =
        std::fs::read_to_string(trial_dir(&project, failing).join("agent/stderr.txt")).unwrap();
    assert_eq!(stderr, "giving up\n");

    // The volumes are labelled, and read-only in trials; a second run installs nothing.
    let made = volumes(&project.label);
    assert_eq!(
        made.len(),
        1 + usize::from(installed_now) + others_now,
        "{made:?}"
    );
    let after = plan(&project, "installed-agents");
    assert!(after.contains("(0 to install)"), "{after}");
    let again = std::fs::read_to_string(project.path("installed-agents.toml"))
        .unwrap()
        .replace("name = \"installed\"", "name = \"again\"")
        .replace(
            "[\"claude-code\", \"codex\", \"gemini-cli\", \"opencode\", \"mini-swe-agent\", \"aider\", \"failing\"]",
            "[\"claude-code\"]",
        );
    project.write("again.toml", &again);
    let out = project.apply("again");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("claude-code already installed"), "{log}");
    assert!(!log.contains("installed claude-code into"), "{log}");

    // A version npm does not have fails the run before any trial, with npm's words.
    let bad = again.replace("name = \"again\"", "name = \"bad\"").replace(
        "agent = \"claude-code\"",
        "agent = \"claude-code\"\nversion = \"0.0.0-no-such-version\"",
    );
    project.write("bad.toml", &bad);
    let out = project.apply("bad");
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("installing `helios-agent-claude-code-0.0.0-no-such-version-"),
        "{log}"
    );
    assert!(
        log.contains("ETARGET") || log.contains("No matching version"),
        "{log}"
    );
    assert!(!project.path("runs/bad/s").exists(), "no trial ran: {log}");
    assert_eq!(
        volumes(&project.label),
        made,
        "the failed install is removed"
    );

    // A task image without glibc's loader fails the run before any trial, naming the task,
    // the image, the agent, what it lacks and the fix.
    std::fs::create_dir_all(project.path("unfit")).unwrap();
    copy_tree(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/installed/no-loader"
        ),
        project.path("unfit"),
    );
    let unfit = again
        .replace("name = \"again\"", "name = \"unfit\"")
        .replace("path = \"tasks/*\"", "path = \"unfit/*\"");
    project.write("unfit.toml", &unfit);
    let out = project.apply("unfit");
    let log = text(&out);
    assert_eq!(out.status.code(), Some(5), "{log}");
    for part in [
        "task `no-loader`: image `helios/no-loader:",
        "cannot run installed agent `claude-code`",
        "glibc's x86-64 dynamic loader (/lib64/ld-linux-x86-64.so.2)",
        "hint: build the task's image from a glibc-based x86-64 image",
    ] {
        assert!(log.contains(part), "{part}: {log}");
    }
    assert!(
        !project.path("runs/unfit/s").exists(),
        "no trial ran: {log}"
    );

    project.assert_clean();
    assert_eq!(volumes(&project.label), Vec::<String>::new());
}
