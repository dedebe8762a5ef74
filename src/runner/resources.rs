//! The resource budget of a run: what the machine (or `--cpus` / `--memory`) can give the
//! trials and image builds that run on it at once, the ledger of what is taken, and the
//! policy's verdict on a trial that asks to start: declared memory always fits; declared
//! CPUs are reserved (`reserve`), or reserved up to the cores and beyond them left to the
//! measured pressure (`adaptive`); `none` asks nothing.

use serde::Serialize;

use crate::events::WaitReason;
pub use crate::manifest::pipeline::ResourcePolicy;

/// What one trial or build needs while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Demand {
    pub cpus: f64,
    pub memory_mb: u64,
}

impl Demand {
    /// A task's `cpus` and memory; a task that names no CPUs counts as one, one that names
    /// no memory as none.
    pub fn of_task(cpus: Option<f64>, memory_mb: Option<u64>) -> Demand {
        Demand {
            cpus: cpus.unwrap_or(1.0),
            memory_mb: memory_mb.unwrap_or(0),
        }
    }

    /// An image build: one CPU, and memory the build itself bounds.
    pub const BUILD: Demand = Demand {
        cpus: 1.0,
        memory_mb: 0,
    };

    /// Trials on a remote provider take nothing from this machine.
    pub const NONE: Demand = Demand {
        cpus: 0.0,
        memory_mb: 0,
    };
}

/// What the run may use at once on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    pub policy: ResourcePolicy,
    /// CPUs reserved by trials and builds at once: this machine's cores, or `--cpus`
    /// (`adaptive`: the smaller of the two; beyond them, the pressure decides).
    pub cpus: f64,
    /// `adaptive` with `--cpus`: declared CPUs never exceed it, whatever the pressure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cpus: Option<f64>,
    pub memory_mb: u64,
    /// Image builds at once.
    pub builds: usize,
    /// `adaptive`: the CPU pressure (a share, 0–1) under which more trials start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure_target: Option<f64>,
}

/// What the policy says to a trial that asks to start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Start,
    /// It may start if the measured pressure allows (`adaptive`, beyond the cores).
    IfPressureAllows,
    Wait(WaitReason),
}

impl Budget {
    /// This machine's cores and memory, with `cpus` and `memory_mb` overriding either, and
    /// a build bound of half the cores (at least one) unless `builds` is given.
    pub fn of_machine(
        policy: ResourcePolicy,
        cpus: Option<f64>,
        memory_mb: Option<u64>,
        builds: Option<usize>,
    ) -> Budget {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Budget::with_policy(
            policy,
            cores,
            cpus,
            memory_mb.unwrap_or_else(machine_memory_mb),
            builds,
        )
    }

    /// The budget of `policy` on a machine of `cores`; `cpus` is `--cpus`.
    pub fn with_policy(
        policy: ResourcePolicy,
        cores: usize,
        cpus: Option<f64>,
        memory_mb: u64,
        builds: Option<usize>,
    ) -> Budget {
        let adaptive = policy == ResourcePolicy::Adaptive;
        Budget {
            policy,
            cpus: match (adaptive, cpus) {
                (true, Some(cpus)) => cpus.min(cores as f64),
                (_, cpus) => cpus.unwrap_or(cores as f64),
            },
            max_cpus: cpus.filter(|_| adaptive),
            memory_mb,
            builds: builds.unwrap_or((cores / 2).max(1)).max(1),
            pressure_target: adaptive.then_some(super::pressure::PRESSURE_TARGET),
        }
    }

    /// Whether `demand` alone is more than the whole budget: such a trial runs alone.
    pub fn exceeded_by(&self, demand: Demand) -> bool {
        let cpus = match self.policy {
            ResourcePolicy::Reserve => Some(self.cpus),
            ResourcePolicy::Adaptive => self.max_cpus,
            ResourcePolicy::None => return false,
        };
        cpus.is_some_and(|cpus| demand.cpus > cpus + EPSILON) || demand.memory_mb > self.memory_mb
    }

    /// Whether a trial of `demand` may start with `ledger` in use. Whatever the policy, a
    /// trial starts when nothing else holds resources (one bigger than the budget then
    /// runs alone), and a trial that takes nothing from this machine (a remote one)
    /// starts at once.
    pub fn verdict(&self, ledger: &Ledger, demand: Demand) -> Verdict {
        if self.policy == ResourcePolicy::None || ledger.is_idle() || demand == Demand::NONE {
            return Verdict::Start;
        }
        if ledger.memory_mb.saturating_add(demand.memory_mb) > self.memory_mb {
            return Verdict::Wait(WaitReason::Memory);
        }
        if ledger.cpus + demand.cpus <= self.cpus + EPSILON {
            return Verdict::Start;
        }
        match self.policy {
            ResourcePolicy::Adaptive
                if self
                    .max_cpus
                    .is_none_or(|max| ledger.cpus + demand.cpus <= max + EPSILON) =>
            {
                Verdict::IfPressureAllows
            }
            _ => Verdict::Wait(WaitReason::Cpus),
        }
    }

    /// Whether an image build may start now: under the build bound, and (`reserve`) its
    /// CPU fits. Under `adaptive` a build does not wait for trials admitted by pressure
    /// to end (trials wait for builds); its CPU counts against the cores they reserve.
    pub fn build_fits(&self, ledger: &Ledger) -> bool {
        ledger.builds < self.builds
            && match self.policy {
                ResourcePolicy::Reserve => ledger.fits(self, Demand::BUILD),
                ResourcePolicy::Adaptive | ResourcePolicy::None => true,
            }
    }
}

/// Fractional CPUs add up with rounding errors; this much over is still within.
const EPSILON: f64 = 1e-9;

/// The machine's memory in megabytes (0 when it cannot be read: then memory is not a
/// bound).
fn machine_memory_mb() -> u64 {
    let info = rustix::system::sysinfo();
    #[allow(clippy::useless_conversion)] // `totalram` is 32 bits wide on 32-bit targets.
    let bytes = u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit.max(1)));
    match bytes / (1024 * 1024) {
        0 => u64::MAX,
        mb => mb,
    }
}

/// What is in use now.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    cpus: f64,
    memory_mb: u64,
    /// Trials and builds holding resources.
    holders: usize,
    builds: usize,
    /// The most ever in use at once, for tests and the summary.
    pub peak_cpus: f64,
    pub peak_memory_mb: u64,
}

impl Ledger {
    /// Whether `demand` may start now: it fits in what is free, or nothing else runs (a
    /// trial bigger than the whole budget then runs alone).
    pub fn fits(&self, budget: &Budget, demand: Demand) -> bool {
        self.holders == 0
            || (self.cpus + demand.cpus <= budget.cpus + EPSILON
                && self.memory_mb.saturating_add(demand.memory_mb) <= budget.memory_mb)
    }

    pub fn take(&mut self, demand: Demand) {
        self.cpus += demand.cpus;
        self.memory_mb = self.memory_mb.saturating_add(demand.memory_mb);
        self.holders += 1;
        self.peak_cpus = self.peak_cpus.max(self.cpus);
        self.peak_memory_mb = self.peak_memory_mb.max(self.memory_mb);
    }

    pub fn give_back(&mut self, demand: Demand) {
        self.cpus = (self.cpus - demand.cpus).max(0.0);
        self.memory_mb = self.memory_mb.saturating_sub(demand.memory_mb);
        self.holders = self.holders.saturating_sub(1);
    }

    pub fn take_build(&mut self) {
        self.take(Demand::BUILD);
        self.builds += 1;
    }

    pub fn give_back_build(&mut self) {
        self.give_back(Demand::BUILD);
        self.builds = self.builds.saturating_sub(1);
    }

    /// Whether anything holds resources.
    pub fn is_idle(&self) -> bool {
        self.holders == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CORES: Budget = Budget {
        policy: ResourcePolicy::Reserve,
        cpus: 2.0,
        max_cpus: None,
        memory_mb: 4096,
        builds: 1,
        pressure_target: None,
    };

    fn task(cpus: f64, memory_mb: u64) -> Demand {
        Demand { cpus, memory_mb }
    }

    #[test]
    fn trials_start_only_while_their_cpus_and_memory_fit() {
        let mut ledger = Ledger::default();
        assert!(ledger.fits(&TWO_CORES, task(1.0, 2048)));
        ledger.take(task(1.0, 2048));
        assert!(ledger.fits(&TWO_CORES, task(1.0, 2048)));
        ledger.take(task(1.0, 2048));
        assert!(!ledger.fits(&TWO_CORES, task(0.5, 0)), "no CPU left");
        ledger.give_back(task(1.0, 2048));
        assert!(
            !ledger.fits(&TWO_CORES, task(0.5, 3000)),
            "memory does not fit"
        );
        assert!(ledger.fits(&TWO_CORES, task(0.5, 2048)));
        assert_eq!(ledger.peak_cpus, 2.0);
    }

    #[test]
    fn a_trial_bigger_than_the_budget_runs_alone() {
        let big = task(4.0, 0);
        assert!(TWO_CORES.exceeded_by(big));
        let mut ledger = Ledger::default();
        ledger.take(task(1.0, 0));
        assert!(!ledger.fits(&TWO_CORES, big), "it waits for the others");
        ledger.give_back(task(1.0, 0));
        assert!(ledger.fits(&TWO_CORES, big), "then starts alone");
        ledger.take(big);
        assert!(
            !ledger.fits(&TWO_CORES, task(0.1, 0)),
            "and nothing joins it"
        );
    }

    #[test]
    fn builds_take_a_cpu_and_are_bounded() {
        let mut ledger = Ledger::default();
        assert!(TWO_CORES.build_fits(&ledger));
        ledger.take_build();
        assert!(!TWO_CORES.build_fits(&ledger), "one build at a time");
        assert!(ledger.fits(&TWO_CORES, task(1.0, 0)));
        assert!(
            !ledger.fits(&TWO_CORES, task(1.5, 0)),
            "the build holds a CPU"
        );
    }

    #[test]
    fn a_task_that_names_no_cpus_counts_as_one() {
        assert_eq!(Demand::of_task(None, None), task(1.0, 0));
        assert_eq!(Demand::of_task(Some(0.5), Some(512)), task(0.5, 512));
    }

    #[test]
    fn the_machine_budget_reads_cores_and_memory_unless_overridden() {
        let machine = Budget::of_machine(ResourcePolicy::Reserve, None, None, None);
        assert!(machine.cpus >= 1.0 && machine.memory_mb > 0 && machine.builds >= 1);
        let given = Budget::of_machine(ResourcePolicy::Reserve, Some(1.0), Some(1024), Some(3));
        assert_eq!(
            given,
            Budget {
                cpus: 1.0,
                memory_mb: 1024,
                builds: 3,
                ..TWO_CORES
            }
        );
    }

    fn adaptive(cpus: Option<f64>) -> Budget {
        Budget::with_policy(ResourcePolicy::Adaptive, 2, cpus, 4096, Some(1))
    }

    #[test]
    fn adaptive_reserves_the_cores_then_asks_the_pressure_and_never_overcommits_memory() {
        let budget = adaptive(None);
        let mut ledger = Ledger::default();
        ledger.take(task(1.0, 1024));
        assert_eq!(budget.verdict(&ledger, task(1.0, 1024)), Verdict::Start);
        ledger.take(task(1.0, 1024));
        assert_eq!(
            budget.verdict(&ledger, task(1.0, 1024)),
            Verdict::IfPressureAllows
        );
        ledger.take(task(1.0, 1024));
        assert_eq!(
            budget.verdict(&ledger, task(1.0, 2048)),
            Verdict::Wait(WaitReason::Memory)
        );
        assert_eq!(budget.verdict(&ledger, Demand::NONE), Verdict::Start);
        assert!(!budget.exceeded_by(task(64.0, 0)), "no CPU bound to exceed");
    }

    #[test]
    fn adaptive_with_cpus_given_never_goes_past_them() {
        let budget = adaptive(Some(3.0));
        assert_eq!((budget.cpus, budget.max_cpus), (2.0, Some(3.0)));
        let mut ledger = Ledger::default();
        ledger.take(task(2.0, 0));
        assert_eq!(
            budget.verdict(&ledger, task(1.0, 0)),
            Verdict::IfPressureAllows
        );
        ledger.take(task(1.0, 0));
        assert_eq!(
            budget.verdict(&ledger, task(1.0, 0)),
            Verdict::Wait(WaitReason::Cpus)
        );
        assert!(budget.exceeded_by(task(4.0, 0)));
    }

    #[test]
    fn none_is_a_plain_concurrency_bound() {
        let budget = Budget::with_policy(ResourcePolicy::None, 2, None, 1024, Some(1));
        let mut ledger = Ledger::default();
        ledger.take(task(8.0, 4096));
        assert_eq!(budget.verdict(&ledger, task(8.0, 4096)), Verdict::Start);
        assert!(!budget.exceeded_by(task(8.0, 4096)));
    }

    #[test]
    fn adaptive_builds_do_not_wait_for_trials_admitted_by_pressure() {
        let budget = adaptive(None);
        let mut ledger = Ledger::default();
        for _ in 0..4 {
            ledger.take(task(1.0, 0));
        }
        assert!(budget.build_fits(&ledger));
        ledger.take_build();
        assert!(!budget.build_fits(&ledger), "the build bound still holds");
    }
}
