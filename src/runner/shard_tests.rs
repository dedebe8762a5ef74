//! Shards of a plan on the in-memory environment: run part by part and merged, a gated
//! pipeline gives what the whole run gives, trial for trial.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::env::fake::{FakeEngine, FakeReply};
use crate::manifest::load_pipeline;
use crate::plan::shard::Shard;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Oracle solves a task unless its solution has `FAILS` set; the tests reward what was
/// solved in their own sandbox.
fn engine() -> FakeEngine {
    let solved: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    FakeEngine::new(move |call| {
        let mut solved = solved.lock().unwrap();
        if call.command.contains("/solution/solve.sh") {
            if !call.env.contains_key("FAILS") {
                solved.insert(call.sandbox.clone());
            }
            return FakeReply::ok();
        }
        if call.command.contains("/tests/test.sh") {
            let reward = if solved.contains(&call.sandbox) {
                "1"
            } else {
                "0"
            };
            return FakeReply::ok().writing("/logs/verifier/reward.txt", reward);
        }
        FakeReply::ok()
    })
}

async fn run(pipeline: &crate::manifest::Pipeline, plan: Plan) -> RunOutcome {
    let engines = BTreeMap::from([(Provider::default(), Engine::new(engine()))]);
    let run = Run::with_engines(pipeline, plan, ApplyOptions::default(), engines).unwrap();
    let (sender, _receiver) = tokio::sync::mpsc::unbounded_channel();
    run.execute(CancellationToken::new(), sender).await.unwrap()
}

type Row = (String, String, String, u32, Option<f64>, String);

fn rows(outcome: &RunOutcome) -> Vec<Row> {
    outcome
        .results()
        .map(|r| {
            (
                r.stage.clone(),
                r.task.clone(),
                r.agent.clone(),
                r.attempt,
                r.reward,
                r.trial_id.clone(),
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn three_shards_gate_and_merge_into_what_the_whole_run_gives() {
    let root = tempfile::tempdir().unwrap();
    for t in 0..8 {
        let dir = root.path().join(format!("tasks/t{t}"));
        // t1 and t5 fail with the oracle: the gate keeps them out of `eval`.
        let toml = if t == 1 || t == 5 {
            "[solution.env]\nFAILS = \"yes\"\n"
        } else {
            ""
        };
        write(&dir.join("task.toml"), toml);
        // Tasks of one content would share trial ids (and so a shard): each has its own.
        write(&dir.join("instruction.md"), &format!("Do {t}.\n"));
        write(
            &dir.join("environment/Dockerfile"),
            "FROM debian:bookworm-slim\n",
        );
        write(&dir.join("tests/test.sh"), "true\n");
        write(&dir.join("solution/solve.sh"), "true\n");
    }
    let path = root.path().join("p.toml");
    write(
        &path,
        r#"[pipeline]
name = "p"
output_dir = "runs"

[[tasks]]
path = "tasks/*"

[[stages]]
name = "sanity"
agents = ["oracle", "nop"]

[[stages]]
name = "eval"
needs = ["sanity"]
gate = { stage = "sanity" }
agents = ["nop"]
attempts = 2

[[stages]]
name = "extra"
agents = ["nop"]
"#,
    );
    let pipeline = load_pipeline(&path).unwrap().value;
    let whole = run(&pipeline, Plan::of(&pipeline).unwrap()).await;
    assert_eq!(whole.gated_out, 4, "t1 and t5, two attempts each");

    let mut sharded: Vec<Row> = Vec::new();
    let mut gated_out = 0;
    let mut shard_dirs = Vec::new();
    for index in 1..=3 {
        let plan = Plan::of(&pipeline)
            .unwrap()
            .shard(Shard::new(index, 3).unwrap());
        // A task's trials of the stages a gate joins are all in one shard.
        let plan_tasks = |stage: &str| -> BTreeSet<u32> {
            let s = plan.stages.iter().find(|s| s.name == stage).unwrap();
            plan.trials[s.trials.clone()]
                .iter()
                .map(|t| t.task)
                .collect()
        };
        assert_eq!(plan_tasks("sanity"), plan_tasks("eval"), "shard {index}");
        shard_dirs.push(plan.run_dir.clone());
        let outcome = run(&pipeline, plan).await;
        gated_out += outcome.gated_out;
        sharded.extend(rows(&outcome));
    }
    assert_eq!(gated_out, whole.gated_out);
    let mut expected = rows(&whole);
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sharded.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(sharded, expected, "every trial once, with the same reward");

    let locks = crate::plan::merge::read_locks(&shard_dirs).unwrap();
    let into = root.path().join("runs/merged");
    let merged = crate::plan::merge::merge(&shard_dirs, &locks, &into).unwrap();
    // Every trial the whole run finished; the gated-out ones have no result in either.
    assert_eq!(merged.missing.len(), 4);
    assert_eq!(
        merged.taken.iter().map(|(_, n)| n).sum::<usize>(),
        expected.len()
    );
    let summary = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
    };
    assert_eq!(summary(&into), summary(&whole.run_dir));
    let lock = crate::plan::lock::LockFile::read(&into).unwrap().unwrap();
    assert_eq!(lock.shard, None);
    assert_eq!(
        lock,
        crate::plan::lock::LockFile::read(&whole.run_dir)
            .unwrap()
            .unwrap()
    );

    // Merging again changes nothing; a shard given twice is refused.
    let again = crate::plan::merge::merge(&shard_dirs, &locks, &into).unwrap();
    assert_eq!(summary(&into), summary(&whole.run_dir));
    assert_eq!(again.missing.len(), 4);
    let twice = [shard_dirs[0].clone(), shard_dirs[0].clone()];
    let error = crate::plan::merge::merge(&twice, &[locks[0].clone(), locks[0].clone()], &into)
        .unwrap_err();
    assert!(
        matches!(error, crate::plan::merge::MergeError::ShardTwice { shard, .. } if shard.index == 1),
        "{error}"
    );
}
