//! Benchmark: validating 1,000 generated task directories, alone and through a pipeline,
//! and a YAML pipeline with one mapping of 80,000 keys.
//!
//! Run with `cargo bench --bench validate`. It prints the median and best of several runs
//! and the process's peak memory; the figures are recorded in `docs/benchmarks.md`.

mod common;

use std::path::PathBuf;

use common::{measure, measuring, peak_memory_kib, write_task};

const TASKS: usize = 1_000;
const WIDE_KEYS: usize = 80_000;

fn main() {
    let quick = !measuring();
    let scratch = tempfile::tempdir().unwrap();
    let count = if quick { 10 } else { TASKS };
    let dirs: Vec<PathBuf> = (0..count).map(|i| write_task(scratch.path(), i)).collect();
    let pipeline = scratch.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        "[pipeline]\nname = \"bench\"\n[[tasks]]\npath = \"tasks/*\"\n[[stages]]\nname = \"s\"\nagents = [\"oracle\", \"nop\"]\n",
    )
    .unwrap();

    let validation = helios::validate_paths(&dirs);
    assert!(!validation.report.has_errors(), "{}", validation.report);
    if quick {
        return;
    }
    measure(&format!("validate {count} task directories"), || {
        let v = helios::validate_paths(&dirs);
        assert_eq!(v.files_checked, count);
    });
    measure(&format!("load a pipeline selecting {count} tasks"), || {
        let loaded = helios::load_pipeline(&pipeline).unwrap();
        assert_eq!(loaded.value.tasks.len(), count);
    });
    // A YAML mapping of 80,000 keys: the duplicate-key check must stay linear in its size.
    let wide = scratch.path().join("wide.yaml");
    let mut text = String::from(
        "pipeline:\n  name: wide\ntasks:\n  - path: tasks/*\nstages:\n  - name: s\n    agents: [nop]\nvars:\n",
    );
    for i in 0..WIDE_KEYS {
        text.push_str(&format!("  k{i}: {i}\n"));
    }
    std::fs::write(&wide, text).unwrap();
    measure(
        &format!("load a YAML pipeline with {WIDE_KEYS} keys in one mapping"),
        || {
            let loaded = helios::load_pipeline(&wide).unwrap();
            assert_eq!(loaded.value.manifest.vars.len(), WIDE_KEYS);
        },
    );
    if let Some(kib) = peak_memory_kib() {
        println!("peak memory: {:.1} MiB", kib as f64 / 1024.0);
    }
}
