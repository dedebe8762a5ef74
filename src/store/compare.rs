//! Comparisons of two runs (or two groups of one run) from their summaries: per group the
//! difference of mean rewards with its interval, a paired bootstrap over the tasks both
//! ran, McNemar's exact test on their pass/fail, and the tasks that flipped.

use serde::{Deserialize, Serialize};

use super::summary::{Summary, SummaryRow};
use crate::stats::{self, BOOTSTRAP_RESAMPLES, Estimate, PairedBootstrap};

/// The seed of every comparison's bootstrap: the same two runs always compare the same.
pub const BOOTSTRAP_SEED: u64 = 0x4845_4c49_4f53; // "HELIOS"

/// The names of the tests, as the output states them.
pub const PAIRED_TEST: &str =
    "paired bootstrap over shared tasks (10000 resamples, seed 0x48454c494f53)";
pub const MCNEMAR_TEST: &str = "McNemar's exact test on task pass/fail";
pub const DIFFERENCE_INTERVAL: &str = "normal approximation, √(SE_a² + SE_b²) × 1.96";

/// A comparison of B against A: every difference is B − A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub paired_test: String,
    pub mcnemar_test: String,
    pub difference_interval: String,
    pub groups: Vec<GroupComparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupComparison {
    /// The group (`stage / agent / model`), or `A vs B` for two groups of one run.
    pub group: String,
    /// Mean reward of the group in A and in B (absent when one side lacks the group).
    pub a: Option<Estimate>,
    pub b: Option<Estimate>,
    /// B − A of the mean rewards.
    pub difference: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    /// Tasks with scored trials on both sides.
    pub shared_tasks: usize,
    /// The paired bootstrap of per-task mean rewards over the shared tasks.
    pub paired: Option<PairedBootstrap>,
    /// McNemar's exact p-value over the shared tasks' pass/fail (a task passes when at
    /// least half its scored attempts did).
    pub mcnemar_p_value: Option<f64>,
    /// Shared tasks that passed in A and failed in B.
    pub pass_to_fail: Vec<String>,
    /// Shared tasks that failed in A and passed in B.
    pub fail_to_pass: Vec<String>,
}

impl Comparison {
    /// Every group of either run, matched by stage, agent, model and parameters.
    pub fn of_runs(a_name: &str, a: &Summary, b_name: &str, b: &Summary) -> Comparison {
        let mut groups: Vec<GroupComparison> = a
            .rows
            .iter()
            .map(|row| {
                let other = b.rows.iter().find(|r| r.same_group(row));
                compare(row.label(), Some(row), other)
            })
            .collect();
        for row in b
            .rows
            .iter()
            .filter(|r| !a.rows.iter().any(|x| x.same_group(r)))
        {
            groups.push(compare(row.label(), None, Some(row)));
        }
        Comparison::new(a_name, b_name, groups)
    }

    /// Two groups of one run.
    pub fn of_groups(a: &SummaryRow, b: &SummaryRow) -> Comparison {
        let group = compare(format!("{} vs {}", a.label(), b.label()), Some(a), Some(b));
        Comparison::new(&a.label(), &b.label(), vec![group])
    }

    fn new(a: &str, b: &str, groups: Vec<GroupComparison>) -> Comparison {
        Comparison {
            a: a.to_string(),
            b: b.to_string(),
            paired_test: PAIRED_TEST.to_string(),
            mcnemar_test: MCNEMAR_TEST.to_string(),
            difference_interval: DIFFERENCE_INTERVAL.to_string(),
            groups,
        }
    }
}

fn compare(group: String, a: Option<&SummaryRow>, b: Option<&SummaryRow>) -> GroupComparison {
    let stats_a = a.and_then(|r| r.stats.as_ref());
    let stats_b = b.and_then(|r| r.stats.as_ref());
    let mean_a = stats_a.and_then(|s| s.mean_reward);
    let mean_b = stats_b.and_then(|s| s.mean_reward);
    let difference = mean_a.zip(mean_b).map(|(a, b)| b.mean - a.mean);
    let ci95 = mean_a.zip(mean_b).and_then(|(a, b)| {
        let se = (a.std_error?.powi(2) + b.std_error?.powi(2)).sqrt();
        let d = b.mean - a.mean;
        Some([d - 1.96 * se, d + 1.96 * se])
    });
    let mut pairs = Vec::new();
    let (mut pass_to_fail, mut fail_to_pass) = (Vec::new(), Vec::new());
    if let (Some(sa), Some(sb)) = (stats_a, stats_b) {
        for ta in sa.per_task.iter().filter(|t| t.scored > 0) {
            let Some(tb) = sb
                .per_task
                .iter()
                .find(|t| t.task == ta.task && t.scored > 0)
            else {
                continue;
            };
            pairs.push((ta.mean_reward.unwrap_or(0.0), tb.mean_reward.unwrap_or(0.0)));
            let passed = |rate: Option<f64>| rate.is_some_and(|r| r >= 0.5);
            match (passed(ta.pass_rate), passed(tb.pass_rate)) {
                (true, false) => pass_to_fail.push(ta.task.clone()),
                (false, true) => fail_to_pass.push(ta.task.clone()),
                _ => {}
            }
        }
    }
    let paired = stats::paired_bootstrap(&pairs, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    GroupComparison {
        group,
        a: mean_a,
        b: mean_b,
        difference,
        ci95,
        shared_tasks: pairs.len(),
        paired,
        mcnemar_p_value: (!pairs.is_empty())
            .then(|| stats::mcnemar_exact(pass_to_fail.len() as u64, fail_to_pass.len() as u64)),
        pass_to_fail,
        fail_to_pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::summary::tests::result;

    #[test]
    fn flipped_tasks_are_listed_both_ways() {
        let a = [
            result("t1", "x", 1, Some(1.0)),
            result("t2", "x", 1, Some(1.0)),
            result("t3", "x", 1, Some(0.0)),
            result("t4", "x", 1, Some(0.0)),
        ];
        let b = [
            result("t1", "x", 1, Some(1.0)),
            result("t2", "x", 1, Some(0.0)),
            result("t3", "x", 1, Some(1.0)),
            result("t4", "x", 1, Some(1.0)),
            result("t5", "y", 1, Some(1.0)),
        ];
        let a = Summary::of("p", &a.iter().collect::<Vec<_>>());
        let b = Summary::of("p", &b.iter().collect::<Vec<_>>());
        let comparison = Comparison::of_runs("A", &a, "B", &b);
        assert_eq!(comparison.groups.len(), 2);
        let x = &comparison.groups[0];
        assert_eq!(x.pass_to_fail, ["t2"]);
        assert_eq!(x.fail_to_pass, ["t3", "t4"]);
        assert_eq!(x.shared_tasks, 4);
        assert!((x.difference.unwrap() - 0.25).abs() < 1e-12);
        // b = 1, c = 2: 2 · (1 + 3) / 8 = 1, capped.
        assert_eq!(x.mcnemar_p_value, Some(1.0));
        assert!(x.paired.unwrap().pairs == 4);
        let y = &comparison.groups[1];
        assert_eq!((y.a, y.shared_tasks), (None, 0));
    }
}
