//! OpenAI Chat Completions: `POST {base}/chat/completions`, also spoken by compatible
//! servers (vLLM, Ollama, LiteLLM, OpenRouter) through `base_url`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::ModelParams;
use super::{ChatRequest, ChatResponse, ModelError, Part, Role, StopReason, ToolCall, Usage};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub fn endpoint(base: &str) -> String {
    format!("{}/chat/completions", base.trim_end_matches('/'))
}

/// Reasoning models take `max_completion_tokens`; others (and compatible servers) `max_tokens`.
fn uses_completion_tokens(model: &str) -> bool {
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| model.starts_with(p))
}

/// A Chat Completions request.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ChatTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "super::no_stop")]
    stop: &'a [String],
    #[serde(flatten)]
    extra: &'a BTreeMap<String, Value>,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum ChatMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: UserContent,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
    Assistant {
        /// `null` when the turn is only tool calls.
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ChatToolCall<'a>>,
    },
}

/// A user message's content: its text, or text and images as parts when it has images.
#[derive(Serialize)]
#[serde(untagged)]
enum UserContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Serialize)]
struct ImageUrl {
    url: String,
}

#[derive(Serialize)]
struct ChatToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    /// The input as a JSON text, which is what the API takes.
    arguments: String,
}

#[derive(Serialize)]
struct ChatTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDeclaration<'a>,
}

#[derive(Serialize)]
struct FunctionDeclaration<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// The request body; a request with a computer tool is refused, since Chat Completions has
/// none (the client sends those through the Responses API).
pub fn body(model: &str, params: &ModelParams, request: &ChatRequest) -> Result<Value, ModelError> {
    if request.computer.is_some() {
        return Err(ModelError::Unsupported {
            provider: "OpenAI Chat Completions",
            message: "Chat Completions has no computer tool; use the Responses API".into(),
        });
    }
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(ChatMessage::System { content: system });
    }
    for message in &request.messages {
        let text: String = message
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("");
        match message.role {
            Role::User => {
                // Tool results are messages of their own, one per call; tool messages
                // cannot hold images, so those follow in a user message.
                let mut images = Vec::new();
                for part in &message.parts {
                    match part {
                        Part::ToolResult(result) => {
                            messages.push(ChatMessage::Tool {
                                tool_call_id: &result.call_id,
                                content: &result.output,
                            });
                            images.extend(result.images.iter());
                        }
                        Part::Image(image) => images.push(image),
                        _ => {}
                    }
                }
                if images.is_empty() {
                    if !text.is_empty() {
                        messages.push(ChatMessage::User {
                            content: UserContent::Text(text),
                        });
                    }
                } else {
                    let mut parts = Vec::new();
                    if !text.is_empty() {
                        parts.push(ContentPart::Text { text });
                    }
                    parts.extend(images.iter().map(|image| ContentPart::ImageUrl {
                        image_url: ImageUrl {
                            url: format!("data:{};base64,{}", image.media_type, image.data),
                        },
                    }));
                    messages.push(ChatMessage::User {
                        content: UserContent::Parts(parts),
                    });
                }
            }
            Role::Assistant => {
                let tool_calls = message
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall(call) => Some(ChatToolCall {
                            id: &call.id,
                            kind: "function",
                            function: FunctionCall {
                                name: &call.name,
                                arguments: call.input.to_string(),
                            },
                        }),
                        _ => None,
                    })
                    .collect();
                messages.push(ChatMessage::Assistant {
                    content: (!text.is_empty()).then_some(text),
                    tool_calls,
                });
            }
        }
    }
    let tools = request
        .tools
        .iter()
        .map(|t| ChatTool {
            kind: "function",
            function: FunctionDeclaration {
                name: &t.name,
                description: &t.description,
                parameters: &t.parameters,
            },
        })
        .collect();
    let completion_tokens = uses_completion_tokens(model);
    Ok(super::to_body(&Body {
        model,
        messages,
        tools,
        temperature: params.temperature,
        top_p: params.top_p,
        max_tokens: params.max_tokens.filter(|_| !completion_tokens),
        max_completion_tokens: params.max_tokens.filter(|_| completion_tokens),
        seed: params.seed,
        stop: &params.stop,
        extra: &params.extra,
    }))
}

pub fn parse(bytes: &[u8]) -> Result<ChatResponse, ModelError> {
    let malformed = |message: String| ModelError::Malformed { message };
    let reply = super::parse_json(bytes)?;
    let choice = reply
        .pointer("/choices/0")
        .ok_or_else(|| malformed("no `choices[0]`".into()))?;
    let message = choice
        .get("message")
        .ok_or_else(|| malformed("no `message`".into()))?;
    let mut parts = Vec::new();
    if let Some(text) = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        parts.push(Part::Text {
            text: text.to_string(),
        });
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("a tool call has no `id`".into()))?;
        let function = call
            .get("function")
            .ok_or_else(|| malformed("a tool call has no `function`".into()))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("a tool call has no name".into()))?;
        let arguments = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        // Arguments that are not JSON reach the agent as text, so it can tell the model.
        let input = serde_json::from_str(arguments)
            .unwrap_or_else(|_| Value::String(arguments.to_string()));
        parts.push(Part::ToolCall(ToolCall {
            id: id.to_string(),
            name: name.to_string(),
            input,
        }));
    }
    let stop = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("stop") => StopReason::EndTurn,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some("content_filter") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
        None => return Err(malformed("no `finish_reason`".into())),
    };
    let usage = reply.get("usage").cloned().unwrap_or(Value::Null);
    let count = |pointer: &str| usage.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    Ok(ChatResponse {
        parts,
        stop,
        usage: Usage {
            input_tokens: count("/prompt_tokens"),
            output_tokens: count("/completion_tokens"),
            cached_tokens: count("/prompt_tokens_details/cached_tokens"),
        },
    })
}

pub fn error(
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
    model: &str,
) -> ModelError {
    let (code, message) = super::error_fields(body, "/error/code");
    let overflow = code == "context_length_exceeded" || message.contains("maximum context length");
    super::client::classify("OpenAI", status, retry_after, message, model, overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_computer_tool_is_refused_not_dropped() {
        let request = ChatRequest {
            computer: Some(crate::model::ComputerTool {
                display_width: 1024,
                display_height: 768,
                environment: "linux".into(),
                excluded_functions: vec![],
            }),
            ..ChatRequest::default()
        };
        let e = body("gpt-4.1", &ModelParams::default(), &request).unwrap_err();
        assert!(matches!(e, ModelError::Unsupported { .. }), "{e:?}");
        assert_eq!(e.kind(), "model_bad_request");
    }
}
