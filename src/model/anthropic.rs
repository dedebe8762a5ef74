//! Anthropic Messages API: `POST /v1/messages`.

use serde_json::{Map, Value, json};

use super::ModelParams;
use super::{
    ChatRequest, ChatResponse, ModelError, Part, Role, StopReason, ToolCall, Usage, native_for,
};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by this API; used when the pipeline gives none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The provider name in [`Part::Native`] items.
pub const PROVIDER: &str = "anthropic";

/// The computer tool version, and the beta header that enables it.
pub const COMPUTER_TOOL_TYPE: &str = "computer_20250124";
pub const COMPUTER_BETA: &str = "computer-use-2025-01-24";

fn image_block(image: &super::Image) -> Value {
    json!({"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}})
}

pub fn endpoint(base: &str) -> String {
    format!("{}/v1/messages", base.trim_end_matches('/'))
}

pub fn body(model: &str, params: &ModelParams, request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let content: Vec<Value> = m
                .parts
                .iter()
                .filter(|part| native_for(part, PROVIDER))
                .map(|part| match part {
                    Part::Text { text } => json!({"type": "text", "text": text}),
                    Part::ToolCall(call) => {
                        json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
                    }
                    Part::ToolResult(result) if result.images.is_empty() => json!({
                        "type": "tool_result",
                        "tool_use_id": result.call_id,
                        "content": result.output,
                        "is_error": result.is_error,
                    }),
                    Part::ToolResult(result) => {
                        let mut content = Vec::new();
                        if !result.output.is_empty() {
                            content.push(json!({"type": "text", "text": result.output}));
                        }
                        content.extend(result.images.iter().map(image_block));
                        json!({
                            "type": "tool_result",
                            "tool_use_id": result.call_id,
                            "content": content,
                            "is_error": result.is_error,
                        })
                    }
                    Part::Image(image) => image_block(image),
                    Part::Native { item, .. } => item.clone(),
                })
                .collect();
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": content})
        })
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert(
        "max_tokens".into(),
        params.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    if let Some(system) = &request.system {
        body.insert("system".into(), system.as_str().into());
    }
    body.insert("messages".into(), messages.into());
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(
            |t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}),
        )
        .collect();
    if let Some(computer) = &request.computer {
        tools.push(json!({
            "type": COMPUTER_TOOL_TYPE,
            "name": "computer",
            "display_width_px": computer.display_width,
            "display_height_px": computer.display_height,
        }));
    }
    if !tools.is_empty() {
        body.insert("tools".into(), tools.into());
    }
    super::insert_sampling(
        &mut body,
        params,
        &super::SamplingNames {
            temperature: "temperature",
            top_p: "top_p",
            max_tokens: None,
            seed: None,
            stop: Some("stop_sequences"),
        },
    );
    super::with_extra(body, params)
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
