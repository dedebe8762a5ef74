//! The provider conformance suite: one set of checks of what the trial lifecycle relies on
//! from an [`Environment`] (a sandbox made, ready and removed without a trace; commands
//! with their output, exit code, deadline and output cap; uploads and downloads under the
//! collection cap; a cancel before the sandbox exists; a killed run's sandboxes reaped by
//! their labels; CPU and memory limits; network modes; freezing for a separate verifier;
//! Compose services) run unchanged against every provider: the in-memory fake (fast tier),
//! the local Docker engine and Daytona through its local fake (`common::daytona`, docker
//! tier). What a provider cannot do it says through its capabilities and refuses with
//! [`EnvError::Unsupported`]; the check asserts that instead. A provider added later gets a
//! [`Subject`] constructor and one `conformance!` line.
//!
//! The fake answers commands with a script, so the suite keeps to a few shell forms that
//! [`fake_shell`] plays the way bash (and the kernel under it) does: `echo TEXT`,
//! `echo TEXT > FILE`, `exit N`, `sleep N`, `yes | head -c N`, `ls /sys/class/net` and
//! [`READ_LIMITS`].

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use helios::env::fake::{FakeCall, FakeEngine, FakeReply};
use helios::env::{
    Allowlist, DaytonaSettings, Engine, EnvError, EnvSpec, ExecSpec, HOST_LABEL, Instance,
    NetworkPlan, OUTPUT_CAP, OpenOptions, PID_LABEL, Provider, ProviderSettings, RUN_LABEL,
    ServiceSpec, ServicesSpec,
};
use tokio_util::sync::CancellationToken;

/// The image every provider starts from: on this machine for Docker, a one-line Dockerfile
/// for Daytona's declarative build.
const IMAGE: &str = "debian:bookworm-slim";

/// One provider under test, with what tells whether its sandboxes are all gone.
struct Subject {
    engine: Engine,
    spec: EnvSpec,
    /// Sandboxes of this subject that still exist (and images it froze, where it can).
    left: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    /// What must live as long as the subject (Daytona's fake server).
    _keep: Option<common::daytona::FakeDaytona>,
}

fn spec(label: &str) -> EnvSpec {
    EnvSpec {
        image: IMAGE.into(),
        dockerfile: Some(format!("FROM {IMAGE}\n")),
        labels: BTreeMap::from([
            ("helios.managed".to_string(), "true".to_string()),
            ("helios.conformance".to_string(), label.to_string()),
        ]),
        ready_timeout: Duration::from_secs(300),
        ..EnvSpec::default()
    }
}

/// A label of this test alone, so that parallel tests see only their own sandboxes.
fn unique(name: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    format!("{name}-{}-{}", std::process::id(), now.unwrap().as_nanos())
}

/// Prints the sandbox's CPU quota and period and its memory limit, from cgroup v2 or v1:
/// either way three words (`100000 100000 1073741824` for one CPU and 1 GiB).
const READ_LIMITS: &str = "cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max 2>/dev/null \
    || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us \
    /sys/fs/cgroup/memory/memory.limit_in_bytes";

/// What bash would do with the suite's commands, for the fake.
fn fake_shell(call: &FakeCall) -> FakeReply {
    let command = call.command.trim();
    let printing = |stdout: String| FakeReply {
        stdout,
        ..FakeReply::ok()
    };
    // What the kernel shows of the sandbox's spec, as cgroup v2 does.
    if command == READ_LIMITS {
        let quota = call
            .spec
            .cpus
            .map_or("max".to_string(), |c| ((c * 100_000.0) as u64).to_string());
        let memory = call
            .spec
            .memory_mb
            .map_or("max".to_string(), |mb| (mb << 20).to_string());
        return printing(format!("{quota} 100000\n{memory}\n"));
    }
    if command == "ls /sys/class/net" {
        let interfaces = if call.spec.no_network {
            "lo\n"
        } else {
            "eth0\nlo\n"
        };
        return printing(interfaces.to_string());
    }
    if let Some(bytes) = command.strip_prefix("yes | head -c ") {
        let bytes: usize = bytes.trim().parse().expect("yes | head -c N");
        return printing("y\n".repeat(bytes.div_ceil(2))[..bytes].to_string());
    }
    if let Some(code) = command.strip_prefix("exit ") {
        return FakeReply::ok().exiting(code.trim().parse().expect("exit N"));
    }
    if let Some(seconds) = command.strip_prefix("sleep ") {
        let seconds: u64 = seconds.trim().parse().expect("sleep N");
        return FakeReply::ok().taking(Duration::from_secs(seconds));
    }
    if let Some(rest) = command.strip_prefix("echo ") {
        return match rest.split_once(" > ") {
            Some((text, path)) => FakeReply::ok().writing(path.trim(), &format!("{text}\n")),
            None => FakeReply {
                stdout: format!("{rest}\n"),
                ..FakeReply::ok()
            },
        };
    }
    panic!("the conformance suite's fake shell has no `{command}`")
}

fn fake(name: &str) -> Subject {
    let engine = FakeEngine::new(fake_shell);
    let live = engine.clone();
    Subject {
        engine: Engine::new(engine),
        spec: spec(&unique(name)),
        left: Box::new(move || {
            let record = live.record();
            let images = record.frozen - record.images_removed;
            (0..live.live())
                .map(|i| format!("fake sandbox {i}"))
                .chain((0..images).map(|i| format!("fake frozen image {i}")))
                .collect()
        }),
        _keep: None,
    }
}

async fn docker(name: &str) -> Subject {
    let label = unique(name);
    let engine = Engine::open(Provider::Docker, &OpenOptions::default(), &|_| None)
        .await
        .expect("the Docker engine answers (run `bash ../shared/docker-up.sh`)");
    Subject {
        engine,
        spec: spec(&label),
        left: Box::new(move || docker_left(&label)),
        _keep: None,
    }
}

/// Containers, images, networks and volumes of the engine carrying the test's label.
fn docker_left(label: &str) -> Vec<String> {
    let filter = format!("label=helios.conformance={label}");
    let mut left = Vec::new();
    for kind in [
        &["ps", "-a"][..],
        &["images"],
        &["network", "ls"],
        &["volume", "ls"],
    ] {
        let out = std::process::Command::new("docker")
            .args(kind)
            .args(["-q", "--filter", &filter])
            .output()
            .expect("the docker CLI runs");
        assert!(out.status.success(), "docker {kind:?} failed");
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|id| format!("{} {id}", kind.join(" "))),
        );
    }
    left
}

async fn daytona(name: &str) -> Subject {
    let server = common::daytona::FakeDaytona::start(common::daytona::Faults::default()).await;
    let url = server.url.clone();
    let options = OpenOptions {
        settings: ProviderSettings {
            daytona: DaytonaSettings {
                poll_interval_sec: Some(0.05),
                ..DaytonaSettings::default()
            },
        },
        ..OpenOptions::default()
    };
    let host = move |name: &str| match name {
        "DAYTONA_API_URL" => Some(url.clone()),
        "DAYTONA_API_KEY" => Some(common::daytona::KEY.to_string()),
        _ => None,
    };
    let engine = Engine::open(Provider::Daytona, &options, &host)
        .await
        .expect("Daytona's fake opens");
    let records = server.undeleted_handle();
    Subject {
        engine,
        spec: spec(&unique(name)),
        left: Box::new(records),
        _keep: Some(server),
    }
}

impl Subject {
    async fn sandbox(&self) -> Instance {
        self.sandbox_of(&self.spec).await
    }

    /// A sandbox of `spec` (the subject's, changed), ready.
    async fn sandbox_of(&self, spec: &EnvSpec) -> Instance {
        let instance = self
            .engine
            .create(spec, &CancellationToken::new())
            .await
            .expect("the sandbox is made");
        instance.ready().await.expect("the sandbox gets ready");
        instance
    }

    /// What creating `spec` gives, for a provider expected to refuse it: its error.
    async fn refusal(&self, spec: &EnvSpec) -> EnvError {
        match self.engine.create(spec, &CancellationToken::new()).await {
            Ok(instance) => {
                let id = instance.id().to_string();
                instance.remove().await.unwrap();
                panic!("sandbox `{id}` was made, but the provider says it cannot")
            }
            Err(error) => error,
        }
    }

    fn nothing_left(&self) {
        assert_eq!((self.left)(), Vec::<String>::new(), "sandboxes left behind");
    }
}

fn command(command: &str) -> ExecSpec {
    ExecSpec {
        command: command.into(),
        deadline: Some(Duration::from_secs(60)),
        ..ExecSpec::default()
    }
}

/// A tar archive of `files` (absolute paths), as the runner uploads task files.
fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path.trim_start_matches('/'), *content)
            .unwrap();
    }
    builder.into_inner().unwrap()
}

async fn commands_give_their_output_and_exit_code(subject: Subject) {
    let sandbox = subject.sandbox().await;
    let out = sandbox.exec(&command("echo conformance")).await.unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.timed_out, out.cut),
        (Some(0), "conformance\n", false, 0)
    );
    let out = sandbox.exec(&command("exit 3")).await.unwrap();
    assert_eq!(out.exit_code, Some(3));
    sandbox.remove().await.unwrap();
    subject.nothing_left();
}

async fn a_command_past_its_deadline_is_killed_and_the_sandbox_goes_on(subject: Subject) {
    let sandbox = subject.sandbox().await;
    let started = std::time::Instant::now();
    let out = sandbox
        .exec(&ExecSpec {
            deadline: Some(Duration::from_secs(2)),
            ..command("sleep 600")
        })
        .await
        .unwrap();
    assert!(out.timed_out, "{out:?}");
    // Killed at the deadline, not when the command would have ended.
    assert!(started.elapsed() < Duration::from_secs(300));
    let out = sandbox.exec(&command("echo after")).await.unwrap();
    assert_eq!(out.stdout, "after\n");
    sandbox.remove().await.unwrap();
    subject.nothing_left();
}

async fn uploads_and_written_files_come_back_and_the_cap_cuts_the_rest(subject: Subject) {
    let sandbox = subject.sandbox().await;
    let big = vec![b'x'; 10_000];
    sandbox
        .upload_archive(archive(&[
            ("/conformance/small.txt", b"small\n"),
            ("/conformance/big.txt", &big),
        ]))
        .await
        .unwrap();
    let out = sandbox
        .exec(&command("echo written > /conformance/written.txt"))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));

    let all = tempfile::tempdir().unwrap();
    let stats = sandbox
        .download_dir("/conformance", all.path(), 1 << 20)
        .await
        .unwrap();
    let read = |name: &str| std::fs::read(all.path().join(name)).unwrap();
    assert_eq!(read("small.txt"), b"small\n");
    assert_eq!(read("big.txt"), big);
    assert_eq!(read("written.txt"), b"written\n");
    assert_eq!((stats.files, stats.cut_files), (3, 0));

    let capped = tempfile::tempdir().unwrap();
    let stats = sandbox
        .download_dir("/conformance", capped.path(), 1_000)
        .await
        .unwrap();
    assert!(stats.bytes <= 1_000, "{stats:?}");
    assert!(
        stats.cut_files >= 1 && stats.cut_bytes >= 9_000,
        "{stats:?}"
    );
    sandbox.remove().await.unwrap();
    subject.nothing_left();
}

async fn a_create_cancelled_before_it_starts_is_cancelled_and_leaves_nothing(subject: Subject) {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let made = subject.engine.create(&subject.spec, &cancel).await;
    assert!(
        matches!(made, Err(EnvError::Cancelled)),
        "{:?}",
        made.map(|i| i.id().to_string())
    );
    subject.nothing_left();
}

async fn a_frozen_sandbox_gives_a_fresh_one_with_its_files_or_says_it_cannot(subject: Subject) {
    let freezes = subject.engine.capabilities().freezes;
    let sandbox = subject.sandbox().await;
    sandbox
        .upload_archive(archive(&[("/conformance/kept.txt", b"kept\n")]))
        .await
        .unwrap();
    let out = sandbox
        .exec(&command("echo written > /conformance/written.txt"))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    match sandbox.freeze(&subject.spec.labels).await {
        Err(EnvError::Unsupported(_)) => {
            assert!(!freezes, "the provider says it freezes, but refused");
            sandbox.remove().await.unwrap();
        }
        Err(other) => panic!("freezing failed: {other}"),
        Ok(image) => {
            assert!(freezes, "the provider froze a sandbox it says it cannot");
            sandbox.remove().await.unwrap();
            let fresh = subject
                .engine
                .create(
                    &EnvSpec {
                        image: image.clone(),
                        dockerfile: None,
                        ..subject.spec.clone()
                    },
                    &CancellationToken::new(),
                )
                .await
                .unwrap();
            fresh.ready().await.unwrap();
            let dest = tempfile::tempdir().unwrap();
            fresh
                .download_dir("/conformance", dest.path(), 1 << 20)
                .await
                .unwrap();
            assert_eq!(
                std::fs::read(dest.path().join("kept.txt")).unwrap(),
                b"kept\n"
            );
            // What the agent's commands wrote is there too: the verifier judges it.
            assert_eq!(
                std::fs::read(dest.path().join("written.txt")).unwrap(),
                b"written\n"
            );
            fresh.remove().await.unwrap();
            subject.engine.remove_image(&image).await.unwrap();
        }
    }
    subject.nothing_left();
}

/// The pid of a process of this machine that has ended: a run killed.
fn dead_pid() -> String {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid.to_string()
}

/// The labels a trial's sandbox carries (see `Labels::container`), of a run whose process
/// is `pid` on this machine.
fn run_labels(spec: &EnvSpec, pid: &str) -> EnvSpec {
    let mut spec = spec.clone();
    spec.labels.extend([
        (RUN_LABEL.to_string(), format!("conformance.{pid}.0")),
        (PID_LABEL.to_string(), pid.to_string()),
        (HOST_LABEL.to_string(), helios::env::hostname()),
    ]);
    spec
}

async fn a_killed_runs_sandbox_is_found_by_its_labels_and_reaped_and_a_live_runs_kept(
    subject: Subject,
) {
    let alive = subject
        .sandbox_of(&run_labels(&subject.spec, &std::process::id().to_string()))
        .await;
    // Made, then forgotten: its run was killed before it could remove it.
    let killed = subject
        .sandbox_of(&run_labels(&subject.spec, &dead_pid()))
        .await;
    let killed_id = killed.id().to_string();
    drop(killed);

    // Not a count of what this reap removed: on a shared Docker engine any apply starting
    // meanwhile reaps the killed run too, and what it removed is not this call's.
    subject.engine.reap_dead_runs().await.unwrap();
    assert_eq!(
        (subject.left)().len(),
        1,
        "the killed run's `{killed_id}` is reaped, the live run's `{}` kept",
        alive.id()
    );
    let out = alive.exec(&command("echo alive")).await.unwrap();
    assert_eq!(out.stdout, "alive\n", "the live run's sandbox was kept");
    alive.remove().await.unwrap();
    subject.nothing_left();
}

async fn a_sandbox_gets_the_cpus_and_memory_its_spec_asks_for(subject: Subject) {
    // Whole CPUs and GiB, which every provider can give exactly.
    let sandbox = subject
        .sandbox_of(&EnvSpec {
            cpus: Some(1.0),
            memory_mb: Some(1024),
            ..subject.spec.clone()
        })
        .await;
    let out = sandbox.exec(&command(READ_LIMITS)).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words, ["100000", "100000", "1073741824"], "{out:?}");
    sandbox.remove().await.unwrap();
    subject.nothing_left();
}

async fn output_past_the_cap_is_cut_at_the_cap_and_says_how_much(subject: Subject) {
    let sandbox = subject.sandbox().await;
    let bytes = OUTPUT_CAP + 100_000;
    let out = sandbox
        .exec(&command(&format!("yes | head -c {bytes}")))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(
        (out.stdout.len(), out.cut),
        (OUTPUT_CAP, 100_000),
        "cut at the cap, and the rest counted"
    );
    assert!(out.stdout.starts_with("y\ny\n"));
    sandbox.remove().await.unwrap();
    subject.nothing_left();
}

/// The network interfaces a sandbox has, by name.
async fn interfaces(sandbox: &Instance) -> Vec<String> {
    let out = sandbox.exec(&command("ls /sys/class/net")).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    out.stdout.split_whitespace().map(str::to_string).collect()
}

/// Only `lo` among `interfaces`: nothing outside can be reached.
fn loopback_only(interfaces: &[String]) -> bool {
    interfaces == ["lo"]
}

async fn no_network_has_loopback_only_and_other_modes_are_kept_or_refused(subject: Subject) {
    let can = subject.engine.capabilities();
    let public = subject
        .sandbox_of(&EnvSpec {
            switches_network: can.switches_network,
            ..subject.spec.clone()
        })
        .await;
    let seen = interfaces(&public).await;
    assert!(
        seen.contains(&"lo".to_string()) && !loopback_only(&seen),
        "{seen:?}"
    );

    let cut_off = NetworkPlan {
        public: false,
        isolated: None,
        allowlist: None,
        gateway: None,
    };
    match public.set_network(&cut_off).await {
        Ok(()) => {
            assert!(can.switches_network, "switched a network it says it cannot");
            let seen = interfaces(&public).await;
            assert!(loopback_only(&seen), "no-network phase: {seen:?}");
            public
                .set_network(&NetworkPlan {
                    public: true,
                    ..cut_off
                })
                .await
                .unwrap();
            let seen = interfaces(&public).await;
            assert!(!loopback_only(&seen), "public phase again: {seen:?}");
        }
        Err(EnvError::Unsupported(_)) => assert!(!can.switches_network),
        Err(other) => panic!("switching the network failed: {other}"),
    }
    public.remove().await.unwrap();

    let none = subject
        .sandbox_of(&EnvSpec {
            no_network: true,
            ..subject.spec.clone()
        })
        .await;
    let seen = interfaces(&none).await;
    assert!(loopback_only(&seen), "no-network: {seen:?}");
    none.remove().await.unwrap();

    // An allowlist is enforced from the start or the sandbox is not made. Enforcing needs
    // Docker's guard image (a build): `tests/network_policy.rs` checks it there.
    if !can.allowlist {
        let refused = subject
            .refusal(&EnvSpec {
                allowlist: Some(Allowlist::default()),
                ..subject.spec.clone()
            })
            .await;
        assert!(matches!(refused, EnvError::Unsupported(_)), "{refused}");
    }
    subject.nothing_left();
}

async fn a_compose_environment_reaches_its_sidecar_by_name_or_is_refused(subject: Subject) {
    let service = |name: &str| ServiceSpec {
        name: name.to_string(),
        image: IMAGE.to_string(),
        ..ServiceSpec::default()
    };
    let spec = EnvSpec {
        dockerfile: None,
        services: Some(std::sync::Arc::new(ServicesSpec {
            project: unique("compose"),
            main: service(helios::env::MAIN_SERVICE),
            sidecars: vec![ServiceSpec {
                command: Some(vec!["sleep".into(), "infinity".into()]),
                init: true,
                ..service("sidecar")
            }],
            volumes: Vec::new(),
            deadline: Duration::from_secs(120),
        })),
        ..subject.spec.clone()
    };
    if !subject.engine.capabilities().compose {
        let refused = subject.refusal(&spec).await;
        assert!(matches!(refused, EnvError::Unsupported(_)), "{refused}");
        subject.nothing_left();
        return;
    }
    let sandbox = subject.sandbox_of(&spec).await;
    let out = sandbox
        .exec(&command("getent hosts sidecar"))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "main resolves `sidecar`: {out:?}");
    let sidecar = sandbox.service(Some("sidecar")).unwrap();
    let out = sidecar.exec(&command("getent hosts main")).await.unwrap();
    assert_eq!(
        out.exit_code,
        Some(0),
        "the sidecar resolves `main`: {out:?}"
    );
    sandbox.remove().await.unwrap();
    subject.nothing_left();
}

/// The suite, as tests of one provider: `$subject` makes a [`Subject`] from a test's name.
macro_rules! conformance {
    ($provider:ident, $subject:expr) => {
        mod $provider {

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn commands_give_their_output_and_exit_code() {
                super::commands_give_their_output_and_exit_code($subject("output").await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_command_past_its_deadline_is_killed_and_the_sandbox_goes_on() {
                super::a_command_past_its_deadline_is_killed_and_the_sandbox_goes_on(
                    $subject("deadline").await,
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn uploads_and_written_files_come_back_and_the_cap_cuts_the_rest() {
                super::uploads_and_written_files_come_back_and_the_cap_cuts_the_rest(
                    $subject("files").await,
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_create_cancelled_before_it_starts_is_cancelled_and_leaves_nothing() {
                super::a_create_cancelled_before_it_starts_is_cancelled_and_leaves_nothing(
                    $subject("cancel").await,
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_frozen_sandbox_gives_a_fresh_one_with_its_files_or_says_it_cannot() {
                super::a_frozen_sandbox_gives_a_fresh_one_with_its_files_or_says_it_cannot(
                    $subject("freeze").await,
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_killed_runs_sandbox_is_found_by_its_labels_and_reaped_and_a_live_runs_kept()
            {
                super::a_killed_runs_sandbox_is_found_by_its_labels_and_reaped_and_a_live_runs_kept(
                    $subject("reap").await,
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_sandbox_gets_the_cpus_and_memory_its_spec_asks_for() {
                super::a_sandbox_gets_the_cpus_and_memory_its_spec_asks_for(
                    $subject("limits").await,
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn output_past_the_cap_is_cut_at_the_cap_and_says_how_much() {
                super::output_past_the_cap_is_cut_at_the_cap_and_says_how_much(
                    $subject("output-cap").await,
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_network_has_loopback_only_and_other_modes_are_kept_or_refused() {
                super::no_network_has_loopback_only_and_other_modes_are_kept_or_refused(
                    $subject("network").await,
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_compose_environment_reaches_its_sidecar_by_name_or_is_refused() {
                super::a_compose_environment_reaches_its_sidecar_by_name_or_is_refused(
                    $subject("compose").await,
                )
                .await
            }
        }
    };
}

conformance!(fake, |name| async move { super::fake(name) });
conformance!(docker, super::docker);
conformance!(daytona, super::daytona);
