//! A scratch project for end-to-end runs of the `helios` binary against the real Docker
//! engine: every run carries a label of its own, so a test can check that nothing of its
//! own is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_helios");

pub(crate) fn docker_ids(kind: &str, label: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([kind, "-q", "--filter", &format!("label={label}")])
        .args(if kind == "ps" { vec!["-a"] } else { vec![] })
        .output()
        .expect("the docker CLI runs (run `bash ../shared/docker-up.sh`)");
    assert!(
        out.status.success(),
        "docker {kind} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A scratch project whose runs carry a label of their own.
pub(crate) struct Project {
    pub dir: tempfile::TempDir,
    pub label: String,
}

impl Project {
    pub(crate) fn new(name: &str) -> Project {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Project {
            dir: tempfile::tempdir().unwrap(),
            label: format!("helios-test={unique}"),
        }
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub(crate) fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A task whose image is its own (the fixture label makes its digest unique).
    pub(crate) fn task(&self, name: &str, toml: &str, solve: &str, test: &str) {
        self.write(&format!("tasks/{name}/task.toml"), toml);
        self.write(&format!("tasks/{name}/instruction.md"), "Do it.\n");
        self.write(
            &format!("tasks/{name}/environment/Dockerfile"),
            &format!("FROM debian:bookworm-slim\nWORKDIR /app\nLABEL fixture={name}\n"),
        );
        self.write(&format!("tasks/{name}/solution/solve.sh"), solve);
        self.write(&format!("tasks/{name}/tests/test.sh"), test);
    }

    pub(crate) fn pipeline(&self, name: &str, agents: &str) {
        self.write(
            &format!("{name}.toml"),
            &format!(
                "[pipeline]\nname = \"{name}\"\noutput_dir = \"runs\"\n[[tasks]]\npath = \"tasks/*\"\n\
                 [[stages]]\nname = \"s\"\nagents = [{agents}]\n"
            ),
        );
    }

    pub(crate) fn command(&self, pipeline: &str) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(["apply", "--retries", "0", "--label", &self.label])
            .arg(self.path(&format!("{pipeline}.toml")))
            .env("NO_COLOR", "1");
        command
    }

    pub(crate) fn apply(&self, pipeline: &str) -> Output {
        self.command(pipeline).output().unwrap()
    }

    /// Every result.json of a run, by `task/agent`.
    pub(crate) fn results(&self, pipeline: &str) -> std::collections::BTreeMap<String, Value> {
        let mut out = std::collections::BTreeMap::new();
        let stage_dir = self.path(&format!("runs/{pipeline}/s"));
        for entry in std::fs::read_dir(stage_dir).unwrap() {
            let path = entry.unwrap().path().join("result.json");
            if let Ok(text) = std::fs::read_to_string(&path) {
                let value: Value = serde_json::from_str(&text).unwrap();
                out.insert(
                    format!(
                        "{}/{}",
                        value["task"].as_str().unwrap(),
                        value["agent"].as_str().unwrap()
                    ),
                    value,
                );
            }
        }
        out
    }

    /// The directory of the trial of `task` with `agent` in stage `s` of `pipeline`'s run.
    pub(crate) fn trial_dir(&self, pipeline: &str, task: &str, agent: &str) -> PathBuf {
        std::fs::read_dir(self.path(&format!("runs/{pipeline}/s")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{task}__{agent}__"))
            })
            .unwrap_or_else(|| panic!("no trial of {task} with {agent}"))
    }

    /// No container of this project remains; then its images are removed, and checked.
    pub(crate) fn assert_clean(&self) {
        assert_eq!(
            docker_ids("ps", &self.label),
            Vec::<String>::new(),
            "containers left behind"
        );
        let gc = Command::new(BINARY)
            .args(["gc", "--label", &self.label])
            .output()
            .unwrap();
        assert!(
            gc.status.success(),
            "{}",
            String::from_utf8_lossy(&gc.stderr)
        );
        assert_eq!(
            docker_ids("images", &self.label),
            Vec::<String>::new(),
            "images left behind"
        );
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Clean up even when an assertion failed, so one failure does not leak into others.
        let _ = Command::new(BINARY)
            .args(["gc", "--label", &self.label])
            .output();
    }
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `cp -r from to`.
pub(crate) fn copy_tree(from: impl AsRef<Path>, to: impl AsRef<Path>) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from.as_ref())
        .arg(to.as_ref())
        .status()
        .unwrap();
    assert!(status.success());
}
