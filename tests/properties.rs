//! Properties of generated manifests: pipelines and task manifests built from random
//! choices load and plan (the same trials from TOML and from YAML, as many as the
//! manifest's numbers say); mutated ones never make helios panic, and every error about a
//! file points at a place inside it.
//!
//! `PROPTEST_CASES=1000 cargo test --test properties` searches harder; failures are
//! shrunk to a small case and printed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use helios::diagnostic::{Code, Severity};
use helios::manifest::{load_pipeline, load_task, validate_paths};
use helios::plan::Plan;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

const TASKS: [&str; 3] = ["alpha", "beta", "gamma"];

fn write(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn task_dir(root: &Path, name: &str, task_toml: &str) {
    let dir = root.join("tasks").join(name);
    write(&dir.join("task.toml"), task_toml);
    write(&dir.join("instruction.md"), format!("Solve {name}.\n"));
    write(
        &dir.join("environment/Dockerfile"),
        "FROM debian:bookworm-slim\n",
    );
    write(
        &dir.join("tests/test.sh"),
        "echo 1 > /logs/verifier/reward.txt\n",
    );
    write(&dir.join("solution/solve.sh"), "true\n");
}

/// A scratch project with the three tasks, ready for a pipeline.
fn project() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for name in TASKS {
        task_dir(root.path(), name, "[environment]\nworkdir = \"/app\"\n");
    }
    root
}

// ---- generated pipelines ----

#[derive(Debug, Clone)]
struct StageChoice {
    agents: Vec<&'static str>,
    attempts: u32,
    matrix: Vec<(String, Vec<i64>)>,
    /// Which earlier stages it needs (bit i: stage i).
    needs: u8,
    /// A task filter, or none.
    tasks: Option<&'static str>,
}

fn stage() -> impl Strategy<Value = StageChoice> {
    (
        prop::sample::subsequence(vec!["oracle", "nop"], 1..=2),
        1u32..4,
        prop::collection::btree_map("[a-z]{1,5}", prop::collection::vec(0i64..9, 1..4), 0..3),
        any::<u8>(),
        prop::option::of(prop::sample::select(vec!["alpha", "b*", "*a"])),
    )
        .prop_map(|(agents, attempts, matrix, needs, tasks)| StageChoice {
            agents,
            attempts,
            matrix: matrix.into_iter().collect(),
            needs,
            tasks,
        })
}

#[derive(Debug, Clone)]
struct PipelineChoice {
    name: String,
    concurrency: u32,
    description: Option<String>,
    stages: Vec<StageChoice>,
}

fn pipeline() -> impl Strategy<Value = PipelineChoice> {
    (
        "[A-Za-z0-9][A-Za-z0-9._-]{0,12}",
        1u32..16,
        prop::option::of("[ -~]{0,30}"),
        prop::collection::vec(stage(), 1..5),
    )
        .prop_map(|(name, concurrency, description, stages)| PipelineChoice {
            name,
            concurrency,
            description,
            stages,
        })
}

impl PipelineChoice {
    fn value(&self) -> Value {
        let mut section = Map::new();
        section.insert("name".into(), json!(self.name));
        section.insert("concurrency".into(), json!(self.concurrency));
        if let Some(d) = &self.description {
            section.insert("description".into(), json!(d));
        }
        let stages: Vec<Value> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut stage = Map::new();
                stage.insert("name".into(), json!(format!("s{i}")));
                stage.insert("agents".into(), json!(s.agents));
                stage.insert("attempts".into(), json!(s.attempts));
                let needs: Vec<String> = (0..i)
                    .filter(|j| s.needs & (1 << j) != 0)
                    .map(|j| format!("s{j}"))
                    .collect();
                if !needs.is_empty() {
                    stage.insert("needs".into(), json!(needs));
                }
                if let Some(filter) = s.tasks {
                    stage.insert("tasks".into(), json!([filter]));
                }
                if !s.matrix.is_empty() {
                    let matrix: Map<String, Value> = s
                        .matrix
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect();
                    stage.insert("matrix".into(), Value::Object(matrix));
                }
                Value::Object(stage)
            })
            .collect();
        json!({
            "pipeline": section,
            "tasks": [{"path": "tasks/*"}],
            "stages": stages,
        })
    }

    /// Trials the pipeline makes: selected tasks × agents × matrix combinations × attempts.
    fn trials(&self) -> usize {
        self.stages
            .iter()
            .map(|s| {
                let tasks = TASKS
                    .iter()
                    .filter(|t| {
                        s.tasks
                            .is_none_or(|f| glob::Pattern::new(f).unwrap().matches(t))
                    })
                    .count();
                let combinations: usize = s.matrix.iter().map(|(_, v)| v.len()).product();
                tasks * s.agents.len() * combinations * s.attempts as usize
            })
            .sum()
    }
}

/// Block-style YAML of a JSON value whose top level is a mapping (flow JSON for scalars
/// and lists of scalars, which YAML reads as they are).
fn yaml(value: &Value) -> String {
    let mut out = String::new();
    yaml_map(value.as_object().unwrap(), 0, &mut out);
    out
}

fn yaml_map(map: &Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in map {
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                yaml_map(m, indent + 2, out);
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in items {
                    let mut entry = String::new();
                    yaml_map(item.as_object().unwrap(), indent + 4, &mut entry);
                    out.push_str(&format!("{pad}  - {}", &entry[indent + 4..]));
                }
            }
            scalar => out.push_str(&format!("{pad}{key}: {scalar}\n")),
        }
    }
}

fn ids_of(path: &Path) -> Vec<helios::plan::TrialId> {
    let loaded = load_pipeline(path).unwrap_or_else(|e| panic!("{}", e.report));
    let plan = Plan::of(&loaded.value).unwrap();
    plan.trials.iter().map(|t| t.id).collect()
}

// ---- generated task manifests ----

fn task_manifest() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::sample::select(vec!["1.0", "1.1"])),
        prop::option::of(1u32..3600),
        prop::option::of(1u32..3600),
        prop::option::of(1u32..16),
        prop::option::of(prop::sample::select(vec!["512M", "2G", "1.5GiB", "10G"])),
        prop::option::of(prop::sample::select(vec!["public", "no-network"])),
        prop::collection::btree_map("[A-Z][A-Z0-9_]{0,6}", "[ -~]{0,12}", 0..3),
        prop::collection::vec("[a-z]{1,8}", 0..3),
    )
        .prop_map(
            |(version, agent_timeout, verifier_timeout, cpus, memory, network, env, tags)| {
                let mut environment = Map::new();
                environment.insert("workdir".into(), json!("/app"));
                if let Some(cpus) = cpus {
                    environment.insert("cpus".into(), json!(cpus));
                }
                if let Some(memory) = memory {
                    environment.insert("memory".into(), json!(memory));
                }
                if let Some(network) = network {
                    environment.insert("network_mode".into(), json!(network));
                }
                // `$` would be a host variable reference; keep values literal.
                let env: Map<String, Value> = env
                    .into_iter()
                    .map(|(k, v)| (k, json!(v.replace('$', "_"))))
                    .collect();
                environment.insert("env".into(), Value::Object(env));
                let mut task = Map::new();
                if let Some(v) = version {
                    task.insert("version".into(), json!(v));
                }
                task.insert("metadata".into(), json!({"tags": tags}));
                if let Some(t) = agent_timeout {
                    task.insert("agent".into(), json!({"timeout_sec": f64::from(t)}));
                }
                if let Some(t) = verifier_timeout {
                    task.insert("verifier".into(), json!({"timeout_sec": f64::from(t)}));
                }
                task.insert("environment".into(), Value::Object(environment));
                Value::Object(task)
            },
        )
}

// ---- mutations ----

const NASTY: &[&str] = &[
    "[",
    "]",
    "[[",
    "\"",
    "'",
    "=",
    "{",
    "}",
    ":",
    "- ",
    "\n",
    "\t",
    "#",
    "\\",
    "${",
    "*",
    "&a ",
    "*a",
    "!!binary ",
    "\u{0}",
    "é",
    "1e999",
    "-0",
    "nan",
    "inf",
    "99999999999999999999",
    "~",
    "? ",
    "|",
    ">",
    "---\n",
    "[[stages]]\n",
    "attempts = 0\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert(Index, Index),
    Delete(Index, usize),
    Replace(Index, Index),
    Duplicate(Index, usize),
    BadByte(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<Index>(), 1usize..12).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Replace(a, b)),
        (any::<Index>(), 1usize..40).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
        any::<Index>().prop_map(Mutation::BadByte),
    ]
}

fn mutate(text: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Insert(at, what) => {
                let at = at.index(len + 1);
                let what = NASTY[what.index(NASTY.len())].as_bytes();
                bytes.splice(at..at, what.iter().copied());
            }
            Mutation::Delete(at, n) if len > 0 => {
                let at = at.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Replace(at, what) if len > 0 => {
                bytes[at.index(len)] = NASTY[what.index(NASTY.len())].as_bytes()[0];
            }
            Mutation::Duplicate(at, n) if len > 0 => {
                let at = at.index(len);
                let copy = bytes[at..(at + n).min(len)].to_vec();
                bytes.splice(at..at, copy);
            }
            Mutation::BadByte(at) => bytes.insert(at.index(len + 1), 0xff),
            _ => {}
        }
    }
    bytes
}

/// Validates `path` (which holds `bytes`) without panicking, and checks that every error
/// about it points inside it.
fn check_positions(path: &Path) -> Result<(), TestCaseError> {
    let report = catch_unwind(AssertUnwindSafe(|| validate_paths(&[path.to_path_buf()])))
        .map_err(|_| TestCaseError::fail("validate panicked"))?
        .report;
    let manifest = if path.is_dir() {
        path.join("task.toml")
    } else {
        path.to_path_buf()
    };
    let text = report
        .sources
        .get(&manifest)
        .unwrap_or_default()
        .to_string();
    for d in &report.diagnostics {
        if d.severity != Severity::Error || d.file != manifest {
            continue;
        }
        match &d.span {
            Some(span) => prop_assert!(
                span.start <= span.end
                    && span.end <= text.len()
                    && text.is_char_boundary(span.start)
                    && text.is_char_boundary(span.end),
                "{d:?} is not inside the file of {} bytes",
                text.len()
            ),
            // A key missing from the whole file has no better place than the file.
            None => prop_assert!(
                d.code == Code::MissingKey && d.message.ends_with("at the top level"),
                "{d:?} has no position"
            ),
        }
    }
    Ok(())
}

/// 64 cases a property by default (a few seconds), or `PROPTEST_CASES`.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn valid_pipelines_plan_the_same_trials_from_toml_and_yaml(choice in pipeline()) {
        let root = project();
        let value = choice.value();
        let toml_path = root.path().join("p.toml");
        let yaml_path = root.path().join("p.yaml");
        write(&toml_path, toml::to_string(&value).unwrap());
        write(&yaml_path, yaml(&value));
        let from_toml = ids_of(&toml_path);
        let from_yaml = ids_of(&yaml_path);
        prop_assert_eq!(from_toml.len(), choice.trials());
        prop_assert_eq!(from_toml, from_yaml);
    }

    #[test]
    fn mutated_pipelines_never_panic_and_errors_point_inside_the_file(
        choice in pipeline(),
        mutations in prop::collection::vec(mutation(), 1..4),
        as_yaml in any::<bool>(),
    ) {
        let root = project();
        let value = choice.value();
        let (path, text) = if as_yaml {
            (root.path().join("p.yaml"), yaml(&value))
        } else {
            (root.path().join("p.toml"), toml::to_string(&value).unwrap())
        };
        write(&path, mutate(&text, &mutations));
        check_positions(&path)?;
        // A mutation that left the pipeline valid must still plan.
        if let Ok(loaded) = load_pipeline(&path) {
            let planned = catch_unwind(AssertUnwindSafe(|| Plan::of(&loaded.value).map(|p| p.trials.len())));
            prop_assert!(planned.is_ok(), "plan panicked");
        }
    }

    #[test]
    fn valid_task_manifests_load_and_plan(task in task_manifest()) {
        let root = tempfile::tempdir().unwrap();
        task_dir(root.path(), "generated", &toml::to_string(&task).unwrap());
        let dir = root.path().join("tasks/generated");
        let loaded = load_task(&dir);
        prop_assert!(loaded.is_ok(), "{}", loaded.unwrap_err().report);
        let pipeline = root.path().join("p.toml");
        write(
            &pipeline,
            "[pipeline]\nname = \"p\"\n[[tasks]]\npath = \"tasks/*\"\n[[stages]]\nname = \"s\"\nagents = [\"oracle\", \"nop\"]\n",
        );
        prop_assert_eq!(ids_of(&pipeline).len(), 2);
    }

    #[test]
    fn mutated_task_manifests_never_panic_and_errors_point_inside_the_file(
        task in task_manifest(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let root = tempfile::tempdir().unwrap();
        let text = toml::to_string(&task).unwrap();
        task_dir(root.path(), "generated", "");
        write(&root.path().join("tasks/generated/task.toml"), mutate(&text, &mutations));
        check_positions(&root.path().join("tasks/generated"))?;
    }
}
