//! Verification: rewards written by a task's tests and by extra pipeline steps, and where
//! the tests run.

pub mod reward;
pub mod steps;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a task's tests run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In the agent's own container, after the agent (Harbor's way). Stale reward files
    /// are removed first, and reward files the agent left or that change after the tests
    /// end are recorded as `tampering_suspected`.
    #[default]
    Shared,
    /// In a fresh container made from the agent's, frozen into an image when the agent
    /// ends: none of the agent's processes run there, so an agent cannot rewrite its
    /// reward.
    Separate,
}
