//! Tasks written for today's Harbor (schema 1.1 to 1.4) run unmodified, end to end in
//! Docker: the fixtures under `tests/fixtures/harbor/` (multi-step tasks with gates and
//! `setup.sh`, artifacts and collect hooks, healthchecks, users, separate verifier
//! environments), each with the oracle (reward 1) and with nop (reward 0).

mod common;

use common::project::{Project, copy_tree, text};
use serde_json::Value;

const FIXTURES: &str = "tests/fixtures/harbor";

fn run_fixtures(project: &Project) -> std::collections::BTreeMap<String, Value> {
    std::fs::create_dir_all(project.path("tasks")).unwrap();
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        copy_tree(entry.unwrap().path(), project.path("tasks"));
    }
    project.pipeline("harbor", "\"oracle\", \"nop\"");
    let out = project.apply("harbor");
    // The healthcheck that never passes is an infrastructure failure: exit 5.
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    project.results("harbor")
}

#[test]
fn harbor_fixtures_pass_with_oracle_and_fail_with_nop() {
    let project = Project::new("harbor");
    let results = run_fixtures(&project);
    let scored = [
        "agent-user",
        "artifacts-and-collect",
        "healthcheck-late",
        "multi-step-gated",
        "multi-step-mixed-verifiers",
        "network-per-phase",
        "separate-verifier",
    ];
    for task in scored {
        let oracle = &results[&format!("{task}/oracle")];
        let nop = &results[&format!("{task}/nop")];
        assert_eq!(oracle["reward"], 1.0, "{task} with oracle: {oracle}");
        assert_eq!(oracle["status"], "completed", "{task}: {oracle}");
        assert_eq!(nop["reward"], 0.0, "{task} with nop: {nop}");
    }

    // A healthcheck that never passes is the environment's failure, never reward 0.
    for agent in ["oracle", "nop"] {
        let never = &results[&format!("healthcheck-never/{agent}")];
        assert_eq!(never["status"], "infra_error", "{never}");
        assert_eq!(never["error"]["kind"], "unhealthy", "{never}");
        assert!(never["reward"].is_null(), "{never}");
        let message = never["error"]["message"].as_str().unwrap();
        assert!(message.contains("the service is down"), "{message}");
    }

    // The network of each phase, as the task said: the agent had none.
    assert_eq!(
        results["network-per-phase/oracle"]["network"],
        serde_json::json!({"environment": "public", "agent": "no-network", "verifier": "public"})
    );

    // Multi-step, `final`: every step ran with the oracle; nop stopped at the first gate.
    let oracle = &results["multi-step-gated/oracle"];
    let steps: Vec<(&str, f64, Option<bool>)> = oracle["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["reward"].as_f64().unwrap(),
                s["gate_passed"].as_bool(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("scaffold", 1.0, Some(true)),
            ("implement", 1.0, Some(true)),
            ("document", 1.0, None)
        ]
    );
    let nop = &results["multi-step-gated/nop"];
    let nop_steps = nop["steps"].as_array().unwrap();
    assert_eq!(nop_steps.len(), 1, "the gate stopped the trial: {nop}");
    assert_eq!(nop_steps[0]["gate_passed"], false);
    // Each step's files are its own.
    let dir = project.trial_dir("harbor", "multi-step-gated", "oracle");
    for step in ["scaffold", "implement", "document"] {
        let reward = std::fs::read_to_string(dir.join(format!("steps/{step}/verifier/reward.txt")));
        assert_eq!(reward.unwrap().trim(), "1", "{step}");
        assert!(dir.join(format!("steps/{step}/agent/oracle.txt")).is_file());
    }

    // `mean` over a step verified in the agent's container and one verified apart.
    let mixed = &results["multi-step-mixed-verifiers/oracle"];
    assert_eq!(mixed["steps"].as_array().unwrap().len(), 2, "{mixed}");

    // Artifacts: placed, excluded, missing ones recorded, the hook's output kept.
    let dir = project.trial_dir("harbor", "artifacts-and-collect", "oracle");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("artifacts/manifest.json")).unwrap(),
    )
    .unwrap();
    let statuses: Vec<(&str, &str, &str)> = manifest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap(),
                e["destination"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("/app/out.txt", "artifacts/app/out.txt", "ok"),
            ("/app/logs", "artifacts/app-logs", "ok"),
            (
                "/app/never-written.txt",
                "artifacts/app/never-written.txt",
                "failed"
            ),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("artifacts/app/out.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("artifacts/app-logs/lines.txt"))
            .unwrap()
            .trim(),
        "3",
        "the collect hook ran before the artifacts were copied"
    );
    assert!(dir.join("artifacts/app-logs/agent.log").is_file());
    assert!(
        !dir.join("artifacts/app-logs/scratch.tmp").exists(),
        "`exclude` left it out"
    );
    let hooks = &results["artifacts-and-collect/oracle"]["collect"];
    assert_eq!(hooks[0]["exit_code"], 0, "{hooks}");

    regrade_with_a_fixed_test(&project);
    project.assert_clean();
}

/// `helios regrade` with a changed test: only the separately verified task's trials are
/// graded again, from their kept artifacts, into a run beside the old one.
fn regrade_with_a_fixed_test(project: &Project) {
    let fixed = project.path("fixed");
    std::fs::create_dir_all(&fixed).unwrap();
    copy_tree(project.path("tasks/separate-verifier"), &fixed);
    std::fs::write(
        fixed.join("separate-verifier/tests/test.sh"),
        "if grep -q '\"answer\": 42' /app/report.json; then echo 0.5; else echo 0; fi > /logs/verifier/reward.txt\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::project::BINARY)
        .arg("regrade")
        .arg(project.path("runs/harbor"))
        .arg("--tasks")
        .arg(&fixed)
        .args(["--label", &project.label])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("2 trial(s) regraded"), "{log}");
    assert!(
        log.contains("only tasks with a separate verifier"),
        "the others are said not to be regradable: {log}"
    );
    let regraded: std::collections::BTreeMap<String, Value> =
        std::fs::read_dir(project.path("runs/harbor-regraded/s"))
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("result.json")).ok())
            .map(|t| serde_json::from_str::<Value>(&t).unwrap())
            .map(|r| {
                (
                    format!(
                        "{}/{}",
                        r["task"].as_str().unwrap(),
                        r["agent"].as_str().unwrap()
                    ),
                    r,
                )
            })
            .collect();
    assert_eq!(regraded.len(), 2, "{regraded:#?}");
    assert_eq!(regraded["separate-verifier/oracle"]["reward"], 0.5);
    assert_eq!(regraded["separate-verifier/nop"]["reward"], 0.0);
    assert!(regraded["separate-verifier/oracle"]["regraded_from"].is_string());
    // The old run is as it was.
    assert_eq!(
        project.results("harbor")["separate-verifier/oracle"]["reward"],
        1.0
    );
    let compare = std::process::Command::new(common::project::BINARY)
        .arg("report")
        .arg(project.path("runs/harbor"))
        .arg("--compare")
        .arg(project.path("runs/harbor-regraded"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let report = text(&compare);
    assert!(
        report.contains("pass → fail: separate-verifier"),
        "{report}"
    );
}

#[test]
fn harbor_fixtures_validate() {
    // (The Compose fixture's `ports` are warned about: they are not published.)
    let out = std::process::Command::new(common::project::BINARY)
        .arg("validate")
        .args(
            std::fs::read_dir(FIXTURES)
                .unwrap()
                .map(|e| e.unwrap().path()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
