//! Shared by the benchmarks: generated task directories, timing, peak memory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) const RUNS: usize = 9;

/// Writes a Terminal-Bench 2.0-style task directory `tasks/task-NNNN` under `root`.
pub(crate) fn write_task(root: &Path, i: usize) -> PathBuf {
    let dir = root.join("tasks").join(format!("task-{i:04}"));
    std::fs::create_dir_all(dir.join("environment")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::create_dir_all(dir.join("solution")).unwrap();
    std::fs::write(
        dir.join("task.toml"),
        format!(
            r#"version = "1.0"

[metadata]
author_name = "bench"
difficulty = "medium"
category = "software-engineering"
tags = ["bench", "t{i}"]

[verifier]
timeout_sec = 900.0
env = {{ API_URL = "${{API_URL:-http://localhost}}" }}

[agent]
timeout_sec = 900.0

[environment]
build_timeout_sec = 600.0
cpus = 1
memory = "2G"
storage = "10G"
workdir = "/app"
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.join("instruction.md"), format!("Solve task {i}.\n")).unwrap();
    std::fs::write(
        dir.join("environment/Dockerfile"),
        "FROM debian:bookworm-slim\nWORKDIR /app\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("tests/test.sh"),
        "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n",
    )
    .unwrap();
    std::fs::write(dir.join("solution/solve.sh"), "#!/bin/bash\ntrue\n").unwrap();
    dir
}

/// Runs `run` [`RUNS`] times and prints the median and best time.
pub(crate) fn measure(label: &str, mut run: impl FnMut()) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{label}: median {:.1} ms, best {:.1} ms ({RUNS} runs)",
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
}

/// The process's peak resident memory, from `/proc/self/status`.
pub(crate) fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `cargo bench` asked for a real measurement (it passes `--bench`); `cargo test
/// --benches` passes nothing and only checks that the benchmark builds and runs.
pub(crate) fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}
