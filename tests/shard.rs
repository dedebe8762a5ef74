//! `helios apply --shard I/N` and `helios merge` end to end: shards run as separate
//! processes against the real Docker engine, merged, and compared with the whole run.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::project::{BINARY, Project, copy_tree, text};
use serde_json::Value;

/// Reward 1 when the solution left `/app/out`.
const CHECK: &str =
    "[ -f /app/out ] && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt\n";

fn helios(project: &Project, args: &[&str]) -> Output {
    Command::new(BINARY)
        .current_dir(project.dir.path())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `helios apply` of `p.toml` into `<out>/p` (or its shard's directory), not yet started.
fn apply(project: &Project, out: &str, shard: Option<&str>) -> Command {
    let mut command = project.command("p");
    command
        .current_dir(project.dir.path())
        .args(["--output-dir", out]);
    if let Some(shard) = shard {
        command.args(["--shard", shard]);
    }
    command
}

/// Every `result.json` under a run directory, by its trial directory (relative).
fn results(run: &Path) -> BTreeMap<PathBuf, Value> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(run).min_depth(3).max_depth(3) {
        let entry = entry.unwrap();
        if entry.file_name() == "result.json" {
            let relative = entry.path().parent().unwrap().strip_prefix(run).unwrap();
            let value: Value =
                serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
            out.insert(relative.to_path_buf(), value);
        }
    }
    out
}

/// What two runs of one plan must agree on per trial.
fn outcomes(run: &Path) -> BTreeMap<PathBuf, (Value, Value, Value)> {
    results(run)
        .into_iter()
        .map(|(dir, r)| {
            (
                dir,
                (
                    r["trial_id"].clone(),
                    r["status"].clone(),
                    r["reward"].clone(),
                ),
            )
        })
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The shard of `p.toml` (of `count`) whose plan has a trial of `task`.
fn shard_of(project: &Project, task: &str, count: u32) -> u32 {
    (1..=count)
        .find(|i| {
            let out = helios(
                project,
                &[
                    "plan",
                    "p.toml",
                    "--json",
                    "--shard",
                    &format!("{i}/{count}"),
                ],
            );
            let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
            plan["trials"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["task"] == task)
        })
        .expect("some shard has the task")
}

#[test]
fn three_shards_in_parallel_merge_into_the_whole_runs_results() {
    let project = Project::new("shards");
    for task in ["alpha", "beta", "gamma"] {
        project.task(task, "", "echo done > /app/out\n", CHECK);
    }
    // And one that `regrade` can grade again (Harbor's separate verifier).
    copy_tree(
        "tests/fixtures/harbor/separate-verifier",
        project.path("tasks/separate-verifier"),
    );
    // A gated stage: each shard decides it from the results it holds.
    project.write(
        "p.toml",
        "[pipeline]\nname = \"p\"\noutput_dir = \"runs\"\n[[tasks]]\npath = \"tasks/*\"\n\
         [[stages]]\nname = \"s\"\nagents = [\"oracle\", \"nop\"]\n\
         [[stages]]\nname = \"g\"\nneeds = [\"s\"]\ngate = { stage = \"s\" }\nagents = [\"nop\"]\n",
    );
    let whole = apply(&project, "whole", None).output().unwrap();
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole));

    let shards: Vec<_> = (1..=3)
        .map(|i| {
            apply(&project, "sharded", Some(&format!("{i}/3")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for shard in shards {
        let out = shard.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let runs: Vec<String> = (1..=3)
        .map(|i| format!("sharded/p-shard-{i}-of-3"))
        .collect();
    let mut args = vec!["merge"];
    args.extend(runs.iter().map(String::as_str));
    let merged = helios(&project, &args);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));
    assert!(
        text(&merged).contains("12 of 12 trial(s) have a result"),
        "{}",
        text(&merged)
    );

    // Every trial exactly once (one directory each, no leftovers), with the same rewards.
    let (whole_run, merged_run) = (project.path("whole/p"), project.path("sharded/p"));
    let expected = outcomes(&whole_run);
    assert_eq!(expected.len(), 12);
    assert_eq!(outcomes(&merged_run), expected);
    for stage in ["s", "g"] {
        let dirs = std::fs::read_dir(merged_run.join(stage)).unwrap().count();
        let of_stage = expected.keys().filter(|d| d.starts_with(stage)).count();
        assert_eq!(dirs, of_stage, "stage {stage}: one directory per trial");
    }
    // The shards split the trials: each ran some, none ran one twice.
    let per_shard: Vec<usize> = runs
        .iter()
        .map(|r| results(&project.path(r)).len())
        .collect();
    assert_eq!(per_shard.iter().sum::<usize>(), 12, "{per_shard:?}");
    // The same statistics.
    assert_eq!(
        json(&merged_run.join("summary.json")),
        json(&whole_run.join("summary.json"))
    );

    // `plan` over the merged run: nothing left to do.
    let plan = helios(&project, &["plan", "p.toml", "--output-dir", "sharded"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(text(&plan).contains("nothing to do: all 12 trials are done"));
    // `report` (with `--fail-under`) reads the merged run as any other.
    let report = helios(
        &project,
        &[
            "report",
            "sharded/p",
            "--format",
            "json",
            "--fail-under",
            "0.9",
        ],
    );
    assert_eq!(
        report.status.code(),
        Some(6),
        "nop's mean is 0: {}",
        text(&report)
    );
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["trials"], 12);
    assert_eq!(report["passed"], 4);
    // `regrade` grades the merged run's separate-verifier trials again, as any run's.
    let regrade = helios(
        &project,
        &["regrade", "sharded/p", "--label", &project.label],
    );
    assert_eq!(regrade.status.code(), Some(0), "{}", text(&regrade));
    assert!(
        text(&regrade).contains("3 trial(s) regraded"),
        "{}",
        text(&regrade)
    );
    let regraded = results(&project.path("sharded/p-regraded"));
    let oracle = regraded
        .values()
        .find(|r| r["agent"] == "oracle")
        .expect("the oracle's trial was regraded");
    assert_eq!(oracle["reward"], 1.0, "{oracle}");
    project.assert_clean();
}

#[test]
fn a_shard_killed_mid_run_and_run_again_completes_the_merged_run() {
    let project = Project::new("shard-killed");
    // `blocker` waits while BLOCK=1 is set on the host: the kill catches it running.
    project.task(
        "blocker",
        "[environment.env]\nBLOCK = \"${BLOCK:-0}\"\n",
        "if [ \"$BLOCK\" = 1 ]; then sleep 300; fi\necho done > /app/out\n",
        CHECK,
    );
    for task in ["one", "two", "three"] {
        project.task(task, "", "echo done > /app/out\n", CHECK);
    }
    project.pipeline("p", "\"oracle\"");
    let lost = shard_of(&project, "blocker", 2);
    let other = 3 - lost;
    let finished = apply(&project, "runs", Some(&format!("{other}/2")))
        .output()
        .unwrap();
    assert_eq!(finished.status.code(), Some(0), "{}", text(&finished));

    let mut child = apply(&project, "runs", Some(&format!("{lost}/2")))
        .env("BLOCK", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        seen.push(line.clone());
        if line.contains("started s/blocker/oracle#1") {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("started s/blocker")),
        "{seen:?}"
    );
    // The machine is lost: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();

    let lost_run = format!("runs/p-shard-{lost}-of-2");
    let other_run = format!("runs/p-shard-{other}-of-2");
    let partial = helios(&project, &["merge", &other_run, &lost_run]);
    assert_eq!(
        partial.status.code(),
        Some(3),
        "a trial is missing: {}",
        text(&partial)
    );
    assert!(
        text(&partial).contains("blocker__oracle"),
        "{}",
        text(&partial)
    );

    // The same shard again (here; anywhere would do) finishes it.
    let again = apply(&project, "runs", Some(&format!("{lost}/2")))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let merged = helios(&project, &["merge", &other_run, &lost_run]);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));

    let merged_run = project.path("runs/p");
    let results = results(&merged_run);
    assert_eq!(results.len(), 4, "nothing lost: {results:?}");
    let mut tasks: Vec<&str> = results
        .values()
        .map(|r| r["task"].as_str().unwrap())
        .collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["blocker", "one", "three", "two"], "nothing doubled");
    assert!(results.values().all(|r| r["reward"] == 1.0), "{results:?}");
    assert_eq!(std::fs::read_dir(merged_run.join("s")).unwrap().count(), 4);
    let plan = helios(&project, &["plan", "p.toml"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    project.assert_clean();
}

#[test]
fn shards_of_different_plans_are_refused_at_merge_naming_the_difference() {
    let project = Project::new("shard-plans");
    for task in ["alpha", "beta"] {
        project.task(task, "", "echo done > /app/out\n", CHECK);
    }
    project.pipeline("p", "\"oracle\", \"nop\"");
    // Locks alone make the runs: no trial needs to run for the plans to be compared.
    let lock = |shard: &str, out: &str| {
        let out = helios(
            &project,
            &[
                "plan",
                "p.toml",
                "--write-lock",
                "--shard",
                shard,
                "--output-dir",
                out,
            ],
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    };
    lock("1/2", "runs");
    lock("1/2", "again");
    project.write(
        "tasks/beta/tests/test.sh",
        "echo 1 > /logs/verifier/reward.txt\n",
    );
    lock("2/2", "runs");

    let refused = helios(
        &project,
        &["merge", "runs/p-shard-1-of-2", "runs/p-shard-2-of-2"],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = text(&refused);
    assert!(said.contains("runs of different plans"), "{said}");
    assert!(said.contains("task `beta` differs"), "{said}");
    assert!(!said.contains("task `alpha`"), "only what differs: {said}");
    assert!(!project.path("runs/p").exists(), "nothing was written");

    let twice = helios(
        &project,
        &["merge", "runs/p-shard-1-of-2", "again/p-shard-1-of-2"],
    );
    assert_eq!(twice.status.code(), Some(1), "{}", text(&twice));
    assert!(text(&twice).contains("both shard 1/2"), "{}", text(&twice));

    // `--locked` holds a shard without a run yet to the whole run's lock file, which every
    // machine has a copy of.
    let locked = helios(&project, &["plan", "p.toml", "--write-lock"]);
    assert_eq!(locked.status.code(), Some(3), "{}", text(&locked));
    project.write("tasks/alpha/instruction.md", "Do something else.\n");
    let out = apply(&project, "runs", Some("1/3"))
        .arg("--locked")
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("no longer resolves to what the lock file says"),
        "{said}"
    );
    assert!(
        !project.path("runs/p-shard-1-of-3").exists(),
        "nothing was run"
    );
}
