//! Benchmark: the viewer's run page over runs of 10,000 and 100,000 trial results (500 and
//! 5,000 tasks × 4 agents × 5 attempts), each trial with a `result.json` like a real one and
//! each run with its lock file.
//!
//! Run with `cargo bench --bench view`. Starts the viewer in-process on a free port and
//! times, over HTTP: the first request of the run page's data as the page asks for it
//! (`?rows=compact`; every `result.json` read and parsed), the same request again (results
//! unchanged, served from the cache), the rows as objects (the API's default), the list of
//! runs, and the page itself; then, in headless Chromium driven through
//! chromedriver (as the browser tests do), the time from navigation to the run page's
//! matrix painted. Figures are recorded in `docs/benchmarks.md`.

#[allow(dead_code)]
#[path = "../tests/common/browser.rs"]
mod browser;
mod common;

use std::time::{Duration, Instant};

use common::{measure, measuring, peak_memory_kib};
use helios::plan::lock::{LockFile, LockedTrial};
use helios::view::{ViewOptions, Viewer};

/// Browser loads of each run page; the median is printed.
const LOADS: usize = 3;

/// Resolves, once the run page's matrix has rows and a frame with it has been painted,
/// with the milliseconds since navigation started (`performance.now()`).
const SHOWN: &str = r##"
const done = arguments[arguments.length - 1];
const check = () => {
  if (document.querySelector("#matrix tbody tr")) {
    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));
  } else {
    setTimeout(check, 5);
  }
};
check();
"##;

fn main() {
    let sizes: &[(usize, usize, usize)] = if measuring() {
        &[(500, 4, 5), (5000, 4, 5)]
    } else {
        &[(5, 2, 2)]
    };
    let scratch = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for &(tasks, agents, attempts) in sizes {
        let name = format!("run-{}", tasks * agents * attempts);
        let started = Instant::now();
        write_run(
            &scratch.path().join("runs").join(&name),
            tasks,
            agents,
            attempts,
        );
        eprintln!("wrote {name} in {:.1} s", started.elapsed().as_secs_f64());
        names.push(name);
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut options = ViewOptions::new(scratch.path().join("runs"));
    options.port = Some(0);
    let viewer = runtime.block_on(Viewer::start(options)).unwrap();
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let url = format!("{}{path}", viewer.url());
        runtime.block_on(async {
            let response = client.get(&url).send().await.unwrap();
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            response.bytes().await.unwrap().len()
        })
    };

    for name in &names {
        // The page's own request first (`?rows=compact`): every result.json read.
        let start = Instant::now();
        let bytes = get(&format!("api/runs/{name}?rows=compact"));
        println!(
            "{name}: the page's request (`?rows=compact`), first (every result.json read): {:.1} ms, {:.1} MiB of JSON",
            start.elapsed().as_secs_f64() * 1e3,
            bytes as f64 / (1024.0 * 1024.0)
        );
        measure(&format!("{name}: the page's request, again"), || {
            get(&format!("api/runs/{name}?rows=compact"));
        });
        let bytes = get(&format!("api/runs/{name}"));
        measure(
            &format!(
                "{name}: rows as objects (the API's default, {:.1} MiB), again",
                bytes as f64 / (1024.0 * 1024.0)
            ),
            || {
                get(&format!("api/runs/{name}"));
            },
        );
    }
    measure("list of runs", || {
        get("api/runs");
    });
    measure("the page (index.html + app.js)", || {
        get("");
        get("assets/app.js");
    });

    runtime.block_on(async {
        let browser = browser::Browser::start().await;
        browser
            .client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(300)),
                Some(Duration::from_secs(300)),
                None,
            ))
            .await
            .unwrap();
        for name in &names {
            let mut times = Vec::new();
            for _ in 0..if measuring() { LOADS } else { 1 } {
                // A new document each time: a change of fragment alone would not reload.
                browser.client.goto("about:blank").await.unwrap();
                browser.client.goto(&viewer.run_url(name)).await.unwrap();
                let shown = browser.client.execute_async(SHOWN, vec![]).await.unwrap();
                times.push(shown.as_f64().unwrap());
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{name}: run page in Chromium, navigation to matrix painted: median {:.0} ms, best {:.0} ms ({} loads)",
                times[times.len() / 2],
                times[0],
                times.len()
            );
        }
        browser.close().await;
    });
    if let Some(kib) = peak_memory_kib() {
        println!("peak memory: {:.1} MiB", kib as f64 / 1024.0);
    }
    runtime.block_on(viewer.stop());
}

/// A run directory of `tasks × agents × attempts` results and its lock file.
fn write_run(run_dir: &std::path::Path, tasks: usize, agents: usize, attempts: usize) {
    let mut trials = Vec::new();
    for task in 0..tasks {
        for agent in 0..agents {
            for attempt in 1..=attempts {
                let id = format!("{:016x}", (task * 1000 + agent * 10 + attempt) as u64);
                let dir = format!("s/task-{task:04}__agent-{agent}__a{attempt}__{id}");
                let reward = if (task + agent + attempt) % 3 == 0 {
                    0.0
                } else {
                    1.0
                };
                write_result(&run_dir.join(&dir), task, agent, attempt, &id, reward);
                trials.push(LockedTrial {
                    id: id.repeat(4),
                    stage: "s".into(),
                    task: format!("task-{task:04}"),
                    agent: format!("agent-{agent}"),
                    model: None,
                    params: 0,
                    attempt: attempt as u32,
                    dir: dir.into(),
                });
            }
        }
    }
    LockFile {
        format: 1,
        helios_version: "bench".into(),
        pipeline: "big".into(),
        tasks: Vec::new(),
        builds: Vec::new(),
        params: vec![Default::default()],
        trials,
        sources: Vec::new(),
        shard: None,
    }
    .write(run_dir)
    .unwrap();
}

fn write_result(
    dir: &std::path::Path,
    task: usize,
    agent: usize,
    attempt: usize,
    id: &str,
    reward: f64,
) {
    std::fs::create_dir_all(dir).unwrap();
    let timings: Vec<serde_json::Value> = ["environment", "agent", "verifier", "collect", "teardown"]
        .iter()
        .map(|phase| serde_json::json!({"phase": phase, "started_at": "2026-11-21T13:39:33.191Z", "seconds": 0.5}))
        .collect();
    let result = serde_json::json!({
        "format": 1, "trial_id": id, "full_id": id.repeat(4),
        "task": format!("task-{task:04}"), "stage": "s", "agent": format!("agent-{agent}"),
        "model": null, "params": {}, "attempt": attempt, "status": "completed",
        "rewards": {"reward": reward}, "reward": reward, "error": null,
        "timings": timings,
        "agent_exit_code": 0, "verifier_exit_code": 0,
        "usage": {"input_tokens": 2455, "output_tokens": 220, "cached_tokens": 0},
        "cost_usd": 0.01, "image": "helios/task:1d8b299e57c4",
        "container": "0dc13f3a2cc9d81f137f92fb347274f32bebdaac1822cc7cda2034d15cf36073",
        "retried": [], "helios_version": "0.1.0"
    });
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_vec_pretty(&result).unwrap(),
    )
    .unwrap();
}
