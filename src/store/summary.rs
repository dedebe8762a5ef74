//! `summary.json`: a run's results grouped by stage, agent and model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::trial::TrialResult;

/// One row of the summary: a stage × agent × model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub stage: String,
    pub agent: String,
    pub model: Option<String>,
    pub trials: usize,
    /// Trials with a primary reward of at least 1.
    pub passed: usize,
    /// Mean primary reward over the trials that have one.
    pub mean_reward: Option<f64>,
    /// Trials that ended in an error, by error kind.
    pub errors: BTreeMap<String, usize>,
    /// Model cost in US dollars over these trials (null when no trial had a known cost).
    pub cost_usd: Option<f64>,
}

/// The content of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub pipeline: String,
    pub helios_version: String,
    pub trials: usize,
    pub passed: usize,
    pub errors: usize,
    /// Model cost of the whole run in US dollars, where known.
    pub cost_usd: Option<f64>,
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// Groups `results` in the order they come (the plan's order).
    pub fn of(pipeline: &str, results: &[&TrialResult]) -> Summary {
        let mut rows: Vec<SummaryRow> = Vec::new();
        let mut sums: Vec<(f64, usize)> = Vec::new();
        for result in results {
            let position = rows.iter().position(|r| {
                r.stage == result.stage && r.agent == result.agent && r.model == result.model
            });
            let i = position.unwrap_or_else(|| {
                rows.push(SummaryRow {
                    stage: result.stage.clone(),
                    agent: result.agent.clone(),
                    model: result.model.clone(),
                    trials: 0,
                    passed: 0,
                    mean_reward: None,
                    errors: BTreeMap::new(),
                    cost_usd: None,
                });
                sums.push((0.0, 0));
                rows.len() - 1
            });
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
        for (row, (sum, count)) in rows.iter_mut().zip(sums) {
            row.mean_reward = (count > 0).then(|| sum / count as f64);
        }
        Summary {
            pipeline: pipeline.to_string(),
            helios_version: env!("CARGO_PKG_VERSION").to_string(),
            trials: results.len(),
            passed: results.iter().filter(|r| r.passed()).count(),
            errors: results.iter().filter(|r| r.error.is_some()).count(),
            cost_usd: rows.iter().filter_map(|r| r.cost_usd).reduce(|a, b| a + b),
            rows,
        }
    }
}
