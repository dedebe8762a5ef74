//! `helios report` and the statistics of `apply` end to end, against the real Docker engine
//! (run `bash ../shared/docker-up.sh` first): pass@k and intervals in `summary.json`, a
//! failed `[[expect]]` as exit 6 from `apply` and `report`, JUnit XML that validates against
//! its schema (Debian's `xmllint`), Markdown as a snapshot, and a comparison of two runs.

mod common;

use std::process::Command;

use common::project::{BINARY, Project, text};
use serde_json::Value;

const SOLVE: &str = "touch /app/done\n";
const REWARD_IF_DONE: &str =
    "if [ -f /app/done ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n";
const NEVER: &str = "echo 0 > /logs/verifier/reward.txt\n";

fn report(args: &[&str]) -> std::process::Output {
    Command::new(BINARY)
        .arg("report")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn five_attempts_give_pass_at_1_to_5_and_intervals_and_a_failed_gate_exits_6() {
    let project = Project::new("report-gate");
    project.task("good", "", SOLVE, REWARD_IF_DONE);
    project.task("bad", "", SOLVE, NEVER);
    project.write(
        "gate.toml",
        "[pipeline]\nname = \"gate\"\noutput_dir = \"runs\"\n\n[[tasks]]\npath = \"tasks/*\"\n\n\
         [[stages]]\nname = \"s\"\nagents = [\"oracle\"]\nattempts = 5\n\n\
         [[expect]]\nagent = \"oracle\"\nmin_pass_rate = 0.9\n",
    );
    let out = project.apply("gate");
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out)
            .contains("not met: agent=oracle pass_rate ≥ 0.9 (s / oracle: 0.500, short by 0.400)"),
        "{}",
        text(&out)
    );

    let run = project.path("runs/gate");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let stats = &summary["rows"][0]["stats"];
    assert_eq!(stats["scored"], 10);
    assert_eq!(stats["infrastructure_errors"], 0);
    assert_eq!(stats["clustered"], true);
    let ks: Vec<u64> = stats["pass_at_k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["k"].as_u64().unwrap())
        .collect();
    assert_eq!(ks, [1, 2, 3, 4, 5]);
    // One task always passes, one never: pass@k is 1/2 for every k.
    for p in stats["pass_at_k"].as_array().unwrap() {
        assert_eq!(p["value"], 0.5, "{p}");
    }
    let ci = stats["mean_reward"]["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() < 0.5 && ci[1].as_f64().unwrap() > 0.5);
    assert_eq!(summary["expectations"][0]["met"], false);
    assert!((summary["expectations"][0]["shortfall"].as_f64().unwrap() - 0.4).abs() < 1e-9);
    let per_task = stats["per_task"].as_array().unwrap();
    assert_eq!(per_task.len(), 2);

    let run_arg = run.to_str().unwrap();
    let terminal = report(&[run_arg]);
    assert_eq!(terminal.status.code(), Some(6), "{}", text(&terminal));
    assert!(
        stdout(&terminal).contains("1: 0.500 · 2: 0.500"),
        "{}",
        text(&terminal)
    );

    let markdown = report(&[run_arg, "--format", "markdown"]);
    assert_eq!(markdown.status.code(), Some(6));
    insta::assert_snapshot!("markdown_of_five_attempts", stdout(&markdown));

    // The job summary of GitHub Actions gets the same Markdown.
    let step_summary = project.path("step-summary.md");
    let with_summary = Command::new(BINARY)
        .args(["report", run_arg, "--format", "markdown"])
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert_eq!(with_summary.status.code(), Some(6));
    assert!(
        std::fs::read_to_string(&step_summary)
            .unwrap()
            .contains("| s | oracle |")
    );

    let csv = report(&[run_arg, "--format", "csv"]);
    let csv = stdout(&csv);
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with("pass_at_1,pass_at_2,pass_at_3,pass_at_4,pass_at_5"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 2);

    let junit = report(&[run_arg, "--format", "junit"]);
    let xml = project.path("junit.xml");
    std::fs::write(&xml, stdout(&junit)).unwrap();
    let valid = Command::new("xmllint")
        .args(["--noout", "--schema", "tests/fixtures/junit/junit.xsd"])
        .arg(&xml)
        .output()
        .expect("xmllint runs (Debian's libxml2-utils)");
    assert!(
        valid.status.success(),
        "{}\n{}",
        text(&valid),
        stdout(&junit)
    );
    let junit = stdout(&junit);
    assert_eq!(junit.matches("<testcase ").count(), 10);
    assert_eq!(junit.matches("<failure ").count(), 5);

    // `--fail-under` adds a bar of its own; the run's expectation still fails.
    let json = report(&[run_arg, "--format", "json", "--fail-under", "0.25"]);
    assert_eq!(json.status.code(), Some(6));
    let recomputed: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let met: Vec<bool> = recomputed["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["met"].as_bool().unwrap())
        .collect();
    assert_eq!(met, [false, true]);
    project.assert_clean();
}

#[test]
fn a_compare_of_two_runs_lists_the_tasks_that_flipped() {
    let project = Project::new("report-compare");
    project.task("flip", "", SOLVE, REWARD_IF_DONE);
    project.task("flop", "", "true\n", REWARD_IF_DONE);
    project.task("steady", "", SOLVE, REWARD_IF_DONE);
    project.pipeline("cmp", "\"oracle\", \"nop\"");
    let a_dir = project.path("a");
    let out = project
        .command("cmp")
        .arg("--output-dir")
        .arg(&a_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        a_dir.join("cmp/summary.json").is_file(),
        "--output-dir was not used"
    );
    assert!(!project.path("runs").exists());

    // The solutions swap: `flip` now fails and `flop` passes.
    project.write("tasks/flip/solution/solve.sh", "true\n");
    project.write("tasks/flop/solution/solve.sh", SOLVE);
    let b_dir = project.path("b");
    let out = project
        .command("cmp")
        .arg("--output-dir")
        .arg(&b_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let a = a_dir.join("cmp");
    let b = b_dir.join("cmp");
    let compared = report(&[a.to_str().unwrap(), "--compare", b.to_str().unwrap()]);
    assert_eq!(compared.status.code(), Some(0), "{}", text(&compared));
    let printed = stdout(&compared);
    assert!(printed.contains("pass → fail: flip"), "{printed}");
    assert!(printed.contains("fail → pass: flop"), "{printed}");
    assert!(printed.contains("paired bootstrap"), "{printed}");
    assert!(printed.contains("McNemar"), "{printed}");

    let json = report(&[
        a.to_str().unwrap(),
        "--compare",
        b.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let comparison: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let group = &comparison["groups"][0];
    assert_eq!(group["shared_tasks"], 3);
    assert_eq!(group["pass_to_fail"], serde_json::json!(["flip"]));
    assert_eq!(group["fail_to_pass"], serde_json::json!(["flop"]));
    assert_eq!(group["difference"], 0.0);

    // Two groups of one run: nop against oracle fails every task oracle passed.
    let groups = report(&[
        a.to_str().unwrap(),
        "--groups",
        "agent=oracle",
        "agent=nop",
        "--format",
        "json",
    ]);
    assert_eq!(groups.status.code(), Some(0), "{}", text(&groups));
    let comparison: Value = serde_json::from_str(&stdout(&groups)).unwrap();
    let group = &comparison["groups"][0];
    assert_eq!(group["group"], "s / oracle vs s / nop");
    assert_eq!(group["pass_to_fail"], serde_json::json!(["flip", "steady"]));
    let ambiguous = report(&[a.to_str().unwrap(), "--groups", "stage=s", "agent=nop"]);
    assert_eq!(ambiguous.status.code(), Some(1));
    assert!(
        text(&ambiguous).contains("selects 2 groups"),
        "{}",
        text(&ambiguous)
    );
    project.assert_clean();
}

#[test]
fn an_expect_naming_an_unknown_agent_points_at_it_with_a_suggestion() {
    let project = Project::new("report-check");
    project.task("only", "", SOLVE, REWARD_IF_DONE);
    project.write(
        "p.toml",
        "[pipeline]\nname = \"p\"\n\n[[tasks]]\npath = \"tasks/*\"\n\n\
         [[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n\n\
         [[expect]]\nagent = \"orcale\"\nmin_mean_reward = 0.9\n\n\
         [[expect]]\nstage = \"s\"\n",
    );
    let out = Command::new(BINARY)
        .args(["validate"])
        .arg(project.path("p.toml"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("unknown agent `orcale`"), "{printed}");
    assert!(printed.contains("p.toml:12:9"), "{printed}");
    assert!(printed.contains("^^^^^^^^"), "{printed}");
    assert!(printed.contains("did you mean `oracle`?"), "{printed}");
    assert!(
        printed.contains("this expectation sets no bar"),
        "{printed}"
    );
}

#[test]
fn plan_shows_the_worst_case_cost_and_output_dir_moves_the_run() {
    let project = Project::new("report-plan");
    project.task("only", "", SOLVE, REWARD_IF_DONE);
    project.write(
        "reply.yaml",
        "replies:\n  - text: done\n    tool_calls:\n      - name: finish\n        input: { summary: done }\n",
    );
    // Three attempts of a terminal agent capped at a million tokens at $10 per million
    // (the dearer rate), and three of one capped at $0.50: $31.50 at worst.
    project.write(
        "p.toml",
        "[pipeline]\nname = \"p\"\nmax_cost_usd = 5\n\n[[tasks]]\npath = \"tasks/*\"\n\n\
         [models.paid]\nid = \"scripted\"\nscript = \"reply.yaml\"\n\
         price = { input_per_mtok = 2.0, output_per_mtok = 10.0 }\n\n\
         [agents.tokens]\nkind = \"terminal\"\nlimits = { max_tokens = 1000000 }\n\n\
         [agents.dollars]\nkind = \"terminal\"\nlimits = { max_cost_usd = 0.5 }\n\n\
         [[stages]]\nname = \"s\"\nagents = [\"oracle\", \"tokens\", \"dollars\"]\nmodels = [\"paid\"]\nattempts = 3\n",
    );
    let pipeline = project.path("p.toml");
    let out = Command::new(BINARY)
        .arg("plan")
        .arg(&pipeline)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("worst-case model cost: $31.50"),
        "{printed}"
    );
    assert!(printed.contains("budget $5.00"), "{printed}");

    let elsewhere = project.path("elsewhere");
    let json = Command::new(BINARY)
        .args(["plan", "--json", "--output-dir"])
        .arg(&elsewhere)
        .arg(&pipeline)
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        std::path::Path::new(plan["run_dir"].as_str().unwrap()),
        elsewhere.join("p")
    );
    assert_eq!(plan["worst_case_cost"]["bounded_usd"], 31.5);
    assert_eq!(plan["worst_case_cost"]["unbounded_trials"], 0);
}

#[test]
fn apply_stops_starting_trials_at_the_budget_exits_7_and_resumes() {
    let project = Project::new("report-budget");
    project.task("one", "", SOLVE, REWARD_IF_DONE);
    project.task("two", "", SOLVE, REWARD_IF_DONE);
    // One reply of a million input tokens at $1 per million: each trial costs $1.
    project.write(
        "reply.yaml",
        "replies:\n  - text: done\n    tool_calls:\n      - name: finish\n        input: { summary: done }\n    usage: { input_tokens: 1000000, output_tokens: 0 }\n",
    );
    project.write(
        "budget.toml",
        "[pipeline]\nname = \"budget\"\noutput_dir = \"runs\"\nconcurrency = 1\nmax_cost_usd = 0.5\n\n\
         [[tasks]]\npath = \"tasks/*\"\n\n\
         [models.paid]\nid = \"scripted\"\nscript = \"reply.yaml\"\n\
         price = { input_per_mtok = 1.0, output_per_mtok = 1.0 }\n\n\
         [agents.terminal]\nkind = \"terminal\"\n\n\
         [[stages]]\nname = \"s\"\nagents = [\"terminal\"]\nmodels = [\"paid\"]\n",
    );
    let out = project.apply("budget");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        text(&out).contains("budget reached: $1.0000 spent, 1 trial(s) not started"),
        "{}",
        text(&out)
    );
    assert_eq!(project.results("budget").len(), 1);
    // Again: the trial left runs (the budget is per apply), and none is left unstarted.
    let again = project.apply("budget");
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("1 already done"), "{}", text(&again));
    assert_eq!(project.results("budget").len(), 2);
    project.assert_clean();
}
