//! The worst case a plan may spend on models: per trial still to run, its agent's
//! `max_cost_usd`, or else its `max_tokens` at the model's dearest rate from the price
//! table (or the pipeline's `price`); trials bounded by neither are counted apart.

use serde::Serialize;

use super::Plan;
use super::status::TrialState;
use crate::manifest::Pipeline;
use crate::model::ModelId;
use crate::model::pricing;

/// The most the trials still to run may cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WorstCase {
    /// The sum over the trials with a bound, in US dollars.
    pub bounded_usd: f64,
    /// Model-driven trials to run whose cost has no bound (no `max_cost_usd`, and no
    /// `max_tokens` with a known price): the worst case is then unknown.
    pub unbounded_trials: usize,
    /// `[pipeline] max_cost_usd`, which stops the run in any case.
    pub budget_usd: Option<f64>,
}

impl WorstCase {
    pub fn of(pipeline: &Pipeline, plan: &Plan, states: &[TrialState]) -> WorstCase {
        let mut worst = WorstCase {
            bounded_usd: 0.0,
            unbounded_trials: 0,
            budget_usd: plan.max_cost_usd,
        };
        for (trial, state) in plan.trials.iter().zip(states) {
            if *state == TrialState::Done {
                continue;
            }
            let Some(model) = trial.model.map(|m| &plan.models[m as usize]) else {
                continue;
            };
            let limits = &plan.agents[trial.agent as usize].limits;
            if let Some(cost) = limits.max_cost_usd {
                worst.bounded_usd += cost;
                continue;
            }
            let price = pipeline
                .manifest
                .models
                .get(&model.name)
                .and_then(|spec| spec.price.as_ref());
            let rates = ModelId::parse(&model.id)
                .ok()
                .and_then(|id| pricing::rates(&id, price));
            match (limits.max_tokens, rates) {
                (Some(tokens), Some(rates)) => {
                    let dearest = rates.input.max(rates.output);
                    worst.bounded_usd += tokens as f64 * dearest / 1_000_000.0;
                }
                _ => worst.unbounded_trials += 1,
            }
        }
        worst
    }

    /// For people: `$12.50 (3 trial(s) without a bound); budget $10.00`.
    pub fn describe(&self) -> String {
        let mut out = format!("worst-case model cost: ${:.2}", self.bounded_usd);
        if self.unbounded_trials > 0 {
            out.push_str(&format!(
                " plus {} trial(s) without a bound (set the agent's `max_cost_usd` or `max_tokens`)",
                self.unbounded_trials
            ));
        }
        if let Some(budget) = self.budget_usd {
            out.push_str(&format!(
                "; budget ${budget:.2} ([pipeline] max_cost_usd): no trial starts once it is spent"
            ));
        }
        out
    }
}
