//! End-to-end tests of the `helios` binary: arguments, output streams and exit codes.

use std::process::{Command, Output};

fn helios(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the helios binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn validate_accepts_the_bundled_examples() {
    let out = helios(&[
        "validate",
        "pipelines/quickstart.toml",
        "pipelines/terminal-eval.yaml",
        "tasks/create-hello-file",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("no problems"), "{}", stderr(&out));
}

#[test]
fn validate_reports_every_error_and_exits_1() {
    let out = helios(&[
        "validate",
        "tests/corpus/pipeline/several-errors-at-once.toml",
        "tests/corpus/task/bad-size",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("--> tests/corpus/pipeline/several-errors-at-once.toml:4:1"),
        "{text}"
    );
    assert!(
        text.contains("--> tests/corpus/pipeline/several-errors-at-once.toml:12:1"),
        "{text}"
    );
    assert!(
        text.contains("--> tests/corpus/task/bad-size/task.toml:4:10"),
        "{text}"
    );
    assert!(text.contains("help: did you mean `concurrency`?"), "{text}");
    assert!(
        text.trim_end().ends_with("3 errors in 2 files checked"),
        "{text}"
    );
}

#[test]
fn validate_json_is_machine_readable_on_stdout() {
    let out = helios(&[
        "validate",
        "--format",
        "json",
        "tests/corpus/pipeline/undefined-agent.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"], 1);
    let first = &report["diagnostics"][0];
    assert_eq!(first["code"], "undefined-reference");
    assert_eq!(first["file"], "tests/corpus/pipeline/undefined-agent.toml");
    assert_eq!(first["line"], 10);
    assert_eq!(first["column"], 11);
    assert_eq!(first["hint"], "did you mean `oracle`?");
}

#[test]
fn deny_warnings_turns_warnings_into_failure() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    let tasks = std::fs::canonicalize("tasks").unwrap();
    std::fs::write(
        &pipeline,
        format!(
            "[pipeline]\nname = \"p\"\n[[tasks]]\npath = \"{}/*\"\nexclude = [\"nothing-*\"]\n[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n",
            tasks.display()
        ),
    )
    .unwrap();
    let path = pipeline.to_str().unwrap();
    assert_eq!(helios(&["validate", path]).status.code(), Some(0));
    let strict = helios(&["validate", "--deny-warnings", path]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    assert!(stderr(&strict).contains("warning: `nothing-*` matches no task"));
}

#[test]
fn missing_paths_are_invalid_input() {
    let out = helios(&["validate", "no/such/pipeline.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`no/such/pipeline.toml` does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(helios(&["validate"]).status.code(), Some(2));
    assert_eq!(helios(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        helios(&["validate", "--format", "xml", "x"]).status.code(),
        Some(2)
    );
}

#[test]
fn schema_prints_the_embedded_schemas() {
    for (kind, file) in [
        ("task", "schemas/task.schema.json"),
        ("pipeline", "schemas/pipeline.schema.json"),
    ] {
        let out = helios(&["schema", kind]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            std::fs::read_to_string(file).unwrap()
        );
    }
}

#[test]
fn help_and_version_succeed() {
    assert_eq!(helios(&["--help"]).status.code(), Some(0));
    let version = helios(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// A copy of the bundled quickstart in a scratch directory, so results can be written.
fn scratch_quickstart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                std::fs::create_dir_all(&target).unwrap();
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    for sub in ["tasks", "pipelines"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        copy_dir(std::path::Path::new(sub), &dir.path().join(sub));
    }
    dir
}

/// The quickstart runs `oracle` and `nop` on every bundled task.
fn trials() -> usize {
    2 * std::fs::read_dir("tasks").unwrap().count()
}

#[test]
fn plan_shows_the_work_and_exits_3_until_it_is_done() {
    let project = scratch_quickstart();
    let pipeline = project.path().join("pipelines/quickstart.toml");
    let pipeline = pipeline.to_str().unwrap();

    let out = helios(&["plan", pipeline]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sanity"), "{text}");
    assert!(
        text.contains(&format!(
            "{n} trial(s) to run ({n} new, 0 changed), 0 already done",
            n = trials()
        )),
        "{text}"
    );
    assert!(text.contains("helios/create-hello-file:"), "{text}");

    // Give every planned trial a finished result, as `apply` will: then nothing is left.
    let json = helios(&["plan", "--json", pipeline]);
    assert_eq!(json.status.code(), Some(3));
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["to_run"], trials());
    let run_dir = std::path::Path::new(plan["run_dir"].as_str().unwrap()).to_path_buf();
    for trial in plan["trials"].as_array().unwrap() {
        assert_eq!(trial["state"], "new");
        let dir = run_dir.join(trial["dir"].as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        let result = serde_json::json!({"trial_id": trial["id"], "status": "completed"});
        std::fs::write(dir.join("result.json"), result.to_string()).unwrap();
    }
    let done = helios(&["plan", pipeline]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert!(
        String::from_utf8_lossy(&done.stdout)
            .contains(&format!("nothing to do: all {} trials are done", trials()))
    );

    // One changed byte in the task: its trials are planned again, as changed.
    let instruction = project
        .path()
        .join("tasks/create-hello-file/instruction.md");
    let text = std::fs::read_to_string(&instruction).unwrap();
    std::fs::write(&instruction, text.replace("Hello", "Hallo")).unwrap();
    let changed = helios(&["plan", "--json", pipeline]);
    assert_eq!(changed.status.code(), Some(3));
    let plan: serde_json::Value = serde_json::from_slice(&changed.stdout).unwrap();
    // Only the changed task's two trials (oracle and nop).
    assert_eq!(plan["totals"]["changed"], 2);
    assert_eq!(plan["totals"]["done"], trials() - 2);
}

#[test]
fn plan_shows_the_resource_policy_and_budget() {
    let project = scratch_quickstart();
    let pipeline = project.path().join("pipelines/quickstart.toml");
    let out = helios(&["plan", pipeline.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("resources (adaptive): "), "{text}");
    assert!(text.contains("CPU pressure stays under 20%"), "{text}");
    let json = helios(&["plan", "--json", pipeline.to_str().unwrap()]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["budget"]["policy"], "adaptive");
    assert_eq!(plan["budget"]["pressure_target"], 0.2);

    let manifest = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        manifest.replacen("[pipeline]\n", "[pipeline]\nresources = \"reserve\"\n", 1),
    )
    .unwrap();
    let json = helios(&["plan", "--json", pipeline.to_str().unwrap()]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["budget"]["policy"], "reserve", "{plan}");
    assert!(plan["budget"].get("pressure_target").is_none());
    let out = helios(&["plan", pipeline.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("resources (reserve): ")
            && text.contains("a trial starts when its task's cpus and memory fit"),
        "{text}"
    );
}

#[test]
fn an_unknown_resource_policy_is_a_usage_error() {
    let out = helios(&[
        "apply",
        "--resources",
        "greedy",
        "pipelines/quickstart.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("adaptive, reserve or none"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plan_writes_the_lock_file_only_when_asked() {
    let project = scratch_quickstart();
    let pipeline = project.path().join("pipelines/quickstart.toml");
    let lock = project.path().join("runs/quickstart/helios.lock.json");
    helios(&["plan", pipeline.to_str().unwrap()]);
    assert!(!lock.exists(), "plan is read-only by default");
    let out = helios(&["plan", "--write-lock", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lock).unwrap()).unwrap();
    assert_eq!(lock["pipeline"], "quickstart");
    assert_eq!(lock["helios_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(lock["trials"].as_array().unwrap().len(), trials());
    assert_eq!(lock["tasks"][0]["digest"].as_str().unwrap().len(), 64);
}

#[test]
fn plan_of_an_invalid_pipeline_shows_the_diagnostics() {
    let out = helios(&["plan", "tests/corpus/pipeline/cycle-two-stages.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cycle: a → b → a"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("nothing was planned"));
}

/// A pipeline whose glob selects a good task and an invalid one, with `on_invalid`.
fn dataset_with_a_bad_task(on_invalid: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    for task in ["good", "bad"] {
        write(&format!("tasks/{task}/instruction.md"), "Do it.\n");
        write(
            &format!("tasks/{task}/environment/Dockerfile"),
            "FROM debian:bookworm-slim\n",
        );
        write(&format!("tasks/{task}/tests/test.sh"), "true\n");
    }
    write("tasks/good/task.toml", "[agent]\ntimeout_sec = 10\n");
    write("tasks/bad/task.toml", "[agent]\ntimeout_secs = 10\n");
    write(
        "p.toml",
        &format!(
            "[pipeline]\nname = \"p\"\n[[tasks]]\npath = \"tasks/*\"\non_invalid = \"{on_invalid}\"\n\
             [[stages]]\nname = \"s\"\nagents = [\"nop\"]\n"
        ),
    );
    dir
}

#[test]
fn on_invalid_skip_leaves_bad_tasks_out_and_plan_lists_them() {
    let dir = dataset_with_a_bad_task("skip");
    let pipeline = dir.path().join("p.toml");
    let out = helios(&["plan", pipeline.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", stderr(&out));
    assert!(
        stdout.contains("skipped as invalid (`on_invalid = \"skip\"`): 1 task(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("unknown key `timeout_secs`"), "{stdout}");
    let json = helios(&["plan", "--format", "json", pipeline.to_str().unwrap()]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["skipped_tasks"][0]["name"], "bad", "{plan}");
    assert_eq!(plan["trials"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["trials"][0]["task"], "good");
}

#[test]
fn an_invalid_task_refuses_the_pipeline_by_default() {
    let dir = dataset_with_a_bad_task("error");
    let out = helios(&["validate", dir.path().join("p.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did you mean `timeout_sec`?"),
        "{}",
        stderr(&out)
    );
}
