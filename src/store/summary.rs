//! `summary.json`: a run's results grouped by stage, agent, model and parameters, with
//! the statistics of each group (honest denominators: infrastructure errors are counted
//! apart and left out of every rate) and the outcome of the pipeline's `[[expect]]`s.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::trial::TrialResult;
use crate::events::TrialStatus;
use crate::manifest::pipeline::Expect;
use crate::stats;

/// One row of the summary: a stage × agent × model × parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub stage: String,
    pub agent: String,
    pub model: Option<String>,
    /// The matrix parameters of the group (empty without a matrix).
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    pub trials: usize,
    /// Trials with a primary reward of at least 1.
    pub passed: usize,
    /// Mean primary reward over the trials that have one.
    pub mean_reward: Option<f64>,
    /// Trials that ended in an error, by error kind.
    pub errors: BTreeMap<String, usize>,
    /// Model cost in US dollars over these trials (null when no trial had a known cost).
    pub cost_usd: Option<f64>,
    /// The group's statistics (absent in summaries written before helios 0.2).
    #[serde(default)]
    pub stats: Option<GroupStats>,
}

impl SummaryRow {
    /// `stage / agent / model [params]`, for people.
    pub fn label(&self) -> String {
        let mut label = format!("{} / {}", self.stage, self.agent);
        if let Some(model) = &self.model {
            label.push_str(" / ");
            label.push_str(model);
        }
        if !self.params.is_empty() {
            label.push(' ');
            label.push_str(&serde_json::to_string(&self.params).unwrap_or_default());
        }
        label
    }

    /// Whether this row and `other` are the same group (of two runs, say).
    pub fn same_group(&self, other: &SummaryRow) -> bool {
        self.stage == other.stage
            && self.agent == other.agent
            && self.model == other.model
            && self.params == other.params
    }
}

/// A group's statistics. Rates and means are over the *scored* trials: those that did not
/// end in an infrastructure error or a cancel. A trial whose agent failed is scored with
/// reward 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    /// The denominator of every rate and mean below.
    pub scored: usize,
    /// Trials left out of the denominators because the infrastructure failed (or the run
    /// was cancelled under them).
    pub infrastructure_errors: usize,
    /// Distinct tasks with a scored trial.
    pub tasks: usize,
    /// The most scored attempts of any one task.
    pub attempts: usize,
    /// Whether the standard errors are clustered by task (some task has several attempts).
    pub clustered: bool,
    /// Mean reward (failed trials count 0), its standard error and 95% t interval.
    pub mean_reward: Option<stats::Estimate>,
    /// Share of scored trials that passed, its standard error and 95% t interval.
    pub pass_rate: Option<stats::Estimate>,
    /// Share of all trials that ended in an error of any kind (infrastructure included).
    pub error_rate: Option<f64>,
    /// pass@k for k = 1 … attempts, by the unbiased estimator, averaged over the tasks
    /// with at least k scored attempts.
    pub pass_at_k: Vec<PassAtK>,
    /// Per task, in the order tasks first appear.
    pub per_task: Vec<TaskStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    pub k: usize,
    pub value: f64,
    /// Tasks averaged over.
    pub tasks: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStats {
    pub task: String,
    pub scored: usize,
    pub passed: usize,
    pub infrastructure_errors: usize,
    pub pass_rate: Option<f64>,
    pub mean_reward: Option<f64>,
}

/// Whether a trial counts towards its group's denominators.
pub fn is_scored(result: &TrialResult) -> bool {
    !matches!(
        result.status,
        TrialStatus::Cancelled | TrialStatus::InfraError
    ) && !result
        .error
        .as_ref()
        .is_some_and(|e| e.kind.is_infrastructure())
}

/// A scored trial's reward: its primary reward, 0 when it has none.
pub fn score(result: &TrialResult) -> f64 {
    result.reward.unwrap_or(0.0)
}

impl GroupStats {
    /// The statistics of one group's results.
    pub fn of(results: &[&TrialResult]) -> GroupStats {
        let mut per_task: Vec<(String, Vec<&TrialResult>, usize)> = Vec::new();
        // Each task's place in `per_task`, so that a group of many tasks is not quadratic.
        let mut places: HashMap<&str, usize> = HashMap::new();
        for result in results {
            let i = *places.entry(result.task.as_str()).or_insert_with(|| {
                per_task.push((result.task.clone(), Vec::new(), 0));
                per_task.len() - 1
            });
            if is_scored(result) {
                per_task[i].1.push(result);
            } else {
                per_task[i].2 += 1;
            }
        }
        let rewards: Vec<Vec<f64>> = per_task
            .iter()
            .map(|(_, rs, _)| rs.iter().map(|r| score(r)).collect())
            .collect();
        let passes: Vec<Vec<f64>> = per_task
            .iter()
            .map(|(_, rs, _)| rs.iter().map(|r| f64::from(u8::from(r.passed()))).collect())
            .collect();
        let scored: usize = rewards.iter().map(Vec::len).sum();
        let attempts = rewards.iter().map(Vec::len).max().unwrap_or(0);
        let pass_at_k = (1..=attempts)
            .filter_map(|k| {
                let values: Vec<f64> = passes
                    .iter()
                    .filter(|p| p.len() >= k)
                    .filter_map(|p| {
                        let c = p.iter().filter(|v| **v > 0.0).count();
                        stats::pass_at_k(p.len() as u32, c as u32, k as u32)
                    })
                    .collect();
                Some(PassAtK {
                    k,
                    value: stats::mean(&values)?,
                    tasks: values.len(),
                })
            })
            .collect();
        let errors = results.iter().filter(|r| r.error.is_some()).count();
        GroupStats {
            scored,
            infrastructure_errors: results.len() - scored,
            tasks: rewards.iter().filter(|r| !r.is_empty()).count(),
            attempts,
            clustered: attempts > 1,
            mean_reward: stats::estimate(&rewards).map(|e| within_unit(e, &rewards)),
            pass_rate: stats::estimate(&passes).map(|e| within_unit(e, &passes)),
            error_rate: (!results.is_empty()).then(|| errors as f64 / results.len() as f64),
            pass_at_k,
            per_task: per_task
                .iter()
                .zip(&rewards)
                .zip(&passes)
                .map(|(((task, _, infra), rewards), passes)| TaskStats {
                    task: task.clone(),
                    scored: rewards.len(),
                    passed: passes.iter().filter(|p| **p > 0.0).count(),
                    infrastructure_errors: *infra,
                    pass_rate: stats::mean(passes),
                    mean_reward: stats::mean(rewards),
                })
                .collect(),
        }
    }
}

/// An interval of values that all lie in [0, 1] is clipped to [0, 1]: a t interval over
/// few tasks can reach past what a reward or a rate can be.
fn within_unit(mut estimate: stats::Estimate, values: &[Vec<f64>]) -> stats::Estimate {
    if values.iter().flatten().all(|v| (0.0..=1.0).contains(v)) {
        estimate.ci95 = estimate
            .ci95
            .map(|[low, high]| [low.max(0.0), high.min(1.0)]);
    }
    estimate
}

/// The content of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub pipeline: String,
    pub helios_version: String,
    pub trials: usize,
    pub passed: usize,
    pub errors: usize,
    /// Trials that count in the statistics' denominators.
    #[serde(default)]
    pub scored: usize,
    /// Trials left out of the denominators: the infrastructure failed, or a cancel.
    #[serde(default)]
    pub infrastructure_errors: usize,
    /// Model cost of the whole run in US dollars, where known.
    pub cost_usd: Option<f64>,
    pub rows: Vec<SummaryRow>,
    /// The `[[expect]]`s (and `--fail-under`) checked, as written, so that `helios report`
    /// can check them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<Expect>,
    /// Every check of every `[[expect]]` (and `--fail-under`), met or not.
    #[serde(default)]
    pub expectations: Vec<ExpectationCheck>,
    /// Invalid tasks the run left out (`on_invalid = "skip"`), with their problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_tasks: Vec<crate::manifest::SkippedTask>,
}

/// What an expectation measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    MeanReward,
    PassRate,
    ErrorRate,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::MeanReward => "mean_reward",
            Metric::PassRate => "pass_rate",
            Metric::ErrorRate => "error_rate",
        }
    }

    /// Whether the threshold is a floor (`min_…`) rather than a ceiling (`max_…`).
    pub fn is_floor(self) -> bool {
        !matches!(self, Metric::ErrorRate)
    }
}

/// One bar checked on one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectationCheck {
    /// The `[[expect]]`'s position in the pipeline (0-based); `--fail-under` comes last.
    pub expectation: usize,
    /// The selectors, for people: `stage=…, agent=…` or `all groups`.
    pub selects: String,
    /// The group checked, `None` when the expectation selected no group (not met).
    pub group: Option<String>,
    pub metric: Metric,
    pub threshold: f64,
    /// The group's value, `None` when it has no scored trial (not met).
    pub actual: Option<f64>,
    pub met: bool,
    /// How far short of the bar the value is (0 when met).
    pub shortfall: f64,
}

impl ExpectationCheck {
    /// One line for people: what failed and by how much.
    pub fn describe(&self) -> String {
        let op = if self.metric.is_floor() { "≥" } else { "≤" };
        let group = self.group.as_deref().unwrap_or("no group matched");
        match self.actual {
            Some(actual) if self.met => format!(
                "met: {} {} {op} {} ({group}: {actual:.3})",
                self.selects,
                self.metric.as_str(),
                self.threshold
            ),
            Some(actual) => format!(
                "not met: {} {} {op} {} ({group}: {actual:.3}, short by {:.3})",
                self.selects,
                self.metric.as_str(),
                self.threshold,
                self.shortfall
            ),
            None => format!(
                "not met: {} {} {op} {} ({group}: no scored trial)",
                self.selects,
                self.metric.as_str(),
                self.threshold
            ),
        }
    }
}

impl Summary {
    /// Groups `results` in the order they come (the plan's order).
    pub fn of(pipeline: &str, results: &[&TrialResult]) -> Summary {
        let mut rows: Vec<SummaryRow> = Vec::new();
        let mut members: Vec<Vec<&TrialResult>> = Vec::new();
        let mut sums: Vec<(f64, usize)> = Vec::new();
        for result in results {
            let position = rows.iter().position(|r| {
                r.stage == result.stage
                    && r.agent == result.agent
                    && r.model == result.model
                    && r.params == result.params
            });
            let i = position.unwrap_or_else(|| {
                rows.push(SummaryRow {
                    stage: result.stage.clone(),
                    agent: result.agent.clone(),
                    model: result.model.clone(),
                    params: result.params.clone(),
                    trials: 0,
                    passed: 0,
                    mean_reward: None,
                    errors: BTreeMap::new(),
                    cost_usd: None,
                    stats: None,
                });
                sums.push((0.0, 0));
                members.push(Vec::new());
                rows.len() - 1
            });
            members[i].push(result);
            let row = &mut rows[i];
            row.trials += 1;
            row.passed += usize::from(result.passed());
            if let Some(reward) = result.reward {
                sums[i].0 += reward;
                sums[i].1 += 1;
            }
            if let Some(error) = &result.error {
                *row.errors
                    .entry(error.kind.as_str().to_string())
                    .or_default() += 1;
            }
            if let Some(cost) = result.cost_usd {
                row.cost_usd = Some(row.cost_usd.unwrap_or(0.0) + cost);
            }
        }
        for ((row, (sum, count)), members) in rows.iter_mut().zip(sums).zip(&members) {
            row.mean_reward = (count > 0).then(|| sum / count as f64);
            row.stats = Some(GroupStats::of(members));
        }
        let scored = results.iter().filter(|r| is_scored(r)).count();
        Summary {
            pipeline: pipeline.to_string(),
            helios_version: env!("CARGO_PKG_VERSION").to_string(),
            trials: results.len(),
            passed: results.iter().filter(|r| r.passed()).count(),
            errors: results.iter().filter(|r| r.error.is_some()).count(),
            scored,
            infrastructure_errors: results.len() - scored,
            cost_usd: rows.iter().filter_map(|r| r.cost_usd).reduce(|a, b| a + b),
            rows,
            expect: Vec::new(),
            expectations: Vec::new(),
            skipped_tasks: Vec::new(),
        }
    }

    /// The summary with the tasks the run left out as invalid.
    pub fn with_skipped(mut self, skipped: &[crate::manifest::SkippedTask]) -> Summary {
        self.skipped_tasks = skipped.to_vec();
        self
    }

    /// The summary with every bar of `expects` checked on every group it selects.
    pub fn checked(mut self, expects: &[Expect]) -> Summary {
        self.expectations = expects
            .iter()
            .enumerate()
            .flat_map(|(i, expect)| check(i, expect, &self.rows))
            .collect();
        self.expect = expects.to_vec();
        self
    }

    /// Whether every expectation was met (true without any).
    pub fn expectations_met(&self) -> bool {
        self.expectations.iter().all(|c| c.met)
    }
}

fn selects(expect: &Expect) -> String {
    let parts: Vec<String> = [
        ("stage", &expect.stage),
        ("agent", &expect.agent),
        ("model", &expect.model),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={v}")))
    .collect();
    if parts.is_empty() {
        "all groups".to_string()
    } else {
        parts.join(", ")
    }
}

fn check(index: usize, expect: &Expect, rows: &[SummaryRow]) -> Vec<ExpectationCheck> {
    let bars = [
        (Metric::MeanReward, expect.min_mean_reward),
        (Metric::PassRate, expect.min_pass_rate),
        (Metric::ErrorRate, expect.max_error_rate),
    ];
    let selected: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| expect.stage.as_ref().is_none_or(|s| *s == r.stage))
        .filter(|r| expect.agent.as_ref().is_none_or(|a| *a == r.agent))
        .filter(|r| expect.model.is_none() || expect.model == r.model)
        .collect();
    let mut out = Vec::new();
    for (metric, threshold) in bars {
        let Some(threshold) = threshold else { continue };
        let base = ExpectationCheck {
            expectation: index,
            selects: selects(expect),
            group: None,
            metric,
            threshold,
            actual: None,
            met: false,
            shortfall: 0.0,
        };
        if selected.is_empty() {
            out.push(base.clone());
        }
        for row in &selected {
            let stats = row.stats.as_ref();
            let actual = match metric {
                Metric::MeanReward => stats.and_then(|s| s.mean_reward).map(|e| e.mean),
                Metric::PassRate => stats.and_then(|s| s.pass_rate).map(|e| e.mean),
                Metric::ErrorRate => stats.and_then(|s| s.error_rate),
            };
            let shortfall = actual.map_or(0.0, |a| {
                if metric.is_floor() {
                    (threshold - a).max(0.0)
                } else {
                    (a - threshold).max(0.0)
                }
            });
            out.push(ExpectationCheck {
                group: Some(row.label()),
                actual,
                met: actual.is_some() && shortfall <= 1e-12,
                shortfall,
                ..base.clone()
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::ErrorKind;
    use crate::store::trial::{ErrorInfo, RESULT_FORMAT};

    pub(crate) fn result(
        task: &str,
        agent: &str,
        attempt: u32,
        reward: Option<f64>,
    ) -> TrialResult {
        TrialResult {
            format: RESULT_FORMAT,
            trial_id: format!("{task}{agent}{attempt}"),
            full_id: String::new(),
            task: task.into(),
            stage: "eval".into(),
            agent: agent.into(),
            model: None,
            params: BTreeMap::new(),
            attempt,
            status: TrialStatus::Completed,
            rewards: BTreeMap::new(),
            reward,
            error: None,
            timings: Vec::new(),
            agent_exit_code: None,
            verifier_exit_code: None,
            usage: None,
            cost_usd: None,
            image: String::new(),
            provider: Default::default(),
            container: None,
            retried: Vec::new(),
            teardown_errors: Vec::new(),
            tampering_suspected: false,
            tampering: Vec::new(),
            logs_cut: None,
            collect: Vec::new(),
            steps: Vec::new(),
            regraded_from: None,
            network: BTreeMap::new(),
            warnings: Vec::new(),
            helios_version: String::new(),
        }
    }

    fn infra(task: &str, agent: &str, attempt: u32) -> TrialResult {
        let mut r = result(task, agent, attempt, None);
        r.status = TrialStatus::InfraError;
        r.error = Some(ErrorInfo::new(ErrorKind::ProviderError, "boom"));
        r
    }

    #[test]
    fn infrastructure_errors_are_left_out_of_every_denominator() {
        let mut timed_out = result("b", "x", 1, None);
        timed_out.status = TrialStatus::TimedOut;
        timed_out.error = Some(ErrorInfo::new(ErrorKind::AgentTimeout, "slow"));
        let results = [
            result("a", "x", 1, Some(1.0)),
            infra("a", "x", 2),
            timed_out,
            result("b", "x", 2, Some(1.0)),
        ];
        let summary = Summary::of("p", &results.iter().collect::<Vec<_>>());
        assert_eq!((summary.scored, summary.infrastructure_errors), (3, 1));
        let stats = summary.rows[0].stats.as_ref().unwrap();
        assert_eq!(stats.scored, 3);
        assert_eq!(stats.infrastructure_errors, 1);
        // The timed-out agent scores 0: 2 of 3.
        assert!((stats.pass_rate.unwrap().mean - 2.0 / 3.0).abs() < 1e-12);
        assert!((stats.mean_reward.unwrap().mean - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(stats.error_rate, Some(0.5));
        assert_eq!(stats.per_task[0].infrastructure_errors, 1);
        assert_eq!(stats.per_task[0].scored, 1);
        assert!(stats.clustered);
        // pass@1 over both tasks (a: 1/1, b: 1/2); pass@2 only over b (1 of 2 passed).
        assert_eq!(stats.pass_at_k.len(), 2);
        assert!((stats.pass_at_k[0].value - 0.75).abs() < 1e-12);
        assert_eq!(stats.pass_at_k[1].tasks, 1);
        assert_eq!(stats.pass_at_k[1].value, 1.0);
    }

    #[test]
    fn expectations_say_which_failed_and_by_how_much() {
        let results = [
            result("a", "good", 1, Some(1.0)),
            result("b", "good", 1, Some(1.0)),
            result("a", "bad", 1, Some(0.0)),
            result("b", "bad", 1, Some(0.5)),
        ];
        let summary = Summary::of("p", &results.iter().collect::<Vec<_>>()).checked(&[
            Expect {
                min_mean_reward: Some(0.5),
                ..Expect::default()
            },
            Expect {
                agent: Some("good".into()),
                min_pass_rate: Some(1.0),
                max_error_rate: Some(0.0),
                ..Expect::default()
            },
            Expect {
                agent: Some("nobody".into()),
                min_pass_rate: Some(0.1),
                ..Expect::default()
            },
        ]);
        let failed: Vec<&ExpectationCheck> =
            summary.expectations.iter().filter(|c| !c.met).collect();
        assert_eq!(failed.len(), 2, "{:#?}", summary.expectations);
        assert_eq!(failed[0].group.as_deref(), Some("eval / bad"));
        assert!((failed[0].shortfall - 0.25).abs() < 1e-12);
        assert!(failed[0].describe().contains("short by 0.250"));
        assert_eq!(failed[1].group, None);
        assert!(!summary.expectations_met());
        assert_eq!(summary.expectations.len(), 5);
    }

    #[test]
    fn old_summaries_still_read() {
        let old = r#"{"pipeline":"p","helios_version":"0.1.0","trials":1,"passed":1,"errors":0,
            "cost_usd":null,"rows":[{"stage":"s","agent":"a","model":null,"trials":1,"passed":1,
            "mean_reward":1.0,"errors":{},"cost_usd":null}]}"#;
        let summary: Summary = serde_json::from_str(old).unwrap();
        assert_eq!(summary.rows[0].stats, None);
        assert!(summary.expectations_met());
    }
}
