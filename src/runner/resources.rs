//! The resource budget of a run: what the machine (or `--cpus` / `--memory`) can give the
//! trials and image builds that run on it at once, and the ledger of what is taken. A
//! trial starts only when what its task asked for fits in what is free, so its rewards
//! measure the agent and not the machine's load.

use serde::Serialize;

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
    pub cpus: f64,
    pub memory_mb: u64,
    /// Image builds at once.
    pub builds: usize,
}

impl Budget {
    /// This machine's cores and memory, with `cpus` and `memory_mb` overriding either, and
    /// a build bound of half the cores (at least one) unless `builds` is given.
    pub fn of_machine(cpus: Option<f64>, memory_mb: Option<u64>, builds: Option<usize>) -> Budget {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory = memory_mb.unwrap_or_else(machine_memory_mb);
        Budget {
            cpus: cpus.unwrap_or(cores as f64),
            memory_mb: memory,
            builds: builds.unwrap_or((cores / 2).max(1)).max(1),
        }
    }

    /// Whether `demand` alone is more than the whole budget: such a trial runs alone.
    pub fn exceeded_by(&self, demand: Demand) -> bool {
        demand.cpus > self.cpus + EPSILON || demand.memory_mb > self.memory_mb
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

    /// Whether a build may start now.
    pub fn build_fits(&self, budget: &Budget) -> bool {
        self.builds < budget.builds && self.fits(budget, Demand::BUILD)
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
        cpus: 2.0,
        memory_mb: 4096,
        builds: 1,
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
        assert!(ledger.build_fits(&TWO_CORES));
        ledger.take_build();
        assert!(!ledger.build_fits(&TWO_CORES), "one build at a time");
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
        let machine = Budget::of_machine(None, None, None);
        assert!(machine.cpus >= 1.0 && machine.memory_mb > 0 && machine.builds >= 1);
        let given = Budget::of_machine(Some(1.0), Some(1024), Some(3));
        assert_eq!(
            given,
            Budget {
                cpus: 1.0,
                memory_mb: 1024,
                builds: 3
            }
        );
    }
}
