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
    /// A command run in the task's container (an agent of your own).
    Command,
    /// A CLI agent from the catalog (`agent = "claude-code"`) or a recipe of your own,
    /// installed once per machine and run in the task's container through the gateway.
    Installed,
}

impl AgentKind {
    pub const ALL: [&'static str; 6] = [
        "oracle",
        "nop",
        "terminal",
        "computer-use",
        "command",
        "installed",
    ];

    pub fn needs_model(self) -> bool {
        matches!(
            self,
            AgentKind::Terminal | AgentKind::ComputerUse | AgentKind::Installed
        )
    }

    /// Whether helios itself drives the model, with prompts rendered from templates.
    pub fn uses_prompts(self) -> bool {
        matches!(self, AgentKind::Terminal | AgentKind::ComputerUse)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Oracle => "oracle",
            AgentKind::Nop => "nop",
            AgentKind::Terminal => "terminal",
            AgentKind::ComputerUse => "computer-use",
            AgentKind::Command => "command",
            AgentKind::Installed => "installed",
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

/// Agent limits with defaults applied (those of the reference `RunConfig`).
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedLimits {
    pub max_turns: u32,
    pub max_time: f64,
    pub timeout_per_turn: f64,
    pub stop_on_tool_error: bool,
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
}

impl ResolvedLimits {
    pub const DEFAULT_MAX_TURNS: u32 = 10;
    pub const DEFAULT_MAX_TIME: f64 = 300.0;
    pub const DEFAULT_TIMEOUT_PER_TURN: f64 = 60.0;

    pub fn from(limits: &AgentLimits) -> Self {
        ResolvedLimits {
            max_turns: limits.max_turns.unwrap_or(Self::DEFAULT_MAX_TURNS),
            max_time: limits.max_time.unwrap_or(Self::DEFAULT_MAX_TIME),
            timeout_per_turn: limits
                .timeout_per_turn
                .unwrap_or(Self::DEFAULT_TIMEOUT_PER_TURN),
            stop_on_tool_error: limits.stop_on_tool_error.unwrap_or(false),
            max_tokens: limits.max_tokens,
            max_cost_usd: limits.max_cost_usd,
        }
    }
}
