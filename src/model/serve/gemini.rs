//! Gemini generateContent, server side: `POST /v1beta/models/MODEL:generateContent` (and
//! `:streamGenerateContent?alt=sse`, `:countTokens`) decoded, replies and their streams of
//! `GenerateContentResponse` chunks encoded.
//!
//! Fields are read in the REST API's camelCase or the protobuf's snake_case alike. A model
//! turn with a part helios must send back unchanged (one with a `thoughtSignature`, a
//! thought, any part other than text and calls) is kept as those parts, each a native
//! `gemini` part followed by what helios reads from it, exactly as the client's parser
//! reads a reply; any other model turn is read as its text and calls. Normalisations: a
//! call without an `id` gets `call_N` (N its place in the turn, as the parser names it) and
//! an answer without one goes to the first unanswered call of that name; an answer's
//! `response` is its `output` (or `error`), its other fields the result's provider fields,
//! and a response with neither is the output as JSON text (or, for a screenshot, all
//! provider fields); OpenAPI type names in schemas (`OBJECT`) are lower-cased; the computer
//! tool, which has no screen size, is a browser of 1000 × 1000 (its coordinate grid);
//! consecutive texts of a stream are one.

use serde_json::{Map, Value, json};

use super::{
    Decoded, ServeError, ServeErrorKind, SseEvent, chunks, empty_schema, event_json, invalid,
    malformed_stream, missing, unsupported,
};
use crate::model::gemini::{PROVIDER, function_call, reply_parts};
use crate::model::{
    ChatRequest, ChatResponse, ComputerTool, Image, Message, ModelError, Part, Role, StopReason,
    ToolResult, ToolSpec,
};

/// The size the computer tool is given, Gemini's coordinate grid.
pub(super) const GRID: u32 = 1000;

/// The key a field has in `object`: its camelCase name, or the snake_case one when only
/// that is there.
fn key(object: &Map<String, Value>, camel: &str) -> String {
    if object.contains_key(camel) {
        return camel.to_string();
    }
    camel
        .chars()
        .flat_map(|c| {
            let lower = c.to_ascii_lowercase();
            (c.is_ascii_uppercase().then_some('_').into_iter()).chain(std::iter::once(lower))
        })
        .collect()
}

/// A present, non-null field by either name.
fn get<'a>(object: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    super::field(object, &key(object, camel))
}

fn get_object<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, ServeError> {
    get(object, camel)
        .map(|v| super::object(v, &super::join(path, camel)))
        .transpose()
}

fn get_str<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    path: &str,
) -> Result<Option<&'a str>, ServeError> {
    super::opt_str(object, path, &key(object, camel))
}

fn get_array<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    path: &str,
) -> Result<Option<&'a [Value]>, ServeError> {
    super::opt_array(object, path, &key(object, camel))
}

pub(super) fn decode(root: &Map<String, Value>) -> Result<Decoded, ServeError> {
    // A countTokens body may wrap a whole request.
    let root = get_object(root, "generateContentRequest", "")?.unwrap_or(root);
    let system = match get(root, "systemInstruction") {
        None => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(content) => {
            let content = super::object(content, "systemInstruction")?;
            let parts = get_array(content, "parts", "systemInstruction")?
                .ok_or_else(|| missing("systemInstruction.parts"))?;
            let mut texts = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let path = format!("systemInstruction.parts[{i}]");
                texts.push(
                    get_str(super::object(part, &path)?, "text", &path)?
                        .ok_or_else(|| missing(format!("{path}.text")))?,
                );
            }
            Some(texts.join("\n\n"))
        }
    };
    let mut calls = Calls::default();
    let mut messages = Vec::new();
    let contents = get_array(root, "contents", "")?.ok_or_else(|| missing("contents"))?;
    for (i, content) in contents.iter().enumerate() {
        let path = format!("contents[{i}]");
        let content = super::object(content, &path)?;
        let parts = get_array(content, "parts", &path)?.unwrap_or_default();
        let parts_path = format!("{path}.parts");
        let message = match get_str(content, "role", &path)?.unwrap_or("user") {
            "model" => Message {
                role: Role::Assistant,
                parts: model_turn(parts, &parts_path, &mut calls)?,
            },
            // `function` is the role older clients give a turn of answers.
            "user" | "function" => Message {
                role: Role::User,
                parts: user_turn(parts, &parts_path, &mut calls)?,
            },
            other => {
                return Err(invalid(
                    format!("{path}.role"),
                    format!("is `{other}`, not `user` or `model`"),
                ));
            }
        };
        messages.push(message);
    }
    let mut request = ChatRequest {
        system,
        messages,
        ..ChatRequest::default()
    };
    let mut ignored = Vec::new();
    for (path, tool) in super::objects(get_array(root, "tools", "")?.unwrap_or_default(), "tools")?
    {
        for (key, value) in tool {
            match key.as_str() {
                "functionDeclarations" | "function_declarations" => {
                    let path = format!("{path}.{key}");
                    let declarations = value
                        .as_array()
                        .ok_or_else(|| invalid(&path, "is not a list"))?;
                    for (j, declaration) in declarations.iter().enumerate() {
                        request
                            .tools
                            .push(declaration_spec(declaration, &format!("{path}[{j}]"))?);
                    }
                }
                "computerUse" | "computer_use" => {
                    let excluded = value
                        .get("excludedPredefinedFunctions")
                        .or_else(|| value.get("excluded_predefined_functions"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect();
                    request.computer = Some(ComputerTool {
                        display_width: GRID,
                        display_height: GRID,
                        environment: "browser".into(),
                        excluded_functions: excluded,
                    });
                }
                other => ignored.push(format!("tool `{other}`")),
            }
        }
    }
    let mut decoded = Decoded::new(request);
    if let Some(config) = get_object(root, "generationConfig", "")? {
        decoded.max_output_tokens = get(config, "maxOutputTokens")
            .map(|v| {
                v.as_u64().ok_or_else(|| {
                    invalid("generationConfig.maxOutputTokens", "is not a whole number")
                })
            })
            .transpose()?;
    }
    decoded.ignored = ignored;
    Ok(decoded)
}

fn declaration_spec(declaration: &Value, path: &str) -> Result<ToolSpec, ServeError> {
    let declaration = super::object(declaration, path)?;
    let name =
        get_str(declaration, "name", path)?.ok_or_else(|| missing(format!("{path}.name")))?;
    let parameters = match get(declaration, "parametersJsonSchema") {
        Some(schema) => schema.clone(),
        None => get(declaration, "parameters").map_or_else(empty_schema, lower_types),
    };
    Ok(ToolSpec {
        name: name.to_string(),
        description: get_str(declaration, "description", path)?
            .unwrap_or_default()
            .to_string(),
        parameters,
    })
}

/// An OpenAPI schema with JSON Schema's lower-case type names (`OBJECT` → `object`).
fn lower_types(schema: &Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("type", Value::String(kind)) => Value::String(kind.to_lowercase()),
                        _ => lower_types(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(lower_types).collect()),
        other => other.clone(),
    }
}

/// The calls of the conversation, for answers that name their call by name and order only.
#[derive(Default)]
struct Calls {
    /// The last model turn's calls: id, name, whether answered.
    open: Vec<(String, String, bool)>,
}

impl Calls {
    fn answer(&mut self, id: Option<&str>, name: &str) -> String {
        if let Some(id) = id {
            if let Some(call) = self.open.iter_mut().find(|(call, _, _)| call == id) {
                call.2 = true;
            }
            return id.to_string();
        }
        match self
            .open
            .iter_mut()
            .find(|(_, call_name, answered)| call_name == name && !answered)
        {
            Some(call) => {
                call.2 = true;
                call.0.clone()
            }
            None => format!("call_{name}"),
        }
    }
}

/// Whether a model part is only text or only a call, which helios's parts say in full.
fn plain(part: &Value) -> bool {
    part.as_object().is_some_and(|object| {
        object.len() == 1 && (object.contains_key("text") || object.contains_key("functionCall"))
    })
}

fn model_turn(parts: &[Value], path: &str, calls: &mut Calls) -> Result<Vec<Part>, ServeError> {
    let out = if parts.iter().all(plain) {
        let mut out = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if let Some(text) = part.get("text") {
                let text = text
                    .as_str()
                    .ok_or_else(|| invalid(format!("{path}[{i}].text"), "is not a string"))?;
                out.push(Part::Text {
                    text: text.to_string(),
                });
            } else {
                out.push(Part::ToolCall(call(&part["functionCall"], i, path)?));
            }
        }
        out
    } else {
        for (i, part) in parts.iter().enumerate() {
            if let Some(call) = part.get("functionCall") {
                self::call(call, i, path)?;
            }
        }
        reply_parts(parts).map_err(|e| invalid(path, e.to_string()))?
    };
    calls.open = out
        .iter()
        .filter_map(|part| match part {
            Part::ToolCall(call) => Some((call.id.clone(), call.name.clone(), false)),
            _ => None,
        })
        .collect();
    Ok(out)
}

fn call(call: &Value, index: usize, path: &str) -> Result<crate::model::ToolCall, ServeError> {
    let call_path = format!("{path}[{index}].functionCall");
    super::object(call, &call_path)?;
    if call.get("name").and_then(Value::as_str).is_none() {
        return Err(missing(format!("{call_path}.name")));
    }
    function_call(call, index).map_err(|e| invalid(call_path, e.to_string()))
}

fn user_turn(parts: &[Value], path: &str, calls: &mut Calls) -> Result<Vec<Part>, ServeError> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let object = super::object(part, &path)?;
        if let Some(text) = get_str(object, "text", &path)? {
            out.push(Part::Text {
                text: text.to_string(),
            });
        } else if let Some(blob) = get_object(object, "inlineData", &path)? {
            out.push(Part::Image(inline_data(
                blob,
                &format!("{path}.inlineData"),
            )?));
        } else if let Some(response) = get_object(object, "functionResponse", &path)? {
            out.push(function_response(
                response,
                &format!("{path}.functionResponse"),
                calls,
            )?);
        } else {
            // File references and other parts go on to Gemini as they came.
            out.push(Part::Native {
                provider: PROVIDER.into(),
                item: part.clone(),
            });
        }
    }
    Ok(out)
}

fn inline_data(blob: &Map<String, Value>, path: &str) -> Result<Image, ServeError> {
    Ok(Image {
        media_type: get_str(blob, "mimeType", path)?
            .ok_or_else(|| missing(format!("{path}.mimeType")))?
            .to_string(),
        data: get_str(blob, "data", path)?
            .ok_or_else(|| missing(format!("{path}.data")))?
            .to_string(),
    })
}

fn function_response(
    response: &Map<String, Value>,
    path: &str,
    calls: &mut Calls,
) -> Result<Part, ServeError> {
    let name = get_str(response, "name", path)?.ok_or_else(|| missing(format!("{path}.name")))?;
    let call_id = calls.answer(get_str(response, "id", path)?, name);
    let mut images = Vec::new();
    for (i, part) in get_array(response, "parts", path)?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let part_path = format!("{path}.parts[{i}]");
        let blob = get_object(super::object(part, &part_path)?, "inlineData", &part_path)?
            .ok_or_else(|| {
                unsupported(&part_path, "a function response's parts are inline images")
            })?;
        images.push(inline_data(blob, &format!("{part_path}.inlineData"))?);
    }
    let mut fields = get_object(response, "response", path)?
        .cloned()
        .unwrap_or_default();
    let as_text = |value: Value| match value {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let (output, is_error) = match (fields.remove("output"), fields.remove("error")) {
        (_, Some(error)) => (as_text(error), true),
        (Some(output), None) => (as_text(output), false),
        (None, None) if images.is_empty() && !fields.is_empty() => (
            Value::Object(std::mem::take(&mut fields)).to_string(),
            false,
        ),
        (None, None) => (String::new(), false),
    };
    Ok(Part::ToolResult(ToolResult {
        call_id,
        name: name.to_string(),
        output,
        is_error,
        images,
        extra: (!fields.is_empty()).then_some(Value::Object(fields)),
    }))
}

/// The reply's parts: the API's own when it holds them, else its text and calls.
fn parts(response: &ChatResponse) -> Vec<Value> {
    let natives = super::natives(response, PROVIDER);
    if !natives.is_empty() {
        return natives;
    }
    response
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text } => Some(json!({"text": text})),
            Part::ToolCall(call) => Some(
                json!({"functionCall": {"id": call.id, "name": call.name, "args": call.input}}),
            ),
            _ => None,
        })
        .collect()
}

/// The finish reason; one helios has no name for goes as itself when it looks like
/// Gemini's (`MALFORMED_FUNCTION_CALL`), else as `OTHER`.
fn finish_reason(stop: &StopReason) -> &str {
    match stop {
        StopReason::EndTurn | StopReason::ToolUse | StopReason::StopSequence => "STOP",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContentFilter => "SAFETY",
        StopReason::Other(other)
            if !other.is_empty()
                && other
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()) =>
        {
            other
        }
        StopReason::Other(_) => "OTHER",
    }
}

fn usage(response: &ChatResponse) -> Value {
    let usage = &response.usage;
    let mut metadata = json!({
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    });
    if usage.cached_tokens > 0 {
        metadata["cachedContentTokenCount"] = json!(usage.cached_tokens);
    }
    metadata
}

fn reply(
    model: &str,
    id: &str,
    parts: Vec<Value>,
    finish: Option<&str>,
    usage: Option<Value>,
) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let mut reply = json!({"candidates": [candidate], "modelVersion": model, "responseId": id});
    if let Some(usage) = usage {
        reply["usageMetadata"] = usage;
    }
    reply
}

pub(super) fn encode_response(model: &str, id: &str, response: &ChatResponse) -> Value {
    reply(
        model,
        id,
        parts(response),
        Some(finish_reason(&response.stop)),
        Some(usage(response)),
    )
}

/// The chunks of a stream: helios's texts in pieces, each call whole; the API's own parts
/// all in one chunk, as they came. The last chunk has the finish reason and usage.
pub(super) fn encode_stream(model: &str, id: &str, response: &ChatResponse) -> Vec<SseEvent> {
    let all = parts(response);
    let native = response
        .parts
        .iter()
        .any(|part| matches!(part, Part::Native { provider, .. } if provider == PROVIDER));
    let mut pieces: Vec<Vec<Value>> = if native {
        vec![all]
    } else {
        all.into_iter()
            .flat_map(|part| match part.get("text").and_then(Value::as_str) {
                Some(text) => chunks(text)
                    .into_iter()
                    .map(|piece| vec![json!({"text": piece})])
                    .collect(),
                None => vec![vec![part]],
            })
            .collect()
    };
    if pieces.is_empty() {
        pieces.push(Vec::new());
    }
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let done = i == last;
            SseEvent::data(&reply(
                model,
                id,
                parts,
                done.then(|| finish_reason(&response.stop)),
                done.then(|| usage(response)),
            ))
        })
        .collect()
}

/// The reply a stream of chunks delivers: their parts in order, a text that continues the
/// text before it joined to it, the last finish reason and usage.
pub(super) fn assemble(events: &[SseEvent]) -> Result<Value, ModelError> {
    let mut parts: Vec<Value> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    let mut feedback = Value::Null;
    let mut any = false;
    for chunk in events.iter().filter_map(event_json) {
        any = true;
        if let Some(error) = chunk.get("error") {
            return Err(malformed_stream(format!("the stream failed: {error}")));
        }
        if !chunk["usageMetadata"].is_null() {
            usage = chunk["usageMetadata"].clone();
        }
        if !chunk["promptFeedback"].is_null() {
            feedback = chunk["promptFeedback"].clone();
        }
        let Some(candidate) = chunk.pointer("/candidates/0") else {
            continue;
        };
        for (i, part) in candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let is_text = |part: &Value| plain(part) && part.get("text").is_some();
            match parts.last_mut() {
                Some(previous) if i == 0 && is_text(previous) && is_text(part) => {
                    super::append(previous, "text", &part["text"]);
                }
                _ => parts.push(part.clone()),
            }
        }
        if !candidate["finishReason"].is_null() {
            finish = candidate["finishReason"].clone();
        }
    }
    if !any {
        return Err(malformed_stream("the stream has no chunks"));
    }
    let mut reply = json!({"usageMetadata": usage});
    if feedback.is_null() || !parts.is_empty() || !finish.is_null() {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}});
        if !finish.is_null() {
            candidate["finishReason"] = finish;
        }
        reply["candidates"] = json!([candidate]);
    }
    if !feedback.is_null() {
        reply["promptFeedback"] = feedback;
    }
    Ok(reply)
}

pub(super) fn error_body(kind: ServeErrorKind, message: &str) -> Value {
    let status = match kind {
        ServeErrorKind::BadRequest => "INVALID_ARGUMENT",
        ServeErrorKind::LimitReached => "FAILED_PRECONDITION",
        ServeErrorKind::Auth => "UNAUTHENTICATED",
        ServeErrorKind::NotFound => "NOT_FOUND",
        ServeErrorKind::Upstream { status } => match status {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            429 => "RESOURCE_EXHAUSTED",
            503 | 529 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            500.. => "INTERNAL",
            _ => "UNKNOWN",
        },
    };
    json!({"error": {"code": kind.status(), "message": message, "status": status}})
}
