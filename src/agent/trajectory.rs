//! `agent/trajectory.json`: every step of a model-driven agent, in the Agent Trajectory
//! Interchange Format (ATIF v1.4) that Harbor uses, so each step's tool name, input and
//! output can be read directly.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ATIF_VERSION: &str = "ATIF-v1.4";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub schema_version: String,
    /// The trial's id.
    pub session_id: String,
    pub agent: AgentInfo,
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub final_metrics: FinalMetrics,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
}

/// Who produced a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    System,
    User,
    Agent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub step_id: u32,
    pub timestamp: String,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<StepMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    pub tool_call_id: String,
    pub function_name: String,
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub results: Vec<ObservationResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationResult {
    pub source_call_id: Option<String>,
    pub content: Content,
}

/// What a tool returned: text, or parts of text and images (ATIF's multimodal content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text of the content, parts joined by newlines; images are left out.
    pub fn text(&self) -> String {
        match self {
            Content::Text(text) => text.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    ContentPart::Image { .. } => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The paths of its images, relative to the trajectory's directory.
    pub fn image_paths(&self) -> Vec<&str> {
        match self {
            Content::Text(_) => Vec::new(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Image { source } => Some(source.path.as_str()),
                    ContentPart::Text { .. } => None,
                })
                .collect(),
        }
    }
}

impl From<String> for Content {
    fn from(text: String) -> Content {
        Content::Text(text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    Image { source: ImageSource },
}

/// An image saved beside the trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSource {
    pub media_type: String,
    /// Relative to the directory of `trajectory.json` (`screenshots/0001.png`).
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    pub total_prompt_tokens: u64,
    pub total_completion_tokens: u64,
    pub total_cached_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    pub total_steps: u32,
}

/// One tool call of a trajectory with its result, as a person or a script reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolStep {
    pub tool_name: String,
    pub tool_input: Value,
    pub tool_output: String,
}

impl Trajectory {
    /// Every tool call in order, with the output that answered it.
    pub fn tool_steps(&self) -> Vec<ToolStep> {
        let mut out = Vec::new();
        for step in &self.steps {
            for call in &step.tool_calls {
                let output = step
                    .observation
                    .as_ref()
                    .and_then(|o| {
                        o.results
                            .iter()
                            .find(|r| r.source_call_id.as_deref() == Some(&call.tool_call_id))
                    })
                    .map(|r| r.content.text())
                    .unwrap_or_default();
                out.push(ToolStep {
                    tool_name: call.function_name.clone(),
                    tool_input: call.arguments.clone(),
                    tool_output: output,
                });
            }
        }
        out
    }
}
