//! Round trips against the client-side codecs, bodies shaped as the official SDKs send
//! them, streams, and refusals.

use serde_json::{Value, json};

use super::*;
use crate::model::{
    Api, ComputerTool, Message, ModelParams, Role, StopReason, ToolCall, ToolResult, ToolSpec,
};

const WIRES: [Wire; 4] = [
    Wire::Anthropic,
    Wire::OpenAiChat,
    Wire::OpenAiResponses,
    Wire::Gemini,
];

const GEMINI_PATH: &str = "/v1beta/models/gemini-2.5-pro:generateContent";

fn path(wire: Wire) -> &'static str {
    match wire {
        Wire::Gemini => GEMINI_PATH,
        _ => "/v1/messages",
    }
}

fn image(data: &str) -> Image {
    Image {
        media_type: "image/png".into(),
        data: data.into(),
    }
}

fn text(text: &str) -> Part {
    Part::Text { text: text.into() }
}

fn call(id: &str, name: &str, input: Value) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        input,
    })
}

fn user(parts: Vec<Part>) -> Message {
    Message {
        role: Role::User,
        parts,
    }
}

fn assistant(parts: Vec<Part>) -> Message {
    Message {
        role: Role::Assistant,
        parts,
    }
}

fn bash_tool() -> ToolSpec {
    ToolSpec {
        name: "bash".into(),
        description: "Run a command".into(),
        parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
    }
}

/// Conversations every format can carry as they are.
fn requests() -> Vec<ChatRequest> {
    vec![
        ChatRequest {
            messages: vec![Message::user_text("hello")],
            ..ChatRequest::default()
        },
        ChatRequest {
            system: Some("You are terse.".into()),
            messages: vec![
                Message::user_text("list the files"),
                assistant(vec![
                    text("Listing."),
                    call("call_1", "bash", json!({"command": "ls"})),
                    call("call_2", "bash", json!({"command": "pwd"})),
                ]),
                user(vec![
                    Part::ToolResult(ToolResult::text("call_1", "bash", "a.txt\nb.txt", false)),
                    Part::ToolResult(ToolResult::text("call_2", "bash", "/work", false)),
                    text("and now?"),
                ]),
                assistant(vec![text("Done: two files.")]),
                Message::user_text("thanks"),
            ],
            tools: vec![bash_tool()],
            computer: None,
        },
        ChatRequest {
            messages: vec![user(vec![
                text("what is this?"),
                Part::Image(image("iVBORw0K")),
            ])],
            ..ChatRequest::default()
        },
        // A turn of only calls, answered by results only.
        ChatRequest {
            messages: vec![
                Message::user_text("go"),
                assistant(vec![call(
                    "c9",
                    "bash",
                    json!({"command": "true", "timeout": 5}),
                )]),
                user(vec![Part::ToolResult(ToolResult::text(
                    "c9", "bash", "", false,
                ))]),
            ],
            tools: vec![bash_tool()],
            ..ChatRequest::default()
        },
    ]
}

/// A result that failed and one with a screenshot, which some formats say otherwise.
fn rich_results() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::user_text("look"),
            assistant(vec![
                call("s1", "screenshot", json!({})),
                call("s2", "bash", json!({"command": "false"})),
            ]),
            user(vec![
                Part::ToolResult(ToolResult {
                    images: vec![image("AAAA")],
                    ..ToolResult::text("s1", "screenshot", "the screen", false)
                }),
                Part::ToolResult(ToolResult::text("s2", "bash", "exit 1", true)),
            ]),
        ],
        tools: vec![bash_tool()],
        ..ChatRequest::default()
    }
}

fn round_trip(wire: Wire, model: &str, params: &ModelParams, request: &ChatRequest) -> Decoded {
    let body = wire.body(model, params, request).unwrap();
    let path = match wire {
        Wire::Gemini => format!("/v1beta/models/{model}:generateContent"),
        _ => "/".into(),
    };
    wire.decode_request(&path, body.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{wire:?}: {e}\n{body:#}"))
}

#[test]
fn requests_come_back_as_the_client_sent_them() {
    for wire in WIRES {
        for request in requests() {
            let decoded = round_trip(wire, "some-model", &ModelParams::default(), &request);
            assert_eq!(decoded.request, request, "{wire:?}");
            assert_eq!(decoded.model.as_deref(), Some("some-model"));
            assert!(!decoded.stream && decoded.ignored.is_empty());
        }
    }
}

#[test]
fn the_reply_limit_is_read_from_each_formats_field() {
    let params = ModelParams {
        max_tokens: Some(321),
        ..ModelParams::default()
    };
    let request = &requests()[0];
    for (wire, model) in WIRES
        .into_iter()
        .map(|w| (w, "gpt-4.1"))
        .chain([(Wire::OpenAiChat, "gpt-5-mini")])
    {
        let decoded = round_trip(wire, model, &params, request);
        assert_eq!(decoded.max_output_tokens, Some(321), "{wire:?} {model}");
    }
    // Anthropic's field is required, so the client sends its default.
    let decoded = round_trip(Wire::Anthropic, "m", &ModelParams::default(), request);
    assert_eq!(
        decoded.max_output_tokens,
        Some(crate::model::anthropic::DEFAULT_MAX_TOKENS.into())
    );
}

#[test]
fn failed_results_and_screenshots_as_each_format_can_say_them() {
    let request = rich_results();
    for wire in WIRES {
        let decoded = round_trip(wire, "m", &ModelParams::default(), &request).request;
        let mut expected = request.clone();
        let results = &mut expected.messages[2].parts;
        match wire {
            Wire::Anthropic | Wire::Gemini => {}
            // Neither has an error flag on a result.
            Wire::OpenAiResponses => {
                let Part::ToolResult(failed) = &mut results[1] else {
                    unreachable!()
                };
                failed.is_error = false;
            }
            // Tool messages hold text only: the screenshot follows in a user message.
            Wire::OpenAiChat => {
                let Part::ToolResult(screenshot) = &mut results[0] else {
                    unreachable!()
                };
                screenshot.images.clear();
                let Part::ToolResult(failed) = &mut results[1] else {
                    unreachable!()
                };
                failed.is_error = false;
                results.push(Part::Image(image("AAAA")));
            }
        }
        assert_eq!(decoded, expected, "{wire:?}");
    }
}

#[test]
fn the_computer_tool_comes_back_as_each_format_declares_it() {
    let computer = ComputerTool {
        display_width: 1280,
        display_height: 800,
        environment: "linux".into(),
        excluded_functions: vec![],
    };
    let request = ChatRequest {
        messages: vec![Message::user_text("click")],
        tools: vec![bash_tool()],
        computer: Some(computer.clone()),
        ..ChatRequest::default()
    };
    for wire in [Wire::Anthropic, Wire::OpenAiResponses] {
        let decoded = round_trip(wire, "m", &ModelParams::default(), &request);
        assert_eq!(decoded.request, request, "{wire:?}");
    }
    let mut gemini = request.clone();
    gemini.computer = Some(ComputerTool {
        excluded_functions: vec!["navigate".into()],
        ..computer
    });
    let decoded = round_trip(Wire::Gemini, "m", &ModelParams::default(), &gemini).request;
    let got = decoded.computer.unwrap();
    assert_eq!(
        (got.display_width, got.environment.as_str()),
        (gemini::GRID, "browser")
    );
    assert_eq!(got.excluded_functions, vec!["navigate".to_string()]);
}

/// Replies as each provider's API sends them, parsed by the client: their parts include
/// the native items that must go back unchanged.
fn provider_reply(wire: Wire) -> ChatResponse {
    let body = match wire {
        Wire::Anthropic => json!({"content": [
            {"type": "thinking", "thinking": "The user wants files.", "signature": "c2ln"},
            {"type": "redacted_thinking", "data": "xyz"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01", "name": "bash", "input": {"command": "ls -la"}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 40, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0, "output_tokens": 12}}),
        Wire::OpenAiChat => {
            json!({"choices": [{"message": {"role": "assistant", "content": "Let me look.",
            "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}]},
            "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 12, "prompt_tokens_details": {"cached_tokens": 60}}})
        }
        Wire::OpenAiResponses => json!({"status": "completed", "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "bash",
             "arguments": "{\"command\":\"ls\"}", "status": "completed"}],
            "usage": {"input_tokens": 100, "output_tokens": 12, "input_tokens_details": {"cached_tokens": 60}}}),
        Wire::Gemini => json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking about it", "thought": true},
            {"text": "Let me look."},
            {"functionCall": {"name": "bash", "args": {"command": "ls"}}, "thoughtSignature": "c2lnMg=="}]},
            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 12, "cachedContentTokenCount": 60}}),
    };
    wire.parse(body.to_string().as_bytes()).unwrap()
}

/// Replies helios's own models (the scripted one, another provider) give.
fn plain_replies() -> Vec<ChatResponse> {
    let usage = Usage {
        input_tokens: 1200,
        output_tokens: 80,
        cached_tokens: 1000,
    };
    vec![
        ChatResponse {
            parts: vec![text(
                "All done: the tests pass, and the file is written. ☃ é",
            )],
            stop: StopReason::EndTurn,
            usage,
        },
        ChatResponse {
            parts: vec![
                text("Running two commands."),
                call(
                    "call_x",
                    "bash",
                    json!({"command": "cat README.md | head -n 40", "timeout": 30}),
                ),
                call("call_y", "bash", json!({"command": "ls"})),
            ],
            stop: StopReason::ToolUse,
            usage,
        },
        ChatResponse {
            parts: vec![call("only", "bash", json!({}))],
            stop: StopReason::ToolUse,
            usage: Usage::default(),
        },
        ChatResponse {
            parts: vec![text("cut")],
            stop: StopReason::MaxTokens,
            usage,
        },
        ChatResponse {
            parts: vec![],
            stop: StopReason::ContentFilter,
            usage,
        },
    ]
}

/// What the client reads back from a reply of `wire`: the same reply, less the native
/// parts of the formats whose parser keeps every item as one.
fn without_natives(mut response: ChatResponse) -> ChatResponse {
    response
        .parts
        .retain(|part| !matches!(part, Part::Native { .. }));
    response
}

#[test]
fn replies_parse_back_with_the_clients_parser() {
    for wire in WIRES {
        for response in plain_replies() {
            let body = wire.encode_response("m", "resp_1", &response);
            let parsed = wire.parse(body.to_string().as_bytes()).unwrap();
            assert_eq!(without_natives(parsed), response, "{wire:?}\n{body:#}");
        }
        // A provider's own reply, natives included, goes back to its client unchanged.
        let reply = provider_reply(wire);
        let body = wire.encode_response("m", "resp_1", &reply);
        assert_eq!(
            wire.parse(body.to_string().as_bytes()).unwrap(),
            reply,
            "{wire:?}\n{body:#}"
        );
    }
}

#[test]
fn replies_carry_the_ids_model_and_usage_each_format_names() {
    let reply = &plain_replies()[1];
    let anthropic = Wire::Anthropic.encode_response("claude-x", "msg_1", reply);
    assert_eq!(
        (&anthropic["id"], &anthropic["model"], &anthropic["type"]),
        (&json!("msg_1"), &json!("claude-x"), &json!("message"))
    );
    assert_eq!(anthropic["usage"]["input_tokens"], 200, "cached apart");
    assert_eq!(anthropic["usage"]["cache_read_input_tokens"], 1000);
    let chat = Wire::OpenAiChat.encode_response("gpt-x", "chatcmpl-1", reply);
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["usage"]["total_tokens"], 1280);
    assert_eq!(
        chat["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        json!({"command": "cat README.md | head -n 40", "timeout": 30}).to_string()
    );
    let responses = Wire::OpenAiResponses.encode_response("gpt-x", "resp_9", reply);
    assert_eq!(responses["object"], "response");
    assert_eq!(responses["output"][1]["call_id"], "call_x");
    let gemini = Wire::Gemini.encode_response("gemini-x", "r1", reply);
    assert_eq!(gemini["modelVersion"], "gemini-x");
    assert_eq!(gemini["usageMetadata"]["cachedContentTokenCount"], 1000);
}

fn stream_bytes(events: &[SseEvent]) -> Vec<u8> {
    events.iter().flat_map(SseEvent::to_bytes).collect()
}

#[test]
fn streams_deliver_the_same_reply() {
    for wire in WIRES {
        let mut replies = plain_replies();
        replies.push(provider_reply(wire));
        for response in replies {
            let events = wire.encode_stream("m", "resp_1", &response, true);
            let streamed = wire.parse_stream(&stream_bytes(&events)).unwrap();
            let whole = wire
                .parse(
                    wire.encode_response("m", "resp_1", &response)
                        .to_string()
                        .as_bytes(),
                )
                .unwrap();
            assert_eq!(streamed, whole, "{wire:?}");
        }
    }
}

#[test]
fn a_long_text_and_arguments_stream_in_pieces() {
    let long = "word ".repeat(40);
    let response = ChatResponse {
        parts: vec![
            text(&long),
            call("call_1", "bash", json!({"command": "echo ".repeat(20)})),
        ],
        stop: StopReason::ToolUse,
        usage: Usage::default(),
    };
    for (wire, text_delta, json_delta) in [
        (Wire::Anthropic, "/delta/text", "/delta/partial_json"),
        (
            Wire::OpenAiChat,
            "/choices/0/delta/content",
            "/choices/0/delta/tool_calls/0/function/arguments",
        ),
        (Wire::OpenAiResponses, "/delta", "/delta"),
    ] {
        let events = wire.encode_stream("m", "resp_1", &response, false);
        let pieces = |pointer: &str, kind: Option<&str>| -> Vec<String> {
            events
                .iter()
                .filter(|e| kind.is_none() || e.event.as_deref() == kind)
                .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
                .filter_map(|data| {
                    data.pointer(pointer)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .filter(|piece| !piece.is_empty())
                .collect()
        };
        let (text_kind, json_kind) = match wire {
            Wire::OpenAiResponses => (
                Some("response.output_text.delta"),
                Some("response.function_call_arguments.delta"),
            ),
            _ => (None, None),
        };
        let texts = pieces(text_delta, text_kind);
        assert!(texts.len() > 5, "{wire:?}: {texts:?}");
        assert_eq!(texts.concat(), long);
        let arguments = pieces(json_delta, json_kind);
        assert!(arguments.len() > 3, "{wire:?}: {arguments:?}");
        assert_eq!(
            serde_json::from_str::<Value>(&arguments.concat()).unwrap(),
            json!({"command": "echo ".repeat(20)})
        );
    }
    // Gemini's chunks: the text in pieces, the call whole, the finish on the last.
    let events = Wire::Gemini.encode_stream("m", "r", &response, false);
    assert!(events.len() > 5 && events.iter().all(|e| e.event.is_none()));
    let last: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(
        last["candidates"][0]["content"]["parts"][0]
            .get("functionCall")
            .is_some()
    );
}

#[test]
fn a_responses_stream_is_built_from_its_deltas() {
    // Without the `done` events the items are what their deltas made.
    let response = &plain_replies()[1];
    let events: Vec<SseEvent> = Wire::OpenAiResponses
        .encode_stream("m", "resp_1", response, false)
        .into_iter()
        .filter(|e| e.event.as_deref() != Some("response.output_item.done"))
        .collect();
    let parsed = Wire::OpenAiResponses
        .parse_stream(&stream_bytes(&events))
        .unwrap();
    assert_eq!(parsed.text(), response.text());
    assert_eq!(
        parsed.tool_calls().collect::<Vec<_>>(),
        response.tool_calls().collect::<Vec<_>>()
    );
}

#[test]
fn stream_events_are_named_as_the_providers_name_them() {
    let response = &plain_replies()[1];
    let names = |wire: Wire| -> Vec<String> {
        wire.encode_stream("m", "id", response, true)
            .into_iter()
            .map(|e| e.event.unwrap_or_else(|| e.data.chars().take(6).collect()))
            .collect()
    };
    let anthropic = names(Wire::Anthropic);
    assert_eq!(anthropic.first().unwrap(), "message_start");
    assert_eq!(
        &anthropic[anthropic.len() - 2..],
        ["message_delta", "message_stop"]
    );
    assert!(anthropic.iter().any(|n| n == "content_block_start"));
    let chat = Wire::OpenAiChat.encode_stream("m", "id", response, true);
    assert_eq!(chat.last().unwrap().data, "[DONE]");
    let usage: Value = serde_json::from_str(&chat[chat.len() - 2].data).unwrap();
    assert_eq!(
        (
            usage["choices"].clone(),
            usage["usage"]["prompt_tokens"].clone()
        ),
        (json!([]), json!(1200))
    );
    // Without `include_usage` there is no usage chunk, and no usage is read.
    let chat = Wire::OpenAiChat.encode_stream("m", "id", response, false);
    assert!(chat.iter().all(|e| !e.data.contains("\"usage\"")));
    let parsed = Wire::OpenAiChat.parse_stream(&stream_bytes(&chat)).unwrap();
    assert_eq!(parsed.usage, Usage::default());
    let responses = names(Wire::OpenAiResponses);
    assert_eq!(
        &responses[..2],
        ["response.created", "response.in_progress"]
    );
    assert_eq!(responses.last().unwrap(), "response.completed");
    let cut = Wire::OpenAiResponses.encode_stream("m", "id", &plain_replies()[3], false);
    assert_eq!(
        cut.last().unwrap().event.as_deref(),
        Some("response.incomplete")
    );
}

#[test]
fn a_cut_stream_is_an_error() {
    for wire in WIRES {
        let events = wire.encode_stream("m", "id", &plain_replies()[1], true);
        let cut = &events[..events.len() / 2];
        // Gemini's chunks are each a reply; the half without the finish has calls or none.
        if wire != Wire::Gemini {
            assert!(wire.parse_stream(&stream_bytes(cut)).is_err(), "{wire:?}");
        }
        assert!(wire.parse_stream(b"").is_err(), "{wire:?}");
    }
}

/// The body Claude Code sends (system blocks with cache control, a thinking block sent
/// back, a tool result as blocks, server tools).
#[test]
fn an_anthropic_sdk_body() {
    let body = json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": true,
        "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Work in /app."}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "fix the bug", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "look first", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "main.py"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}}
                ]},
                {"type": "tool_result", "tool_use_id": "toolu_unknown", "content": "late", "is_error": true}
            ]}
        ],
        "tools": [
            {"name": "Bash", "description": "Run bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768}
        ]
    });
    let decoded = Wire::Anthropic
        .decode_request("/v1/messages", body.to_string().as_bytes())
        .unwrap();
    assert!(decoded.stream);
    assert_eq!(decoded.max_output_tokens, Some(32000));
    let request = decoded.request;
    assert_eq!(
        request.system.as_deref(),
        Some("You are Claude Code.\n\nWork in /app.")
    );
    assert_eq!(request.messages[0].parts, vec![text("fix the bug")]);
    assert_eq!(
        request.messages[1].parts[0],
        Part::Native {
            provider: "anthropic".into(),
            item: json!({"type": "thinking", "thinking": "look first", "signature": "sig"})
        }
    );
    assert_eq!(
        request.messages[2].parts,
        vec![
            Part::ToolResult(ToolResult {
                images: vec![Image {
                    media_type: "image/png".into(),
                    data: "QUJD".into()
                }],
                ..ToolResult::text("toolu_1", "Bash", "main.py", false)
            }),
            Part::ToolResult(ToolResult::text("toolu_unknown", "", "late", true)),
        ]
    );
    assert_eq!(request.tools.len(), 1);
    assert_eq!(request.computer.unwrap().display_height, 768);
    assert_eq!(
        decoded.ignored,
        vec!["server tool `web_search` (`web_search_20250305`)"]
    );
}

/// The body the openai Python SDK sends for `client.chat.completions.create(...)`.
#[test]
fn an_openai_chat_sdk_body() {
    let body = json!({
        "model": "gpt-4.1",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "what is in the picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A==", "detail": "high"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_abc", "type": "function", "function": {"name": "look", "arguments": "{\"zoom\": 2}"}},
                {"id": "call_def", "type": "function", "function": {"name": "look", "arguments": "not json"}}
            ]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "a cat"},
            {"role": "tool", "tool_call_id": "call_def", "content": [{"type": "text", "text": "a hat"}]},
            {"role": "user", "content": "so?"}
        ],
        "tools": [{"type": "function", "function": {"name": "look", "description": "Look", "parameters": {"type": "object", "properties": {"zoom": {"type": "integer"}}}, "strict": true}},
                  {"type": "function", "function": {"name": "noop"}}],
        "tool_choice": "auto",
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_completion_tokens": 900,
        "temperature": 0.2,
        "n": 1
    });
    let decoded = Wire::OpenAiChat
        .decode_request("/v1/chat/completions", body.to_string().as_bytes())
        .unwrap();
    assert!(decoded.stream && decoded.include_usage);
    assert_eq!(decoded.max_output_tokens, Some(900));
    let request = decoded.request;
    assert_eq!(request.system.as_deref(), Some("Be brief.\n\nUse tools."));
    assert_eq!(
        request.messages,
        vec![
            user(vec![
                text("what is in the picture?"),
                Part::Image(Image {
                    media_type: "image/jpeg".into(),
                    data: "/9j/4A==".into()
                })
            ]),
            assistant(vec![
                call("call_abc", "look", json!({"zoom": 2})),
                call("call_def", "look", json!("not json")),
            ]),
            user(vec![
                Part::ToolResult(ToolResult::text("call_abc", "look", "a cat", false)),
                Part::ToolResult(ToolResult::text("call_def", "look", "a hat", false)),
                text("so?"),
            ]),
        ]
    );
    assert_eq!(
        request.tools[1].parameters,
        json!({"type": "object", "properties": {}})
    );
}

/// The body Codex CLI sends to the Responses API: stateless, reasoning sent back
/// encrypted, a function call with its output.
#[test]
fn a_codex_responses_body() {
    let reasoning =
        json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"});
    let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"});
    let body = json!({
        "model": "gpt-5-codex",
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox: workspace-write"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
            reasoning,
            call,
            {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "and this"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
            ]}
        ],
        "tools": [
            {"type": "function", "name": "shell", "description": "Run", "strict": false, "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}},
            {"type": "web_search"}
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "abc"
    });
    let decoded = Wire::OpenAiResponses
        .decode_request("/v1/responses", body.to_string().as_bytes())
        .unwrap();
    assert!(decoded.stream);
    assert_eq!(decoded.max_output_tokens, None);
    assert_eq!(decoded.ignored, vec!["tool of type `web_search`"]);
    let request = decoded.request;
    assert_eq!(
        request.system.as_deref(),
        Some("You are Codex.\n\nsandbox: workspace-write")
    );
    let native = |item: &Value| Part::Native {
        provider: "openai".into(),
        item: item.clone(),
    };
    assert_eq!(
        request.messages,
        vec![
            Message::user_text("list files"),
            assistant(vec![
                native(&reasoning),
                native(&call),
                self::call("call_1", "shell", json!({"command": ["ls"]})),
            ]),
            user(vec![
                Part::ToolResult(ToolResult::text("call_1", "shell", "a.txt", false)),
                text("and this"),
                Part::Image(image("AAAA")),
            ]),
        ]
    );
    // Sent on to OpenAI, the turn is the items as they came.
    let resent = Wire::OpenAiResponses
        .body("gpt-5-codex", &ModelParams::default(), &request)
        .unwrap();
    assert_eq!(resent["input"][1], reasoning);
    assert_eq!(resent["input"][2], call);
}

/// The body Gemini CLI sends (through @google/genai) to `streamGenerateContent?alt=sse`.
#[test]
fn a_gemini_cli_body() {
    let signed = json!({"functionCall": {"name": "run_shell_command", "args": {"command": "ls"}}, "thoughtSignature": "c2ln"});
    let body = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "list files"}]},
            {"role": "model", "parts": [signed, {"functionCall": {"name": "run_shell_command", "args": {"command": "pwd"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "run_shell_command", "response": {"output": "a.txt"}}},
                {"functionResponse": {"id": "call_1", "name": "run_shell_command", "response": {"error": "denied"}}}
            ]}
        ],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are Gemini CLI."}]},
        "tools": [{"functionDeclarations": [
            {"name": "run_shell_command", "description": "Run", "parametersJsonSchema": {"type": "object", "properties": {"command": {"type": "string"}}}},
            {"name": "legacy", "parameters": {"type": "OBJECT", "properties": {"x": {"type": "STRING"}}}}
        ]}, {"googleSearch": {}}],
        "generationConfig": {"temperature": 0, "topP": 1, "maxOutputTokens": 2048, "thinkingConfig": {"includeThoughts": true}},
        "safetySettings": []
    });
    let decoded = Wire::Gemini
        .decode_request(
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
            body.to_string().as_bytes(),
        )
        .unwrap();
    assert!(decoded.stream);
    assert_eq!(decoded.model.as_deref(), Some("gemini-2.5-pro"));
    assert_eq!(decoded.max_output_tokens, Some(2048));
    assert_eq!(decoded.ignored, vec!["tool `googleSearch`"]);
    let request = decoded.request;
    assert_eq!(request.system.as_deref(), Some("You are Gemini CLI."));
    // The signed turn is kept as it came; its calls get the parser's ids, which the
    // answers without ids are matched to by name and order.
    let calls: Vec<&str> = request.messages[1]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(call) => Some(call.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(calls, ["call_0", "call_1"]);
    assert_eq!(
        request.messages[2].parts,
        vec![
            Part::ToolResult(ToolResult::text(
                "call_0",
                "run_shell_command",
                "a.txt",
                false
            )),
            Part::ToolResult(ToolResult::text(
                "call_1",
                "run_shell_command",
                "denied",
                true
            )),
        ]
    );
    assert_eq!(
        request.tools[1].parameters,
        json!({"type": "object", "properties": {"x": {"type": "string"}}})
    );
    let resent = Wire::Gemini
        .body("gemini-2.5-pro", &ModelParams::default(), &request)
        .unwrap();
    assert_eq!(resent["contents"][1]["parts"][0], signed);
}

#[test]
fn gemini_routes_name_model_and_method() {
    let route = GeminiRoute::parse("/gemini/v1beta/models/gemini-2.5-flash:countTokens").unwrap();
    assert_eq!(
        (route.model.as_str(), route.method),
        ("gemini-2.5-flash", GeminiMethod::CountTokens)
    );
    assert!(GeminiRoute::parse("/v1beta/models/gemini-2.5-flash").is_none());
    assert!(GeminiRoute::parse("/v1beta/models/:generateContent").is_none());
    let e = Wire::Gemini
        .decode_request("/v1beta/models", b"{}")
        .unwrap_err();
    assert_eq!(e.kind(), ServeErrorKind::NotFound);
}

#[test]
fn anthropic_system_messages_join_the_system_prompt() {
    let body = r#"{"model": "m", "max_tokens": 5, "system": "Be brief.", "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": [{"type": "text", "text": "You are in /app."}]}]}"#;
    let decoded = Wire::Anthropic
        .decode_request(path(Wire::Anthropic), body.as_bytes())
        .unwrap();
    assert_eq!(
        decoded.request.system.as_deref(),
        Some("Be brief.\n\nYou are in /app.")
    );
    assert_eq!(decoded.request.messages.len(), 1);
}

#[test]
fn malformed_bodies_are_refused_with_the_place() {
    let refused = |wire: Wire, body: &str| -> String {
        let e = wire
            .decode_request(path(wire), body.as_bytes())
            .unwrap_err();
        assert_eq!(e.kind(), ServeErrorKind::BadRequest);
        e.to_string()
    };
    for wire in WIRES {
        assert!(
            refused(wire, "{\"model\": ").contains("not JSON"),
            "{wire:?}"
        );
        assert!(
            refused(wire, "[1]").contains("not a JSON object"),
            "{wire:?}"
        );
    }
    let m = refused(Wire::Anthropic, r#"{"model": "m", "max_tokens": 5}"#);
    assert_eq!(m, "`messages` is required");
    let m = refused(Wire::Anthropic, r#"{"model": "m", "messages": []}"#);
    assert_eq!(m, "`max_tokens` is required");
    let m = refused(
        Wire::Anthropic,
        r#"{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]}"#,
    );
    assert_eq!(m, "`messages[0].content[0].tool_use_id` is required");
    let m = refused(
        Wire::Anthropic,
        r#"{"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}"#,
    );
    assert!(m.starts_with("`messages[0].role` is `tool`"), "{m}");

    let m = refused(Wire::OpenAiChat, r#"{"messages": []}"#);
    assert_eq!(m, "`model` is required");
    let m = refused(
        Wire::OpenAiChat,
        r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}"#,
    );
    assert!(
        m.contains("`messages[0].content[0].image_url.url` is not supported"),
        "{m}"
    );
    let m = refused(
        Wire::OpenAiChat,
        r#"{"model": "m", "messages": [{"role": "tool", "content": "x"}]}"#,
    );
    assert_eq!(m, "`messages[0].tool_call_id` is required");
    let m = refused(
        Wire::OpenAiChat,
        r#"{"model": "m", "messages": [], "stream": "yes"}"#,
    );
    assert_eq!(m, "`stream` is not true or false");
    let m = refused(Wire::OpenAiResponses, r#"{"model": "m"}"#);
    assert_eq!(m, "`input` is required");
    let m = refused(
        Wire::OpenAiResponses,
        r#"{"model": "m", "input": "hi", "previous_response_id": "resp_1"}"#,
    );
    assert!(m.contains("keeps no conversations"), "{m}");
    let m = refused(
        Wire::OpenAiResponses,
        r#"{"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}"#,
    );
    assert_eq!(m, "`input[0].call_id` is required");
    let m = refused(
        Wire::Gemini,
        r#"{"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]}"#,
    );
    assert_eq!(m, "`contents[0].parts[0].functionCall.name` is required");
    let m = refused(
        Wire::Gemini,
        r#"{"contents": [{"parts": [{"functionResponse": {"response": {}}}]}]}"#,
    );
    assert_eq!(
        m,
        "`contents[0].parts[0].functionResponse.name` is required"
    );
    let m = refused(
        Wire::Gemini,
        r#"{"systemInstruction": {"parts": [{"text": "x"}]}}"#,
    );
    assert_eq!(m, "`contents` is required");
}

#[test]
fn errors_are_what_the_clients_make_of_the_providers_errors() {
    for wire in WIRES {
        let classify = |kind: ServeErrorKind| {
            let (status, body) = wire.encode_error(kind, "the agent's `max_turns` (30) is used up");
            wire.error(status, None, body.to_string().as_bytes(), "m")
        };
        // A spent limit is a refused request, which no client retries.
        let limit = classify(ServeErrorKind::LimitReached);
        assert!(
            matches!(limit, ModelError::BadRequest { status: 400, .. }),
            "{wire:?}: {limit:?}"
        );
        assert!(!limit.is_retryable() && limit.to_string().contains("max_turns"));
        assert!(matches!(
            classify(ServeErrorKind::BadRequest),
            ModelError::BadRequest { .. }
        ));
        assert!(
            matches!(classify(ServeErrorKind::Auth), ModelError::Auth { .. }),
            "{wire:?}"
        );
        assert!(matches!(
            classify(ServeErrorKind::NotFound),
            ModelError::UnknownModel { .. }
        ));
        for status in [429, 500, 503, 529] {
            let e = classify(ServeErrorKind::Upstream { status });
            assert!(e.is_retryable(), "{wire:?} {status}: {e:?}");
        }
    }
    let (status, body) =
        Wire::Anthropic.encode_error(ServeErrorKind::Upstream { status: 529 }, "busy");
    assert_eq!(
        (status, body),
        (
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
        )
    );
    let (_, body) =
        Wire::OpenAiChat.encode_error(ServeErrorKind::Upstream { status: 429 }, "slow down");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let (status, body) =
        Wire::Gemini.encode_error(ServeErrorKind::Upstream { status: 429 }, "quota");
    assert_eq!(
        (status, &body["error"]["status"]),
        (429, &json!("RESOURCE_EXHAUSTED"))
    );
}

#[test]
fn model_errors_pass_on_with_their_status() {
    let server = ModelError::Server {
        provider: "Anthropic",
        status: 529,
        retry_after: None,
        message: "overloaded".into(),
    };
    assert_eq!(ServeErrorKind::of(&server).status(), 529);
    let limited = ModelError::RateLimited {
        retry_after: None,
        message: "x".into(),
    };
    assert_eq!(ServeErrorKind::of(&limited).status(), 429);
    assert_eq!(
        ServeErrorKind::of(&ModelError::Timeout { seconds: 1.0 }).status(),
        504
    );
    let overflow = ModelError::ContextOverflow {
        message: "prompt is too long".into(),
    };
    assert_eq!(ServeErrorKind::of(&overflow), ServeErrorKind::BadRequest);
    let key = ModelError::Auth {
        provider: "OpenAI",
        message: "bad key".into(),
    };
    assert_eq!(
        ServeErrorKind::of(&key).status(),
        500,
        "the agent's token was fine"
    );
}

#[test]
fn model_lists_have_each_providers_shape() {
    let anthropic = models_list(Api::Anthropic, &["claude-a", "claude-b"]);
    assert_eq!(anthropic["data"][1]["id"], "claude-b");
    assert_eq!(
        (&anthropic["first_id"], &anthropic["has_more"]),
        (&json!("claude-a"), &json!(false))
    );
    let openai = models_list(Api::OpenAi, &["gpt-x"]);
    assert_eq!(
        (&openai["object"], &openai["data"][0]["object"]),
        (&json!("list"), &json!("model"))
    );
    let gemini = models_list(Api::Gemini, &["gemini-x"]);
    assert_eq!(gemini["models"][0]["name"], "models/gemini-x");
}

#[test]
fn the_token_estimate_counts_text_images_and_messages() {
    let request = ChatRequest {
        system: Some("abcd".repeat(10)), // 40 bytes
        messages: vec![
            user(vec![text(&"x".repeat(400)), Part::Image(image("AAAA"))]), // 400 bytes, 1 image
            assistant(vec![call("c", "bash", json!({"a": 1}))]),            // 4 + 7 bytes
            user(vec![Part::ToolResult(ToolResult::text(
                "c", "bash", "ok!", false,
            ))]), // 3 bytes
        ],
        ..ChatRequest::default()
    };
    // 454 bytes → 114 tokens, one image, three messages.
    assert_eq!(count_tokens_estimate(&request), 114 + IMAGE_TOKENS + 12);
    assert_eq!(
        Wire::Anthropic.encode_count_tokens(7),
        Some(json!({"input_tokens": 7}))
    );
    assert_eq!(
        Wire::Gemini.encode_count_tokens(7),
        Some(json!({"totalTokens": 7}))
    );
    assert_eq!(Wire::OpenAiChat.encode_count_tokens(7), None);
}

#[test]
fn gemini_fields_are_read_in_snake_case_too() {
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": "hi"}, {"inline_data": {"mime_type": "image/png", "data": "AAAA"}}]}],
        "system_instruction": {"parts": [{"text": "Be kind."}]},
        "tools": [{"function_declarations": [{"name": "f", "parameters_json_schema": {"type": "object"}}]}],
        "generation_config": {"max_output_tokens": 5}
    });
    let decoded = Wire::Gemini
        .decode_request(GEMINI_PATH, body.to_string().as_bytes())
        .unwrap();
    assert_eq!(decoded.max_output_tokens, Some(5));
    assert_eq!(decoded.request.system.as_deref(), Some("Be kind."));
    assert_eq!(
        decoded.request.messages[0].parts,
        vec![text("hi"), Part::Image(image("AAAA"))]
    );
    assert_eq!(
        decoded.request.tools[0].parameters,
        json!({"type": "object"})
    );
}

/// Streams as the providers document them, read back into their replies.
#[test]
fn provider_streams_are_read_back() {
    let anthropic = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_read_input_tokens":100,"output_tokens":2}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me check."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Okay, let"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"'s look."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ncisco\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;
    let reply = Wire::Anthropic.parse_stream(anthropic.as_bytes()).unwrap();
    assert_eq!(reply.text(), "Okay, let's look.");
    assert_eq!(
        reply.tool_calls().next().unwrap().input,
        json!({"location": "San Francisco"})
    );
    assert_eq!(
        reply.parts[0],
        Part::Native {
            provider: "anthropic".into(),
            item: json!({"type": "thinking", "thinking": "Let me check.", "signature": "EqQB"})
        }
    );
    assert_eq!(
        (reply.stop, reply.usage),
        (
            StopReason::ToolUse,
            Usage {
                input_tokens: 572,
                output_tokens: 89,
                cached_tokens: 100
            }
        )
    );

    let chat = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"loc"}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ation\":\"Paris\"}"}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[],"usage":{"prompt_tokens":80,"completion_tokens":17,"total_tokens":97,"prompt_tokens_details":{"cached_tokens":0}}}

data: [DONE]

"#;
    let reply = Wire::OpenAiChat.parse_stream(chat.as_bytes()).unwrap();
    assert_eq!(
        reply.parts,
        vec![call("call_1", "get_weather", json!({"location": "Paris"}))]
    );
    assert_eq!(
        (reply.stop, reply.usage.input_tokens),
        (StopReason::ToolUse, 80)
    );

    let gemini = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The \"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n\
        data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"sky is blue.\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 5,\"totalTokenCount\": 14},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n";
    let reply = Wire::Gemini.parse_stream(gemini.as_bytes()).unwrap();
    assert_eq!(reply.text(), "The sky is blue.");
    assert_eq!(
        (reply.stop, reply.usage.output_tokens),
        (StopReason::EndTurn, 5)
    );
}
