//! Benchmark: a 100-task dataset from git — fetch and verify into an empty cache, and a
//! plan that finds everything in the cache.
//!
//! Run with `cargo bench --bench datasets`. It makes a repository of 100 generated task
//! directories and a bare copy to fetch from over `file://`, then times, over 9 runs each:
//!
//! - cold: `helios::dataset::resolve` into an empty cache (one fetch of the commit, 100
//!   checkouts from the mirror's raw blobs, each hashed against its git tree id);
//! - cache hit: `load_pipeline_with` + `Plan::of` on a pipeline pinned to the commit
//!   (`git ls-tree` once, every checkout hashed again, no download).
//!
//! The figures are recorded in `docs/benchmarks.md`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{measure, measuring, write_task};
use helios::dataset::{self, Cache, Quiet, Spec};
use helios::manifest::{SourceOptions, load_pipeline_with};
use helios::plan::Plan;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

fn main() {
    let tasks = if measuring() { 100 } else { 3 };
    let scratch = tempfile::tempdir().unwrap();
    let work = scratch.path().join("work");
    for i in 0..tasks {
        write_task(&work, i);
    }
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "tasks"]);
    let bare = scratch.path().join("bench.git");
    git(
        scratch.path(),
        &["clone", "-q", "--bare", "work", "bench.git"],
    );
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&work)
        .output()
        .unwrap();
    let commit = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let url = format!("file://{}", bare.display());
    let spec = Spec::Git {
        url: url.clone(),
        rev: Some(commit.clone()),
        path: "tasks/*".to_string(),
    };

    let mut round = 0;
    measure(
        &format!("fetch + verify of {tasks} tasks into an empty cache"),
        || {
            round += 1;
            let cache = Cache::at(scratch.path().join(format!("cold-{round}")));
            let resolved = dataset::resolve(&spec, &cache, &Quiet).unwrap();
            assert_eq!(resolved.tasks.len(), tasks);
            assert_eq!(resolved.checkouts, tasks);
        },
    );

    let warm = Cache::at(scratch.path().join("warm"));
    dataset::resolve(&spec, &warm, &Quiet).unwrap();
    let pipeline = scratch.path().join("bench.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[pipeline]\nname = \"bench\"\n[[tasks]]\ngit = \"{url}\"\nrev = \"{commit}\"\npath = \"tasks/*\"\n\
             [[stages]]\nname = \"s\"\nagents = [\"oracle\", \"nop\"]\n"
        ),
    )
    .unwrap();
    measure(
        &format!("cache-hit plan of {tasks} tasks (load + resolve + plan)"),
        || {
            let options = SourceOptions {
                cache: warm.clone(),
                progress: &Quiet,
            };
            let loaded = load_pipeline_with(&pipeline, &options).unwrap();
            let source = &loaded.value.sources[0].resolved;
            assert_eq!((source.fetches, source.checkouts), (0, 0));
            let plan = Plan::of(&loaded.value).unwrap();
            assert_eq!(plan.trials.len(), 2 * tasks);
        },
    );
}
