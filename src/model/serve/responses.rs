//! OpenAI Responses, server side: `POST /v1/responses` decoded (stateless: the whole
//! conversation in `input`), replies and their `response.created` … `response.completed`
//! streams encoded.
//!
//! Normalisations: `instructions` and `system`/`developer` messages make the system prompt;
//! output items open a user turn that the next user message joins (as the client writes
//! one user turn); a computer call's result comes back as its screenshot, with its text in
//! the user message after it (where the client puts it). An assistant turn holding an item
//! with an `id` (one the API wrote) is kept as those items, each a native `openai` part
//! followed by what helios reads from it, exactly as the client's parser reads a reply;
//! one without is read as its text and function calls. Items helios has no part for
//! (reasoning, a custom or shell tool's call and output) are native `openai` parts, which
//! only OpenAI is sent. A reply of helios's own text and calls is sent as a `message` and
//! `function_call` items, which the client reads back with those items as native parts.

use serde_json::{Map, Value, json};

use super::{
    CallNames, Decoded, ServeError, SseEvent, arguments, chunks, content_text, data_url,
    empty_schema, event_json, field, invalid, join, malformed_stream, object, objects, opt_array,
    opt_bool, opt_str, opt_u64, req_str, unix_now, unsupported,
};
use crate::model::openai_responses::{
    COMPUTER_CALL_NAME, COMPUTER_TOOL_TYPE, PROVIDER, item_parts,
};
use crate::model::{
    ChatRequest, ChatResponse, ComputerTool, Image, Message, ModelError, Part, Role, StopReason,
    ToolCall, ToolResult, ToolSpec,
};

pub(super) fn decode(root: &Map<String, Value>) -> Result<Decoded, ServeError> {
    let model = req_str(root, "", "model")?;
    if field(root, "previous_response_id").is_some() {
        return Err(unsupported(
            "previous_response_id",
            "the gateway keeps no conversations: send the whole conversation in `input` \
             (with `store: false`)",
        ));
    }
    let mut system: Vec<String> = opt_str(root, "", "instructions")?
        .map(str::to_string)
        .into_iter()
        .collect();
    let mut turns = Turns::default();
    match field(root, "input") {
        None => return Err(super::missing("input")),
        Some(Value::String(text)) => turns.messages.push(Message::user_text(text.clone())),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                turns.item(item, &format!("input[{i}]"), &mut system)?;
            }
        }
        Some(_) => return Err(invalid("input", "is neither text nor a list of items")),
    }
    turns.close_assistant()?;
    let mut request = ChatRequest {
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages: turns.messages,
        ..ChatRequest::default()
    };
    let mut ignored = Vec::new();
    for (path, tool) in objects(opt_array(root, "", "tools")?.unwrap_or_default(), "tools")? {
        match req_str(tool, &path, "type")? {
            "function" => request.tools.push(ToolSpec {
                name: req_str(tool, &path, "name")?.to_string(),
                description: opt_str(tool, &path, "description")?
                    .unwrap_or_default()
                    .to_string(),
                parameters: field(tool, "parameters")
                    .cloned()
                    .unwrap_or_else(empty_schema),
            }),
            COMPUTER_TOOL_TYPE => {
                request.computer = Some(ComputerTool {
                    display_width: super::pixels(tool, &path, "display_width")?,
                    display_height: super::pixels(tool, &path, "display_height")?,
                    environment: opt_str(tool, &path, "environment")?
                        .unwrap_or("linux")
                        .to_string(),
                    excluded_functions: Vec::new(),
                });
            }
            other => ignored.push(format!("tool of type `{other}`")),
        }
    }
    let mut decoded = Decoded::new(request);
    decoded.model = Some(model.to_string());
    decoded.stream = opt_bool(root, "", "stream")?;
    decoded.max_output_tokens = opt_u64(root, "", "max_output_tokens")?;
    decoded.ignored = ignored;
    Ok(decoded)
}

/// The conversation as its items are read: a user turn of outputs stays open for the next
/// outputs and user message; an assistant turn's items are gathered until it ends.
#[derive(Default)]
struct Turns<'a> {
    messages: Vec<Message>,
    results_open: bool,
    assistant: Vec<(&'a Value, String)>,
    names: CallNames,
}

impl<'a> Turns<'a> {
    fn item(
        &mut self,
        item: &'a Value,
        path: &str,
        system: &mut Vec<String>,
    ) -> Result<(), ServeError> {
        let object = object(item, path)?;
        let kind = opt_str(object, path, "type")?.unwrap_or("message");
        if kind == "message" {
            match req_str(object, path, "role")? {
                "system" | "developer" => {
                    system.push(content_text(
                        field(object, "content"),
                        &join(path, "content"),
                    )?);
                }
                "user" => {
                    self.close_assistant()?;
                    let parts = user_content(field(object, "content"), &join(path, "content"))?;
                    self.user(parts);
                    self.results_open = false;
                }
                "assistant" => self.assistant.push((item, path.to_string())),
                other => {
                    return Err(invalid(
                        join(path, "role"),
                        format!("is `{other}`, not `system`, `developer`, `user` or `assistant`"),
                    ));
                }
            }
            return Ok(());
        }
        if !kind.ends_with("_output") {
            // A call or reasoning: part of the assistant's turn.
            self.assistant.push((item, path.to_string()));
            return Ok(());
        }
        self.close_assistant()?;
        let part = match kind {
            "function_call_output" => function_output(object, path, &self.names)?,
            "computer_call_output" => computer_output(object, path, &self.names)?,
            _ => Part::Native {
                provider: PROVIDER.into(),
                item: item.clone(),
            },
        };
        if self.results_open {
            self.user(vec![part]);
        } else {
            self.messages.push(Message {
                role: Role::User,
                parts: vec![part],
            });
        }
        self.results_open = true;
        Ok(())
    }

    /// Parts of a user turn: joining the open turn of outputs, else a turn of their own.
    fn user(&mut self, parts: Vec<Part>) {
        match self.messages.last_mut() {
            Some(last) if self.results_open => last.parts.extend(parts),
            _ => self.messages.push(Message {
                role: Role::User,
                parts,
            }),
        }
    }

    /// The gathered assistant items as one turn.
    fn close_assistant(&mut self) -> Result<(), ServeError> {
        if self.assistant.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.assistant);
        // Items the API wrote go back as they came; a reasoning item always has an id.
        let native = items.iter().any(|(item, _)| item.get("id").is_some());
        let mut parts = Vec::new();
        for (item, path) in items {
            let object = object(item, &path)?;
            let kind = opt_str(object, &path, "type")?;
            if native && kind.is_some() {
                item_parts(item, &mut parts).map_err(|e| invalid(&path, e.to_string()))?;
                continue;
            }
            match kind.unwrap_or("message") {
                "message" => {
                    if native {
                        parts.push(Part::Native {
                            provider: PROVIDER.into(),
                            item: item.clone(),
                        });
                    }
                    let text = content_text(field(object, "content"), &join(&path, "content"))?;
                    if !text.is_empty() {
                        parts.push(Part::Text { text });
                    }
                }
                "function_call" => parts.push(Part::ToolCall(ToolCall {
                    id: req_str(object, &path, "call_id")?.to_string(),
                    name: req_str(object, &path, "name")?.to_string(),
                    input: super::parse_arguments(
                        opt_str(object, &path, "arguments")?.unwrap_or("{}"),
                    ),
                })),
                other => {
                    return Err(invalid(
                        &path,
                        format!("a `{other}` item the API did not write (it has no `id`)"),
                    ));
                }
            }
        }
        for part in &parts {
            if let Part::ToolCall(call) = part {
                self.names.saw(&call.id, &call.name);
            }
        }
        self.messages.push(Message {
            role: Role::Assistant,
            parts,
        });
        self.results_open = false;
        Ok(())
    }
}

/// A user message's or an output's content: text and images.
fn user_content(content: Option<&Value>, path: &str) -> Result<Vec<Part>, ServeError> {
    let Some(Value::Array(parts)) = content else {
        return Ok(vec![Part::Text {
            text: content_text(content, path)?,
        }]);
    };
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let object = object(part, &path)?;
        match req_str(object, &path, "type")? {
            "input_image" => out.push(Part::Image(input_image(object, &path)?)),
            _ => out.push(Part::Text {
                text: content_text(Some(&Value::Array(vec![part.clone()])), &path)?,
            }),
        }
    }
    Ok(out)
}

fn input_image(part: &Map<String, Value>, path: &str) -> Result<Image, ServeError> {
    match opt_str(part, path, "image_url")? {
        Some(url) => data_url(url, &join(path, "image_url")),
        None => Err(unsupported(
            path,
            "an image is a base64 `data:` URL in `image_url` (the gateway has no files)",
        )),
    }
}

fn function_output(
    item: &Map<String, Value>,
    path: &str,
    names: &CallNames,
) -> Result<Part, ServeError> {
    let call_id = req_str(item, path, "call_id")?;
    let mut output = String::new();
    let mut images = Vec::new();
    match field(item, "output") {
        Some(Value::String(text)) => output = text.clone(),
        Some(Value::Array(_)) => {
            for part in user_content(field(item, "output"), &join(path, "output"))? {
                match part {
                    Part::Text { text } => output.push_str(&text),
                    Part::Image(image) => images.push(image),
                    _ => {}
                }
            }
        }
        None => return Err(super::missing(join(path, "output"))),
        Some(_) => return Err(invalid(join(path, "output"), "is neither text nor a list")),
    }
    Ok(Part::ToolResult(ToolResult {
        images,
        ..ToolResult::text(call_id, names.name(call_id), output, false)
    }))
}

/// A computer call's output: its screenshot, and its other fields
/// (`acknowledged_safety_checks`) as the result's provider fields.
fn computer_output(
    item: &Map<String, Value>,
    path: &str,
    names: &CallNames,
) -> Result<Part, ServeError> {
    let call_id = req_str(item, path, "call_id")?;
    let output_path = join(path, "output");
    let output = super::req_object(item, path, "output")?;
    let screenshot = input_image(output, &output_path)?;
    let extra: Map<String, Value> = item
        .iter()
        .filter(|(key, _)| {
            !matches!(
                key.as_str(),
                "type" | "call_id" | "output" | "id" | "status"
            )
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let name = match names.name(call_id) {
        name if name.is_empty() => COMPUTER_CALL_NAME.to_string(),
        name => name,
    };
    Ok(Part::ToolResult(ToolResult {
        images: vec![screenshot],
        extra: (!extra.is_empty()).then_some(Value::Object(extra)),
        ..ToolResult::text(call_id, name, "", false)
    }))
}

/// The reply's output items: the API's own when it holds them, else one `message` per text
/// and one `function_call` per call.
fn output(id: &str, response: &ChatResponse) -> Vec<Value> {
    let natives = super::natives(response, PROVIDER);
    if !natives.is_empty() {
        return natives;
    }
    let suffix = id.strip_prefix("resp_").unwrap_or(id);
    response
        .parts
        .iter()
        .enumerate()
        .filter_map(|(n, part)| match part {
            Part::Text { text } => Some(json!({
                "type": "message", "id": format!("msg_{suffix}_{n}"), "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            })),
            Part::ToolCall(call) => Some(json!({
                "type": "function_call", "id": format!("fc_{suffix}_{n}"), "status": "completed",
                "call_id": call.id, "name": call.name, "arguments": arguments(&call.input),
            })),
            _ => None,
        })
        .collect()
}

/// The status and `incomplete_details` of a reply that stopped so.
fn status(stop: &StopReason) -> (&'static str, Value) {
    let incomplete = |reason: &str| ("incomplete", json!({"reason": reason}));
    match stop {
        StopReason::EndTurn | StopReason::ToolUse | StopReason::StopSequence => {
            ("completed", Value::Null)
        }
        StopReason::MaxTokens => incomplete("max_output_tokens"),
        StopReason::ContentFilter => incomplete("content_filter"),
        StopReason::Other(reason) => incomplete(reason),
    }
}

fn response_object(
    model: &str,
    id: &str,
    created: u64,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id, "object": "response", "created_at": created, "status": status,
        "error": null, "incomplete_details": incomplete, "instructions": null,
        "max_output_tokens": null, "model": model, "output": output,
        "parallel_tool_calls": true, "previous_response_id": null, "store": false,
        "temperature": null, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
        "tools": [], "top_p": null, "truncation": "disabled", "usage": usage, "metadata": {},
    })
}

fn usage(response: &ChatResponse) -> Value {
    let usage = &response.usage;
    json!({
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    })
}

pub(super) fn encode_response(model: &str, id: &str, response: &ChatResponse) -> Value {
    let (status, incomplete) = status(&response.stop);
    response_object(
        model,
        id,
        unix_now(),
        status,
        incomplete,
        output(id, response),
        usage(response),
    )
}

pub(super) fn encode_stream(model: &str, id: &str, response: &ChatResponse) -> Vec<SseEvent> {
    let created = unix_now();
    let mut events = Vec::new();
    let mut push = |mut data: Value| {
        data["sequence_number"] = json!(events.len());
        let name = data["type"].as_str().unwrap_or_default().to_string();
        events.push(SseEvent::named(&name, &data));
    };
    let pending = response_object(
        model,
        id,
        created,
        "in_progress",
        Value::Null,
        Vec::new(),
        Value::Null,
    );
    push(json!({"type": "response.created", "response": pending}));
    push(json!({"type": "response.in_progress", "response": pending}));
    let items = output(id, response);
    for (index, item) in items.iter().enumerate() {
        let item_id = item["id"].clone();
        let mut added = item.clone();
        match item["type"].as_str() {
            Some("message") => added["content"] = json!([]),
            Some("function_call") => added["arguments"] = json!(""),
            _ => {}
        }
        if added.get("status").is_some() {
            added["status"] = json!("in_progress");
        }
        push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
        match item["type"].as_str() {
            Some("message") => {
                for (content_index, part) in
                    item["content"].as_array().into_iter().flatten().enumerate()
                {
                    let at = json!({"item_id": item_id, "output_index": index, "content_index": content_index});
                    let with = |kind: &str, fields: Value| {
                        let mut data = at.clone();
                        data["type"] = json!(kind);
                        for (key, value) in fields.as_object().into_iter().flatten() {
                            data[key] = value.clone();
                        }
                        data
                    };
                    if part["type"] == "output_text" {
                        let text = part["text"].as_str().unwrap_or_default();
                        push(with(
                            "response.content_part.added",
                            json!({"part": {"type": "output_text", "text": "", "annotations": []}}),
                        ));
                        for piece in chunks(text) {
                            push(with(
                                "response.output_text.delta",
                                json!({"delta": piece, "logprobs": []}),
                            ));
                        }
                        push(with(
                            "response.output_text.done",
                            json!({"text": text, "logprobs": []}),
                        ));
                    } else {
                        push(with("response.content_part.added", json!({"part": part})));
                    }
                    push(with("response.content_part.done", json!({"part": part})));
                }
            }
            Some("function_call") => {
                let arguments = item["arguments"].as_str().unwrap_or_default();
                for piece in chunks(arguments) {
                    push(json!({"type": "response.function_call_arguments.delta",
                        "item_id": item_id, "output_index": index, "delta": piece}));
                }
                push(json!({"type": "response.function_call_arguments.done",
                    "item_id": item_id, "output_index": index, "arguments": arguments}));
            }
            _ => {}
        }
        push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
    }
    let (status, incomplete) = status(&response.stop);
    let done = response_object(
        model,
        id,
        created,
        status,
        incomplete,
        items,
        usage(response),
    );
    let kind = if status == "completed" {
        "response.completed"
    } else {
        "response.incomplete"
    };
    push(json!({"type": kind, "response": done}));
    events
}

/// The response a stream delivers: the last event's response, with its output built from
/// the items' events (an item from its `added` event and deltas, replaced by its `done`
/// event's item when there is one).
pub(super) fn assemble(events: &[SseEvent]) -> Result<Value, ModelError> {
    let mut items: Vec<Value> = Vec::new();
    let mut last = None;
    for data in events.iter().filter_map(event_json) {
        let index = data["output_index"].as_u64().unwrap_or_default() as usize;
        match data["type"].as_str().unwrap_or_default() {
            "response.output_item.added" => {
                if index != items.len() {
                    return Err(malformed_stream(format!(
                        "item {index} starts out of order"
                    )));
                }
                items.push(data["item"].clone());
            }
            "response.content_part.added" => {
                let item = items
                    .get_mut(index)
                    .ok_or_else(|| malformed_stream(format!("a part of unknown item {index}")))?;
                match item["content"].as_array_mut() {
                    Some(content) => content.push(data["part"].clone()),
                    None => item["content"] = json!([data["part"]]),
                }
            }
            "response.output_text.delta" => {
                let content_index = data["content_index"].as_u64().unwrap_or_default() as usize;
                let part = items
                    .get_mut(index)
                    .and_then(|item| item["content"].get_mut(content_index))
                    .ok_or_else(|| malformed_stream(format!("a delta of unknown item {index}")))?;
                super::append(part, "text", &data["delta"]);
            }
            "response.function_call_arguments.delta" => {
                let item = items
                    .get_mut(index)
                    .ok_or_else(|| malformed_stream(format!("a delta of unknown item {index}")))?;
                super::append(item, "arguments", &data["delta"]);
            }
            "response.output_item.done" => {
                let item = items
                    .get_mut(index)
                    .ok_or_else(|| malformed_stream(format!("unknown item {index} is done")))?;
                *item = data["item"].clone();
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                last = Some(data["response"].clone());
            }
            "error" => {
                return Err(malformed_stream(format!(
                    "the stream failed: {}",
                    data["message"].as_str().unwrap_or_default()
                )));
            }
            _ => {}
        }
    }
    let mut response =
        last.ok_or_else(|| malformed_stream("the stream ended before `response.completed`"))?;
    response["output"] = Value::Array(items);
    Ok(response)
}
