//! The machine's CPU pressure, measured, and the gate that admits trials by it under the
//! `adaptive` policy: a trial beyond what the machine's cores reserve starts only while
//! the pressure stays under a target, and no faster than one per sampling window, so a
//! burst of trials does not start before the pressure of the first ones shows.

use std::time::Duration;

use tokio::time::Instant;

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

/// A measure of how much runnable work waits for a CPU, as a share (0 to 1) of the time
/// since the last sample.
pub trait PressureSource: Send {
    /// The pressure since the previous call (the first call starts the window and may say
    /// `None`); `None` when the machine cannot say.
    fn sample(&mut self) -> Option<f64>;
}

/// This machine's pressure, from the kernel's counters: Linux PSI
/// (`/proc/pressure/cpu`, `some total=` in microseconds), bounded by the share of CPU time
/// spent on work that is not `nice`d (`/proc/stat`). PSI counts a niced build waiting
/// behind the trials as pressure, though a trial's processes (at the default priority)
/// take the CPU from it; the second figure tells that apart: with only niced work
/// waiting, little CPU goes to un-niced work, so the minimum of the two is low. Without
/// PSI (kernels built without it or booted with `psi=0`) the un-niced share alone is the
/// measure; without `/proc/stat` (not Linux), there is none and the gate never opens
/// beyond the cores' reservation.
pub struct ProcPressure {
    psi: Option<u64>,
    stat: Option<CpuTimes>,
    at: std::time::Instant,
}

impl ProcPressure {
    pub fn new() -> ProcPressure {
        ProcPressure {
            psi: read_psi_total(),
            stat: read_cpu_times(),
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
        let busy = match (&self.stat, &stat) {
            (Some(before), Some(after)) => after.busy_share_since(before),
            _ => None,
        };
        self.psi = psi;
        self.stat = stat;
        match (waited, busy) {
            (Some(waited), Some(busy)) => Some(waited.min(busy)),
            (waited, busy) => waited.or(busy),
        }
    }
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

/// The first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, PartialEq)]
struct CpuTimes {
    /// user, system, irq, softirq and steal: CPU time of un-niced work (and time taken
    /// by the hypervisor).
    busy: u64,
    /// All of it, `nice` and idle included.
    total: u64,
}

impl CpuTimes {
    fn busy_share_since(&self, before: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(before.total)?;
        let busy = self.busy.checked_sub(before.busy)?;
        (total > 0).then(|| (busy as f64 / total as f64).clamp(0.0, 1.0))
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
    Some(CpuTimes {
        busy: get(0) + get(2) + get(5) + get(6) + get(7),
        total: (0..8).map(get).sum(),
    })
}

/// The gate: a sample every [`SAMPLE_INTERVAL`], and one admission at most per sample.
pub struct PressureGate {
    source: Box<dyn PressureSource>,
    target: f64,
    /// The last sample, and whether a trial was admitted on it already.
    last: Option<f64>,
    spent: bool,
    next_sample: Instant,
}

impl PressureGate {
    pub fn new(mut source: Box<dyn PressureSource>, target: f64) -> PressureGate {
        // The first call starts the window.
        let _ = source.sample();
        PressureGate {
            source,
            target,
            last: None,
            spent: false,
            next_sample: Instant::now() + SAMPLE_INTERVAL,
        }
    }

    /// Takes a sample when one is due. A window much longer than the interval (nobody
    /// asked for a while) says more about the past than about now: it only starts a new
    /// window.
    fn refresh(&mut self) {
        let now = Instant::now();
        if now >= self.next_sample {
            let sample = self.source.sample();
            let stale = now >= self.next_sample + SAMPLE_INTERVAL;
            self.last = if stale { None } else { sample };
            self.spent = false;
            self.next_sample = now + SAMPLE_INTERVAL;
        }
    }

    /// Whether one more trial may start now; if so, it counts as admitted.
    pub fn admit(&mut self) -> bool {
        self.refresh();
        let open = !self.spent && self.last.is_some_and(|p| p < self.target);
        if open {
            self.spent = true;
        }
        open
    }

    /// When the next sample is due: a trial held by the gate is looked at again then.
    pub fn next_sample(&self) -> Instant {
        self.next_sample
    }

    /// The last measured pressure.
    pub fn last(&self) -> Option<f64> {
        self.last
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
    fn niced_time_is_not_counted_busy() {
        let before = parse_cpu_times("cpu  100 1000 50 800 10 5 5 0 0 0\ncpu0 1 2 3\n").unwrap();
        let after = parse_cpu_times("cpu  110 1090 50 800 10 5 5 0 0 0\n").unwrap();
        let share = after.busy_share_since(&before).unwrap();
        assert!((share - 0.1).abs() < 1e-9, "{share}");
        assert_eq!(parse_cpu_times("intr 5\n"), None);
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

    #[tokio::test(start_paused = true)]
    async fn the_gate_admits_one_trial_per_sample_under_the_target_only() {
        let mut low = PressureGate::new(Box::new(Fixed(0.05)), 0.2);
        assert!(!low.admit(), "no sample yet");
        tokio::time::sleep(SAMPLE_INTERVAL).await;
        assert!(low.admit());
        assert!(!low.admit(), "one per sample");
        tokio::time::sleep(SAMPLE_INTERVAL).await;
        assert!(low.admit());
        let mut high = PressureGate::new(Box::new(Fixed(0.5)), 0.2);
        tokio::time::sleep(SAMPLE_INTERVAL).await;
        assert!(!high.admit());
        assert_eq!(high.last(), Some(0.5));
    }
}
