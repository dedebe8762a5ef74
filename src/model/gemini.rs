//! Google Gemini: `POST {base}/v1beta/models/{model}:generateContent`.
//!
//! Each part of a reply is kept, in order, as a [`Part::Native`] of provider `gemini`,
//! followed by what helios reads from it (text, a [`ToolCall`]). A model turn holding such
//! parts is sent back as exactly those parts, so the `thoughtSignature`s the API attaches
//! (and asks to get back) return unchanged; a model turn without them is written from its
//! text and calls.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

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
pub const PROVIDER: &str = "gemini";

fn inline_data(image: &super::Image) -> Value {
    json!({"inlineData": {"mimeType": image.media_type, "data": image.data}})
}

/// A tool's result: its output (or error) and any provider fields in `response`, and its
/// images as parts of the function response (a multimodal function response). `id` is
/// sent only when the call had one on the wire (older models give calls none).
fn function_response(result: &super::ToolResult, wire_ids: &HashSet<&str>) -> Value {
    let mut response = Map::new();
    // A screenshot with nothing to say needs no empty `output`.
    if result.is_error || !result.output.is_empty() || result.images.is_empty() {
        response.insert(
            if result.is_error { "error" } else { "output" }.into(),
            result.output.clone().into(),
        );
    }
    if let Some(Value::Object(extra)) = &result.extra {
        response.extend(extra.clone());
    }
    let mut call = Map::new();
    if wire_ids.contains(result.call_id.as_str()) {
        call.insert("id".into(), result.call_id.clone().into());
    }
    call.insert("name".into(), result.name.clone().into());
    call.insert("response".into(), response.into());
    if !result.images.is_empty() {
        call.insert(
            "parts".into(),
            result
                .images
                .iter()
                .map(inline_data)
                .collect::<Vec<_>>()
                .into(),
        );
    }
    json!({ "functionResponse": call })
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
    let contents: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            // A model turn the API wrote goes back as it came, signatures included.
            let replay = m.role == Role::Assistant && m.parts.iter().any(is_gemini_native);
            let parts: Vec<Value> = m
                .parts
                .iter()
                .filter(|part| native_for(part, PROVIDER))
                .filter(|part| !replay || is_gemini_native(part))
                .map(|part| match part {
                    Part::Text { text } => json!({"text": text}),
                    Part::ToolCall(call) => json!({"functionCall": {"id": call.id, "name": call.name, "args": call.input}}),
                    Part::ToolResult(result) => function_response(result, &wire_ids),
                    Part::Image(image) => inline_data(image),
                    Part::Native { item, .. } => item.clone(),
                })
                .collect();
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "model",
            };
            json!({"role": role, "parts": parts})
        })
        .collect();
    let mut body = Map::new();
    body.insert("contents".into(), contents.into());
    if let Some(system) = &request.system {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system}]}),
        );
    }
    let mut tools = Vec::new();
    if let Some(computer) = &request.computer {
        // The 2.5 computer-use models know only the browser environment; a desktop
        // excludes the browser-only functions instead.
        tools.push(json!({"computerUse": {
            "environment": "ENVIRONMENT_BROWSER",
            "excludedPredefinedFunctions": computer.excluded_functions,
        }}));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        tools.push(json!({"functionDeclarations": declarations}));
    }
    if !tools.is_empty() {
        body.insert("tools".into(), tools.into());
    }
    let mut config = Map::new();
    super::insert_sampling(
        &mut config,
        params,
        &super::SamplingNames {
            temperature: "temperature",
            top_p: "topP",
            max_tokens: Some("maxOutputTokens"),
            seed: Some("seed"),
            stop: Some("stopSequences"),
        },
    );
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    super::with_extra(body, params)
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
    let mut parts = Vec::new();
    let empty = Vec::new();
    let raw_parts = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
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
            let name = call
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("a functionCall has no name".into()))?;
            // Older model versions give calls no id; results are matched by name and order,
            // and this id stays in helios.
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("call_{i}"), str::to_string);
            parts.push(Part::ToolCall(ToolCall {
                id,
                name: name.to_string(),
                input: call
                    .get("args")
                    .cloned()
                    .unwrap_or(Value::Object(Map::new())),
            }));
        }
    }
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
