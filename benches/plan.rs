//! Benchmark: planning 100,000 trials — 1,000 tasks × 5 agents × 4 models × 5 attempts.
//!
//! Run with `cargo bench --bench plan`. Prints the time of each phase (load and validate,
//! digests, expansion and DAG, assessment against an empty run directory, lock file) and
//! the peak memory; the figures are recorded in `docs/benchmarks.md`.

mod common;

use std::fmt::Write as _;

use common::{measure, measuring, peak_memory_kib, write_task};
use helios::plan::lock::LockFile;
use helios::plan::status::Assessment;
use helios::plan::{Inputs, Plan};

fn main() {
    let tasks = if measuring() { 1_000 } else { 4 };
    let scratch = tempfile::tempdir().unwrap();
    for i in 0..tasks {
        write_task(scratch.path(), i);
    }
    std::fs::create_dir_all(scratch.path().join("prompts")).unwrap();
    std::fs::write(
        scratch.path().join("prompts/system.j2"),
        "Solve: {{ instruction }}\n",
    )
    .unwrap();
    let mut manifest =
        String::from("[pipeline]\nname = \"bench\"\n[[tasks]]\npath = \"tasks/*\"\n");
    for m in 0..4 {
        writeln!(manifest, "[models.m{m}]\nid = \"openai/model-{m}\"").unwrap();
    }
    for a in 0..5 {
        writeln!(
            manifest,
            "[agents.a{a}]\nkind = \"terminal\"\nsystem_prompt = \"prompts/system.j2\""
        )
        .unwrap();
        writeln!(manifest, "limits = {{ max_turns = {} }}", 10 + a).unwrap();
    }
    manifest.push_str(
        "[[stages]]\nname = \"eval\"\nagents = [\"a0\", \"a1\", \"a2\", \"a3\", \"a4\"]\n\
         models = [\"m0\", \"m1\", \"m2\", \"m3\"]\nattempts = 5\n",
    );
    let path = scratch.path().join("pipeline.toml");
    std::fs::write(&path, manifest).unwrap();

    let pipeline = helios::load_pipeline(&path).unwrap().value;
    let inputs = Inputs::gather(&pipeline).unwrap();
    let plan = Plan::build(&pipeline, &inputs).unwrap();
    assert_eq!(plan.trials.len(), tasks * 5 * 4 * 5);
    if !measuring() {
        return;
    }
    println!(
        "{} trials, {} graph nodes, {} edges",
        plan.trials.len(),
        plan.graph.node_count(),
        plan.graph.edge_count()
    );
    measure("load and validate the pipeline and its 1,000 tasks", || {
        helios::load_pipeline(&path).unwrap();
    });
    measure("digest 1,000 task directories", || {
        Inputs::gather(&pipeline).unwrap();
    });
    measure("expand 100,000 trials with ids and build the DAG", || {
        Plan::build(&pipeline, &inputs).unwrap();
    });
    measure("assess against the run directory", || {
        Assessment::of(&plan);
    });
    measure("serialize the lock file", || {
        serde_json::to_vec(&LockFile::of(&plan)).unwrap();
    });
    measure("whole plan: load, digest, expand, assess", || {
        let pipeline = helios::load_pipeline(&path).unwrap().value;
        let plan = Plan::of(&pipeline).unwrap();
        Assessment::of(&plan);
    });
    if let Some(kib) = peak_memory_kib() {
        println!("peak memory: {:.1} MiB", kib as f64 / 1024.0);
    }
    million(scratch.path());
}

/// `helios plan` of 1,000,000 trials (the 1,000 tasks × 10 agents × 10 models × 10
/// attempts), by the binary as a user runs it: with `max_trials` raised to a million, and
/// with the default bound, which refuses it before making any trial.
fn million(root: &std::path::Path) {
    let mut manifest = String::from(
        "[pipeline]\nname = \"million\"\nmax_trials = 1000000\n[[tasks]]\npath = \"tasks/*\"\n",
    );
    let names =
        |prefix: &str| -> Vec<String> { (0..10).map(|i| format!("\"{prefix}{i}\"")).collect() };
    for m in 0..10 {
        writeln!(manifest, "[models.m{m}]\nid = \"openai/model-{m}\"").unwrap();
    }
    for a in 0..10 {
        writeln!(
            manifest,
            "[agents.a{a}]\nkind = \"terminal\"\nsystem_prompt = \"prompts/system.j2\""
        )
        .unwrap();
    }
    writeln!(
        manifest,
        "[[stages]]\nname = \"eval\"\nagents = [{}]\nmodels = [{}]\nattempts = 10",
        names("a").join(", "),
        names("m").join(", ")
    )
    .unwrap();
    let raised = root.join("million.toml");
    std::fs::write(&raised, &manifest).unwrap();
    let bounded = root.join("million-bounded.toml");
    std::fs::write(&bounded, manifest.replace("max_trials = 1000000\n", "")).unwrap();
    for (label, path) in [
        (
            "helios plan, 1,000,000 trials (max_trials = 1000000)",
            &raised,
        ),
        (
            "helios plan, 1,000,000 trials (default max_trials: refused)",
            &bounded,
        ),
    ] {
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(plan_by_cli(path));
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (seconds, peak_kib, refused) = runs[1];
        let memory = peak_kib.map_or("peak memory unknown (no /usr/bin/time)".into(), |kib| {
            format!("peak memory {:.1} MiB", kib as f64 / 1024.0)
        });
        let outcome = if refused { "refused" } else { "planned" };
        println!("{label}: median of 3 {seconds:.3} s, {memory}, {outcome}");
    }
}

/// One `helios plan` by the binary: wall seconds, peak memory (by `/usr/bin/time` where
/// there is one) and whether it was refused.
fn plan_by_cli(path: &std::path::Path) -> (f64, Option<u64>, bool) {
    let helios = env!("CARGO_BIN_EXE_helios");
    let timed = std::path::Path::new("/usr/bin/time").exists();
    let mut command = if timed {
        let mut c = std::process::Command::new("/usr/bin/time");
        c.args(["-f", "helios-peak-kib %M", helios]);
        c
    } else {
        std::process::Command::new(helios)
    };
    let started = std::time::Instant::now();
    let output = command.arg("plan").arg(path).output().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("helios-peak-kib "))
        .and_then(|kib| kib.trim().parse().ok());
    // `plan` exits 3 when there is work to do, 1 when the pipeline is refused.
    let refused = match output.status.code() {
        Some(0 | 3) => false,
        _ => {
            assert!(stderr.contains("more than `max_trials`"), "{stderr}");
            true
        }
    };
    (seconds, peak, refused)
}
