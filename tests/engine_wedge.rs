//! A wedged Docker engine mid-run (issue 27): the daemon stopped with `kill -STOP`, so it
//! accepts connections and answers nothing. helios says so within the threshold
//! (`HELIOS_ENGINE_STALL_SECS`, 2 s here instead of 30), a Ctrl-C ends it within 5 s
//! saying what it could not clean up, and once the daemon answers again the next apply
//! reaps what was left and finishes every trial.
//!
//! It stops this machine's `dockerd` for a few seconds, so it runs only when asked:
//! `HELIOS_TEST_DOCKERD_WEDGE=1 cargo test --test engine_wedge` (as root; `.ci/run` runs
//! it so). It is a binary of its own so that no other test's calls wait on the daemon.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::project::{Project, docker_ids, text};
use common::wait_until;

const PASS: &str = "echo 1 > /logs/verifier/reward.txt\n";

/// The threshold the test sets, in seconds.
const STALL_SECS: u64 = 2;

/// Stops `dockerd` with SIGSTOP, and continues it when dropped: whatever the test does
/// (a failed assertion, a panic), the machine's engine answers again after it.
struct Wedge {
    pid: rustix::process::Pid,
}

impl Wedge {
    fn stop() -> Wedge {
        let pid = dockerd_pid().expect("a dockerd runs");
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
        Wedge { pid }
    }
}

impl Drop for Wedge {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(self.pid, rustix::process::Signal::CONT);
    }
}

/// A helios apply, killed and waited for if the test ends before it does.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_wedged_engine_is_said_a_ctrl_c_ends_helios_and_the_next_apply_finishes() {
    if std::env::var_os("HELIOS_TEST_DOCKERD_WEDGE").is_none() {
        eprintln!("not run: set HELIOS_TEST_DOCKERD_WEDGE=1 to let it stop dockerd");
        return;
    }
    let project = Project::new("dockerd-wedge");
    // Two: on a 2-CPU machine two trials run at once (a trial and a build take a CPU each).
    for name in ["a", "b"] {
        project.task(name, "", "sleep 30\necho done > /app/out\n", PASS);
    }
    project.pipeline("p", "\"oracle\"");
    let mut child = Reaped(
        project
            .command("p")
            .env("HELIOS_ENGINE_STALL_SECS", STALL_SECS.to_string())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    // Lines as they come, read on a thread of their own so the test can wait with limits.
    let (lines, heard) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let wait_for = |what: &str, limit: Duration, seen: &mut Vec<String>| -> Option<Duration> {
        let start = Instant::now();
        while let Some(left) = limit.checked_sub(start.elapsed()) {
            match heard.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if line.contains(what) {
                        return Some(start.elapsed());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
        None
    };
    // Each task builds an image of its own first, one at a time.
    for _ in 0..2 {
        assert!(
            wait_for("started s/", Duration::from_secs(300), &mut seen).is_some(),
            "{seen:?}"
        );
    }
    let running = || docker_ids("ps", &project.label).len() == 2;
    assert!(wait_until(Duration::from_secs(60), running), "{seen:?}");

    let wedge = Wedge::stop();
    // The watch pings every threshold at most, and says so a threshold after its ping.
    let said = wait_for(
        "the Docker engine has not answered for",
        Duration::from_secs(2 * STALL_SECS + 3),
        &mut seen,
    );
    println!("wedged; helios said so after {said:?}");
    assert!(said.is_some(), "helios said nothing of the wedge: {seen:?}");
    let line = seen.last().unwrap();
    assert!(line.contains("trial(s) waiting"), "{line}");

    let interrupted = Instant::now();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let mut status = None;
    while interrupted.elapsed() < Duration::from_secs(15) {
        if let Some(exited) = child.try_wait().unwrap() {
            status = Some(exited);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = interrupted.elapsed();
    println!("helios ended {:.2} s after Ctrl-C", took.as_secs_f64());
    drop(wedge);
    while let Ok(line) = heard.recv_timeout(Duration::from_secs(2)) {
        seen.push(line);
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("helios still ran 15 s after Ctrl-C: {seen:?}")
    });
    assert!(took < Duration::from_secs(5), "{took:?}: {seen:?}");
    assert_eq!(status.code(), Some(130), "interrupted: {seen:?}");
    assert!(
        seen.iter().any(|l| l.contains("could not be removed")
            || l.contains("did not answer while making")
            || l.contains("did not answer in time to clean up")),
        "it says what it could not clean up: {seen:?}"
    );

    let answers = || {
        Command::new("docker")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        wait_until(Duration::from_secs(60), answers),
        "dockerd is back"
    );
    let out = project.apply("p");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = project.results("p");
    assert_eq!(results.len(), 2, "{results:?}");
    for (trial, result) in &results {
        assert_eq!(result["reward"], 1.0, "{trial}: {result}");
    }
    project.assert_clean();
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
