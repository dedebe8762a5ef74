//! Benchmark: the engine's floor for a trivial trial against `helios apply` of the same
//! trials, at concurrency 1, 4 and 8.
//!
//! The floor drives the Docker engine through bollard with exactly the calls a trial needs
//! and nothing else: create and start the container (as helios makes it: an init process,
//! the same keep-alive command, the task's workdir), upload `/logs`'s directories with the
//! solution, exec the solution, upload the tests, exec them, download `/logs`, remove.
//! helios does the same trials (the oracle agent on tasks of a prebuilt image) with
//! everything else a run does: planning, the lock file, events, `result.json`, the summary.
//!
//! Run with `cargo bench --bench floor` (a Docker engine and `debian:bookworm-slim` needed:
//! `bash ../shared/docker-up.sh`). `HELIOS_FLOOR_TRIALS` sets the trials per round (default
//! 40), `HELIOS_FLOOR_ROUNDS` the rounds whose median is shown (default 3),
//! `HELIOS_FLOOR_CONCURRENCY` the levels (default `1,4,8`), `HELIOS_BIN` another
//! helios binary to measure (an earlier build, for a before-and-after). Prints each side's time
//! and their ratio; the figures are recorded in `docs/benchmarks.md`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use helios::env::tarball;

const IMAGE: &str = "debian:bookworm-slim";
const LABEL: &str = "helios-bench=floor";
/// The keep-alive command helios gives its containers (src/env/docker.rs).
const KEEP_ALIVE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";
const SOLVE: &str = "bash /solution/solve.sh > /logs/agent/oracle.txt 2>&1";
const TEST: &str = "bash /tests/test.sh > /logs/verifier/test-stdout.txt 2>&1";

fn main() {
    if !common::measuring() {
        // `cargo test --benches` only checks that it builds: it needs Docker and minutes.
        return;
    }
    let trials: usize = std::env::var("HELIOS_FLOOR_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let levels: Vec<usize> = std::env::var("HELIOS_FLOOR_CONCURRENCY")
        .unwrap_or_else(|_| "1,4,8".into())
        .split(',')
        .map(|v| v.trim().parse().expect("HELIOS_FLOOR_CONCURRENCY: numbers"))
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let tasks: Vec<PathBuf> = (0..trials).map(|i| write_task(scratch.path(), i)).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let docker = runtime.block_on(async {
        Docker::connect_with_local_defaults()
            .unwrap()
            .negotiate_version()
            .await
            .expect("a Docker engine (bash ../shared/docker-up.sh)")
    });

    let rounds: usize = std::env::var("HELIOS_FLOOR_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{trials} trivial trials a round (the oracle writes a file, the test checks it), image \
         {IMAGE}; medians of {rounds} rounds, floor and helios taking turns"
    );
    println!(
        "{:>11} | {:>22} | {:>22} | {:>5}",
        "concurrency", "floor (bollard)", "helios apply", "ratio"
    );
    for &concurrency in &levels {
        let (mut floor_times, mut helios_times) = (Vec::new(), Vec::new());
        let steps = Steps::default();
        for round in 0..rounds {
            let logs = scratch.path().join(format!("floor-{concurrency}-{round}"));
            let started = Instant::now();
            runtime.block_on(floor(&docker, &tasks, &logs, concurrency, &steps));
            floor_times.push(started.elapsed().as_secs_f64());
            let passed = tasks
                .iter()
                .filter(|t| reward_is_one(&logs.join(t.file_name().unwrap()).join("verifier")))
                .count();
            assert_eq!(passed, trials, "floor: {passed} of {trials} trials passed");
            // A task that names no CPUs counts as one against the machine's cores: give
            // the run as many as it runs trials at once, as the floor has.
            let cpus = concurrency.max(cores);
            helios_times.push(apply(scratch.path(), concurrency, cpus, round, trials));
        }
        let (floor_seconds, helios_seconds) = (median(floor_times), median(helios_times));
        println!(
            "{concurrency:>11} | {:>8.2} s ({:.3} s/trial) | {:>8.2} s ({:.3} s/trial) | {:>5.2}",
            floor_seconds,
            floor_seconds / trials as f64,
            helios_seconds,
            helios_seconds / trials as f64,
            helios_seconds / floor_seconds
        );
        println!("{:>11}   floor's calls (medians): {}", "", steps.medians());
    }
    let _ = std::process::Command::new(helios_bin())
        .args(["gc", "--label", LABEL])
        .output();
}

fn helios_bin() -> PathBuf {
    std::env::var_os("HELIOS_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_helios").into(), PathBuf::from)
}

/// Writes a task on the prebuilt image: the oracle writes `/app/out`, the test checks it.
fn write_task(root: &Path, i: usize) -> PathBuf {
    let dir = root.join("tasks").join(format!("t{i:04}"));
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::create_dir_all(dir.join("solution")).unwrap();
    std::fs::write(
        dir.join("task.toml"),
        format!("[environment]\ndocker_image = \"{IMAGE}\"\nworkdir = \"/app\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join("instruction.md"), "Write hello to /app/out.\n").unwrap();
    std::fs::write(dir.join("solution/solve.sh"), "echo hello > /app/out\n").unwrap();
    std::fs::write(
        dir.join("tests/test.sh"),
        "[ \"$(cat /app/out)\" = hello ] && echo 1 > /logs/verifier/reward.txt \
         || echo 0 > /logs/verifier/reward.txt\n",
    )
    .unwrap();
    dir
}

fn reward_is_one(verifier: &Path) -> bool {
    std::fs::read_to_string(verifier.join("reward.txt")).is_ok_and(|r| r.trim() == "1")
}

/// The floor: each trial's engine calls, `concurrency` trials at a time.
async fn floor(docker: &Docker, tasks: &[PathBuf], logs: &Path, concurrency: usize, steps: &Steps) {
    futures_util::stream::iter(tasks)
        .map(|task| floor_trial(docker, task, logs.join(task.file_name().unwrap()), steps))
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
}

/// How long each engine call of the floor's trials took.
#[derive(Default)]
struct Steps(std::sync::Mutex<Vec<(&'static str, f64)>>);

impl Steps {
    fn took(&self, step: &'static str, since: Instant) -> Instant {
        let now = Instant::now();
        let seconds = (now - since).as_secs_f64();
        self.0.lock().unwrap().push((step, seconds));
        now
    }

    /// Each step's median, in the order of a trial.
    fn medians(&self) -> String {
        let taken = self.0.lock().unwrap();
        let mut order: Vec<&str> = Vec::new();
        for (step, _) in taken.iter() {
            if !order.contains(step) {
                order.push(step);
            }
        }
        order
            .iter()
            .map(|step| {
                let times = taken.iter().filter(|(s, _)| s == step).map(|(_, t)| *t);
                format!("{step} {:.0} ms", median(times.collect()) * 1000.0)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn floor_trial(docker: &Docker, task: &Path, dest: PathBuf, steps: &Steps) {
    let at = Instant::now();
    let body = ContainerCreateBody {
        image: Some(IMAGE.into()),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        cmd: Some(vec![KEEP_ALIVE.into()]),
        working_dir: Some("/app".into()),
        labels: Some([("helios-bench".to_string(), "floor".to_string())].into()),
        host_config: Some(HostConfig {
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap()
        .id;
    let at = steps.took("create", at);
    docker.start_container(&id, None).await.unwrap();
    let at = steps.took("start", at);
    upload(docker, &id, first_upload(&task.join("solution"))).await;
    let at = steps.took("upload solution", at);
    exec(docker, &id, SOLVE).await;
    let at = steps.took("exec solve.sh", at);
    upload(
        docker,
        &id,
        tarball::pack_dir(&task.join("tests"), "tests").unwrap(),
    )
    .await;
    let at = steps.took("upload tests", at);
    exec(docker, &id, TEST).await;
    let at = steps.took("exec test.sh", at);
    let options = DownloadFromContainerOptionsBuilder::default()
        .path("/logs")
        .build();
    let chunks: Vec<bytes::Bytes> = docker
        .download_from_container(&id, Some(options))
        .try_collect()
        .await
        .unwrap();
    std::fs::create_dir_all(&dest).unwrap();
    tarball::unpack_stripped(chunks.concat().as_slice(), &dest, tarball::LOGS_CAP).unwrap();
    let at = steps.took("download /logs", at);
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    docker.remove_container(&id, Some(options)).await.unwrap();
    steps.took("remove", at);
}

/// `/logs/agent`, `/logs/verifier` and `/logs/artifacts` with the solution, in one archive.
fn first_upload(solution: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for dir in ["logs", "logs/agent", "logs/verifier", "logs/artifacts"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_cksum();
        builder
            .append_data(&mut header, dir, std::io::empty())
            .unwrap();
    }
    builder.append_dir_all("solution", solution).unwrap();
    builder.into_inner().unwrap()
}

async fn upload(docker: &Docker, id: &str, archive: Vec<u8>) {
    let options = UploadToContainerOptionsBuilder::default().path("/").build();
    docker
        .upload_to_container(id, Some(options), bollard::body_full(archive.into()))
        .await
        .unwrap();
}

async fn exec(docker: &Docker, id: &str, command: &str) {
    let options = CreateExecOptions {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(vec!["bash".to_string(), "-c".into(), command.into()]),
        working_dir: Some("/app".to_string()),
        ..Default::default()
    };
    let exec = docker.create_exec(id, options).await.unwrap().id;
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec, None).await.unwrap()
    {
        while output.next().await.is_some() {}
    }
    let inspected = docker.inspect_exec(&exec).await.unwrap();
    assert_eq!(inspected.exit_code, Some(0), "`{command}` failed");
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `helios apply` of the same trials at `concurrency` with `cpus`; its time, all rewards
/// checked.
fn apply(root: &Path, concurrency: usize, cpus: usize, round: usize, trials: usize) -> f64 {
    let name = format!("apply-{concurrency}-{round}");
    let pipeline = root.join(format!("{name}.toml"));
    std::fs::write(
        &pipeline,
        format!(
            "[pipeline]\nname = \"{name}\"\noutput_dir = \"runs\"\nconcurrency = {concurrency}\n\
             [[tasks]]\npath = \"tasks/*\"\n[[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let output = std::process::Command::new(helios_bin())
        .args(["apply", "--label", LABEL, "--cpus", &cpus.to_string()])
        .arg(&pipeline)
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "helios apply failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stage = root.join("runs").join(&name).join("s");
    let passed = std::fs::read_dir(&stage)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|trial| {
            std::fs::read_to_string(trial.path().join("result.json"))
                .is_ok_and(|r| r.contains("\"reward\": 1.0"))
        })
        .count();
    assert_eq!(passed, trials, "helios: {passed} of {trials} trials passed");
    seconds
}
