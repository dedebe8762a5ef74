//! How many trials a pipeline makes, counted without making them, so a bound can be checked
//! before anything is allocated.

use super::check_pipeline::BUILTIN_AGENTS;
use super::pipeline::PipelineManifest;
use crate::agent::AgentKind;

/// The trials of one stage and the factors they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageTrials {
    /// Index of the stage in the manifest's `stages`.
    pub stage: usize,
    /// Selected tasks × agents and their models × matrix combinations × attempts
    /// (saturating: a count too large for `u128` is `u128::MAX`).
    pub trials: u128,
    /// Combinations of the stage's matrix (1 without a matrix).
    pub combinations: u128,
    pub attempts: u32,
}

/// The trials of every stage, in file order; `task_names` are the tasks the pipeline
/// selects. Unknown agents and models count once (validation reports them).
pub fn count_trials(manifest: &PipelineManifest, task_names: &[String]) -> Vec<StageTrials> {
    manifest
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let patterns: Vec<glob::Pattern> = stage
                .tasks
                .iter()
                .filter_map(|f| glob::Pattern::new(f).ok())
                .collect();
            let tasks = task_names
                .iter()
                .filter(|name| patterns.is_empty() || patterns.iter().any(|p| p.matches(name)))
                .count() as u128;
            // As the plan crosses them: a model-driven agent runs with each of the stage's
            // models, every other agent once.
            let runs: u128 = stage
                .agents
                .iter()
                .map(|name| {
                    let kind = manifest.agents.get(name).map(|a| a.kind());
                    let crossed =
                        matches!(kind, Some(AgentKind::Terminal | AgentKind::ComputerUse))
                            && !BUILTIN_AGENTS.contains(&name.as_str());
                    if crossed && !stage.models.is_empty() {
                        stage.models.len() as u128
                    } else {
                        1
                    }
                })
                .fold(0u128, u128::saturating_add);
            let combinations = stage
                .matrix
                .values()
                .fold(1u128, |n, values| n.saturating_mul(values.len() as u128));
            let trials = tasks
                .saturating_mul(runs)
                .saturating_mul(combinations)
                .saturating_mul(u128::from(stage.attempts));
            StageTrials {
                stage: i,
                trials,
                combinations,
                attempts: stage.attempts,
            }
        })
        .collect()
}

/// The pipeline's total: the sum over its stages.
pub fn total_trials(stages: &[StageTrials]) -> u128 {
    stages.iter().fold(0u128, |n, s| n.saturating_add(s.trials))
}
