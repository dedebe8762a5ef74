//! OpenAI Responses API: `POST {base}/responses`, the wire format of OpenAI's native computer
//! tool (`computer_use_preview`), which Chat Completions does not have.
//!
//! The conversation is stateless: every request sends the whole conversation again (no
//! `previous_response_id`). Each output item of a reply is kept, in order, as a
//! [`Part::Native`] of provider `openai`, followed by what helios reads from it (the text
//! of a `message`, the [`ToolCall`] of a `computer_call` or `function_call`). An assistant
//! message holding such items is sent back as exactly those items, which is what the API
//! asks for (a `reasoning` item must come back with the item that follows it, a
//! `computer_call` with its `id` and `status`); an assistant message without them is
//! written from its text and function calls.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use super::ModelParams;
use super::{
    ChatRequest, ChatResponse, Image, Message, ModelError, Part, Role, StopReason, ToolCall,
    ToolResult, Usage,
};

/// The provider name in [`Part::Native`] items.
pub const PROVIDER: &str = super::Api::OpenAi.name();

/// The native computer tool's type, and the name its calls get in helios.
pub const COMPUTER_TOOL_TYPE: &str = "computer_use_preview";
pub const COMPUTER_CALL_NAME: &str = "computer";

pub fn endpoint(base: &str) -> String {
    format!("{}/responses", base.trim_end_matches('/'))
}

/// A request this wire format cannot express; found before anything is sent.
fn unsupported(message: impl Into<String>) -> ModelError {
    ModelError::Unsupported {
        provider: "OpenAI Responses",
        message: message.into(),
    }
}

/// A Responses request.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
    input: Vec<Item<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncation: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(flatten)]
    extra: &'a BTreeMap<String, Value>,
}

/// One item of `input`.
#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    /// An item of an earlier reply, sent back as it came.
    Native(&'a Value),
    Message(InputMessage<'a>),
    Output(CallOutput<'a>),
    FunctionCall(FunctionCall<'a>),
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum InputMessage<'a> {
    User { content: Vec<Content<'a>> },
    Assistant { content: String },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Content<'a> {
    InputText { text: &'a str },
    InputImage { image_url: String },
}

/// A `computer_call_output` or a `function_call_output`, with the result's provider
/// fields (`acknowledged_safety_checks`) among its own.
#[derive(Serialize)]
struct CallOutput<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call_id: &'a str,
    output: Output<'a>,
    #[serde(flatten)]
    extra: Option<&'a Map<String, Value>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output<'a> {
    Screenshot {
        #[serde(rename = "type")]
        kind: &'static str,
        image_url: String,
    },
    Text(&'a str),
    Content(Vec<Content<'a>>),
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call_id: &'a str,
    name: &'a str,
    arguments: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Tool<'a> {
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        name: &'a str,
        description: &'a str,
        parameters: &'a Value,
        strict: bool,
    },
    Computer {
        #[serde(rename = "type")]
        kind: &'static str,
        display_width: u32,
        display_height: u32,
        environment: &'a str,
    },
}

fn data_url(image: &Image) -> String {
    format!("data:{};base64,{}", image.media_type, image.data)
}

fn input_image(image: &Image) -> Content<'_> {
    Content::InputImage {
        image_url: data_url(image),
    }
}

fn is_openai_native(part: &Part) -> bool {
    matches!(part, Part::Native { provider, .. } if provider == PROVIDER)
}

/// The `call_id`s of the computer calls in the conversation, from the items the API
/// returned.
fn computer_call_ids(request: &ChatRequest) -> HashSet<&str> {
    request
        .messages
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|part| match part {
            Part::Native { provider, item } if provider == PROVIDER => Some(item),
            _ => None,
        })
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("computer_call"))
        .filter_map(|item| item.get("call_id").and_then(Value::as_str))
        .collect()
}

pub fn body(model: &str, params: &ModelParams, request: &ChatRequest) -> Result<Value, ModelError> {
    let computer_calls = computer_call_ids(request);
    let mut input = Vec::new();
    for message in &request.messages {
        match message.role {
            Role::User => user_items(message, &computer_calls, &mut input)?,
            Role::Assistant => assistant_items(message, request, &mut input)?,
        }
    }
    let mut tools: Vec<Tool> = request
        .tools
        .iter()
        .map(|t| Tool::Function {
            kind: "function",
            name: &t.name,
            description: &t.description,
            parameters: &t.parameters,
            // The Responses API makes function tools strict unless told otherwise, which
            // would reject schemas with optional properties; Chat Completions does not.
            strict: false,
        })
        .collect();
    if let Some(computer) = &request.computer {
        tools.push(Tool::Computer {
            kind: COMPUTER_TOOL_TYPE,
            display_width: computer.display_width,
            display_height: computer.display_height,
            environment: &computer.environment,
        });
    }
    // The Responses API has no `seed` and no stop sequences.
    Ok(super::to_body(&Body {
        model,
        instructions: request.system.as_deref(),
        input,
        // `computer-use-preview` requires it; elsewhere the API's default (an error when
        // the conversation is too long) is kept.
        truncation: request.computer.as_ref().map(|_| "auto"),
        tools,
        temperature: params.temperature,
        top_p: params.top_p,
        max_output_tokens: params.max_tokens,
        extra: &params.extra,
    }))
}

/// A user message: tool outputs first, each its own item, then one message with the
/// text and images (and whatever a computer call's output cannot hold).
fn user_items<'a>(
    message: &'a Message,
    computer_calls: &HashSet<&str>,
    input: &mut Vec<Item<'a>>,
) -> Result<(), ModelError> {
    let mut content = Vec::new();
    for part in &message.parts {
        match part {
            Part::Text { text } => content.push(Content::InputText { text }),
            Part::Image(image) => content.push(input_image(image)),
            Part::ToolResult(result) if computer_calls.contains(result.call_id.as_str()) => {
                input.push(computer_call_output(result, &mut content)?);
            }
            Part::ToolResult(result) => input.push(function_call_output(result)?),
            Part::Native { provider, item } if provider == PROVIDER => {
                input.push(Item::Native(item))
            }
            Part::ToolCall(_) | Part::Native { .. } => {}
        }
    }
    if !content.is_empty() {
        input.push(Item::Message(InputMessage::User { content }));
    }
    Ok(())
}

/// A computer call's output holds one screenshot; its text (an error, a note) and any other
/// image go to `content`, the user message after the outputs.
fn computer_call_output<'a>(
    result: &'a ToolResult,
    content: &mut Vec<Content<'a>>,
) -> Result<Item<'a>, ModelError> {
    let (screenshot, others) = result.images.split_first().ok_or_else(|| {
        unsupported(format!(
            "the result of computer call `{}` has no screenshot, which the API requires",
            result.call_id
        ))
    })?;
    let item = CallOutput {
        kind: "computer_call_output",
        call_id: &result.call_id,
        output: Output::Screenshot {
            kind: "computer_screenshot",
            image_url: data_url(screenshot),
        },
        extra: extra(result)?,
    };
    if !result.output.is_empty() {
        content.push(Content::InputText {
            text: &result.output,
        });
    }
    content.extend(others.iter().map(input_image));
    Ok(Item::Output(item))
}

/// A function's output: its text, or a list of text and images when it returned images.
fn function_call_output(result: &ToolResult) -> Result<Item<'_>, ModelError> {
    let output = if result.images.is_empty() {
        Output::Text(&result.output)
    } else {
        let mut list = Vec::new();
        if !result.output.is_empty() {
            list.push(Content::InputText {
                text: &result.output,
            });
        }
        list.extend(result.images.iter().map(input_image));
        Output::Content(list)
    };
    Ok(Item::Output(CallOutput {
        kind: "function_call_output",
        call_id: &result.call_id,
        output,
        extra: extra(result)?,
    }))
}

/// The result's provider fields (`acknowledged_safety_checks`), which go into its item.
fn extra(result: &ToolResult) -> Result<Option<&Map<String, Value>>, ModelError> {
    match &result.extra {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(extra)) => Ok(Some(extra)),
        Some(other) => Err(unsupported(format!(
            "the extra fields of the result of call `{}` are not an object: {other}",
            result.call_id
        ))),
    }
}

/// An assistant message: the API's own items when it holds them, else its text and
/// function calls.
fn assistant_items<'a>(
    message: &'a Message,
    request: &ChatRequest,
    input: &mut Vec<Item<'a>>,
) -> Result<(), ModelError> {
    if message.parts.iter().any(is_openai_native) {
        input.extend(message.parts.iter().filter_map(|part| match part {
            Part::Native { provider, item } if provider == PROVIDER => Some(Item::Native(item)),
            _ => None,
        }));
        return Ok(());
    }
    let text: String = message
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    if !text.is_empty() {
        input.push(Item::Message(InputMessage::Assistant { content: text }));
    }
    for part in &message.parts {
        let Part::ToolCall(call) = part else {
            continue;
        };
        if request.computer.is_some() && call.name == COMPUTER_CALL_NAME {
            return Err(unsupported(format!(
                "computer call `{}` can only be sent back as the item the API returned \
                 (keep the reply's native parts in the conversation)",
                call.id
            )));
        }
        let arguments = match &call.input {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        input.push(Item::FunctionCall(FunctionCall {
            kind: "function_call",
            call_id: &call.id,
            name: &call.name,
            arguments,
        }));
    }
    Ok(())
}

pub fn parse(bytes: &[u8]) -> Result<ChatResponse, ModelError> {
    let malformed = |message: String| ModelError::Malformed { message };
    let reply = super::parse_json(bytes)?;
    let status = reply
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no `status`".into()))?;
    if status == "failed" {
        return Err(failed(&reply));
    }
    let output = reply
        .get("output")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `output` list".into()))?;
    let mut parts = Vec::new();
    let mut has_calls = false;
    for item in output {
        has_calls |= item_parts(item, &mut parts)?;
    }
    let stop = match status {
        "completed" if has_calls => StopReason::ToolUse,
        "completed" => StopReason::EndTurn,
        "incomplete" => match reply
            .pointer("/incomplete_details/reason")
            .and_then(Value::as_str)
        {
            Some("max_output_tokens") => StopReason::MaxTokens,
            Some("content_filter") => StopReason::ContentFilter,
            Some(other) => StopReason::Other(other.to_string()),
            None => StopReason::Other("incomplete".into()),
        },
        other => StopReason::Other(other.to_string()),
    };
    let usage = reply.get("usage").cloned().unwrap_or(Value::Null);
    let count = |pointer: &str| usage.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    Ok(ChatResponse {
        parts,
        stop,
        usage: Usage {
            // `input_tokens` includes the cached ones.
            input_tokens: count("/input_tokens"),
            output_tokens: count("/output_tokens"),
            cached_tokens: count("/input_tokens_details/cached_tokens"),
        },
    })
}

/// An output item as parts: the item itself (a [`Part::Native`], sent back as it came),
/// then what helios reads from it (a message's text, a call). Whether it is a call.
pub(crate) fn item_parts(item: &Value, parts: &mut Vec<Part>) -> Result<bool, ModelError> {
    let malformed = |message: String| ModelError::Malformed { message };
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("an output item has no `type`".into()))?;
    parts.push(Part::Native {
        provider: PROVIDER.into(),
        item: item.clone(),
    });
    match kind {
        "message" => {
            for block in item
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let text = match block.get("type").and_then(Value::as_str) {
                    Some("output_text") => block.get("text"),
                    Some("refusal") => block.get("refusal"),
                    _ => None,
                };
                if let Some(text) = text.and_then(Value::as_str) {
                    parts.push(Part::Text {
                        text: text.to_string(),
                    });
                }
            }
            Ok(false)
        }
        "computer_call" => {
            parts.push(Part::ToolCall(computer_call(item)?));
            Ok(true)
        }
        "function_call" => {
            parts.push(Part::ToolCall(function_call(item)?));
            Ok(true)
        }
        // Reasoning and other items are only sent back.
        _ => Ok(false),
    }
}

fn call_id(item: &Value) -> Result<String, ModelError> {
    item.get("call_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ModelError::Malformed {
            message: "a call item has no `call_id`".into(),
        })
}

/// `{action}` or the batched `{actions}`, with the safety checks to acknowledge.
fn computer_call(item: &Value) -> Result<ToolCall, ModelError> {
    let mut input = Map::new();
    for key in ["action", "actions"] {
        if let Some(value) = item.get(key) {
            input.insert(key.into(), value.clone());
        }
    }
    if input.is_empty() {
        return Err(ModelError::Malformed {
            message: "a computer_call has neither `action` nor `actions`".into(),
        });
    }
    input.insert(
        "pending_safety_checks".into(),
        item.get("pending_safety_checks")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
    );
    Ok(ToolCall {
        id: call_id(item)?,
        name: COMPUTER_CALL_NAME.into(),
        input: Value::Object(input),
    })
}

fn function_call(item: &Value) -> Result<ToolCall, ModelError> {
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ModelError::Malformed {
            message: "a function_call has no `name`".into(),
        })?;
    let arguments = item
        .get("arguments")
        .and_then(Value::as_str)
        .unwrap_or("{}");
    // Arguments that are not JSON reach the agent as text, so it can tell the model.
    let input =
        serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()));
    Ok(ToolCall {
        id: call_id(item)?,
        name: name.to_string(),
        input,
    })
}

/// A response the API marked `failed` (HTTP 200, `error: {code, message}`).
fn failed(reply: &Value) -> ModelError {
    let field = |key: &str| {
        reply
            .pointer(&format!("/error/{key}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let code = field("code");
    let message = super::short_message(&format!(
        "the response failed ({code}): {}",
        field("message")
    ));
    match code.as_str() {
        "rate_limit_exceeded" => ModelError::RateLimited {
            retry_after: None,
            message,
        },
        "server_error" => ModelError::Server {
            provider: "OpenAI",
            status: 200,
            retry_after: None,
            message,
        },
        _ => ModelError::BadRequest {
            provider: "OpenAI",
            status: 200,
            message,
        },
    }
}

/// HTTP errors have the same body as Chat Completions'.
pub fn error(
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
    model: &str,
) -> ModelError {
    super::openai::error(status, retry_after, body, model)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{ComputerTool, ToolSpec};

    fn parse_value(reply: Value) -> Result<ChatResponse, ModelError> {
        parse(reply.to_string().as_bytes())
    }

    fn computer() -> Option<ComputerTool> {
        Some(ComputerTool {
            display_width: 1024,
            display_height: 768,
            environment: "linux".into(),
            excluded_functions: vec![],
        })
    }

    fn screenshot() -> Image {
        Image {
            media_type: "image/png".into(),
            data: "AAAA".into(),
        }
    }

    #[test]
    fn a_batched_computer_call_keeps_its_actions() {
        let item = json!({"type": "computer_call", "id": "cu_2", "call_id": "call_2", "status": "completed",
            "actions": [{"type": "type", "text": "Ada"}, {"type": "keypress", "keys": ["CTRL", "S"]}]});
        let reply = parse_value(json!({"status": "completed", "output": [item.clone()]})).unwrap();
        assert_eq!(
            reply.parts,
            vec![
                Part::Native {
                    provider: PROVIDER.into(),
                    item
                },
                Part::ToolCall(ToolCall {
                    id: "call_2".into(),
                    name: "computer".into(),
                    input: json!({"actions": [{"type": "type", "text": "Ada"}, {"type": "keypress", "keys": ["CTRL", "S"]}],
                                  "pending_safety_checks": []}),
                })
            ]
        );
        assert_eq!(reply.stop, StopReason::ToolUse);
    }

    #[test]
    fn statuses_give_stop_reasons_and_errors() {
        let incomplete = |reason: &str| {
            parse_value(json!({"status": "incomplete", "incomplete_details": {"reason": reason}, "output": []}))
                .unwrap()
                .stop
        };
        assert_eq!(incomplete("max_output_tokens"), StopReason::MaxTokens);
        assert_eq!(incomplete("content_filter"), StopReason::ContentFilter);
        assert_eq!(incomplete("other"), StopReason::Other("other".into()));
        let failed = |code: &str| {
            parse_value(
                json!({"status": "failed", "output": [], "error": {"code": code, "message": "no"}}),
            )
            .unwrap_err()
        };
        assert!(matches!(failed("server_error"), ModelError::Server { .. }));
        assert!(matches!(
            failed("rate_limit_exceeded"),
            ModelError::RateLimited { .. }
        ));
        let bad = failed("invalid_image");
        assert!(matches!(bad, ModelError::BadRequest { .. }));
        assert!(bad.to_string().contains("invalid_image"), "{bad}");
        assert!(matches!(
            parse_value(json!({"output": []})),
            Err(ModelError::Malformed { .. })
        ));
    }

    #[test]
    fn function_calls_go_out_and_back() {
        let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "bash", "arguments": "{\"command\":\"ls\"}"});
        let reply = parse_value(json!({"status": "completed", "output": [
            {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
            call]}))
        .unwrap();
        assert_eq!(reply.text(), "Looking.");
        assert_eq!(
            reply.tool_calls().next().unwrap().input,
            json!({"command": "ls"})
        );
        let request = ChatRequest {
            system: Some("Be brief.".into()),
            messages: vec![
                Message::user_text("list"),
                Message {
                    role: Role::Assistant,
                    parts: reply.parts.clone(),
                },
                Message {
                    role: Role::User,
                    parts: vec![Part::ToolResult(ToolResult {
                        images: vec![screenshot()],
                        ..ToolResult::text("call_9", "bash", "a.txt", false)
                    })],
                },
            ],
            tools: vec![ToolSpec {
                name: "bash".into(),
                description: "Run".into(),
                parameters: json!({"type": "object"}),
            }],
            computer: None,
        };
        let params = ModelParams {
            seed: Some(3),
            stop: vec!["END".into()],
            ..ModelParams::default()
        };
        let body = body("gpt-4.1", &params, &request).unwrap();
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "name": "bash", "description": "Run", "parameters": {"type": "object"}, "strict": false}])
        );
        assert!(
            body.get("truncation").is_none(),
            "only with the computer tool"
        );
        assert!(body.get("seed").is_none() && body.get("stop").is_none());
        let input = body["input"].as_array().unwrap();
        assert_eq!(input[1]["type"], "message");
        assert_eq!(input[2], call);
        assert_eq!(
            input[3],
            json!({"type": "function_call_output", "call_id": "call_9", "output": [
                {"type": "input_text", "text": "a.txt"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]})
        );
    }

    #[test]
    fn a_turn_written_by_helios_is_encoded_from_its_parts() {
        let mut request = ChatRequest {
            messages: vec![Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Text {
                        text: "Sure.".into(),
                    },
                    Part::ToolCall(ToolCall {
                        id: "c1".into(),
                        name: "bash".into(),
                        input: json!({"command": "ls"}),
                    }),
                ],
            }],
            ..ChatRequest::default()
        };
        let input = body("m", &ModelParams::default(), &request).unwrap()["input"].clone();
        assert_eq!(
            input,
            json!([{"role": "assistant", "content": "Sure."},
                   {"type": "function_call", "call_id": "c1", "name": "bash", "arguments": "{\"command\":\"ls\"}"}])
        );
        // A computer call cannot be rebuilt: the API wants the item it sent.
        request.computer = computer();
        request.messages[0].parts[1] = Part::ToolCall(ToolCall {
            id: "c1".into(),
            name: "computer".into(),
            input: json!({"action": {"type": "screenshot"}}),
        });
        let e = body("m", &ModelParams::default(), &request).unwrap_err();
        assert!(matches!(e, ModelError::Unsupported { .. }), "{e:?}");
    }

    #[test]
    fn a_computer_results_text_follows_its_output() {
        let call = json!({"type": "computer_call", "id": "cu_1", "call_id": "call_1", "status": "completed",
            "action": {"type": "keypress", "keys": ["ENTR"]}, "pending_safety_checks": []});
        let request = ChatRequest {
            messages: vec![
                Message {
                    role: Role::Assistant,
                    parts: vec![Part::Native {
                        provider: PROVIDER.into(),
                        item: call,
                    }],
                },
                Message {
                    role: Role::User,
                    parts: vec![Part::ToolResult(ToolResult {
                        images: vec![screenshot()],
                        extra: Some(json!({"acknowledged_safety_checks": []})),
                        ..ToolResult::text("call_1", "computer", "unknown key ENTR", true)
                    })],
                },
            ],
            computer: computer(),
            ..ChatRequest::default()
        };
        let input = body("m", &ModelParams::default(), &request).unwrap()["input"].clone();
        assert_eq!(input[1]["type"], "computer_call_output");
        assert_eq!(input[1]["acknowledged_safety_checks"], json!([]));
        assert_eq!(
            input[2],
            json!({"role": "user", "content": [{"type": "input_text", "text": "unknown key ENTR"}]})
        );
        let mut bad = request.clone();
        let Part::ToolResult(result) = &mut bad.messages[1].parts[0] else {
            unreachable!()
        };
        result.extra = Some(json!(["not", "an", "object"]));
        assert!(matches!(
            body("m", &ModelParams::default(), &bad),
            Err(ModelError::Unsupported { .. })
        ));
    }
}
