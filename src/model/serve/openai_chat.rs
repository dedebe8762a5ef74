//! OpenAI Chat Completions, server side: `POST /v1/chat/completions` decoded, replies and
//! their `chat.completion.chunk` streams encoded.
//!
//! Normalisations: `system` and `developer` messages, wherever they stand, make the system
//! prompt; `tool` messages open a user turn of results that the next `user` message joins
//! (the client writes one user turn as its results, then its text and images), so two user
//! turns in a row whose first holds only results come back as one; a tool result's images
//! (which the client sends in the user message after the results) come back as images of
//! that message; an assistant turn's texts come back as one; a stop at a stop sequence is
//! `stop`, read back as the end of the turn.

use serde_json::{Map, Value, json};

use super::{
    CallNames, Decoded, ServeError, ServeErrorKind, SseEvent, arguments, chunks, content_text,
    data_url, empty_schema, event_json, field, invalid, join, malformed_stream, object, objects,
    opt_array, opt_bool, opt_str, opt_u64, req_array, req_object, req_str, unix_now, unsupported,
};
use crate::model::{
    ChatRequest, ChatResponse, Message, ModelError, Part, Role, StopReason, ToolCall, ToolResult,
    ToolSpec,
};

pub(super) fn decode(root: &Map<String, Value>) -> Result<Decoded, ServeError> {
    let model = req_str(root, "", "model")?;
    let mut system = Vec::new();
    let mut names = CallNames::default();
    let mut messages: Vec<Message> = Vec::new();
    // The last message is a user turn of tool results, which the next results and user
    // message join.
    let mut results_open = false;
    for (path, message) in objects(req_array(root, "", "messages")?, "messages")? {
        let content_path = join(&path, "content");
        match req_str(message, &path, "role")? {
            "system" | "developer" => {
                system.push(content_text(field(message, "content"), &content_path)?)
            }
            "user" => {
                let parts = user_content(field(message, "content"), &content_path)?;
                match messages.last_mut() {
                    Some(last) if results_open => last.parts.extend(parts),
                    _ => messages.push(Message {
                        role: Role::User,
                        parts,
                    }),
                }
                results_open = false;
            }
            "assistant" => {
                let mut parts = Vec::new();
                let text = content_text(field(message, "content"), &content_path)?;
                if !text.is_empty() {
                    parts.push(Part::Text { text });
                }
                for (j, call) in opt_array(message, &path, "tool_calls")?
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let call = tool_call(call, &format!("{path}.tool_calls[{j}]"))?;
                    names.saw(&call.id, &call.name);
                    parts.push(Part::ToolCall(call));
                }
                messages.push(Message {
                    role: Role::Assistant,
                    parts,
                });
                results_open = false;
            }
            "tool" => {
                let call_id = req_str(message, &path, "tool_call_id")?;
                let result = Part::ToolResult(ToolResult::text(
                    call_id,
                    names.name(call_id),
                    content_text(field(message, "content"), &content_path)?,
                    false,
                ));
                match messages.last_mut() {
                    Some(last) if results_open => last.parts.push(result),
                    _ => messages.push(Message {
                        role: Role::User,
                        parts: vec![result],
                    }),
                }
                results_open = true;
            }
            other => {
                return Err(invalid(
                    join(&path, "role"),
                    format!(
                        "is `{other}`, not `system`, `developer`, `user`, `assistant` or `tool`"
                    ),
                ));
            }
        }
    }
    let mut request = ChatRequest {
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages,
        ..ChatRequest::default()
    };
    let mut ignored = Vec::new();
    for (path, tool) in objects(opt_array(root, "", "tools")?.unwrap_or_default(), "tools")? {
        match req_str(tool, &path, "type")? {
            "function" => {
                let function = req_object(tool, &path, "function")?;
                let path = join(&path, "function");
                request.tools.push(ToolSpec {
                    name: req_str(function, &path, "name")?.to_string(),
                    description: opt_str(function, &path, "description")?
                        .unwrap_or_default()
                        .to_string(),
                    parameters: field(function, "parameters")
                        .cloned()
                        .unwrap_or_else(empty_schema),
                });
            }
            other => ignored.push(format!("tool of type `{other}`")),
        }
    }
    let mut decoded = Decoded::new(request);
    decoded.model = Some(model.to_string());
    decoded.stream = opt_bool(root, "", "stream")?;
    decoded.max_output_tokens = match opt_u64(root, "", "max_completion_tokens")? {
        Some(n) => Some(n),
        None => opt_u64(root, "", "max_tokens")?,
    };
    if let Some(options) = field(root, "stream_options") {
        decoded.include_usage = opt_bool(
            object(options, "stream_options")?,
            "stream_options",
            "include_usage",
        )?;
    }
    decoded.ignored = ignored;
    Ok(decoded)
}

/// A user message's content: its text, or its text and image parts.
fn user_content(content: Option<&Value>, path: &str) -> Result<Vec<Part>, ServeError> {
    let Some(Value::Array(parts)) = content else {
        return Ok(vec![Part::Text {
            text: content_text(content, path)?,
        }]);
    };
    let mut out = Vec::new();
    for (path, part) in objects(parts, path)? {
        match req_str(part, &path, "type")? {
            "text" => out.push(Part::Text {
                text: req_str(part, &path, "text")?.to_string(),
            }),
            "image_url" => {
                // `{"url": ...}`, or the bare URL some clients send.
                let url = match field(part, "image_url") {
                    Some(Value::String(url)) => url.as_str(),
                    Some(Value::Object(image)) => req_str(image, &join(&path, "image_url"), "url")?,
                    _ => return Err(super::missing(join(&path, "image_url.url"))),
                };
                out.push(Part::Image(data_url(url, &join(&path, "image_url.url"))?));
            }
            other => {
                return Err(unsupported(
                    join(&path, "type"),
                    format!("a user message holds text and images, not `{other}`"),
                ));
            }
        }
    }
    Ok(out)
}

fn tool_call(call: &Value, path: &str) -> Result<ToolCall, ServeError> {
    let call = object(call, path)?;
    let function = req_object(call, path, "function")?;
    let function_path = join(path, "function");
    Ok(ToolCall {
        id: req_str(call, path, "id")?.to_string(),
        name: req_str(function, &function_path, "name")?.to_string(),
        input: super::parse_arguments(
            opt_str(function, &function_path, "arguments")?.unwrap_or("{}"),
        ),
    })
}

fn finish_reason(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn | StopReason::StopSequence => "stop",
        StopReason::ToolUse => "tool_calls",
        StopReason::MaxTokens => "length",
        StopReason::ContentFilter => "content_filter",
        StopReason::Other(other) if other == "function_call" => "function_call",
        StopReason::Other(_) => "stop",
    }
}

fn usage(response: &ChatResponse) -> Value {
    let usage = &response.usage;
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    })
}

fn tool_calls(response: &ChatResponse) -> Vec<Value> {
    response
        .tool_calls()
        .map(|call| {
            json!({"id": call.id, "type": "function",
                   "function": {"name": call.name, "arguments": arguments(&call.input)}})
        })
        .collect()
}

pub(super) fn encode_response(model: &str, id: &str, response: &ChatResponse) -> Value {
    let text = response.text();
    let mut message = json!({
        "role": "assistant",
        "content": (!text.is_empty()).then_some(text),
        "refusal": null,
    });
    let calls = tool_calls(response);
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(&response.stop)}],
        "usage": usage(response),
        "system_fingerprint": null,
    })
}

pub(super) fn encode_stream(
    model: &str,
    id: &str,
    response: &ChatResponse,
    include_usage: bool,
) -> Vec<SseEvent> {
    let created = unix_now();
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        SseEvent::data(&chunk)
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    let text = response.text();
    events.extend(
        chunks(&text)
            .into_iter()
            .map(|piece| chunk(json!({"content": piece}), None)),
    );
    for (index, call) in tool_calls(response).into_iter().enumerate() {
        events.push(chunk(
            json!({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                   "function": {"name": call["function"]["name"], "arguments": ""}}]}),
            None,
        ));
        let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
        events.extend(chunks(arguments).into_iter().map(|piece| {
            chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                None,
            )
        }));
    }
    events.push(chunk(json!({}), Some(finish_reason(&response.stop))));
    if include_usage {
        events.push(SseEvent::data(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": null, "choices": [], "usage": usage(response),
        })));
    }
    events.push(SseEvent {
        event: None,
        data: "[DONE]".into(),
    });
    events
}

/// The completion a stream of chunks delivers: the content and each call's arguments
/// concatenated from their deltas, the finish reason, and the usage chunk's usage (none
/// without `include_usage`).
pub(super) fn assemble(events: &[SseEvent]) -> Result<Value, ModelError> {
    let mut head: Option<Value> = None;
    let mut content = String::new();
    let mut calls: Vec<Value> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    for chunk in events.iter().filter_map(event_json) {
        if let Some(error) = chunk.get("error") {
            return Err(malformed_stream(format!("the stream failed: {error}")));
        }
        if head.is_none() {
            head = Some(
                json!({"id": chunk["id"], "created": chunk["created"], "model": chunk["model"]}),
            );
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            continue;
        };
        let delta = &choice["delta"];
        content.push_str(delta["content"].as_str().unwrap_or_default());
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or_default() as usize;
            if index > calls.len() {
                return Err(malformed_stream(format!(
                    "tool call {index} starts out of order"
                )));
            }
            if index == calls.len() {
                calls.push(json!({"id": call["id"], "type": "function",
                                  "function": {"name": call["function"]["name"], "arguments": ""}}));
            }
            super::append(
                &mut calls[index]["function"],
                "arguments",
                &call["function"]["arguments"],
            );
        }
        if !choice["finish_reason"].is_null() {
            finish = choice["finish_reason"].clone();
        }
    }
    let mut completion = head.ok_or_else(|| malformed_stream("the stream has no chunks"))?;
    if finish.is_null() {
        return Err(malformed_stream(
            "the stream ended without a `finish_reason`",
        ));
    }
    let mut message =
        json!({"role": "assistant", "content": (!content.is_empty()).then_some(content)});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    completion["object"] = json!("chat.completion");
    completion["choices"] = json!([{"index": 0, "message": message, "finish_reason": finish}]);
    completion["usage"] = usage;
    Ok(completion)
}

/// OpenAI's error body, for Chat Completions and Responses alike.
pub(super) fn error_body(kind: ServeErrorKind, message: &str) -> Value {
    let (kind, code) = match kind {
        ServeErrorKind::BadRequest | ServeErrorKind::NotFound => ("invalid_request_error", None),
        ServeErrorKind::LimitReached => ("invalid_request_error", Some("helios_limit_reached")),
        ServeErrorKind::Auth => ("invalid_request_error", Some("invalid_api_key")),
        ServeErrorKind::Upstream { status } => match status {
            429 => ("requests", Some("rate_limit_exceeded")),
            500.. => ("server_error", None),
            401 => ("invalid_request_error", Some("invalid_api_key")),
            _ => ("invalid_request_error", None),
        },
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}
