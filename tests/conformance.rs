//! The provider conformance suite: one set of checks of what the trial lifecycle relies on
//! from an [`Environment`] (a sandbox made, ready and removed without a trace; commands
//! with their output, exit code and deadline; uploads and downloads under the collection
//! cap; a cancel before the sandbox exists; freezing for a separate verifier) run
//! unchanged against every provider: the in-memory fake (fast tier), the local Docker
//! engine and Daytona through its local fake (`common::daytona`, docker tier). A provider
//! added later gets a [`Subject`] constructor and one `conformance!` line.
//!
//! The fake answers commands with a script, so the suite keeps to a few shell forms that
//! [`fake_shell`] plays the way bash does: `echo TEXT`, `echo TEXT > FILE`, `exit N`,
//! `sleep N`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use helios::env::fake::{FakeCall, FakeEngine, FakeReply};
use helios::env::{
    DaytonaSettings, Engine, EnvError, EnvSpec, ExecSpec, Instance, OpenOptions, Provider,
    ProviderSettings,
};
use tokio_util::sync::CancellationToken;

/// The image every provider starts from: on this machine for Docker, a one-line Dockerfile
/// for Daytona's declarative build.
const IMAGE: &str = "debian:bookworm-slim";

/// One provider under test, with what tells whether its sandboxes are all gone.
struct Subject {
    engine: Engine,
    spec: EnvSpec,
    /// Sandboxes of this subject that still exist.
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

/// What bash would do with the suite's commands, for the fake.
fn fake_shell(call: &FakeCall) -> FakeReply {
    let command = call.command.trim();
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
            (0..live.live())
                .map(|i| format!("fake sandbox {i}"))
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
    let filter = format!("helios.conformance={label}");
    Subject {
        engine,
        spec: spec(&label),
        left: Box::new(move || common::project::docker_ids("ps", &filter)),
        _keep: None,
    }
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
        let instance = self
            .engine
            .create(&self.spec, &CancellationToken::new())
            .await
            .expect("the sandbox is made");
        instance.ready().await.expect("the sandbox gets ready");
        instance
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
        (out.exit_code, out.stdout.as_str(), out.timed_out),
        (Some(0), "conformance\n", false)
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
    let sandbox = subject.sandbox().await;
    sandbox
        .upload_archive(archive(&[("/conformance/kept.txt", b"kept\n")]))
        .await
        .unwrap();
    match sandbox.freeze(&subject.spec.labels).await {
        Err(EnvError::Unsupported(_)) => sandbox.remove().await.unwrap(),
        Err(other) => panic!("freezing failed: {other}"),
        Ok(image) => {
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
            fresh.remove().await.unwrap();
            subject.engine.remove_image(&image).await.unwrap();
        }
    }
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
        }
    };
}

conformance!(fake, |name| async move { super::fake(name) });
conformance!(docker, super::docker);
conformance!(daytona, super::daytona);
