//! Tests of expansion, gates, matrices, cycles, image sharing, id stability and assessment,
//! on pipelines written to scratch directories.

use std::path::{Path, PathBuf};

use super::lock::LockFile;
use super::status::{Assessment, TrialState};
use super::*;
use crate::manifest::load_pipeline;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn task(root: &Path, name: &str, dockerfile: &str) {
    let dir = root.join("tasks").join(name);
    write(
        &dir.join("task.toml"),
        "[environment]\nworkdir = \"/app\"\n",
    );
    write(&dir.join("instruction.md"), &format!("Solve {name}.\n"));
    write(
        &dir.join("tests/test.sh"),
        "echo 1 > /logs/verifier/reward.txt\n",
    );
    write(&dir.join("environment/Dockerfile"), dockerfile);
}

/// A scratch project with tasks `a`, `b` (same environment) and `c` (its own).
fn project(pipeline: &str) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    task(root.path(), "a", "FROM debian:bookworm-slim\n");
    task(root.path(), "b", "FROM debian:bookworm-slim\n");
    task(root.path(), "c", "FROM debian:bookworm-slim\nRUN true\n");
    write(
        &root.path().join("prompts/system.j2"),
        "Solve: {{ instruction }}\n",
    );
    let path = root.path().join("pipeline.toml");
    write(&path, pipeline);
    (root, path)
}

fn plan_of(path: &Path) -> Plan {
    let loaded = load_pipeline(path).unwrap_or_else(|e| panic!("{}", e.report));
    Plan::of(&loaded.value).unwrap()
}

const MODELS: &str = r#"
[models.a]
id = "anthropic/claude-sonnet-4-20250514"
[models.b]
id = "gpt-4.1"
max_connections = 2
[agents.term]
kind = "terminal"
model = "a"
system_prompt = "prompts/system.j2"
"#;

fn pipeline(stages: &str) -> String {
    format!("[pipeline]\nname = \"p\"\n[[tasks]]\npath = \"tasks/*\"\n{MODELS}\n{stages}")
}

#[test]
fn expands_agents_models_matrices_and_attempts() {
    let (_root, path) = project(&pipeline(
        r#"
[[stages]]
name = "sanity"
agents = ["oracle", "nop", "term"]
attempts = 2

[[stages]]
name = "eval"
agents = ["term"]
models = ["a", "b"]
matrix = { temperature = [0.0, 0.5], style = ["terse", "chatty", "plain"] }
"#,
    ));
    let plan = plan_of(&path);
    // sanity: 3 tasks × 3 agents × 2 attempts; eval: 3 tasks × 2 models × 6 parameter sets.
    assert_eq!(plan.stages[0].trials.len(), 18);
    assert_eq!(plan.stages[1].trials.len(), 36);
    let eval = &plan.trials[plan.stages[1].trials.clone()];
    assert!(eval.iter().all(|t| t.model.is_some()));
    let sets: std::collections::BTreeSet<u32> = eval.iter().map(|t| t.params).collect();
    assert_eq!(sets.len(), 6);
    let one = &plan.params[eval[0].params as usize];
    assert_eq!(one.keys().collect::<Vec<_>>(), ["style", "temperature"]);
    // oracle and nop use no model; the terminal agent uses its own in `sanity`.
    let sanity = &plan.trials[plan.stages[0].trials.clone()];
    for t in sanity {
        let kind = plan.agents[t.agent as usize].kind;
        assert_eq!(t.model.is_some(), kind == AgentKind::Terminal);
    }
    let ids: std::collections::BTreeSet<TrialId> = plan.trials.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), plan.trials.len(), "every trial has its own id");
    let dirs: std::collections::BTreeSet<PathBuf> =
        plan.trials.iter().map(|t| plan.trial_dir(t)).collect();
    assert_eq!(
        dirs.len(),
        plan.trials.len(),
        "every trial has its own directory"
    );
}

#[test]
fn stage_task_filters_select_by_name() {
    let (_root, path) = project(&pipeline(
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\ntasks = [\"a\", \"c*\"]\n",
    ));
    let plan = plan_of(&path);
    let names: Vec<&str> = plan
        .trials
        .iter()
        .map(|t| plan.tasks[t.task as usize].name.as_str())
        .collect();
    assert_eq!(names, ["a", "c"]);
}

#[test]
fn gates_and_needs_order_the_graph() {
    let (_root, path) = project(&pipeline(
        r#"
[[stages]]
name = "eval"
needs = ["sanity"]
gate = { stage = "sanity" }
agents = ["term"]

[[stages]]
name = "sanity"
agents = ["oracle", "nop"]
"#,
    ));
    let plan = plan_of(&path);
    assert_eq!(
        plan.stages[0].name, "sanity",
        "stages run after what they need"
    );
    assert_eq!(plan.stages[1].gate.as_ref().unwrap().agent, "oracle");
    let order = petgraph::algo::toposort(&plan.graph, None).expect("the plan is acyclic");
    let position = |node: Node| order.iter().position(|&n| plan.graph[n] == node).unwrap();
    let gate = position(Node::Gate(1));
    for t in plan.stages[0].trials.clone() {
        assert!(position(Node::Trial(t)) < gate);
    }
    for t in plan.stages[1].trials.clone() {
        assert!(gate < position(Node::Trial(t)));
    }
    assert_eq!(order.last().map(|&n| plan.graph[n]), Some(Node::Report));
    assert!(
        !plan.graph.node_weights().any(|n| *n == Node::Gate(0)),
        "an ungated stage without needs has no gate"
    );
}

#[test]
fn tasks_with_the_same_environment_share_one_build() {
    let (_root, path) = project(&pipeline(
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n",
    ));
    let plan = plan_of(&path);
    assert_eq!(plan.builds.len(), 2);
    assert_eq!(plan.builds[0].tasks, [0, 1]);
    assert_eq!(plan.builds[1].tasks, [2]);
    assert!(plan.builds[0].tag.starts_with("helios/a:"));
    let builds = plan
        .graph
        .node_weights()
        .filter(|n| matches!(n, Node::Build(_)))
        .count();
    assert_eq!(builds, 2);
}

#[test]
fn prebuilt_images_need_no_build() {
    let (root, path) = project(&pipeline(
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n",
    ));
    for name in ["a", "b", "c"] {
        let dir = root.path().join("tasks").join(name);
        std::fs::remove_file(dir.join("environment/Dockerfile")).unwrap();
        write(
            &dir.join("task.toml"),
            "[environment]\ndocker_image = \"example/img:1\"\n",
        );
    }
    let plan = plan_of(&path);
    assert!(plan.builds.is_empty());
    assert!(
        plan.tasks
            .iter()
            .all(|t| t.image == ImageSource::Prebuilt("example/img:1".into()))
    );
}

#[test]
fn a_cycle_is_an_error_that_names_a_stage() {
    let (_root, path) = project(&pipeline(
        "[[stages]]\nname = \"x\"\nagents = [\"oracle\"]\n[[stages]]\nname = \"y\"\nneeds = [\"x\"]\nagents = [\"nop\"]\n",
    ));
    let mut pipeline = load_pipeline(&path).unwrap().value;
    pipeline.manifest.stages[0].needs = vec!["y".into()];
    let inputs = Inputs::gather(&pipeline).unwrap();
    match Plan::build(&pipeline, &inputs) {
        Err(PlanError::Cycle(stage)) => assert!(stage == "x" || stage == "y"),
        other => panic!("expected a cycle error, got {other:?}"),
    }
}

fn ids(plan: &Plan) -> Vec<TrialId> {
    plan.trials.iter().map(|t| t.id).collect()
}

const TWO_STAGES: &str =
    "[[stages]]\nname = \"s\"\nagents = [\"oracle\", \"term\"]\nattempts = 2\n";

#[test]
fn same_inputs_give_the_same_ids_anywhere() {
    let (root, path) = project(&pipeline(TWO_STAGES));
    let first = ids(&plan_of(&path));
    assert_eq!(first, ids(&plan_of(&path)));
    // The same project elsewhere on disk: ids do not depend on where it lives.
    let elsewhere = tempfile::tempdir().unwrap();
    for entry in walkdir::WalkDir::new(root.path()) {
        let entry = entry.unwrap();
        let target = elsewhere
            .path()
            .join(entry.path().strip_prefix(root.path()).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    assert_eq!(
        first,
        ids(&plan_of(&elsewhere.path().join("pipeline.toml")))
    );
}

#[test]
fn one_changed_byte_changes_only_that_tasks_ids() {
    let (root, path) = project(&pipeline(TWO_STAGES));
    let before = plan_of(&path);
    write(&root.path().join("tasks/b/instruction.md"), "Solve b!\n");
    let after = plan_of(&path);
    for (old, new) in before.trials.iter().zip(&after.trials) {
        let task = &before.tasks[old.task as usize].name;
        assert_eq!(old.id != new.id, task == "b", "task {task}");
    }
}

#[test]
fn prompt_changes_touch_only_that_agent_and_concurrency_touches_nothing() {
    let (root, path) = project(&pipeline(TWO_STAGES));
    let before = plan_of(&path);
    write(
        &root.path().join("prompts/system.j2"),
        "Solve carefully: {{ instruction }}\n",
    );
    let after = plan_of(&path);
    for (old, new) in before.trials.iter().zip(&after.trials) {
        let agent = &before.agents[old.agent as usize].name;
        assert_eq!(old.id != new.id, agent == "term", "agent {agent}");
    }
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("max_connections = 2", "max_connections = 9");
    write(&path, &format!("{text}\n"));
    let text = text.replace("name = \"p\"", "name = \"p\"\nconcurrency = 16");
    write(&path, &text);
    assert_eq!(ids(&after), ids(&plan_of(&path)));
}

#[test]
fn attempts_and_parameters_are_part_of_the_id() {
    let (_root, path) = project(&pipeline(
        "[[stages]]\nname = \"s\"\nagents = [\"term\"]\nattempts = 2\nmatrix = { t = [1, 2] }\n",
    ));
    let plan = plan_of(&path);
    let distinct: std::collections::BTreeSet<TrialId> = plan.trials.iter().map(|t| t.id).collect();
    assert_eq!(distinct.len(), 3 * 2 * 2);
}

#[test]
fn daytona_settings_touch_no_id_and_a_stage_provider_touches_its_stage() {
    let stages = "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n\
                  [[stages]]\nname = \"t\"\nagents = [\"nop\"]\n";
    let (root, path) = project(&pipeline(stages));
    let before = plan_of(&path);
    let (docker, daytona) = (Provider::default(), Provider::from_name("daytona").unwrap());
    assert!(before.uses(docker) && !before.uses(daytona));
    let settings = "[environment.daytona]\nmax_creates = 3\npoll_interval_sec = 0.1\n";
    let text = std::fs::read_to_string(&path).unwrap();
    write(&path, &format!("{settings}{text}"));
    assert_eq!(
        ids(&before),
        ids(&plan_of(&path)),
        "settings are not results"
    );
    let moved = text.replace("name = \"t\"\n", "name = \"t\"\nprovider = \"daytona\"\n");
    write(&root.path().join("pipeline.toml"), &moved);
    let after = plan_of(&path);
    assert!(after.uses(docker) && after.uses(daytona));
    for (old, new) in before.trials.iter().zip(&after.trials) {
        let stage = &after.stages[new.stage as usize];
        assert_eq!(stage.provider == daytona, stage.name == "t");
        assert_eq!(old.id != new.id, stage.name == "t", "stage {}", stage.name);
    }
}

fn finish(plan: &Plan, trial: &Trial, status: &str) {
    let dir = plan.run_dir.join(plan.trial_dir(trial));
    write(
        &dir.join("result.json"),
        &format!(
            "{{\"trial_id\": \"{}\", \"status\": \"{status}\"}}",
            trial.id.short()
        ),
    );
}

#[test]
fn assessment_tells_done_changed_and_new() {
    let (root, path) = project(&pipeline(
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n",
    ));
    let plan = plan_of(&path);
    assert_eq!(Assessment::of(&plan).total().new, 3);
    for trial in &plan.trials {
        finish(&plan, trial, "completed");
    }
    let done = Assessment::of(&plan);
    assert_eq!(done.total().done, 3);
    assert_eq!(done.total().to_run(), 0);

    write(
        &root.path().join("tasks/a/tests/test.sh"),
        "echo 0 > /logs/verifier/reward.txt\n",
    );
    let changed = plan_of(&path);
    let states = Assessment::of(&changed).states;
    let by_task = |name: &str| {
        let i = changed
            .trials
            .iter()
            .position(|t| changed.tasks[t.task as usize].name == name)
            .unwrap();
        states[i]
    };
    assert_eq!(by_task("a"), TrialState::Changed);
    assert_eq!(by_task("b"), TrialState::Done);

    // A cancelled result is not done: the trial runs again as new work.
    finish(&plan, &plan.trials[1], "cancelled");
    assert_eq!(Assessment::of(&plan).states[1], TrialState::New);
}

#[test]
fn lock_file_round_trips() {
    let (_root, path) = project(&pipeline(TWO_STAGES));
    let plan = plan_of(&path);
    let lock = LockFile::of(&plan);
    let written = lock.write(&plan.run_dir).unwrap();
    assert!(written.ends_with("helios.lock.json"));
    let read = LockFile::read(&plan.run_dir).unwrap().unwrap();
    assert_eq!(read, lock);
    assert_eq!(read.trials.len(), plan.trials.len());
    assert_eq!(read.tasks[0].digest, plan.tasks[0].digest.hex());
    assert_eq!(read.helios_version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn trial_count_matches_the_plan_it_bounds() {
    // The bound is checked on counts; they must be the plan's own numbers.
    let (_root, path) = project(&pipeline(
        r#"
[[stages]]
name = "sanity"
agents = ["oracle", "nop", "term"]
attempts = 2

[[stages]]
name = "eval"
agents = ["term", "oracle"]
models = ["a", "b"]
tasks = ["a", "c"]
matrix = { temperature = [0.0, 0.5], style = ["terse", "chatty", "plain"] }
"#,
    ));
    let loaded = load_pipeline(&path).unwrap();
    let plan = Plan::of(&loaded.value).unwrap();
    let names: Vec<String> = loaded.value.tasks.iter().map(|t| t.name.clone()).collect();
    let counts = crate::manifest::trials::count_trials(&loaded.value.manifest, &names);
    for (stage, count) in plan.stages.iter().zip(&counts) {
        assert_eq!(stage.trials.len() as u128, count.trials, "{}", stage.name);
    }
}

#[test]
fn too_many_trials_is_refused_before_allocating() {
    let (_root, path) = project(&pipeline(
        "[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\nattempts = 1000000000\n",
    ));
    let error = load_pipeline(&path).unwrap_err();
    assert!(
        error.report.to_string().contains("3000000000 trials"),
        "{}",
        error.report
    );
    // A pipeline built by a library user skips validation; the plan checks again.
    let mut loaded = load_pipeline(&{
        let text = pipeline("[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n");
        std::fs::write(&path, text).unwrap();
        path.clone()
    })
    .unwrap();
    loaded.value.manifest.stages[0].attempts = u32::MAX;
    assert!(matches!(
        Plan::of(&loaded.value),
        Err(PlanError::TooManyTrials { max: 100_000, .. })
    ));
}
