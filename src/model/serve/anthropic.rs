//! Anthropic Messages, server side: `POST /v1/messages` decoded, replies and their
//! `message_start` … `message_stop` streams encoded.
//!
//! Normalisations: a block helios has no part for (thinking, a document, an image by URL,
//! a server tool's use or result) is kept as a native `anthropic` part, sent on unchanged
//! to Anthropic and left out for other providers; a server tool other than the computer
//! tool is left out (listed in [`Decoded::ignored`]); the computer tool's environment is
//! `linux`; the text blocks of a tool result are joined by newlines.

use serde_json::{Map, Value, json};

use super::{
    CallNames, Decoded, ServeErrorKind, SseEvent, chunks, empty_schema, event_json, field, join,
    malformed_stream, object, objects, opt_array, opt_bool, opt_str, opt_u64, req_array,
    req_object, req_str, uncached, unsupported,
};
use super::{ServeError, invalid, missing};
use crate::model::anthropic::PROVIDER;
use crate::model::{
    ChatRequest, ChatResponse, ComputerTool, Image, Message, ModelError, Part, Role, StopReason,
    ToolCall, ToolResult, ToolSpec,
};

/// A Messages request; a `count_tokens` request (`counting`) has no `max_tokens`.
pub(super) fn decode(root: &Map<String, Value>, counting: bool) -> Result<Decoded, ServeError> {
    let model = req_str(root, "", "model")?;
    let max_tokens = opt_u64(root, "", "max_tokens")?;
    if max_tokens.is_none() && !counting {
        return Err(missing("max_tokens"));
    }
    let mut system = match field(root, "system") {
        None => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (i, block) in blocks.iter().enumerate() {
                let path = format!("system[{i}]");
                let block = object(block, &path)?;
                match req_str(block, &path, "type")? {
                    "text" => texts.push(req_str(block, &path, "text")?),
                    other => {
                        return Err(unsupported(
                            join(&path, "type"),
                            format!("a system block is text, not `{other}`"),
                        ));
                    }
                }
            }
            Some(texts.join("\n\n"))
        }
        Some(_) => return Err(invalid("system", "is neither text nor a list of blocks")),
    };
    let mut names = CallNames::default();
    let mut messages = Vec::new();
    for (path, message) in objects(req_array(root, "", "messages")?, "messages")? {
        let role = match req_str(message, &path, "role")? {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            // A system message among the others (Claude Code sends its environment so):
            // its text joins the system prompt, since the neutral request has one.
            "system" => None,
            other => {
                return Err(invalid(
                    join(&path, "role"),
                    format!("is `{other}`, not `user`, `assistant` or `system`"),
                ));
            }
        };
        let content_path = join(&path, "content");
        let parts = match field(message, "content") {
            Some(Value::String(text)) => vec![Part::Text { text: text.clone() }],
            Some(Value::Array(blocks)) => blocks
                .iter()
                .enumerate()
                .map(|(j, b)| block(b, &format!("{content_path}[{j}]"), &mut names))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(
                    content_path,
                    "is neither text nor a list of blocks",
                ));
            }
            None => return Err(missing(content_path)),
        };
        let Some(role) = role else {
            let mut texts: Vec<String> = system.take().into_iter().collect();
            for part in parts {
                match part {
                    Part::Text { text } => texts.push(text),
                    _ => {
                        return Err(unsupported(
                            content_path,
                            "a system message holds text only".to_string(),
                        ));
                    }
                }
            }
            system = Some(texts.join("\n\n"));
            continue;
        };
        messages.push(Message { role, parts });
    }
    let mut request = ChatRequest {
        system,
        messages,
        ..ChatRequest::default()
    };
    let mut ignored = Vec::new();
    for (path, tool) in objects(opt_array(root, "", "tools")?.unwrap_or_default(), "tools")? {
        let name = req_str(tool, &path, "name")?;
        match opt_str(tool, &path, "type")? {
            None | Some("custom") => request.tools.push(ToolSpec {
                name: name.to_string(),
                description: opt_str(tool, &path, "description")?
                    .unwrap_or_default()
                    .to_string(),
                parameters: field(tool, "input_schema")
                    .cloned()
                    .unwrap_or_else(empty_schema),
            }),
            Some(kind) if kind.starts_with("computer_") => {
                request.computer = Some(ComputerTool {
                    display_width: super::pixels(tool, &path, "display_width_px")?,
                    display_height: super::pixels(tool, &path, "display_height_px")?,
                    environment: "linux".into(),
                    excluded_functions: Vec::new(),
                });
            }
            Some(kind) => ignored.push(format!("server tool `{name}` (`{kind}`)")),
        }
    }
    let mut decoded = Decoded::new(request);
    decoded.model = Some(model.to_string());
    decoded.max_output_tokens = max_tokens;
    decoded.stream = opt_bool(root, "", "stream")?;
    decoded.ignored = ignored;
    Ok(decoded)
}

/// One content block of a message.
fn block(block: &Value, path: &str, names: &mut CallNames) -> Result<Part, ServeError> {
    let object = self::object(block, path)?;
    Ok(match req_str(object, path, "type")? {
        "text" => Part::Text {
            text: req_str(object, path, "text")?.to_string(),
        },
        "image" => match base64_image(object, path)? {
            Some(image) => Part::Image(image),
            None => native(block),
        },
        "tool_use" => {
            let call = ToolCall {
                id: req_str(object, path, "id")?.to_string(),
                name: req_str(object, path, "name")?.to_string(),
                input: field(object, "input")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new())),
            };
            names.saw(&call.id, &call.name);
            Part::ToolCall(call)
        }
        "tool_result" => {
            let call_id = req_str(object, path, "tool_use_id")?;
            let content_path = join(path, "content");
            let (output, images) = match field(object, "content") {
                None => (String::new(), Vec::new()),
                Some(Value::String(text)) => (text.clone(), Vec::new()),
                Some(Value::Array(blocks)) => result_blocks(blocks, &content_path)?,
                Some(_) => {
                    return Err(invalid(
                        content_path,
                        "is neither text nor a list of blocks",
                    ));
                }
            };
            Part::ToolResult(ToolResult {
                call_id: call_id.to_string(),
                name: names.name(call_id),
                output,
                is_error: opt_bool(object, path, "is_error")?,
                images,
                extra: None,
            })
        }
        // Thinking blocks, documents, server tools' blocks: sent back to Anthropic as they
        // came.
        _ => native(block),
    })
}

fn native(block: &Value) -> Part {
    Part::Native {
        provider: PROVIDER.into(),
        item: block.clone(),
    }
}

/// An image block's base64 source; `None` for a source helios cannot hold (a URL, a file).
fn base64_image(block: &Map<String, Value>, path: &str) -> Result<Option<Image>, ServeError> {
    let source = req_object(block, path, "source")?;
    let path = join(path, "source");
    if req_str(source, &path, "type")? != "base64" {
        return Ok(None);
    }
    Ok(Some(Image {
        media_type: req_str(source, &path, "media_type")?.to_string(),
        data: req_str(source, &path, "data")?.to_string(),
    }))
}

/// A tool result's blocks: its text (blocks joined by newlines) and images.
fn result_blocks(blocks: &[Value], path: &str) -> Result<(String, Vec<Image>), ServeError> {
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let object = object(block, &path)?;
        match req_str(object, &path, "type")? {
            "text" => texts.push(req_str(object, &path, "text")?),
            "image" => images.push(base64_image(object, &path)?.ok_or_else(|| {
                unsupported(join(&path, "source"), "a tool result's image is base64")
            })?),
            other => {
                return Err(unsupported(
                    join(&path, "type"),
                    format!("a tool result holds text and images, not `{other}`"),
                ));
            }
        }
    }
    Ok((texts.join("\n"), images))
}

/// The reply's content blocks: its text, tool calls and Anthropic's own blocks, in order.
fn content(response: &ChatResponse) -> Vec<Value> {
    response
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text } => Some(json!({"type": "text", "text": text})),
            Part::ToolCall(call) => Some(
                json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}),
            ),
            Part::Native { provider, item } if provider == PROVIDER => Some(item.clone()),
            _ => None,
        })
        .collect()
}

/// The stop reason; one helios has no name for goes as itself when Anthropic has it, else
/// as `end_turn`.
fn stop_reason(stop: &StopReason) -> &str {
    match stop {
        StopReason::EndTurn => "end_turn",
        StopReason::ToolUse => "tool_use",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ContentFilter => "refusal",
        StopReason::Other(other)
            if matches!(
                other.as_str(),
                "pause_turn" | "model_context_window_exceeded"
            ) =>
        {
            other
        }
        StopReason::Other(_) => "end_turn",
    }
}

/// Anthropic counts cached input apart from `input_tokens`.
fn usage(response: &ChatResponse) -> Value {
    json!({
        "input_tokens": uncached(&response.usage),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": response.usage.cached_tokens,
        "output_tokens": response.usage.output_tokens,
    })
}

pub(super) fn encode_response(model: &str, id: &str, response: &ChatResponse) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content(response),
        "stop_reason": stop_reason(&response.stop),
        "stop_sequence": null,
        "usage": usage(response),
    })
}

pub(super) fn encode_stream(model: &str, id: &str, response: &ChatResponse) -> Vec<SseEvent> {
    let event = |data: Value| {
        let name = data["type"].as_str().unwrap_or_default().to_string();
        SseEvent::named(&name, &data)
    };
    let mut start_usage = usage(response);
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        event(json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage}})),
        event(json!({"type": "ping"})),
    ];
    for (index, block) in content(response).into_iter().enumerate() {
        let delta = |delta: Value| {
            event(json!({"type": "content_block_delta", "index": index, "delta": delta}))
        };
        let (start, deltas) = match block["type"].as_str() {
            Some("text") => (
                json!({"type": "text", "text": ""}),
                chunks(block["text"].as_str().unwrap_or_default())
                    .into_iter()
                    .map(|text| delta(json!({"type": "text_delta", "text": text})))
                    .collect(),
            ),
            Some("tool_use") => {
                let input = block["input"].to_string();
                let mut start = block.clone();
                start["input"] = json!({});
                let deltas = chunks(&input)
                    .into_iter()
                    .map(|json| delta(json!({"type": "input_json_delta", "partial_json": json})))
                    .collect();
                (start, deltas)
            }
            Some("thinking") => {
                let mut deltas: Vec<SseEvent> =
                    chunks(block["thinking"].as_str().unwrap_or_default())
                        .into_iter()
                        .map(|text| delta(json!({"type": "thinking_delta", "thinking": text})))
                        .collect();
                if let Some(signature) = block.get("signature") {
                    deltas.push(delta(
                        json!({"type": "signature_delta", "signature": signature}),
                    ));
                }
                (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    deltas,
                )
            }
            // Redacted thinking and server tools' blocks come whole in their start event.
            _ => (block, Vec::new()),
        };
        events.push(event(
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        events.extend(deltas);
        events.push(event(json!({"type": "content_block_stop", "index": index})));
    }
    events.push(event(json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason(&response.stop), "stop_sequence": null},
        "usage": {"output_tokens": response.usage.output_tokens}})));
    events.push(event(json!({"type": "message_stop"})));
    events
}

/// The message a stream delivers, built as the SDK builds it: the start event's message,
/// each block from its start event and deltas, the stop reason and usage of
/// `message_delta`.
pub(super) fn assemble(events: &[SseEvent]) -> Result<Value, ModelError> {
    let mut message: Option<Value> = None;
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial_json: Vec<String> = Vec::new();
    let mut stopped = false;
    for data in events.iter().filter_map(event_json) {
        let index = data["index"].as_u64().unwrap_or_default() as usize;
        match data["type"].as_str().unwrap_or_default() {
            "message_start" => message = Some(data["message"].clone()),
            "content_block_start" => {
                if index != blocks.len() {
                    return Err(malformed_stream(format!(
                        "block {index} starts out of order"
                    )));
                }
                blocks.push(data["content_block"].clone());
                partial_json.push(String::new());
            }
            "content_block_delta" => {
                let block = blocks
                    .get_mut(index)
                    .ok_or_else(|| malformed_stream(format!("a delta of unknown block {index}")))?;
                let delta = &data["delta"];
                let append = |block: &mut Value, key: &str| super::append(block, key, &delta[key]);
                match delta["type"].as_str().unwrap_or_default() {
                    "text_delta" => append(block, "text"),
                    "thinking_delta" => append(block, "thinking"),
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => partial_json[index]
                        .push_str(delta["partial_json"].as_str().unwrap_or_default()),
                    _ => {}
                }
            }
            "content_block_stop" => {
                let json = partial_json.get(index).filter(|json| !json.is_empty());
                if let (Some(json), Some(block)) = (json, blocks.get_mut(index)) {
                    block["input"] = serde_json::from_str(json).map_err(|e| {
                        malformed_stream(format!("the input of block {index} is not JSON: {e}"))
                    })?;
                }
            }
            "message_delta" => {
                let message = message
                    .as_mut()
                    .ok_or_else(|| malformed_stream("`message_delta` before `message_start`"))?;
                for (key, value) in data["delta"].as_object().into_iter().flatten() {
                    message[key] = value.clone();
                }
                for (key, value) in data["usage"].as_object().into_iter().flatten() {
                    message["usage"][key] = value.clone();
                }
            }
            "message_stop" => stopped = true,
            "error" => {
                return Err(malformed_stream(format!(
                    "the stream failed: {}",
                    data["error"]["message"].as_str().unwrap_or_default()
                )));
            }
            _ => {}
        }
    }
    let mut message = message.ok_or_else(|| malformed_stream("no `message_start` event"))?;
    if !stopped {
        return Err(malformed_stream("the stream ended before `message_stop`"));
    }
    message["content"] = Value::Array(blocks);
    Ok(message)
}

pub(super) fn error_body(kind: ServeErrorKind, message: &str) -> Value {
    let kind = match kind {
        ServeErrorKind::BadRequest | ServeErrorKind::LimitReached => "invalid_request_error",
        ServeErrorKind::Auth => "authentication_error",
        ServeErrorKind::NotFound => "not_found_error",
        ServeErrorKind::Upstream { status } => match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        },
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}
