//! `helios run` for anything, end to end on real Docker: a dataset of a local registry
//! (Harbor's format, its tasks in a git repository made here) run with a catalog agent,
//! claude-code, against scripted replies through the model gateway, as Harbor's
//! `harbor run -d NAME@VERSION -a claude-code -m MODEL -n N` would; `--save` writes the
//! pipeline it ran, and `helios apply` of that pipeline finds every trial done. The agent's
//! install is the machine's cached volume when there is one (see installed_agents.rs).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::git::Repo;
use common::project::{BINARY, text};

/// `helios ARGS` in `root`, with a cache of its own there and no user git configuration.
fn helios(root: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .current_dir(root)
        .env("HELIOS_CACHE", root.join("cache"))
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap()
}

/// `registry.json`: dataset `tb-style@1`, two tasks of `repo` at its head.
fn registry(root: &Path, repo: &Repo) {
    let task = |name: &str| {
        serde_json::json!({
            "name": name,
            "git_url": repo.file_url(),
            "git_commit_id": repo.head(),
            "path": format!("tasks/{name}"),
        })
    };
    let registry = serde_json::json!([{
        "name": "tb-style",
        "version": "1",
        "description": "Two terminal-bench-style tasks",
        "tasks": [task("alpha"), task("beta")],
    }]);
    std::fs::write(root.join("registry.json"), registry.to_string()).unwrap();
}

#[test]
fn a_dataset_run_with_claude_code_saves_a_pipeline_that_apply_finds_done() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = Repo::with_tasks(root, "repo", &["alpha", "beta"]);
    registry(root, &repo);
    // The installed-agent fixture's replies for create-hello-file, chosen by these tasks'
    // instructions (`Task alpha.`) instead.
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/scripts/installed/claude-code.yaml"
    ))
    .unwrap()
    .replace("when: { user: hello.txt }", "when: { user: \"Task \" }");
    std::fs::write(root.join("claude-code.yaml"), script).unwrap();
    let ran = helios(
        root,
        &[
            "run",
            "tb-style@1",
            "--registry",
            "registry.json",
            "-a",
            "claude-code",
            "-m",
            "scripted",
            "--script",
            "claude-code.yaml",
            "-n",
            "2",
            "--concurrency",
            "2",
            "--save",
            "pipeline.toml",
        ],
    );
    let said = text(&ran);
    assert_eq!(ran.status.code(), Some(0), "{said}");
    assert!(said.contains("4 trial(s) ran, 0 already done"), "{said}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("output/run/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["trials"], 4, "{summary:#}");
    assert_eq!(summary["passed"], 4, "{summary:#}");
    assert_eq!(summary["rows"][0]["agent"], "claude-code", "{summary:#}");

    let saved = std::fs::read_to_string(root.join("pipeline.toml")).unwrap();
    for line in [
        "dataset = \"tb-style@1\"",
        "registry = \"registry.json\"",
        "kind = \"installed\"",
        "agent = \"claude-code\"",
        "attempts = 2",
        "concurrency = 2",
    ] {
        assert!(saved.contains(line), "{line} in\n{saved}");
    }

    let again = helios(root, &["apply", "pipeline.toml"]);
    let said = text(&again);
    assert_eq!(again.status.code(), Some(0), "{said}");
    assert!(said.contains("0 trial(s) ran, 4 already done"), "{said}");
    let plan = helios(root, &["plan", "pipeline.toml"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
}

#[test]
fn a_run_that_cannot_be_a_pipeline_runs_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let unknown = helios(
        root,
        &["run", "tb-style@1", "-a", "claud-code", "--save", "p.toml"],
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("unknown agent `claud-code`")
            && text(&unknown).contains("claude-code"),
        "{}",
        text(&unknown)
    );
    let no_model = helios(root, &["run", "tb-style@1", "-a", "codex", "-n", "3"]);
    assert_eq!(no_model.status.code(), Some(1), "{}", text(&no_model));
    assert!(
        text(&no_model).contains("needs a model"),
        "{}",
        text(&no_model)
    );
    assert!(!root.join("p.toml").exists());
}
