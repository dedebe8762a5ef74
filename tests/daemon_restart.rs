//! The Docker daemon restarted in the middle of a run: the trials in flight end as
//! infrastructure errors, are retried with backoff, and the run completes.
//!
//! It stops and starts this machine's `dockerd`, so it runs only when asked:
//! `HELIOS_TEST_DOCKERD_RESTART=1 cargo test --test daemon_restart` (as root, with a
//! `dockerd` started by hand as `../shared/docker-up.sh` does; `.ci/run` runs it so). It
//! is a binary of its own so that no other test's containers are running meanwhile.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::project::{Project, docker_ids, text};
use common::wait_until;

const PASS: &str = "echo 1 > /logs/verifier/reward.txt\n";

#[test]
fn a_docker_daemon_restart_mid_run_is_retried_and_the_run_completes() {
    if std::env::var_os("HELIOS_TEST_DOCKERD_RESTART").is_none() {
        eprintln!("not run: set HELIOS_TEST_DOCKERD_RESTART=1 to let it restart dockerd");
        return;
    }
    let project = Project::new("dockerd-restart");
    for name in ["a", "b", "c"] {
        project.task(name, "", "sleep 3\necho done > /app/out\n", PASS);
    }
    project.pipeline("p", "\"oracle\"");
    let mut child = Command::new(common::project::BINARY)
        .args(["apply", "--retries", "8", "--label", &project.label])
        .arg(project.path("p.toml"))
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("started s/") {
            break;
        }
    }
    let running = || !docker_ids("ps", &project.label).is_empty();
    assert!(wait_until(Duration::from_secs(60), running), "{seen:?}");

    let restarted = Instant::now();
    restart_dockerd();
    println!(
        "dockerd stopped and answering again after {:.1} s",
        restarted.elapsed().as_secs_f64()
    );

    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen:?} {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("retrying")),
        "a trial in flight was retried: {rest:?}"
    );
    let results = project.results("p");
    assert_eq!(results.len(), 3);
    for (trial, result) in &results {
        assert_eq!(result["reward"], 1.0, "{trial}: {result}");
    }
    let retried: Vec<&str> = results
        .values()
        .flat_map(|r| r["retried"].as_array().unwrap())
        .map(|r| r["error"]["kind"].as_str().unwrap())
        .collect();
    assert!(!retried.is_empty(), "{results:?}");
    assert!(
        retried
            .iter()
            .all(|k| matches!(*k, "provider_error" | "provider_unreachable" | "io_error")),
        "{retried:?}"
    );
    // Containers that could not be removed while the daemon was down are left stopped and
    // labelled, and recorded; gc removes them.
    let out = Command::new(common::project::BINARY)
        .args(["gc", "--label", &project.label])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    project.assert_clean();
}

/// Stops `dockerd` (its containers stop with it) and starts it again as
/// `../shared/docker-up.sh` does, then waits until it answers.
fn restart_dockerd() {
    let pid = dockerd_pid().expect("a dockerd runs");
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || dockerd_pid().is_none()),
        "dockerd did not stop"
    );
    let _ = std::fs::remove_file("/var/run/docker.pid");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/dockerd.log")
        .unwrap();
    // The daemon outlives the test on purpose: it is this machine's engine again.
    #[allow(clippy::zombie_processes)]
    let _daemon = Command::new("setsid")
        .arg("dockerd")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let answers = || {
        Command::new("docker")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        wait_until(Duration::from_secs(120), answers),
        "dockerd did not come back"
    );
}

fn dockerd_pid() -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "dockerd").then_some(pid)
        })
}
