//! What an agent is, and the limits of one agent run, as pipelines name them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// Runs the task's `solution/solve.sh`.
    Oracle,
    /// Does nothing; the verifier should give 0.
    Nop,
    /// A model working through a shell in the task's container.
    Terminal,
    /// A model working a desktop through screenshots, mouse and keyboard.
    ComputerUse,
    /// A command run in the task's container (an installed agent).
    Command,
}

impl AgentKind {
    pub const ALL: [&'static str; 5] = ["oracle", "nop", "terminal", "computer-use", "command"];

    pub fn needs_model(self) -> bool {
        matches!(self, AgentKind::Terminal | AgentKind::ComputerUse)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Oracle => "oracle",
            AgentKind::Nop => "nop",
            AgentKind::Terminal => "terminal",
            AgentKind::ComputerUse => "computer-use",
            AgentKind::Command => "command",
        }
    }
}

/// Limits of one agent run. Absent values take the defaults in `docs/manifests.md`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentLimits {
    /// Most model turns (default 10).
    #[schemars(range(min = 1))]
    pub max_turns: Option<u32>,
    /// Most seconds for the whole run (default 300).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub max_time: Option<f64>,
    /// Most seconds for one turn (default 60).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_per_turn: Option<f64>,
    /// End the run at the first tool error (default false).
    pub stop_on_tool_error: Option<bool>,
    /// Most tokens, input and output together, over the run.
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u64>,
    /// Most US dollars spent on the model over the run.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub max_cost_usd: Option<f64>,
}
