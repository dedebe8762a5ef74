//! Google Gemini: `POST {base}/v1beta/models/{model}:generateContent`.
//!
//! Each part of a reply is kept, in order, as a [`Part::Native`] of provider `gemini`,
//! followed by what helios reads from it (text, a [`ToolCall`]). A model turn holding such
//! parts is sent back as exactly those parts, so the `thoughtSignature`s the API attaches
//! (and asks to get back) return unchanged; a model turn without them is written from its
//! text and calls.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use super::ModelParams;
use super::{
    ChatRequest, ChatResponse, ModelError, Part, Role, StopReason, ToolCall, Usage, native_for,
};

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

pub fn endpoint(base: &str, model: &str) -> String {
    format!(
        "{}/v1beta/models/{model}:generateContent",
        base.trim_end_matches('/')
    )
}

/// The provider name in [`Part::Native`] items.
pub const PROVIDER: &str = super::Api::Gemini.name();

/// A generateContent request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    contents: Vec<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'a>,
    #[serde(flatten)]
    extra: &'a BTreeMap<String, Value>,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    role: &'static str,
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PartOut<'a> {
    /// A part of an earlier reply, sent back as it came (its `thoughtSignature` too).
    Native(&'a Value),
    Typed(TypedPart<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum TypedPart<'a> {
    Text(&'a str),
    FunctionCall {
        id: &'a str,
        name: &'a str,
        args: &'a Value,
    },
    FunctionResponse(FunctionResponse<'a>),
    InlineData(Blob<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
struct FunctionResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: Response<'a>,
    /// Images of the result (a multimodal function response).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<TypedPart<'a>>,
}

/// A result's output (or error), with its provider fields among them.
#[derive(Serialize)]
struct Response<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(flatten)]
    extra: Option<&'a Map<String, Value>>,
}

#[derive(Serialize)]
struct SystemInstruction<'a> {
    parts: [TypedPart<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Tool<'a> {
    ComputerUse(ComputerUse<'a>),
    FunctionDeclarations(Vec<FunctionDeclaration<'a>>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputerUse<'a> {
    environment: &'static str,
    excluded_predefined_functions: &'a [String],
}

#[derive(Serialize)]
struct FunctionDeclaration<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "super::no_stop")]
    stop_sequences: &'a [String],
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.seed.is_none()
            && self.stop_sequences.is_empty()
    }
}

fn inline_data(image: &super::Image) -> TypedPart<'_> {
    TypedPart::InlineData(Blob {
        mime_type: &image.media_type,
        data: &image.data,
    })
}

/// A tool's result: its output (or error) and any provider fields in `response`, and its
/// images as parts of the function response (a multimodal function response). `id` is
/// sent only when the call had one on the wire (older models give calls none).
fn function_response<'a>(result: &'a super::ToolResult, wire_ids: &HashSet<&str>) -> TypedPart<'a> {
    // A screenshot with nothing to say needs no empty `output`.
    let said = (result.is_error || !result.output.is_empty() || result.images.is_empty())
        .then_some(result.output.as_str());
    TypedPart::FunctionResponse(FunctionResponse {
        id: wire_ids
            .contains(result.call_id.as_str())
            .then_some(result.call_id.as_str()),
        name: &result.name,
        response: Response {
            output: said.filter(|_| !result.is_error),
            error: said.filter(|_| result.is_error),
            extra: result.extra.as_ref().and_then(Value::as_object),
        },
        parts: result.images.iter().map(inline_data).collect(),
    })
}

fn is_gemini_native(part: &Part) -> bool {
    matches!(part, Part::Native { provider, .. } if provider == PROVIDER)
}

/// The call ids that go on the wire: those of the API's own `functionCall` parts, and
/// those of calls written from helios's parts.
fn wire_call_ids(request: &ChatRequest) -> HashSet<&str> {
    let mut ids = HashSet::new();
    for message in &request.messages {
        let native = message.parts.iter().any(is_gemini_native);
        for part in &message.parts {
            match part {
                Part::Native { provider, item } if provider == PROVIDER => {
                    if let Some(id) = item.pointer("/functionCall/id").and_then(Value::as_str) {
                        ids.insert(id);
                    }
                }
                Part::ToolCall(call) if !native => {
                    ids.insert(call.id.as_str());
                }
                _ => {}
            }
        }
    }
    ids
}

pub fn body(params: &ModelParams, request: &ChatRequest) -> Value {
    let wire_ids = wire_call_ids(request);
    let contents = request
        .messages
        .iter()
        .map(|m| {
            // A model turn the API wrote goes back as it came, signatures included.
            let replay = m.role == Role::Assistant && m.parts.iter().any(is_gemini_native);
            let parts = m
                .parts
                .iter()
                .filter(|part| native_for(part, PROVIDER))
                .filter(|part| !replay || is_gemini_native(part))
                .map(|part| {
                    PartOut::Typed(match part {
                        Part::Text { text } => TypedPart::Text(text),
                        Part::ToolCall(call) => TypedPart::FunctionCall {
                            id: &call.id,
                            name: &call.name,
                            args: &call.input,
                        },
                        Part::ToolResult(result) => function_response(result, &wire_ids),
                        Part::Image(image) => inline_data(image),
                        Part::Native { item, .. } => return PartOut::Native(item),
                    })
                })
                .collect();
            ContentOut {
                role: match m.role {
                    Role::User => "user",
                    Role::Assistant => "model",
                },
                parts,
            }
        })
        .collect();
    let mut tools = Vec::new();
    if let Some(computer) = &request.computer {
        // The 2.5 computer-use models know only the browser environment; a desktop
        // excludes the browser-only functions instead.
        tools.push(Tool::ComputerUse(ComputerUse {
            environment: "ENVIRONMENT_BROWSER",
            excluded_predefined_functions: &computer.excluded_functions,
        }));
    }
    if !request.tools.is_empty() {
        tools.push(Tool::FunctionDeclarations(
            request
                .tools
                .iter()
                .map(|t| FunctionDeclaration {
                    name: &t.name,
                    description: &t.description,
                    parameters: &t.parameters,
                })
                .collect(),
        ));
    }
    super::to_body(&Body {
        contents,
        system_instruction: request.system.as_deref().map(|system| SystemInstruction {
            parts: [TypedPart::Text(system)],
        }),
        tools,
        generation_config: GenerationConfig {
            temperature: params.temperature,
            top_p: params.top_p,
            max_output_tokens: params.max_tokens,
            seed: params.seed,
            stop_sequences: &params.stop,
        },
        extra: &params.extra,
    })
}

pub fn parse(bytes: &[u8]) -> Result<ChatResponse, ModelError> {
    let malformed = |message: String| ModelError::Malformed { message };
    let reply = super::parse_json(bytes)?;
    let usage = reply.get("usageMetadata").cloned().unwrap_or(Value::Null);
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let usage = Usage {
        input_tokens: count("promptTokenCount"),
        output_tokens: count("candidatesTokenCount") + count("thoughtsTokenCount"),
        cached_tokens: count("cachedContentTokenCount"),
    };
    let Some(candidate) = reply.pointer("/candidates/0") else {
        // A prompt blocked by safety settings has feedback and no candidate.
        if reply.pointer("/promptFeedback/blockReason").is_some() {
            return Ok(ChatResponse {
                parts: Vec::new(),
                stop: StopReason::ContentFilter,
                usage,
            });
        }
        return Err(malformed("no `candidates[0]`".into()));
    };
    let empty = Vec::new();
    let raw_parts = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let parts = reply_parts(raw_parts)?;
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    let stop = match candidate.get("finishReason").and_then(Value::as_str) {
        Some("STOP") if has_calls => StopReason::ToolUse,
        Some("STOP") => StopReason::EndTurn,
        Some("MAX_TOKENS") => StopReason::MaxTokens,
        Some("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII") => {
            StopReason::ContentFilter
        }
        Some(other) => StopReason::Other(other.to_string()),
        None if has_calls => StopReason::ToolUse,
        None => return Err(malformed("no `finishReason`".into())),
    };
    Ok(ChatResponse { parts, stop, usage })
}

/// The parts of a model turn: each part itself (a [`Part::Native`], sent back as it came,
/// its `thoughtSignature` too), then what helios reads from it (text that is not a
/// thought, a call).
pub(crate) fn reply_parts(raw_parts: &[Value]) -> Result<Vec<Part>, ModelError> {
    let mut parts = Vec::new();
    for (i, part) in raw_parts.iter().enumerate() {
        parts.push(Part::Native {
            provider: PROVIDER.into(),
            item: part.clone(),
        });
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) != Some(true) {
                parts.push(Part::Text {
                    text: text.to_string(),
                });
            }
        } else if let Some(call) = part.get("functionCall") {
            parts.push(Part::ToolCall(function_call(call, i)?));
        }
    }
    Ok(parts)
}

/// A `functionCall`, the `index`th part of its turn. Older model versions give calls no
/// id; results are matched by name and order, and the id made here stays in helios.
pub(crate) fn function_call(call: &Value, index: usize) -> Result<ToolCall, ModelError> {
    let name = call
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ModelError::Malformed {
            message: "a functionCall has no name".into(),
        })?;
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("call_{index}"), str::to_string);
    Ok(ToolCall {
        id,
        name: name.to_string(),
        input: call
            .get("args")
            .cloned()
            .unwrap_or(Value::Object(Map::new())),
    })
}

pub fn error(
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
    model: &str,
) -> ModelError {
    let (_, message) = super::error_fields(body, "/error/status");
    // Gemini answers a bad key with 400 INVALID_ARGUMENT.
    if status == 400 && message.contains("API key") {
        return ModelError::Auth {
            provider: "Gemini",
            message,
        };
    }
    let overflow = message.contains("exceeds the maximum number of tokens")
        || message.contains("input token count");
    super::client::classify("Gemini", status, retry_after, message, model, overflow)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Image, Message, ToolResult};

    fn reply(parts: Value) -> ChatResponse {
        let body = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]});
        parse(body.to_string().as_bytes()).unwrap()
    }

    fn answered(reply: &ChatResponse, extra: Option<Value>) -> ChatRequest {
        let results = reply
            .tool_calls()
            .map(|call| {
                Part::ToolResult(ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    output: String::new(),
                    is_error: false,
                    images: vec![Image {
                        media_type: "image/png".into(),
                        data: "AAAA".into(),
                    }],
                    extra: extra.clone(),
                })
            })
            .collect();
        ChatRequest {
            messages: vec![
                Message::user_text("go"),
                Message {
                    role: Role::Assistant,
                    parts: reply.parts.clone(),
                },
                Message {
                    role: Role::User,
                    parts: results,
                },
            ],
            ..ChatRequest::default()
        }
    }

    #[test]
    fn a_model_turn_goes_back_as_received_with_its_signatures() {
        let parts = json!([
            {"text": "thinking", "thought": true, "thoughtSignature": "c2ln"},
            {"functionCall": {"id": "fc-1", "name": "click_at", "args": {"x": 1, "y": 2}}, "thoughtSignature": "c2lnMg=="},
            {"functionCall": {"name": "hover_at", "args": {"x": 3, "y": 4}}}
        ]);
        let decoded = reply(parts.clone());
        let calls: Vec<&ToolCall> = decoded.tool_calls().collect();
        assert_eq!(
            (calls[0].id.as_str(), calls[0].name.as_str()),
            ("fc-1", "click_at")
        );
        assert_eq!(calls[1].input, json!({"x": 3, "y": 4}));
        assert_eq!(decoded.text(), "", "thoughts are not the answer");
        let body = body(
            &ModelParams::default(),
            &answered(&decoded, Some(json!({"url": "about:blank"}))),
        );
        assert_eq!(
            body["contents"][1],
            json!({"role": "model", "parts": parts})
        );
        let responses = &body["contents"][2]["parts"];
        // The call that had an id is answered with it; the other by name and order only.
        assert_eq!(responses[0]["functionResponse"]["id"], "fc-1");
        assert!(responses[1]["functionResponse"].get("id").is_none());
        // A screenshot with no text has no empty `output`.
        assert_eq!(
            responses[1]["functionResponse"]["response"],
            json!({"url": "about:blank"})
        );
        assert_eq!(
            responses[1]["functionResponse"]["parts"],
            json!([{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}])
        );
    }

    #[test]
    fn a_turn_written_by_helios_is_encoded_from_its_parts() {
        let request = ChatRequest {
            messages: vec![Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Text { text: "ok".into() },
                    Part::Native {
                        provider: "openai".into(),
                        item: json!({"type": "reasoning"}),
                    },
                ],
            }],
            ..ChatRequest::default()
        };
        let body = body(&ModelParams::default(), &request);
        assert_eq!(body["contents"][0]["parts"], json!([{"text": "ok"}]));
    }

    #[test]
    fn the_computer_use_tool_excludes_functions() {
        let request = ChatRequest {
            computer: Some(crate::model::ComputerTool {
                display_width: 1440,
                display_height: 900,
                environment: "linux".into(),
                excluded_functions: vec!["navigate".into()],
            }),
            ..ChatRequest::default()
        };
        assert_eq!(
            body(&ModelParams::default(), &request)["tools"],
            json!([{"computerUse": {"environment": "ENVIRONMENT_BROWSER", "excludedPredefinedFunctions": ["navigate"]}}])
        );
    }
}
