//! Anthropic Messages API: `POST /v1/messages`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::ModelParams;
use super::{
    ChatRequest, ChatResponse, ModelError, Part, Role, StopReason, ToolCall, Usage, native_for,
};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by this API; used when the pipeline gives none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The provider name in [`Part::Native`] items.
pub const PROVIDER: &str = super::Api::Anthropic.name();

/// The computer tool version, and the beta header that enables it.
pub const COMPUTER_TOOL_TYPE: &str = "computer_20250124";
pub const COMPUTER_BETA: &str = "computer-use-2025-01-24";

pub fn endpoint(base: &str) -> String {
    format!("{}/v1/messages", base.trim_end_matches('/'))
}

/// A Messages request.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "super::no_stop")]
    stop_sequences: &'a [String],
    #[serde(flatten)]
    extra: &'a BTreeMap<String, Value>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Vec<Content<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Block(Block<'a>),
    /// A block of an earlier reply (thinking), sent back as it came.
    Native(&'a Value),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: ResultContent<'a>,
        is_error: bool,
    },
    Image {
        source: ImageSource<'a>,
    },
}

/// A tool result's content: its text, or text and images as blocks when it has images.
#[derive(Serialize)]
#[serde(untagged)]
enum ResultContent<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
struct ImageSource<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    media_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Tool<'a> {
    Function {
        name: &'a str,
        description: &'a str,
        input_schema: &'a Value,
    },
    Computer {
        #[serde(rename = "type")]
        kind: &'static str,
        name: &'static str,
        display_width_px: u32,
        display_height_px: u32,
    },
}

fn image_block(image: &super::Image) -> Block<'_> {
    Block::Image {
        source: ImageSource {
            kind: "base64",
            media_type: &image.media_type,
            data: &image.data,
        },
    }
}

fn content(part: &Part) -> Content<'_> {
    Content::Block(match part {
        Part::Text { text } => Block::Text { text },
        Part::ToolCall(call) => Block::ToolUse {
            id: &call.id,
            name: &call.name,
            input: &call.input,
        },
        Part::ToolResult(result) => Block::ToolResult {
            tool_use_id: &result.call_id,
            content: if result.images.is_empty() {
                ResultContent::Text(&result.output)
            } else {
                let text = (!result.output.is_empty()).then(|| Block::Text {
                    text: &result.output,
                });
                ResultContent::Blocks(
                    text.into_iter()
                        .chain(result.images.iter().map(image_block))
                        .collect(),
                )
            },
            is_error: result.is_error,
        },
        Part::Image(image) => image_block(image),
        Part::Native { item, .. } => return Content::Native(item),
    })
}

pub fn body(model: &str, params: &ModelParams, request: &ChatRequest) -> Value {
    let messages = request
        .messages
        .iter()
        .map(|m| MessageOut {
            role: match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            },
            content: m
                .parts
                .iter()
                .filter(|part| native_for(part, PROVIDER))
                .map(content)
                .collect(),
        })
        .collect();
    let mut tools: Vec<Tool> = request
        .tools
        .iter()
        .map(|t| Tool::Function {
            name: &t.name,
            description: &t.description,
            input_schema: &t.parameters,
        })
        .collect();
    if let Some(computer) = &request.computer {
        tools.push(Tool::Computer {
            kind: COMPUTER_TOOL_TYPE,
            name: "computer",
            display_width_px: computer.display_width,
            display_height_px: computer.display_height,
        });
    }
    super::to_body(&Body {
        model,
        max_tokens: params.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        system: request.system.as_deref(),
        messages,
        tools,
        temperature: params.temperature,
        top_p: params.top_p,
        stop_sequences: &params.stop,
        extra: &params.extra,
    })
}

pub fn parse(bytes: &[u8]) -> Result<ChatResponse, ModelError> {
    let malformed = |message: String| ModelError::Malformed { message };
    let reply = super::parse_json(bytes)?;
    let content = reply
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `content` list".into()))?;
    let mut parts = Vec::new();
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(Part::Text {
                text: block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            }),
            Some("tool_use") => parts.push(Part::ToolCall(ToolCall {
                id: str_field(block, "id")?,
                name: str_field(block, "name")?,
                input: block
                    .get("input")
                    .cloned()
                    .unwrap_or(Value::Object(Map::new())),
            })),
            // Thinking blocks must come back unchanged with the tool calls they led to.
            Some("thinking" | "redacted_thinking") => parts.push(Part::Native {
                provider: PROVIDER.into(),
                item: block.clone(),
            }),
            _ => {}
        }
    }
    let stop = match reply.get("stop_reason").and_then(Value::as_str) {
        Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence,
        Some("refusal") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
        None => return Err(malformed("no `stop_reason`".into())),
    };
    let usage = reply.get("usage").cloned().unwrap_or(Value::Null);
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("cache_read_input_tokens");
    Ok(ChatResponse {
        parts,
        stop,
        usage: Usage {
            // The API counts cached and cache-creation tokens apart from `input_tokens`.
            input_tokens: count("input_tokens") + cached + count("cache_creation_input_tokens"),
            output_tokens: count("output_tokens"),
            cached_tokens: cached,
        },
    })
}

fn str_field(block: &Value, key: &str) -> Result<String, ModelError> {
    block
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ModelError::Malformed {
            message: format!("a tool_use block has no `{key}`"),
        })
}

pub fn error(
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
    model: &str,
) -> ModelError {
    let (kind, message) = super::error_fields(body, "/error/type");
    super::client::classify(
        "Anthropic",
        status,
        retry_after,
        message,
        model,
        kind == "invalid_request_error" && is_overflow(body),
    )
}

fn is_overflow(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_lowercase();
    text.contains("prompt is too long")
        || text.contains("context window")
        || text.contains("too many tokens")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{ComputerTool, Message};

    #[test]
    fn thinking_blocks_are_kept_and_sent_back_first() {
        let thinking = json!({"type": "thinking", "thinking": "hmm", "signature": "sig"});
        let redacted = json!({"type": "redacted_thinking", "data": "xyz"});
        let reply = json!({"content": [thinking, redacted,
            {"type": "tool_use", "id": "toolu_1", "name": "computer", "input": {"action": "screenshot"}}],
            "stop_reason": "tool_use"});
        let decoded = parse(reply.to_string().as_bytes()).unwrap();
        let request = ChatRequest {
            messages: vec![
                Message::user_text("go"),
                Message {
                    role: Role::Assistant,
                    parts: decoded.parts.clone(),
                },
            ],
            computer: Some(ComputerTool {
                display_width: 1280,
                display_height: 800,
                environment: "linux".into(),
                excluded_functions: vec![],
            }),
            ..ChatRequest::default()
        };
        let body = body(
            "claude-sonnet-4-20250514",
            &ModelParams::default(),
            &request,
        );
        let content = &body["messages"][1]["content"];
        assert_eq!(content[0], thinking);
        assert_eq!(content[1], redacted);
        assert_eq!(content[2]["id"], "toolu_1");
        assert_eq!(
            body["tools"],
            json!([{"type": "computer_20250124", "name": "computer", "display_width_px": 1280, "display_height_px": 800}])
        );
    }
}
