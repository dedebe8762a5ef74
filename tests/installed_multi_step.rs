//! A multi-step task run by an installed agent (Claude Code, installed for real from npm
//! once per machine) through helios's model gateway against scripted replies: each step
//! its own session, instruction, model calls, trajectory and tests, in one container.

mod common;

use common::project::{Project, copy_tree, text};
use serde_json::Value;

#[test]
fn claude_code_solves_each_step_of_a_multi_step_task_through_the_gateway() {
    let project = Project::new("installed-multi-step");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/installed-multi-step"
    );
    for entry in ["pipeline.toml", "tasks", "scripts"] {
        copy_tree(format!("{fixture}/{entry}"), project.dir.path());
    }
    let out = project.command("pipeline").output().expect("helios runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = project.results("installed-multi-step");
    let result = &results["two-notes/claude-code"];
    assert_eq!(result["reward"], 1.0, "{result:#}");
    let steps: Vec<(&str, f64)> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["reward"].as_f64().unwrap()))
        .collect();
    assert_eq!(steps, [("first", 1.0), ("second", 1.0)], "{result:#}");
    // The script's tokens, step by step and in all.
    assert_eq!(result["steps"][0]["usage"]["input_tokens"], 2100);
    assert_eq!(result["steps"][1]["usage"]["input_tokens"], 2500);
    assert_eq!(result["usage"]["input_tokens"], 4600, "{result:#}");
    assert_eq!(result["usage"]["output_tokens"], 53, "{result:#}");

    let dir = project.trial_dir("installed-multi-step", "two-notes", "claude-code");
    for (step, word) in [("first", "alpha"), ("second", "beta")] {
        let step_dir = dir.join("steps").join(step);
        let instruction = std::fs::read_to_string(step_dir.join("instruction.md")).unwrap();
        assert!(
            instruction.contains(&format!("{word}-note.txt")),
            "{instruction}"
        );
        // Its own session with the model: only its own instruction reached it.
        let calls = helios::gateway::read_calls(&step_dir).unwrap();
        assert!(!calls.is_empty(), "{step}: no model call recorded");
        let trajectory: Value = serde_json::from_slice(
            &std::fs::read(step_dir.join(helios::store::TRAJECTORY_FILE)).unwrap(),
        )
        .unwrap();
        let tools: Vec<&str> = trajectory["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["tool_calls"].as_array().into_iter().flatten())
            .filter_map(|c| c["function_name"].as_str())
            .collect();
        assert_eq!(tools, ["Bash"], "{step}: {trajectory:#}");
    }
    assert_eq!(results["two-notes/oracle"]["reward"], 1.0);
    project.assert_clean();
}
