//! Model clients: one conversation format for agents, spoken to each provider in its own
//! wire format (Anthropic Messages, OpenAI Chat Completions or Responses, Gemini
//! generateContent), with retries, timeouts, a per-model connection limit and typed errors.

pub mod anthropic;
pub mod client;
pub mod computer;
pub mod gemini;
pub mod id;
pub mod openai;
pub mod openai_responses;
pub mod pricing;
pub mod provider;
pub mod retry;
pub mod runtime;
mod script_checks;
pub mod scripted;
pub mod serve;
pub mod spec;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use client::{HttpModel, ModelConfig};
pub use id::{ModelId, ModelIdError, ModelProvider};
pub use provider::{Api, Wire};
pub use spec::{ModelParams, ModelSpec, Price};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub input: Value,
}

/// What a tool call returned, sent back to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub call_id: String,
    pub name: String,
    pub output: String,
    pub is_error: bool,
    /// Images the tool returned (a computer tool's screenshot), after `output`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// Provider-specific fields of the result, merged in as they are: OpenAI's
    /// `acknowledged_safety_checks`, Gemini's `safety_acknowledgement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

impl ToolResult {
    /// A result that is text only.
    pub fn text(
        call_id: impl Into<String>,
        name: impl Into<String>,
        output: impl Into<String>,
        is_error: bool,
    ) -> ToolResult {
        ToolResult {
            call_id: call_id.into(),
            name: name.into(),
            output: output.into(),
            is_error,
            images: Vec::new(),
            extra: None,
        }
    }
}

/// An image for the model, base64-encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `image/png`.
    pub media_type: String,
    /// The bytes in standard base64.
    pub data: String,
}

/// A provider's own computer tool, declared in its native form instead of a function:
/// Anthropic's `computer_20250124`, OpenAI's `computer_use_preview`, Gemini's
/// `computerUse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputerTool {
    /// The size of the screenshots the model is sent, which is the coordinate space it
    /// answers in (Gemini answers on a 0-999 grid whatever the size).
    pub display_width: u32,
    pub display_height: u32,
    /// OpenAI's `environment` (`linux`, `mac`, `windows`, `ubuntu`, `browser`).
    pub environment: String,
    /// Gemini's predefined functions the model must not call (browser-only ones on a
    /// desktop).
    pub excluded_functions: Vec<String>,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    /// An image in a message (the first screenshot of a computer-use task).
    Image(Image),
    /// An item of one provider's reply that must be sent back to it unchanged (OpenAI's
    /// reasoning items, Gemini's thought signatures); other providers ignore it.
    Native {
        provider: String,
        item: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            parts: vec![Part::Text { text: text.into() }],
        }
    }
}

/// A tool the model may call, with a JSON Schema of its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// One request: the system prompt, the conversation so far, the tools.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// The provider's native computer tool, for computer-use agents.
    pub computer: Option<ComputerTool>,
}

/// Tokens one reply cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache (part of `input_tokens`).
    pub cached_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    ContentFilter,
    Other(String),
}

/// The model's reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub parts: Vec<Part>,
    pub stop: StopReason,
    pub usage: Usage,
}

impl ChatResponse {
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }

    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.parts.iter().filter_map(|p| match p {
            Part::ToolCall(call) => Some(call),
            _ => None,
        })
    }
}

/// Why a model call failed. Messages never contain the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("no API key: set the environment variable `{variable}`")]
    MissingKey { variable: String },
    #[error("the {provider} API refused the API key: {message}")]
    Auth {
        provider: &'static str,
        message: String,
    },
    #[error("the {provider} API does not know model `{model}`: {message}")]
    UnknownModel {
        provider: &'static str,
        model: String,
        message: String,
    },
    #[error("the conversation is longer than the model's context window: {message}")]
    ContextOverflow { message: String },
    #[error("rate limited (HTTP 429): {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("the {provider} API failed (HTTP {status}): {message}")]
    Server {
        provider: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("the {provider} API refused the request (HTTP {status}): {message}")]
    BadRequest {
        provider: &'static str,
        status: u16,
        message: String,
    },
    /// A request the provider's wire format cannot express, refused before it is sent.
    #[error("the request cannot be sent to {provider}: {message}")]
    Unsupported {
        provider: &'static str,
        message: String,
    },
    #[error("the reply could not be read: {message}")]
    Malformed { message: String },
    #[error("no reply within {seconds}s")]
    Timeout { seconds: f64 },
    #[error("cannot connect: {message}")]
    Connection { message: String },
}

impl ModelError {
    /// The error kind recorded in results.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelError::MissingKey { .. } => "model_missing_key",
            ModelError::Auth { .. } => "model_auth",
            ModelError::UnknownModel { .. } => "model_unknown",
            ModelError::ContextOverflow { .. } => "context_overflow",
            ModelError::RateLimited { .. } => "model_rate_limited",
            ModelError::Server { .. } => "model_server_error",
            ModelError::BadRequest { .. } | ModelError::Unsupported { .. } => "model_bad_request",
            ModelError::Malformed { .. } => "model_malformed_reply",
            ModelError::Timeout { .. } => "model_timeout",
            ModelError::Connection { .. } => "model_connection",
        }
    }

    /// Rate limits, overloads, server errors, timeouts and dropped connections may pass.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::RateLimited { .. }
                | ModelError::Server { .. }
                | ModelError::Timeout { .. }
                | ModelError::Connection { .. }
        )
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ModelError::RateLimited { retry_after, .. }
            | ModelError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Something that answers chat requests: a provider over HTTP, or a script.
pub trait ModelClient: Send + Sync {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> futures_util::future::BoxFuture<'a, Result<ChatResponse, ModelError>>;
}

/// Whether a part goes to `provider`: every part but another provider's native items.
pub(crate) fn native_for(part: &Part, provider: &str) -> bool {
    match part {
        Part::Native {
            provider: owner, ..
        } => owner == provider,
        _ => true,
    }
}

/// A provider error body's message, cut to a readable length.
pub(crate) fn short_message(text: &str) -> String {
    let text = text.trim();
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// The code (at `code_pointer`) and message (`/error/message`) of a provider's JSON error
/// body; the raw body, shortened, when it is not JSON.
pub(crate) fn error_fields(body: &[u8], code_pointer: &str) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |pointer: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.pointer(pointer))
            .and_then(Value::as_str)
    };
    let code = field(code_pointer).unwrap_or_default().to_string();
    let message = field("/error/message").map_or_else(
        || short_message(&String::from_utf8_lossy(body)),
        short_message,
    );
    (code, message)
}

/// A typed request body as JSON. Going through a `Value` makes a key of the `extra` fields
/// (flattened last into every body) replace the field of that name where it stands, as the
/// provider's documentation of the field would have it, instead of being sent twice.
pub(crate) fn to_body(body: &impl Serialize) -> Value {
    serde_json::to_value(body).expect("request bodies have string keys only")
}

/// Whether a list of stop sequences is left out of a request.
pub(crate) fn no_stop(stop: &[String]) -> bool {
    stop.is_empty()
}

/// A reply body as JSON, or the typed error for one that is not.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, ModelError> {
    serde_json::from_slice(bytes).map_err(|e| ModelError::Malformed {
        message: format!("not JSON: {e}"),
    })
}
