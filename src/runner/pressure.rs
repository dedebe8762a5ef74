//! The machine's CPU pressure, measured, and the gate that admits trials by it under the
//! `adaptive` policy: a trial beyond what the machine's cores reserve starts only while
//! the pressure stays under a target, one at a time (the next once the last one's
//! environment is ready and a sample was taken since), so a burst of trials does not
//! start before the pressure of the first ones shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// How often the pressure is measured, and the window it is measured over. Measured on a
/// 2-core VM (docs/apply.md): PSI's counter over half a second already tells 2 busy
/// processes (0.00–0.02) from 3 (0.50) and 4 (0.86–1.00), where its own `avg10` took
/// 10 s to climb; a shorter window adds scheduler noise, a longer one slows the ramp.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// The pressure under which another trial may start: the share of the window in which
/// some runnable task waited for a CPU. On 2 cores one process more than cores gives
/// about 0.5, so 0.2 lets trials in while every process gets a CPU, and holds them once
/// any has to wait for one for long.
pub const PRESSURE_TARGET: f64 = 0.2;

/// The longest a verifier waits for the pressure to fall before its tests run anyway.
pub const CALM_WAIT: Duration = Duration::from_secs(120);

/// A measure of how much runnable work waits for a CPU, as a share (0 to 1) of the time
/// since the last sample.
pub trait PressureSource: Send {
    /// The pressure since the previous call (the first call starts the window and may say
    /// `None`); `None` when the machine cannot say.
    fn sample(&mut self) -> Option<f64>;
}

/// This machine's pressure, from the kernel's counters: Linux PSI (`/proc/pressure/cpu`,
/// `some total=` in microseconds: time in which some runnable task waited for a CPU),
/// scaled by the containers' share of the CPU time used (their cgroup's usage against
/// `/proc/stat`). PSI is machine-wide: a compiler someone else runs makes it high though a
/// trial whose agent waits on a model would not wait behind it, nor make anything wait;
/// the containers' share counts the part the run's own work has in it. Trials that wait
/// use next to no CPU, so more of them start; trials that burn CPU take much of it, and
/// the pressure they cause holds the next ones. Without the containers' cgroup (an unknown
/// layout) the share is taken as whole: PSI as it is. Without PSI (kernels built without
/// it or booted with `psi=0`) the containers' share of all the CPUs is the measure (1 when
/// they use every core); without `/proc/stat` (not Linux) there is none, and the gate
/// never opens beyond the cores' reservation.
pub struct ProcPressure {
    psi: Option<u64>,
    stat: Option<CpuTimes>,
    containers: Option<(ContainerUsage, u64)>,
    at: std::time::Instant,
}

impl ProcPressure {
    pub fn new() -> ProcPressure {
        let containers =
            ContainerUsage::find().and_then(|usage| usage.read().map(|ns| (usage, ns)));
        ProcPressure {
            psi: read_psi_total(),
            stat: read_cpu_times(),
            containers,
            at: std::time::Instant::now(),
        }
    }
}

impl Default for ProcPressure {
    fn default() -> Self {
        ProcPressure::new()
    }
}

impl PressureSource for ProcPressure {
    fn sample(&mut self) -> Option<f64> {
        let now = std::time::Instant::now();
        let elapsed_us = now.duration_since(self.at).as_micros() as f64;
        self.at = now;
        let psi = read_psi_total();
        let stat = read_cpu_times();
        let waited = match (self.psi, psi) {
            (Some(before), Some(after)) if elapsed_us > 0.0 => {
                Some((after.saturating_sub(before) as f64 / elapsed_us).clamp(0.0, 1.0))
            }
            _ => None,
        };
        let used_ns = self.containers.as_mut().and_then(|(usage, before)| {
            let after = usage.read()?;
            let used = after.saturating_sub(*before);
            *before = after;
            Some(used)
        });
        let shares = match (&self.stat, &stat, used_ns) {
            (Some(before), Some(after), Some(used)) => Some((
                after.share_of_busy(before, used),
                after.share_of_all(before, used),
            )),
            _ => None,
        };
        self.psi = psi;
        self.stat = stat;
        match (waited, shares) {
            (Some(waited), Some((of_busy, _))) => Some(waited * of_busy.unwrap_or(0.0)),
            (Some(waited), None) => Some(waited),
            (None, shares) => shares.and_then(|(_, of_all)| of_all),
        }
    }
}

/// Where the kernel counts the CPU time of Docker's containers: their parent cgroup
/// (cgroup v1 or v2, the `cgroupfs` or `systemd` driver).
enum ContainerUsage {
    /// cgroup v1 `cpuacct.usage`, in nanoseconds.
    V1(&'static str),
    /// cgroup v2 `cpu.stat`, `usage_usec`.
    V2(&'static str),
}

impl ContainerUsage {
    fn find() -> Option<ContainerUsage> {
        const V1: [&str; 4] = [
            "/sys/fs/cgroup/cpuacct/docker/cpuacct.usage",
            "/sys/fs/cgroup/cpu,cpuacct/docker/cpuacct.usage",
            "/sys/fs/cgroup/cpuacct/system.slice/cpuacct.usage",
            "/sys/fs/cgroup/cpu,cpuacct/system.slice/cpuacct.usage",
        ];
        const V2: [&str; 2] = [
            "/sys/fs/cgroup/docker/cpu.stat",
            "/sys/fs/cgroup/system.slice/cpu.stat",
        ];
        V1.into_iter()
            .map(ContainerUsage::V1)
            .chain(V2.into_iter().map(ContainerUsage::V2))
            .find(|usage| usage.read().is_some())
    }

    /// Nanoseconds of CPU the containers used so far.
    fn read(&self) -> Option<u64> {
        match self {
            ContainerUsage::V1(path) => std::fs::read_to_string(path).ok()?.trim().parse().ok(),
            ContainerUsage::V2(path) => parse_usage_usec(&std::fs::read_to_string(path).ok()?),
        }
    }
}

fn parse_usage_usec(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("usage_usec "))?;
    let usec: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(usec.saturating_mul(1000))
}

/// `some total=` of `/proc/pressure/cpu`: microseconds in which some task waited.
fn read_psi_total() -> Option<u64> {
    parse_psi_total(&std::fs::read_to_string("/proc/pressure/cpu").ok()?)
}

fn parse_psi_total(text: &str) -> Option<u64> {
    let some = text.lines().find(|l| l.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?
        .parse()
        .ok()
}

/// The first line of `/proc/stat`, in clock ticks (USER_HZ, 100 a second on Linux).
#[derive(Debug, Clone, PartialEq)]
struct CpuTimes {
    /// Every state but idle and iowait.
    busy: u64,
    /// All of it.
    total: u64,
}

/// Nanoseconds in a clock tick of `/proc/stat`.
const NS_PER_TICK: f64 = 1e9 / 100.0;

impl CpuTimes {
    /// `used_ns` of CPU time as a share of all the busy CPU time since `before`.
    fn share_of_busy(&self, before: &CpuTimes, used_ns: u64) -> Option<f64> {
        let busy = self.busy.checked_sub(before.busy)? as f64 * NS_PER_TICK;
        (busy > 0.0).then(|| (used_ns as f64 / busy).clamp(0.0, 1.0))
    }

    /// `used_ns` of CPU time as a share of all the CPU time (every core) since `before`.
    fn share_of_all(&self, before: &CpuTimes, used_ns: u64) -> Option<f64> {
        let total = self.total.checked_sub(before.total)? as f64 * NS_PER_TICK;
        (total > 0.0).then(|| (used_ns as f64 / total).clamp(0.0, 1.0))
    }
}

fn read_cpu_times() -> Option<CpuTimes> {
    parse_cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: inside user]
    let get = |i: usize| fields.get(i).copied().unwrap_or(0);
    let total: u64 = (0..8).map(get).sum();
    Some(CpuTimes {
        busy: total - get(3) - get(4),
        total,
    })
}

/// One measurement: its number (they count up) and the pressure (`None`: unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub seq: u64,
    pub pressure: Option<f64>,
    /// The sample before.
    pub previous: Option<f64>,
}

/// Samples `source` every [`SAMPLE_INTERVAL`] for as long as it lives.
pub struct Sampler {
    receiver: watch::Receiver<Sample>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(mut source: Box<dyn PressureSource>) -> Sampler {
        // The first call starts the window.
        let _ = source.sample();
        let (sender, receiver) = watch::channel(Sample::default());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut previous = None;
            for seq in 1.. {
                ticks.tick().await;
                let pressure = source.sample();
                let sample = Sample {
                    seq,
                    pressure,
                    previous,
                };
                previous = pressure;
                if sender.send(sample).is_err() {
                    return;
                }
            }
        });
        Sampler { receiver, task }
    }

    pub fn receiver(&self) -> watch::Receiver<Sample> {
        self.receiver.clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the gate and the verifiers share: the latest sample, the target, and how many
/// verifiers had to wait for the pressure to fall and have not finished their tests:
/// while one has, the gate admits no trial by pressure, so the trials it would admit on
/// the same calm sample do not land on the tests.
#[derive(Clone)]
pub struct Pressure {
    samples: watch::Receiver<Sample>,
    target: f64,
    holding: Arc<AtomicUsize>,
}

/// A verifier that waited for calm, until its tests end.
pub struct Hold(Arc<AtomicUsize>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pressure {
    pub fn new(samples: watch::Receiver<Sample>, target: f64) -> Pressure {
        Pressure {
            samples,
            target,
            holding: Arc::default(),
        }
    }

    fn latest(&self) -> Sample {
        *self.samples.borrow()
    }

    /// Waits until the measured pressure has been under the target for two samples in a
    /// row (at once when the machine cannot say), for [`CALM_WAIT`] at most: a verifier's
    /// tests then start on a machine where every runnable process gets a CPU. One sample
    /// is not enough: beside CPU-bound trials the pressure hovers near the target and dips
    /// under it now and then. The gate admits no trial by pressure while it is over the
    /// target, so it falls as busy trials end; the bound is for what nothing here ends.
    /// A verifier that had to wait holds the gate shut until it drops the [`Hold`].
    pub async fn calm(&self) -> Option<Hold> {
        let calm = |p: Option<f64>| p.is_none_or(|p| p < self.target);
        let latest = self.latest();
        if latest.pressure.is_none() || (calm(latest.pressure) && calm(latest.previous)) {
            return None;
        }
        self.holding.fetch_add(1, Ordering::SeqCst);
        let hold = Hold(self.holding.clone());
        let _ = tokio::time::timeout(CALM_WAIT, self.calm_samples(2)).await;
        Some(hold)
    }

    async fn calm_samples(&self, needed: usize) {
        let mut samples = self.samples.clone();
        let mut calm_in_a_row = 0;
        loop {
            let sample = *samples.borrow_and_update();
            match sample.pressure {
                None => return,
                Some(p) if p < self.target => calm_in_a_row += 1,
                Some(_) => calm_in_a_row = 0,
            }
            if calm_in_a_row >= needed || samples.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The dispatcher's gate. Per sample under the target it admits up to the machine's
/// cores scaled by how far under the target the pressure is (at least one), and never
/// while twice the cores' trials it admitted are still making their environment: what
/// those will burn does not show yet. (With the cores' number alone, container starts
/// of 1.5–2 s on a loaded 2-core machine held admissions to one a second.)
pub struct PressureGate {
    pressure: Pressure,
    cores: usize,
    /// The sample the last admissions were made on, and how many.
    admitted_on: (u64, usize),
    /// Trials the gate admitted whose environment is not ready yet.
    starting: Arc<AtomicUsize>,
}

/// A trial the gate admitted, until its environment is ready (or it ends).
pub struct Starting {
    starting: Arc<AtomicUsize>,
    done: AtomicBool,
}

impl Starting {
    /// The trial's environment is ready: its agent starts now.
    pub fn ready(&self) {
        if !self.done.swap(true, Ordering::SeqCst) {
            self.starting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.ready();
    }
}

impl PressureGate {
    pub fn new(pressure: Pressure, cores: usize) -> PressureGate {
        PressureGate {
            pressure,
            cores: cores.max(1),
            admitted_on: (0, 0),
            starting: Arc::default(),
        }
    }

    /// Whether one more trial may start now; if so, it counts as admitted and starting.
    pub fn admit(&mut self) -> Option<Starting> {
        let sample = self.pressure.latest();
        let pressure = sample.pressure.filter(|p| *p < self.pressure.target)?;
        if sample.seq != self.admitted_on.0 {
            self.admitted_on = (sample.seq, 0);
        }
        let headroom = 1.0 - pressure / self.pressure.target;
        let per_sample = ((self.cores as f64 * headroom).round() as usize).max(1);
        let open = self.admitted_on.1 < per_sample
            && self.starting.load(Ordering::SeqCst) < 2 * self.cores
            && self.pressure.holding.load(Ordering::SeqCst) == 0;
        open.then(|| {
            self.admitted_on.1 += 1;
            self.starting.fetch_add(1, Ordering::SeqCst);
            Starting {
                starting: self.starting.clone(),
                done: AtomicBool::new(false),
            }
        })
    }

    /// Resolves at the next sample: a trial held by the gate is looked at again then.
    pub async fn next_sample(&mut self) {
        if self.pressure.samples.changed().await.is_err() {
            // No sampler: nothing will change.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_total_is_read_from_the_some_line() {
        let text = "some avg10=1.29 avg60=8.27 avg300=8.04 total=2327769472\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_psi_total(text), Some(2_327_769_472));
        assert_eq!(parse_psi_total("full avg10=0.00 total=5\n"), None);
    }

    #[test]
    fn the_containers_share_is_of_the_busy_cpu_time() {
        // 100 ticks busy (1 s of CPU at 100 Hz), 100 idle.
        let before = parse_cpu_times("cpu  100 1000 50 800 10 5 5 0 0 0\ncpu0 1 2 3\n").unwrap();
        let after = parse_cpu_times("cpu  150 1040 60 900 10 5 5 0 0 0\n").unwrap();
        let share = after.share_of_busy(&before, 250_000_000).unwrap();
        assert!((share - 0.25).abs() < 1e-9, "{share}");
        let of_all = after.share_of_all(&before, 250_000_000).unwrap();
        assert!((of_all - 0.125).abs() < 1e-9, "{of_all}");
        assert_eq!(parse_cpu_times("intr 5\n"), None);
        assert_eq!(
            parse_usage_usec("usage_usec 1500\nuser_usec 1000\n"),
            Some(1_500_000)
        );
    }

    #[test]
    fn the_machine_has_a_measure_or_says_it_has_none() {
        let mut source = ProcPressure::new();
        std::thread::sleep(Duration::from_millis(20));
        if let Some(p) = source.sample() {
            assert!((0.0..=1.0).contains(&p));
        }
    }

    struct Fixed(f64);

    impl PressureSource for Fixed {
        fn sample(&mut self) -> Option<f64> {
            Some(self.0)
        }
    }

    fn gate(pressure: f64, cores: usize) -> (Sampler, Pressure, PressureGate) {
        let sampler = Sampler::start(Box::new(Fixed(pressure)));
        let shared = Pressure::new(sampler.receiver(), 0.2);
        let gate = PressureGate::new(shared.clone(), cores);
        (sampler, shared, gate)
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_admits_by_headroom_per_sample_under_the_target_only() {
        let (_sampler, _, mut calm) = gate(0.0, 2);
        assert!(calm.admit().is_none(), "no sample yet");
        calm.next_sample().await;
        let (a, b) = (calm.admit().unwrap(), calm.admit().unwrap());
        assert!(calm.admit().is_none(), "the cores' worth per sample");
        a.ready();
        b.ready();
        calm.next_sample().await;
        assert!(calm.admit().is_some());
        let (_sampler, _, mut busy) = gate(0.15, 2);
        busy.next_sample().await;
        assert!(busy.admit().is_some());
        assert!(busy.admit().is_none(), "near the target, one per sample");
        let (_sampler, _, mut high) = gate(0.5, 2);
        high.next_sample().await;
        assert!(high.admit().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_admits_none_while_twice_the_cores_of_its_trials_are_starting() {
        let (_sampler, _, mut gate) = gate(0.0, 1);
        gate.next_sample().await;
        let starting = gate.admit().expect("calm");
        gate.next_sample().await;
        let _second = gate.admit().expect("calm");
        for _ in 0..4 {
            gate.next_sample().await;
            assert!(gate.admit().is_none(), "their environments are not ready");
        }
        drop(starting);
        gate.next_sample().await;
        assert!(gate.admit().is_some(), "a trial that ended counts as ready");
    }

    #[tokio::test(start_paused = true)]
    async fn a_verifier_waits_until_the_pressure_falls() {
        struct Falling(tokio::time::Instant);
        impl PressureSource for Falling {
            fn sample(&mut self) -> Option<f64> {
                Some(if self.0.elapsed() < Duration::from_secs(3) {
                    0.5
                } else {
                    0.0
                })
            }
        }
        let began = tokio::time::Instant::now();
        let sampler = Sampler::start(Box::new(Falling(began)));
        let pressure = Pressure::new(sampler.receiver(), 0.2);
        pressure.calm().await;
        assert_eq!(
            began.elapsed(),
            Duration::ZERO,
            "no sample yet: unknown is calm"
        );
        let mut samples = sampler.receiver();
        samples.changed().await.unwrap();
        pressure.calm().await;
        assert!(
            began.elapsed() >= Duration::from_secs(3) + SAMPLE_INTERVAL,
            "two calm samples in a row"
        );
        let unknown = Pressure::new(watch::channel(Sample::default()).1, 0.2);
        assert!(unknown.calm().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_verifier_that_waited_holds_the_gate_until_its_tests_end() {
        struct Falling(tokio::time::Instant);
        impl PressureSource for Falling {
            fn sample(&mut self) -> Option<f64> {
                Some(if self.0.elapsed() < Duration::from_secs(2) {
                    0.5
                } else {
                    0.0
                })
            }
        }
        let sampler = Sampler::start(Box::new(Falling(tokio::time::Instant::now())));
        let pressure = Pressure::new(sampler.receiver(), 0.2);
        let mut gate = PressureGate::new(pressure.clone(), 2);
        gate.next_sample().await;
        let hold = pressure.calm().await.expect("it waited");
        assert!(gate.admit().is_none(), "the tests run first");
        drop(hold);
        assert!(gate.admit().is_some());
        assert!(
            pressure.calm().await.is_none(),
            "calm twice in a row: no wait"
        );
    }
}
