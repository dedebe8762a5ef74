//! An in-memory environment for tests of everything above `env`: sandboxes are maps of
//! files, commands are answered by a script the test gives, and time passes on tokio's
//! clock (so a paused clock makes a whole run instant and deterministic). It records what
//! was asked of it, so a test can check bounds, retries and clean-up.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use super::registry::Capabilities;
use super::removal::{BUSY_PATIENCE, Removal, remove_idempotently};
use super::{
    BuildSpec, Collected, EnvError, EnvSpec, Environment, ExecOutput, ExecSpec, HOST_LABEL,
    Instance, OUTPUT_CAP, PID_LABEL, Provider, Sandbox, tarball,
};

/// A command a fake sandbox was asked to run, as its script sees it.
#[derive(Debug, Clone)]
pub struct FakeCall {
    /// The sandbox's id (`fake-1`, `fake-2`, … in order of creation).
    pub sandbox: String,
    pub command: String,
    pub env: BTreeMap<String, String>,
    /// The image the sandbox was made from.
    pub image: String,
    /// The spec the sandbox was made from, for a script that plays what its kernel would
    /// show (its CPU and memory limits, its network interfaces).
    pub spec: Arc<EnvSpec>,
}

/// What a fake command does.
#[derive(Debug, Clone, Default)]
pub struct FakeReply {
    /// How long it runs (on tokio's clock); past the call's deadline it is killed.
    pub takes: Duration,
    pub exit_code: i64,
    pub stdout: String,
    /// Files it writes in the sandbox (absolute paths), once it has run.
    pub writes: Vec<(String, String)>,
    /// The environment fails instead (the call never answers).
    pub fails: Option<EnvError>,
}

impl FakeReply {
    /// Exits 0 at once.
    pub fn ok() -> FakeReply {
        FakeReply::default()
    }

    pub fn taking(mut self, takes: Duration) -> FakeReply {
        self.takes = takes;
        self
    }

    pub fn writing(mut self, path: &str, content: &str) -> FakeReply {
        self.writes.push((path.to_string(), content.to_string()));
        self
    }

    pub fn exiting(mut self, code: i64) -> FakeReply {
        self.exit_code = code;
        self
    }

    pub fn failing(error: EnvError) -> FakeReply {
        FakeReply {
            fails: Some(error),
            ..FakeReply::default()
        }
    }
}

/// The reward files a verifier writes.
const VERIFIER_REWARDS: [&str; 2] = ["/logs/verifier/reward.txt", "/logs/verifier/reward.json"];

type ExecScript = dyn Fn(&FakeCall) -> FakeReply + Send + Sync;
type CreateScript = dyn Fn(usize) -> Result<(), EnvError> + Send + Sync;

/// What the fake was asked to do, for a test to check.
#[derive(Debug, Clone, Default)]
pub struct FakeRecord {
    /// Create calls, failed ones included.
    pub create_calls: usize,
    pub created: usize,
    pub removed: usize,
    /// The most sandboxes that existed at once.
    pub most_at_once: usize,
    /// The most CPUs their specs asked for at once (a spec without CPUs counts as one).
    pub most_cpus_at_once: f64,
    /// The most memory their specs asked for at once, in megabytes.
    pub most_memory_at_once: u64,
    pub builds: Vec<String>,
    /// The most image builds at once.
    pub most_builds_at_once: usize,
    /// Images frozen from sandboxes, and how many of them were removed again.
    pub frozen: usize,
    pub images_removed: usize,
    /// Every sandbox: its id, when it was made and removed (tokio's clock, from the
    /// fake's creation), and the CPUs it asked for.
    pub lifetimes: Vec<(String, Duration, Option<Duration>, f64)>,
    /// Every command, with the id of its sandbox and when it started (tokio's clock,
    /// from the fake's creation).
    pub commands: Vec<(String, String, Duration)>,
    /// The most commands that ran at once (each trial runs one at a time).
    pub most_commands_at_once: usize,
    /// Calls to a sandbox's own removal (however often the runner asked to remove it).
    pub removal_calls: usize,
}

/// Whose a leftover on the fake host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A run whose process died: any apply's reap may remove it.
    Dead,
    /// A run alive in another process: never to be touched.
    Alive,
}

/// What runs left on a fake host, shared by the [`FakeEngine`]s of several applies, so that
/// their reaps race on one list as two processes' do on one Docker daemon: a removal takes
/// time (on tokio's clock), and a removal asked while another is in progress is answered
/// "busy", as Docker's 409 is.
#[derive(Clone, Default)]
pub struct FakeHost {
    state: Arc<Mutex<HostState>>,
    removal_takes: Duration,
}

#[derive(Default)]
struct HostState {
    /// By id: whose it is, and whether a removal is in progress.
    objects: BTreeMap<String, (Owner, bool)>,
    /// Every removal call and every answer "busy".
    calls: usize,
    busy_answers: usize,
    /// A removal that fails instead (the engine refusing), for every object.
    fails: Option<EnvError>,
}

impl FakeHost {
    /// A host whose removals take `removal_takes`.
    pub fn new(removal_takes: Duration) -> FakeHost {
        FakeHost {
            state: Arc::default(),
            removal_takes,
        }
    }

    /// Leaves a container of a run whose process is gone.
    pub fn leave_dead(&self, id: &str) {
        self.lock().objects.insert(id.into(), (Owner::Dead, false));
    }

    /// A container of a run alive in another process.
    pub fn leave_alive(&self, id: &str) {
        self.lock().objects.insert(id.into(), (Owner::Alive, false));
    }

    /// Makes every removal fail with `error`.
    pub fn failing_removals(&self, error: EnvError) {
        self.lock().fails = Some(error);
    }

    /// The ids there now.
    pub fn ids(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Removal calls, and how many of them were answered "busy".
    pub fn calls(&self) -> (usize, usize) {
        let state = self.lock();
        (state.calls, state.busy_answers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().expect("fake host")
    }

    /// One removal call, as the engine answers it.
    async fn remove_once(&self, id: &str) -> Result<Removal, EnvError> {
        {
            let mut state = self.lock();
            state.calls += 1;
            if let Some(error) = &state.fails {
                return Err(error.clone());
            }
            match state.objects.get_mut(id) {
                None => return Ok(Removal::Gone),
                Some((_, true)) => {
                    state.busy_answers += 1;
                    return Ok(Removal::Busy);
                }
                Some((_, removing)) => *removing = true,
            }
        }
        tokio::time::sleep(self.removal_takes).await;
        self.lock().objects.remove(id);
        Ok(Removal::Removed)
    }

    /// What a reap does: every leftover of a dead run (one being removed included, as
    /// Docker lists it) removed idempotently; the number this call removed.
    async fn reap(&self) -> Result<usize, EnvError> {
        let dead: Vec<String> = self
            .lock()
            .objects
            .iter()
            .filter(|(_, (owner, _))| *owner == Owner::Dead)
            .map(|(id, _)| id.clone())
            .collect();
        let mut removed = 0;
        for id in dead {
            let what = format!("container `{id}`");
            if remove_idempotently(FAKE_PROVIDER, &what, BUSY_PATIENCE, || {
                self.remove_once(&id)
            })
            .await?
                == Removal::Removed
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

struct FakeState {
    exec: Box<ExecScript>,
    create: Box<CreateScript>,
    builds_fail: Option<EnvError>,
    /// A cap on collected bytes below the runner's, so tests can pass it cheaply.
    collect_cap: u64,
    build_takes: Duration,
    /// CPUs, memory and builds in use now.
    in_use: Mutex<(f64, u64, usize)>,
    /// Frozen sandboxes' files, by image id.
    images: Mutex<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
    record: Mutex<FakeRecord>,
    live: AtomicUsize,
    /// Commands running now.
    running_commands: AtomicUsize,
    started: tokio::time::Instant,
    /// What dead runs left, for `reap_dead_runs`.
    host: FakeHost,
    /// The sandboxes that exist, by id, whether or not anything still holds them: what a
    /// reap finds by their labels.
    sandboxes: Mutex<BTreeMap<String, LiveSandbox>>,
    /// Sandbox removals never answer (a wedged engine).
    removals_hang: bool,
    /// From when to when (tokio's clock, from the fake's creation) the engine answers no
    /// ping: a wedged daemon.
    wedged: Option<(Duration, Duration)>,
}

/// The fake provider. It presents itself as Docker, so a plan needs no change to use it.
#[derive(Clone)]
pub struct FakeEngine {
    state: Arc<FakeState>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        FakeEngine::new(|_| FakeReply::ok())
    }
}

impl FakeEngine {
    /// A fake whose commands are answered by `exec`.
    pub fn new(exec: impl Fn(&FakeCall) -> FakeReply + Send + Sync + 'static) -> FakeEngine {
        FakeEngine {
            state: Arc::new(FakeState {
                exec: Box::new(exec),
                create: Box::new(|_| Ok(())),
                builds_fail: None,
                collect_cap: u64::MAX,
                build_takes: Duration::ZERO,
                in_use: Mutex::new((0.0, 0, 0)),
                images: Mutex::new(BTreeMap::new()),
                record: Mutex::new(FakeRecord::default()),
                live: AtomicUsize::new(0),
                running_commands: AtomicUsize::new(0),
                started: tokio::time::Instant::now(),
                host: FakeHost::default(),
                sandboxes: Mutex::new(BTreeMap::new()),
                removals_hang: false,
                wedged: None,
            }),
        }
    }

    /// Makes create call number `n` (from 0) answer with `create(n)`.
    pub fn on_create(
        self,
        create: impl Fn(usize) -> Result<(), EnvError> + Send + Sync + 'static,
    ) -> FakeEngine {
        self.rebuilt(|state| state.create = Box::new(create))
    }

    /// Makes every image build take `takes` (on tokio's clock).
    pub fn building_takes(self, takes: Duration) -> FakeEngine {
        self.rebuilt(|state| state.build_takes = takes)
    }

    /// Makes every image build fail with `error`.
    pub fn failing_builds(self, error: EnvError) -> FakeEngine {
        self.rebuilt(|state| state.builds_fail = Some(error))
    }

    /// Collects at most `cap` bytes of `/logs` (or the caller's cap, if lower), as if the
    /// cap were that low.
    pub fn collecting_at_most(self, cap: u64) -> FakeEngine {
        self.rebuilt(|state| state.collect_cap = cap)
    }

    /// Reaps on `host`, which other fakes may share.
    pub fn on_host(self, host: FakeHost) -> FakeEngine {
        self.rebuilt(|state| state.host = host)
    }

    /// Makes sandbox removals never answer, as on a wedged engine.
    pub fn hanging_removals(self) -> FakeEngine {
        self.rebuilt(|state| state.removals_hang = true)
    }

    /// Makes the engine answer no ping from `from` until `until` (tokio's clock, from the
    /// fake's creation): a ping asked meanwhile is answered at `until`.
    pub fn wedged_between(self, from: Duration, until: Duration) -> FakeEngine {
        self.rebuilt(|state| state.wedged = Some((from, until)))
    }

    fn rebuilt(self, change: impl FnOnce(&mut FakeState)) -> FakeEngine {
        let mut state = Arc::try_unwrap(self.state)
            .unwrap_or_else(|_| panic!("configure a FakeEngine before sharing it"));
        change(&mut state);
        FakeEngine {
            state: Arc::new(state),
        }
    }

    /// What it was asked so far.
    pub fn record(&self) -> FakeRecord {
        self.state.record.lock().expect("fake record").clone()
    }

    /// Sandboxes that exist now.
    pub fn live(&self) -> usize {
        self.state.live.load(Ordering::SeqCst)
    }
}

/// A sandbox of the fake, as its engine knows it.
struct LiveSandbox {
    labels: BTreeMap<String, String>,
    cpus: f64,
    memory: u64,
}

impl FakeState {
    /// Removes sandbox `id` if it still exists (once, whoever asks: its handle or a reap);
    /// whether this call removed it.
    fn release(&self, id: &str) -> bool {
        let Some(sandbox) = self.sandboxes.lock().expect("fake sandboxes").remove(id) else {
            return false;
        };
        self.live.fetch_sub(1, Ordering::SeqCst);
        {
            let mut in_use = self.in_use.lock().expect("fake use");
            in_use.0 -= sandbox.cpus;
            in_use.1 -= sandbox.memory;
        }
        let mut record = self.record.lock().expect("fake record");
        record.removed += 1;
        let now = self.started.elapsed();
        if let Some(life) = record.lifetimes.iter_mut().find(|l| l.0 == id) {
            life.2 = Some(now);
        }
        true
    }

    /// Removes the sandboxes whose labels say their run's process on this machine is gone,
    /// as Docker's reap does; how many.
    fn reap_dead_sandboxes(&self) -> usize {
        let host = super::hostname();
        let dead: Vec<String> = self
            .sandboxes
            .lock()
            .expect("fake sandboxes")
            .iter()
            .filter(|(_, sandbox)| {
                let pid: Option<i32> = sandbox.labels.get(PID_LABEL).and_then(|p| p.parse().ok());
                sandbox.labels.get(HOST_LABEL) == Some(&host)
                    && pid.is_some_and(|pid| !super::docker::process_alive(pid))
            })
            .map(|(id, _)| id.clone())
            .collect();
        dead.iter().filter(|id| self.release(id)).count()
    }
}

/// A failure of the fake's engine, as the provider it plays would report it.
pub fn engine_error(message: impl Into<String>) -> EnvError {
    EnvError::engine(FAKE_PROVIDER, message)
}

/// The fake's engine not answering at all, as the provider it plays would report it.
pub fn unreachable_error(message: impl Into<String>) -> EnvError {
    EnvError::unreachable(FAKE_PROVIDER, message)
}

/// The provider the fake plays: a local engine.
const FAKE_PROVIDER: Provider = Provider::Docker;

#[async_trait]
impl Environment for FakeEngine {
    fn provider(&self) -> Provider {
        FAKE_PROVIDER
    }

    /// Docker's, but for what the fake does not play: services, network changes between
    /// phases and allowlists (it refuses them, as a provider without them must).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compose: false,
            switches_network: false,
            allowlist: false,
            ..Provider::Docker.capabilities()
        }
    }

    async fn image_exists(&self, _tag: &str) -> Result<bool, EnvError> {
        Ok(false)
    }

    async fn ensure_image(&self, _image: &str) -> Result<(), EnvError> {
        Ok(())
    }

    async fn build(&self, spec: &BuildSpec<'_>) -> Result<(), EnvError> {
        let builds = {
            let mut in_use = self.state.in_use.lock().expect("fake use");
            in_use.2 += 1;
            in_use.2
        };
        {
            let mut record = self.state.record.lock().expect("fake record");
            record.builds.push(spec.tag.to_string());
            record.most_builds_at_once = record.most_builds_at_once.max(builds);
        }
        tokio::time::sleep(self.state.build_takes).await;
        self.state.in_use.lock().expect("fake use").2 -= 1;
        match &self.state.builds_fail {
            Some(error) => Err(error.clone()),
            None => spec
                .log
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(spec.log, format!("fake build of {}\n", spec.tag)))
                .map_err(|e| EnvError::io(format!("writing `{}`", spec.log.display()), e)),
        }
    }

    async fn create(
        &self,
        spec: &EnvSpec,
        cancel: &CancellationToken,
    ) -> Result<Instance, EnvError> {
        if cancel.is_cancelled() {
            return Err(EnvError::Cancelled);
        }
        if spec.services.is_some() {
            return Err(EnvError::Unsupported(
                "the fake environment has no services besides `main` (Compose tasks run on \
                 Docker)"
                    .into(),
            ));
        }
        if spec.allowlist.is_some() {
            return Err(EnvError::Unsupported(
                "the fake environment cannot enforce an allowlist (Docker can)".into(),
            ));
        }
        let call = {
            let mut record = self.state.record.lock().expect("fake record");
            record.create_calls += 1;
            record.create_calls - 1
        };
        (self.state.create)(call)?;
        let live = self.state.live.fetch_add(1, Ordering::SeqCst) + 1;
        let cpus = spec.cpus.unwrap_or(1.0);
        let memory = spec.memory_mb.unwrap_or(0);
        let (cpus_in_use, memory_in_use) = {
            let mut in_use = self.state.in_use.lock().expect("fake use");
            in_use.0 += cpus;
            in_use.1 += memory;
            (in_use.0, in_use.1)
        };
        let id = {
            let mut record = self.state.record.lock().expect("fake record");
            record.created += 1;
            record.most_at_once = record.most_at_once.max(live);
            record.most_cpus_at_once = record.most_cpus_at_once.max(cpus_in_use);
            record.most_memory_at_once = record.most_memory_at_once.max(memory_in_use);
            let id = format!("fake-{}", record.created);
            record
                .lifetimes
                .push((id.clone(), self.state.started.elapsed(), None, cpus));
            id
        };
        let files = self
            .state
            .images
            .lock()
            .expect("fake images")
            .get(&spec.image)
            .cloned()
            .unwrap_or_default();
        self.state.sandboxes.lock().expect("fake sandboxes").insert(
            id.clone(),
            LiveSandbox {
                labels: spec.labels.clone(),
                cpus,
                memory,
            },
        );
        Ok(Instance::new(FakeSandbox {
            id,
            spec: Arc::new(spec.clone()),
            state: self.state.clone(),
            files: Mutex::new(files),
        }))
    }

    async fn reap_dead_runs(&self) -> Result<usize, EnvError> {
        Ok(self.state.host.reap().await? + self.state.reap_dead_sandboxes())
    }

    async fn ping(&self) -> Result<(), EnvError> {
        if let Some((from, until)) = self.state.wedged {
            let now = self.state.started.elapsed();
            if now >= from && now < until {
                tokio::time::sleep(until - now).await;
            }
        }
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<(), EnvError> {
        if self
            .state
            .images
            .lock()
            .expect("fake images")
            .remove(image)
            .is_some()
        {
            self.state
                .record
                .lock()
                .expect("fake record")
                .images_removed += 1;
        }
        Ok(())
    }

    async fn gc(&self, _labels: &[String]) -> Result<Collected, EnvError> {
        Ok(Collected::default())
    }

    /// Its sandboxes are on this machine: a gateway for them listens on loopback.
    async fn host_address(&self) -> Result<Option<std::net::IpAddr>, EnvError> {
        Ok(Some(std::net::Ipv4Addr::LOCALHOST.into()))
    }
}

struct FakeSandbox {
    id: String,
    spec: Arc<EnvSpec>,
    state: Arc<FakeState>,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl FakeSandbox {
    async fn run_command(&self, spec: &ExecSpec) -> Result<ExecOutput, EnvError> {
        let call = FakeCall {
            sandbox: self.id.clone(),
            command: spec.command.clone(),
            env: spec.env.clone(),
            image: self.spec.image.clone(),
            spec: self.spec.clone(),
        };
        self.state
            .record
            .lock()
            .expect("fake record")
            .commands
            .push((
                self.id.clone(),
                spec.command.clone(),
                self.state.started.elapsed(),
            ));
        let reply = (self.state.exec)(&call);
        if let Some(error) = reply.fails {
            return Err(error);
        }
        // The verifier's wrapper (see `verify::steps`) reports and removes reward files
        // that were there before, and the sums of what the tests wrote.
        let verifier = spec.command.contains("helios-stale");
        let mut stale = String::new();
        if verifier {
            let mut files = self.files.lock().expect("fake files");
            for name in VERIFIER_REWARDS {
                if files.remove(name).is_some() {
                    stale.push_str(&format!("helios-stale: {name}\n"));
                }
            }
        }
        if let Some(deadline) = spec.deadline.filter(|d| *d < reply.takes) {
            tokio::time::sleep(deadline).await;
            return Ok(ExecOutput {
                exit_code: None,
                timed_out: true,
                ..ExecOutput::default()
            });
        }
        tokio::time::sleep(reply.takes).await;
        let mut files = self.files.lock().expect("fake files");
        for (path, content) in reply.writes {
            files.insert(path, content.into_bytes());
        }
        let mut stdout = stale + &reply.stdout;
        // Cut as Docker cuts a command's output (the fake's is ASCII or cut on a character).
        let whole = stdout.len();
        if whole > OUTPUT_CAP {
            let end = (0..=OUTPUT_CAP)
                .rev()
                .find(|&i| stdout.is_char_boundary(i))
                .unwrap_or(0);
            stdout.truncate(end);
        }
        let cut = (whole - stdout.len()) as u64;
        if verifier {
            for name in VERIFIER_REWARDS {
                if let Some(content) = files.get(name) {
                    let file = name.rsplit('/').next().unwrap_or(name);
                    let sum = hex::encode(sha2::Sha256::digest(content));
                    stdout.push_str(&format!("{sum}  {file}\n"));
                }
            }
        }
        Ok(ExecOutput {
            exit_code: Some(reply.exit_code),
            stdout,
            stderr: String::new(),
            timed_out: false,
            cut,
        })
    }
}

#[async_trait]
impl Sandbox for FakeSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    fn provider(&self) -> Provider {
        FAKE_PROVIDER
    }

    fn makes_workdir(&self) -> bool {
        true
    }

    async fn exec(&self, spec: &ExecSpec) -> Result<ExecOutput, EnvError> {
        let running = self.state.running_commands.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut record = self.state.record.lock().expect("fake record");
            record.most_commands_at_once = record.most_commands_at_once.max(running);
        }
        let output = self.run_command(spec).await;
        self.state.running_commands.fetch_sub(1, Ordering::SeqCst);
        output
    }

    async fn upload_archive(&self, archive: Vec<u8>) -> Result<(), EnvError> {
        let io = |e: std::io::Error| EnvError::io("unpacking an upload", e);
        let mut tar = tar::Archive::new(archive.as_slice());
        let mut files = self.files.lock().expect("fake files");
        for entry in tar.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = format!("/{}", entry.path().map_err(io)?.display());
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(io)?;
            files.insert(path, content);
        }
        Ok(())
    }

    async fn download_dir(
        &self,
        path: &str,
        dest: &Path,
        cap: u64,
    ) -> Result<tarball::UnpackStats, EnvError> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let files = self.files.lock().expect("fake files").clone();
        // Through a tar archive and the same unpacker as Docker and Daytona, so the cap and
        // what it cuts behave the same here.
        let io = |e| EnvError::io(format!("collecting `{path}`"), e);
        let mut builder = tar::Builder::new(Vec::new());
        for (file, content) in files.iter() {
            let Some(relative) = file.strip_prefix(&prefix) else {
                continue;
            };
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("logs/{relative}"), content.as_slice())
                .map_err(io)?;
        }
        let archive = builder.into_inner().map_err(io)?;
        tarball::unpack_stripped(archive.as_slice(), dest, self.state.collect_cap.min(cap))
            .map_err(io)
    }

    async fn freeze(&self, _labels: &BTreeMap<String, String>) -> Result<String, EnvError> {
        let files = self.files.lock().expect("fake files").clone();
        let mut record = self.state.record.lock().expect("fake record");
        record.frozen += 1;
        let image = format!("fake-frozen-{}", record.frozen);
        self.state
            .images
            .lock()
            .expect("fake images")
            .insert(image.clone(), files);
        Ok(image)
    }

    async fn remove(&self) -> Result<(), EnvError> {
        self.state.record.lock().expect("fake record").removal_calls += 1;
        if self.state.removals_hang {
            std::future::pending::<()>().await;
        }
        self.state.release(&self.id);
        Ok(())
    }
}
