//! Installed agents end to end on real Docker: each catalog agent is installed for real from
//! the package registries into a labelled volume, once, and runs on a task against
//! scripted replies served by the model gateway (no network to any model provider); a
//! second apply installs nothing; a bad version fails the run before any trial, with the
//! installer's output. One test, so that the install is shared.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::project::{BINARY, Project, copy_tree, text};
use helios::gateway::read_calls;
use serde_json::Value;

fn fixture(project: &Project) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/installed");
    for entry in ["installed-agents.toml", "scripts", "tasks"] {
        copy_tree(format!("{fixture}/{entry}"), project.dir.path());
    }
}

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

/// What a catalog agent's trial on hello-file must show.
struct Solved {
    agent: &'static str,
    /// Input and output tokens, the script's.
    tokens: (u64, u64),
    /// The wire format of every call it made.
    format: &'static str,
    /// The one tool call of its trajectory.
    tool: &'static str,
    /// Its own log in `agent/`, and a line of it.
    own_log: (&'static str, &'static str),
}

impl Solved {
    fn check(&self, project: &Project, results: &BTreeMap<String, Value>, log: &str) {
        let result = &results[&format!("hello-file/{}", self.agent)];
        assert_eq!(result["reward"], 1.0, "{result:#}\n{log}");
        assert_eq!(result["usage"]["input_tokens"], self.tokens.0, "{result:#}");
        assert_eq!(
            result["usage"]["output_tokens"], self.tokens.1,
            "{result:#}"
        );
        let dir = trial_dir(project, result);
        let calls = read_calls(&dir).unwrap();
        assert!(calls.iter().all(|c| c.format == self.format), "{calls:?}");
        assert_eq!(tool_calls(&dir), [self.tool]);
        let own = std::fs::read_to_string(dir.join("agent").join(self.own_log.0)).unwrap();
        assert!(own.contains(self.own_log.1), "{own}");
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
    assert!(before.contains("agent installs: 4"), "{before}");

    let out = project.apply("installed-agents");
    let log = text(&out);
    // Installed now, or by an earlier run on this machine (the volume is shared by
    // content address).
    let installed_now = log.contains("installed claude-code into helios-agent-claude-code-");
    let others_now = ["codex", "gemini-cli"]
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
            tokens: (2500, 48),
            format: "anthropic",
            tool: "Bash",
            own_log: ("claude-code.jsonl", "\"type\":\"result\""),
        },
        Solved {
            agent: "codex",
            tokens: (1900, 37),
            format: "openai-responses",
            tool: "exec_command",
            own_log: ("codex.jsonl", "\"type\":\"command_execution\""),
        },
        Solved {
            agent: "gemini-cli",
            tokens: (1700, 31),
            format: "gemini",
            tool: "run_shell_command",
            own_log: (
                "gemini-cli.json",
                "\"response\": \"Created /app/hello.txt.\"",
            ),
        },
    ] {
        solved.check(&project, &results, &log);
    }

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
            "[\"claude-code\", \"codex\", \"gemini-cli\", \"failing\"]",
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

    project.assert_clean();
    assert_eq!(volumes(&project.label), Vec::<String>::new());
}
