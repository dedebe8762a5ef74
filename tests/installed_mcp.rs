//! A task's MCP server given to an installed agent: Claude Code (installed for real from
//! npm once per machine) runs on a Compose task whose sidecar is a small MCP server over
//! streamable HTTP, with the task's `[[environment.mcp_servers]]` in its `--mcp-config`,
//! against scripted replies that call the server's tool, then write what it returned. The
//! oracle, which cannot take MCP servers, solves the task too, with a warning.

mod common;

use common::project::{Project, copy_tree, text};
use serde_json::Value;

#[test]
fn claude_code_calls_the_tasks_mcp_server_and_solves_the_task() {
    let project = Project::new("installed-mcp");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/installed-mcp");
    for entry in ["pipeline.toml", "tasks", "scripts"] {
        copy_tree(format!("{fixture}/{entry}"), project.dir.path());
    }
    let out = project.command("pipeline").output().expect("helios runs");
    let results = project.results("installed-mcp");
    assert_eq!(out.status.code(), Some(0), "{}\n{results:#?}", text(&out));
    let result = &results["mcp-secret/claude-code"];
    assert_eq!(result["reward"], 1.0, "{result:#}");
    // Claude Code takes MCP servers: nothing was left out.
    assert!(result.get("warnings").is_none(), "{result:#}");

    let dir = std::fs::read_dir(project.path("runs/installed-mcp/s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mcp-secret__claude-code")
        })
        .unwrap();
    // The configuration it was given.
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.join("agent/mcp.json")).unwrap()).unwrap();
    assert_eq!(
        config["mcpServers"]["notes"],
        serde_json::json!({"type": "http", "url": "http://mcp:8000/mcp"})
    );
    // It called the MCP tool, then Bash, and the tool's result went back to the model.
    let trajectory_text =
        std::fs::read_to_string(dir.join(helios::store::TRAJECTORY_FILE)).unwrap();
    let trajectory: Value = serde_json::from_str(&trajectory_text).unwrap();
    let tools: Vec<&str> = trajectory["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tool_calls"].as_array().into_iter().flatten())
        .filter_map(|c| c["function_name"].as_str())
        .collect();
    assert_eq!(tools, ["mcp__notes__get_secret", "Bash"], "{trajectory:#}");
    assert!(
        trajectory_text.contains("The secret word is marigold-42"),
        "the MCP tool's result never reached the model: {trajectory:#}"
    );
    // The server saw the session and the call (its log, an artifact of the `mcp` service).
    let calls = std::fs::read_to_string(dir.join("artifacts/var/log/mcp/calls.log")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    for expected in ["initialize", "tools/list", "tools/call get_secret"] {
        assert!(calls.contains(&expected), "{expected}: {calls:?}");
    }

    let oracle = &results["mcp-secret/oracle"];
    assert_eq!(oracle["reward"], 1.0, "{oracle:#}");
    let warnings = oracle["warnings"].as_array().expect("the oracle's warning");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("does not take MCP servers: it ran without the task's `notes`"),
        "{oracle:#}"
    );
    project.assert_clean();
}
