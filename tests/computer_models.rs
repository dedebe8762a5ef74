//! Computer use against a local HTTP server that speaks each provider's wire format: the
//! native tool declared in the request, a screenshot in the first message, tool calls in
//! the provider's own shapes decoded for the agent, and the screenshot sent back as the
//! provider wants it; and the Responses API's faults.

mod common;

use std::time::Duration;

use common::http::{Reply, Server, ok, status};

use helios::model::ModelId;
use helios::model::retry::RetryPolicy;
use helios::model::{
    ChatRequest, ChatResponse, ComputerTool, HttpModel, Image, Message, ModelClient, ModelConfig,
    ModelError, Part, Role, StopReason, ToolCall, ToolResult,
};
use serde_json::{Value, json};

const KEY: &str = "sk-test-computer-secret";
const TASK: &str = "Enter the name Ada Lovelace, tick Subscribe to the newsletter, click Save.";
const SYSTEM: &str = "You operate a Linux desktop through the computer tool.";
/// The first screenshot (a 1×1 PNG) and the one after the actions.
const SHOT_1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==";
const SHOT_2: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

fn client(id: &str, base_url: String, retry: RetryPolicy) -> HttpModel {
    let mut config = ModelConfig::new("m", ModelId::parse(id).unwrap());
    config.base_url = Some(base_url);
    config.retry = retry;
    config.request_timeout = Duration::from_secs(10);
    config.params.max_tokens = Some(256);
    config.params.temperature = Some(0.0);
    HttpModel::new(config, &|name| {
        name.ends_with("_API_KEY").then(|| KEY.to_string())
    })
    .unwrap()
}

fn one_try() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

fn fast_retries(attempts: usize) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_total_wait: Duration::from_secs(30),
    }
}

fn png(data: &str) -> Image {
    Image {
        media_type: "image/png".into(),
        data: data.into(),
    }
}

const BROWSER_ONLY: [&str; 5] = [
    "open_web_browser",
    "search",
    "navigate",
    "go_back",
    "go_forward",
];

/// What the computer-use agent sends first: the task and the first screenshot.
fn first_request() -> ChatRequest {
    ChatRequest {
        system: Some(SYSTEM.into()),
        messages: vec![Message {
            role: Role::User,
            parts: vec![Part::Text { text: TASK.into() }, Part::Image(png(SHOT_1))],
        }],
        tools: vec![],
        computer: Some(ComputerTool {
            display_width: 1024,
            display_height: 768,
            environment: "linux".into(),
            excluded_functions: BROWSER_ONLY.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

/// The agent's next request: the model's turn as received, then one result per call with
/// the new screenshot and `extra(call)`.
fn answer(
    mut request: ChatRequest,
    reply: &ChatResponse,
    extra: impl Fn(&ToolCall) -> Option<Value>,
) -> ChatRequest {
    request.messages.push(Message {
        role: Role::Assistant,
        parts: reply.parts.clone(),
    });
    let results = reply
        .tool_calls()
        .map(|call| {
            Part::ToolResult(ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                output: String::new(),
                is_error: false,
                images: vec![png(SHOT_2)],
                extra: extra(call),
            })
        })
        .collect();
    request.messages.push(Message {
        role: Role::User,
        parts: results,
    });
    request
}

fn calls(reply: &ChatResponse) -> Vec<ToolCall> {
    reply.tool_calls().cloned().collect()
}

fn call(id: &str, name: &str, input: Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        input,
    }
}

// --- Anthropic: computer_20250124 -----------------------------------------------------

#[tokio::test]
async fn anthropic_computer_use_two_turns() {
    let thinking = json!({"type": "thinking", "thinking": "The Name field is at the top.", "signature": "sig-think-1"});
    let actions = json!({"id": "msg_01", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [thinking,
            {"type": "text", "text": "I'll fill in the form."},
            {"type": "tool_use", "id": "toolu_01", "name": "computer", "input": {"action": "left_click", "coordinate": [400, 118]}},
            {"type": "tool_use", "id": "toolu_02", "name": "computer", "input": {"action": "type", "text": "Ada Lovelace"}},
            {"type": "tool_use", "id": "toolu_03", "name": "computer", "input": {"action": "key", "text": "ctrl+s"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 2051, "output_tokens": 74, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}});
    let done = json!({"id": "msg_02", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": "The form is saved."}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 2300, "output_tokens": 8}});
    let server = Server::start(vec![ok(actions), ok(done)]).await;
    let model = client(
        "anthropic/claude-sonnet-4-20250514",
        server.url(),
        one_try(),
    );

    let first = model.complete(&first_request()).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(
        calls(&first),
        vec![
            call(
                "toolu_01",
                "computer",
                json!({"action": "left_click", "coordinate": [400, 118]})
            ),
            call(
                "toolu_02",
                "computer",
                json!({"action": "type", "text": "Ada Lovelace"})
            ),
            call(
                "toolu_03",
                "computer",
                json!({"action": "key", "text": "ctrl+s"})
            ),
        ]
    );
    let second = model
        .complete(&answer(first_request(), &first, |_| None))
        .await
        .unwrap();
    assert_eq!(
        (second.text().as_str(), second.stop),
        ("The form is saved.", StopReason::EndTurn)
    );

    let requests = server.requests();
    assert_eq!(requests[0].path, "/v1/messages");
    assert!(
        requests[0]
            .headers
            .contains("anthropic-beta: computer-use-2025-01-24"),
        "{}",
        requests[0].headers
    );
    let body = &requests[0].body;
    assert_eq!(
        body["tools"],
        json!([{"type": "computer_20250124", "name": "computer",
                "display_width_px": 1024, "display_height_px": 768}])
    );
    assert_eq!(body["system"], SYSTEM);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": TASK},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": SHOT_1}}]}])
    );
    let turn = &requests[1].body["messages"];
    // The assistant turn goes back with its thinking block first, signature and all.
    assert_eq!(turn[1]["role"], "assistant");
    assert_eq!(turn[1]["content"][0], thinking);
    assert_eq!(turn[1]["content"][2]["id"], "toolu_01");
    let screenshot = json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": SHOT_2}}]);
    assert_eq!(
        turn[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": screenshot, "is_error": false},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": screenshot, "is_error": false},
            {"type": "tool_result", "tool_use_id": "toolu_03", "content": screenshot, "is_error": false}]})
    );
}

// --- OpenAI: computer_use_preview over the Responses API ------------------------------

fn openai_reasoning() -> Value {
    json!({"type": "reasoning", "id": "rs_01", "summary": [{"type": "summary_text", "text": "Click the Name field first."}]})
}

fn openai_safety_check() -> Value {
    json!({"id": "cu_sc_01", "code": "malicious_instructions", "message": "The screen holds instructions."})
}

fn openai_click() -> Value {
    json!({"type": "computer_call", "id": "cu_01", "call_id": "call_01", "status": "completed",
           "action": {"type": "click", "button": "left", "x": 400, "y": 118},
           "pending_safety_checks": [openai_safety_check()]})
}

fn openai_actions() -> Value {
    json!({"id": "resp_01", "object": "response", "created_at": 1760000000, "status": "completed",
        "model": "computer-use-preview-2025-03-11",
        "output": [openai_reasoning(), openai_click()],
        "usage": {"input_tokens": 1523, "input_tokens_details": {"cached_tokens": 512},
                  "output_tokens": 32, "output_tokens_details": {"reasoning_tokens": 16}, "total_tokens": 1555}})
}

fn openai_done() -> Value {
    json!({"id": "resp_02", "object": "response", "created_at": 1760000001, "status": "completed",
        "model": "computer-use-preview-2025-03-11",
        "output": [{"type": "message", "id": "msg_05", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "The form is saved.", "annotations": []}]}],
        "usage": {"input_tokens": 1700, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 9, "total_tokens": 1709}})
}

/// The agent acknowledges every pending safety check.
fn acknowledge(call: &ToolCall) -> Option<Value> {
    Some(json!({"acknowledged_safety_checks": call.input["pending_safety_checks"]}))
}

#[tokio::test]
async fn openai_computer_use_two_turns() {
    let server = Server::start(vec![ok(openai_actions()), ok(openai_done())]).await;
    let model = client(
        "openai/computer-use-preview",
        format!("{}/v1", server.url()),
        one_try(),
    );

    let first = model.complete(&first_request()).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(
        calls(&first),
        vec![call(
            "call_01",
            "computer",
            json!({"action": {"type": "click", "button": "left", "x": 400, "y": 118},
                   "pending_safety_checks": [openai_safety_check()]})
        )]
    );
    // The items go back as they came: the reasoning, then the call.
    let natives: Vec<&Value> = first
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Native { provider, item } if provider == "openai" => Some(item),
            _ => None,
        })
        .collect();
    assert_eq!(natives, vec![&openai_reasoning(), &openai_click()]);
    assert_eq!(
        (
            first.usage.input_tokens,
            first.usage.output_tokens,
            first.usage.cached_tokens
        ),
        (1523, 32, 512)
    );

    let second = model
        .complete(&answer(first_request(), &first, acknowledge))
        .await
        .unwrap();
    assert_eq!(
        (second.text().as_str(), second.stop),
        ("The form is saved.", StopReason::EndTurn)
    );

    let requests = server.requests();
    assert_eq!(requests[0].path, "/v1/responses");
    assert!(
        requests[0]
            .headers
            .contains(&format!("authorization: Bearer {KEY}"))
    );
    let user = json!({"role": "user", "content": [
        {"type": "input_text", "text": TASK},
        {"type": "input_image", "image_url": format!("data:image/png;base64,{SHOT_1}")}]});
    assert_eq!(
        requests[0].body,
        json!({"model": "computer-use-preview", "instructions": SYSTEM, "input": [user],
               "tools": [{"type": "computer_use_preview", "display_width": 1024,
                          "display_height": 768, "environment": "linux"}],
               "truncation": "auto", "temperature": 0.0, "max_output_tokens": 256})
    );
    // Stateless: everything again, the reasoning item replayed, then the screenshot.
    let body = &requests[1].body;
    assert!(body.get("previous_response_id").is_none());
    assert_eq!(
        body["input"],
        json!([user, openai_reasoning(), openai_click(),
            {"type": "computer_call_output", "call_id": "call_01",
             "output": {"type": "computer_screenshot", "image_url": format!("data:image/png;base64,{SHOT_2}")},
             "acknowledged_safety_checks": [openai_safety_check()]}])
    );
}

#[tokio::test]
async fn openai_without_a_computer_tool_stays_on_chat_completions() {
    let reply = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4.1",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi."}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1}});
    let server = Server::start(vec![ok(reply)]).await;
    let model = client("openai/gpt-4.1", format!("{}/v1", server.url()), one_try());
    let mut request = first_request();
    request.computer = None;
    assert_eq!(model.complete(&request).await.unwrap().text(), "Hi.");
    assert_eq!(server.requests()[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn responses_rate_limit_reports_retry_after_then_a_retry_succeeds() {
    let limited = |seconds: &str| {
        Reply::Json {
        status: 429,
        headers: vec![("retry-after", seconds.into())],
        body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}).to_string(),
    }
    };
    let server = Server::start(vec![limited("7"), limited("0"), ok(openai_actions())]).await;
    let model = client(
        "openai/computer-use-preview",
        format!("{}/v1", server.url()),
        RetryPolicy::default(),
    );
    // One request, no retry: the error carries the server's Retry-After.
    let e = model.send_once(&first_request()).await.unwrap_err();
    assert!(
        matches!(e, ModelError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{e:?}"
    );
    // With the retry policy: the next 429 asks for no wait, and the retry gets the reply.
    let reply = model.complete(&first_request()).await.unwrap();
    assert_eq!(reply.tool_calls().next().unwrap().id, "call_01");
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/v1/responses"; 3]);
}

#[tokio::test]
async fn responses_server_errors_and_failed_responses_are_retried() {
    let failed = json!({"id": "resp_x", "object": "response", "status": "failed", "output": [],
        "error": {"code": "server_error", "message": "The server had an error."}});
    let server = Server::start(vec![
        status(
            500,
            json!({"error": {"message": "internal", "type": "server_error"}}),
        ),
        ok(failed),
        ok(openai_actions()),
    ])
    .await;
    let model = client(
        "openai/computer-use-preview",
        format!("{}/v1", server.url()),
        fast_retries(3),
    );
    let reply = model.complete(&first_request()).await.unwrap();
    assert_eq!(reply.stop, StopReason::ToolUse);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn responses_malformed_bodies_are_errors_and_not_retried() {
    for body in [
        "{\"output\": [".to_string(),
        json!({"status": "completed"}).to_string(),
        json!({"status": "completed", "output": [{"type": "computer_call", "id": "cu_1", "call_id": "c"}]})
            .to_string(),
    ] {
        let server = Server::start(vec![Reply::Json {
            status: 200,
            headers: vec![],
            body: body.clone(),
        }])
        .await;
        let model = client(
            "openai/computer-use-preview",
            format!("{}/v1", server.url()),
            fast_retries(5),
        );
        let e = model.complete(&first_request()).await.unwrap_err();
        assert!(matches!(e, ModelError::Malformed { .. }), "{body}: {e:?}");
        assert_eq!(server.requests().len(), 1, "{body}");
    }
}

#[tokio::test]
async fn a_computer_result_without_a_screenshot_is_refused_before_sending() {
    let server = Server::start(vec![ok(openai_actions())]).await;
    let model = client(
        "openai/computer-use-preview",
        format!("{}/v1", server.url()),
        fast_retries(3),
    );
    let first = model.complete(&first_request()).await.unwrap();
    let mut request = answer(first_request(), &first, acknowledge);
    let Some(Part::ToolResult(result)) = request.messages[2].parts.first_mut() else {
        panic!("no result");
    };
    result.images.clear();
    let e = model.complete(&request).await.unwrap_err();
    assert!(matches!(e, ModelError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("screenshot"), "{e}");
    assert_eq!(server.requests().len(), 1, "nothing more was sent");
}

// --- Gemini: computerUse ----------------------------------------------------------------

fn gemini_parts() -> Value {
    json!([
        {"text": "I will fill in the form.", "thoughtSignature": "c2lnLXRleHQ="},
        {"functionCall": {"name": "click_at", "args": {"x": 391, "y": 154}}, "thoughtSignature": "c2lnLWNsaWNr"},
        {"functionCall": {"name": "type_text_at", "args": {"x": 391, "y": 154, "text": "Ada Lovelace", "press_enter": false}}},
        {"functionCall": {"name": "key_combination", "args": {"keys": "Control+S"}}},
        {"functionCall": {"name": "click_at", "args": {"x": 273, "y": 328,
            "safety_decision": {"decision": "require_confirmation", "explanation": "Submits a form."}}}}
    ])
}

#[tokio::test]
async fn gemini_computer_use_two_turns() {
    let actions = json!({"candidates": [{"content": {"role": "model", "parts": gemini_parts()},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 2210, "candidatesTokenCount": 28, "totalTokenCount": 2238},
        "modelVersion": "gemini-2.5-computer-use-preview-10-2025"});
    let done = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "The form is saved."}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 2400, "candidatesTokenCount": 6}});
    let server = Server::start(vec![ok(actions), ok(done)]).await;
    let model = client(
        "gemini/gemini-2.5-computer-use-preview-10-2025",
        server.url(),
        one_try(),
    );

    let first = model.complete(&first_request()).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.text(), "I will fill in the form.");
    let decoded = calls(&first);
    let named: Vec<(&str, &Value)> = decoded
        .iter()
        .map(|c| (c.name.as_str(), &c.input))
        .collect();
    let parts = gemini_parts();
    assert_eq!(
        named,
        vec![
            ("click_at", &parts[1]["functionCall"]["args"]),
            ("type_text_at", &parts[2]["functionCall"]["args"]),
            ("key_combination", &parts[3]["functionCall"]["args"]),
            ("click_at", &parts[4]["functionCall"]["args"]),
        ]
    );
    // The agent acknowledges the call that asks for confirmation.
    let second = model
        .complete(&answer(first_request(), &first, |call| {
            let mut response = json!({"url": "about:blank"});
            if call.input.get("safety_decision").is_some() {
                response["safety_acknowledgement"] = "true".into();
            }
            Some(response)
        }))
        .await
        .unwrap();
    assert_eq!(
        (second.text().as_str(), second.stop),
        ("The form is saved.", StopReason::EndTurn)
    );

    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/v1beta/models/gemini-2.5-computer-use-preview-10-2025:generateContent"
    );
    assert!(
        requests[0]
            .headers
            .contains(&format!("x-goog-api-key: {KEY}"))
    );
    let body = &requests[0].body;
    assert_eq!(
        body["tools"],
        json!([{"computerUse": {"environment": "ENVIRONMENT_BROWSER",
                                "excludedPredefinedFunctions": BROWSER_ONLY}}])
    );
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": TASK},
            {"inlineData": {"mimeType": "image/png", "data": SHOT_1}}]}])
    );
    let contents = &requests[1].body["contents"];
    // The model's turn goes back exactly as received, thought signatures included.
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": gemini_parts()})
    );
    let response = |name: &str, response: Value| {
        json!({"functionResponse": {"name": name, "response": response,
            "parts": [{"inlineData": {"mimeType": "image/png", "data": SHOT_2}}]}})
    };
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [
            response("click_at", json!({"url": "about:blank"})),
            response("type_text_at", json!({"url": "about:blank"})),
            response("key_combination", json!({"url": "about:blank"})),
            response("click_at", json!({"url": "about:blank", "safety_acknowledgement": "true"}))]})
    );
}

/// A 1920x1080 desktop that records what it is told to do and shows a different picture
/// after each action.
struct LargeScreen {
    done: std::sync::Mutex<Vec<helios::model::computer::Action>>,
}

impl helios::agent::computer::Desktop for LargeScreen {
    fn screen(&self) -> (u32, u32) {
        (1920, 1080)
    }
    fn perform<'a>(
        &'a self,
        action: &'a helios::model::computer::Action,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<helios::agent::computer::desktop::ActOutcome, helios::env::EnvError>,
    > {
        self.done.lock().unwrap().push(action.clone());
        Box::pin(async { Ok(Ok(None)) })
    }
    fn screenshot(
        &self,
    ) -> futures_util::future::BoxFuture<'_, Result<Vec<u8>, helios::env::EnvError>> {
        let shade = self.done.lock().unwrap().len() as u8 * 40;
        Box::pin(async move {
            let mut png = Vec::new();
            image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
                1920,
                1080,
                image::Rgb([shade, 0, 0]),
            ))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
            Ok(png)
        })
    }
    fn cursor(
        &self,
    ) -> futures_util::future::BoxFuture<'_, Result<(u32, u32), helios::env::EnvError>> {
        Box::pin(async { Ok((0, 0)) })
    }
}

fn size_of(base64_png: &str) -> (u32, u32) {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_png)
        .unwrap();
    let image = image::load_from_memory(&bytes).unwrap();
    (image.width(), image.height())
}

/// The agent itself (its loop and the desktop toolbox) against each provider's server: the
/// declared display is the recommended size, screenshots are scaled to it, and the model's
/// coordinates land on the right screen pixels.
#[tokio::test]
async fn the_agent_scales_each_providers_coordinates_onto_a_large_screen() {
    use helios::agent::computer_use::Computer;
    use helios::agent::model_loop::{Ending, ModelLoop};
    use helios::model::computer::action::Button;
    use helios::model::computer::{Action, Protocol, SafetyPolicy};

    let anthropic_click = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "computer", "input": {"action": "left_click", "coordinate": [683, 384]}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}});
    let anthropic_done = json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 2}});
    let openai_click = json!({"id": "resp_1", "object": "response", "status": "completed",
        "output": [{"type": "computer_call", "id": "cu_1", "call_id": "call_1", "status": "completed",
            "action": {"type": "click", "button": "right", "x": 683, "y": 384}, "pending_safety_checks": []}],
        "usage": {"input_tokens": 10, "output_tokens": 5}});
    let openai_done = json!({"id": "resp_2", "object": "response", "status": "completed",
        "output": [{"type": "message", "id": "m", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Done.", "annotations": []}]}],
        "usage": {"input_tokens": 10, "output_tokens": 2}});
    let gemini_click = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "click_at", "args": {"x": 500, "y": 500}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5}});
    let gemini_done = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Done."}]},
        "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2}});

    let cases = [
        (
            "anthropic/claude-sonnet-4-20250514",
            Protocol::Anthropic,
            anthropic_click,
            anthropic_done,
            Button::Left,
            (960, 540),
        ),
        (
            "openai/computer-use-preview",
            Protocol::OpenAi,
            openai_click,
            openai_done,
            Button::Right,
            (960, 540),
        ),
        (
            "gemini/gemini-2.5-computer-use-preview-10-2025",
            Protocol::Gemini,
            gemini_click,
            gemini_done,
            Button::Left,
            (960, 540),
        ),
    ];
    for (id, protocol, click, done, button, at) in cases {
        let server = Server::start(vec![ok(click), ok(done)]).await;
        let model = client(id, server.url(), one_try());
        let desktop = LargeScreen {
            done: std::sync::Mutex::new(Vec::new()),
        };
        let dir = tempfile::tempdir().unwrap();
        let mut toolbox = Computer::new(
            &desktop,
            protocol,
            SafetyPolicy::Acknowledge,
            dir.path().join("screenshots"),
        );
        let outcome = ModelLoop {
            agent_name: "helios-computer-use".into(),
            model: std::sync::Arc::new(model),
            model_id: id.into(),
            rates: None,
            system_prompt: SYSTEM.into(),
            user_prompt: TASK.into(),
            limits: helios::agent::ResolvedLimits::from(&Default::default()),
            task_timeout: None,
            trajectory_path: dir.path().join("trajectory.json"),
            session_id: "s".into(),
            events: None,
        }
        .run(&mut toolbox)
        .await
        .unwrap();
        assert_eq!(outcome.ending, Ending::EndedTurn, "{id}");
        assert_eq!(
            desktop.done.lock().unwrap().as_slice(),
            [Action::Click {
                to: Some(at),
                button,
                count: 1,
                modifiers: vec![]
            }],
            "{id}: the model's point, scaled onto the 1920x1080 screen"
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{id}");
        let (first, second) = (&requests[0].body, &requests[1].body);
        // The screenshots the model gets, before and after the click.
        let (declared, shots) = match protocol {
            Protocol::Anthropic => (
                Some((
                    first["tools"][0]["display_width_px"].clone(),
                    first["tools"][0]["display_height_px"].clone(),
                )),
                vec![
                    first["messages"][0]["content"][1]["source"]["data"].clone(),
                    second["messages"][2]["content"][0]["content"][0]["source"]["data"].clone(),
                ],
            ),
            Protocol::OpenAi => {
                let output = second["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|item| item["type"] == "computer_call_output")
                    .unwrap()
                    .clone();
                (
                    Some((
                        first["tools"][0]["display_width"].clone(),
                        first["tools"][0]["display_height"].clone(),
                    )),
                    vec![
                        Value::String(
                            first["input"][0]["content"][1]["image_url"]
                                .as_str()
                                .unwrap()
                                .trim_start_matches("data:image/png;base64,")
                                .into(),
                        ),
                        Value::String(
                            output["output"]["image_url"]
                                .as_str()
                                .unwrap()
                                .trim_start_matches("data:image/png;base64,")
                                .into(),
                        ),
                    ],
                )
            }
            Protocol::Gemini => (
                None,
                vec![
                    first["contents"][0]["parts"][1]["inlineData"]["data"].clone(),
                    second["contents"][2]["parts"][0]["functionResponse"]["parts"][0]["inlineData"]
                        ["data"]
                        .clone(),
                ],
            ),
        };
        let expected = match protocol {
            // Coordinates on a 0-999 grid: the screenshot is sent as the screen is.
            Protocol::Gemini => (1920, 1080),
            _ => (1366, 768),
        };
        if let Some((width, height)) = declared {
            assert_eq!(
                (width, height),
                (json!(1366), json!(768)),
                "{id}: declared display"
            );
        }
        for shot in &shots {
            assert_eq!(
                size_of(shot.as_str().unwrap_or_else(|| panic!("{id}: {shot}"))),
                expected,
                "{id}"
            );
        }
        assert_ne!(
            shots[0], shots[1],
            "{id}: the screen after the click is a new screenshot"
        );
    }
}
