//! Model clients against a local HTTP server in this process that answers in each
//! provider's documented wire format, including faults: 429 with Retry-After, 500 and 529,
//! a dropped connection, a malformed body, a reply slower than the timeout.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::http::{Reply, Server, ok, status};

use helios::model::ModelId;
use helios::model::retry::RetryPolicy;
use helios::model::{
    ChatRequest, HttpModel, Message, ModelClient, ModelConfig, ModelError, Part, Role, StopReason,
    ToolResult, ToolSpec,
};
use serde_json::{Value, json};

const KEY: &str = "sk-test-0123456789-secret";

fn client(id: &str, server: &Server, retry: RetryPolicy, timeout: Duration) -> HttpModel {
    let mut config = ModelConfig::new("m", ModelId::parse(id).unwrap());
    config.base_url = Some(server.url());
    config.retry = retry;
    config.request_timeout = timeout;
    config.params.max_tokens = Some(256);
    config.params.temperature = Some(0.0);
    HttpModel::new(config, &|name| {
        (name.ends_with("_API_KEY")).then(|| KEY.to_string())
    })
    .unwrap()
}

fn fast_retries(attempts: usize) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_total_wait: Duration::from_secs(30),
    }
}

fn bash_tool() -> ToolSpec {
    ToolSpec {
        name: "bash".into(),
        description: "Run a command".into(),
        parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
    }
}

fn first_request() -> ChatRequest {
    ChatRequest {
        system: Some("You are careful.".into()),
        messages: vec![Message::user_text("Create hello.txt")],
        tools: vec![bash_tool()],
        computer: None,
    }
}

/// The conversation after the model asked for `bash` and the tool answered.
fn second_request(first: &helios::model::ChatResponse) -> ChatRequest {
    let call = first.tool_calls().next().unwrap().clone();
    let mut request = first_request();
    request.messages.push(Message {
        role: Role::Assistant,
        parts: first.parts.clone(),
    });
    request.messages.push(Message {
        role: Role::User,
        parts: vec![Part::ToolResult(ToolResult::text(
            call.id, call.name, "done", false,
        ))],
    });
    request
}

// --- Anthropic Messages -------------------------------------------------------------

fn anthropic_tool_use() -> Value {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": "I will run it."},
                    {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "echo hi > hello.txt"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 0}})
}

fn anthropic_text() -> Value {
    json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 150, "output_tokens": 5}})
}

#[tokio::test]
async fn anthropic_tool_calls_multi_turn_and_usage() {
    let server = Server::start(vec![ok(anthropic_tool_use()), ok(anthropic_text())]).await;
    let model = client(
        "claude-sonnet-4-20250514",
        &server,
        fast_retries(1),
        Duration::from_secs(10),
    );
    let first = model.complete(&first_request()).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.text(), "I will run it.");
    let call = first.tool_calls().next().unwrap();
    assert_eq!((call.id.as_str(), call.name.as_str()), ("toolu_1", "bash"));
    assert_eq!(call.input["command"], "echo hi > hello.txt");
    assert_eq!(
        (
            first.usage.input_tokens,
            first.usage.output_tokens,
            first.usage.cached_tokens
        ),
        (130, 20, 30)
    );
    let second = model.complete(&second_request(&first)).await.unwrap();
    assert_eq!(
        (second.text().as_str(), second.stop.clone()),
        ("Done.", StopReason::EndTurn)
    );

    let requests = server.requests();
    assert_eq!(requests[0].path, "/v1/messages");
    assert!(requests[0].headers.contains(&format!("x-api-key: {KEY}")));
    assert!(
        requests[0]
            .headers
            .contains("anthropic-version: 2023-06-01")
    );
    let body = &requests[0].body;
    assert_eq!(body["model"], "claude-sonnet-4-20250514");
    assert_eq!(body["system"], "You are careful.");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["tools"][0]["input_schema"]["required"][0], "command");
    let turn = &requests[1].body["messages"];
    assert_eq!(turn[1]["role"], "assistant");
    assert_eq!(turn[1]["content"][1]["type"], "tool_use");
    assert_eq!(turn[2]["content"][0]["type"], "tool_result");
    assert_eq!(turn[2]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(turn[2]["content"][0]["content"], "done");
}

#[tokio::test]
async fn anthropic_errors_are_typed() {
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let too_long = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}});
    let server = Server::start(vec![status(529, overloaded), status(400, too_long)]).await;
    let model = client(
        "claude-sonnet-4-20250514",
        &server,
        fast_retries(1),
        Duration::from_secs(10),
    );
    let e = model.complete(&first_request()).await.unwrap_err();
    assert!(matches!(e, ModelError::Server { status: 529, .. }), "{e:?}");
    let e = model.complete(&first_request()).await.unwrap_err();
    assert!(matches!(e, ModelError::ContextOverflow { .. }), "{e:?}");
}

// --- OpenAI Chat Completions -------------------------------------------------------

fn openai_tool_call() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4.1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60, "prompt_tokens_details": {"cached_tokens": 20}}})
}

fn openai_text() -> Value {
    json!({"id": "chatcmpl-2", "object": "chat.completion", "created": 2, "model": "gpt-4.1",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "All done."}}],
        "usage": {"prompt_tokens": 70, "completion_tokens": 3, "total_tokens": 73}})
}

#[tokio::test]
async fn openai_tool_calls_multi_turn_and_usage() {
    let server = Server::start(vec![ok(openai_tool_call()), ok(openai_text())]).await;
    let model = client(
        "openai/gpt-4.1",
        &server,
        fast_retries(1),
        Duration::from_secs(10),
    );
    let first = model.complete(&first_request()).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.tool_calls().next().unwrap().input["command"], "ls");
    assert_eq!(
        (
            first.usage.input_tokens,
            first.usage.output_tokens,
            first.usage.cached_tokens
        ),
        (50, 10, 20)
    );
    let second = model.complete(&second_request(&first)).await.unwrap();
    assert_eq!(second.text(), "All done.");

    let requests = server.requests();
    assert_eq!(requests[0].path, "/chat/completions");
    assert!(
        requests[0]
            .headers
            .contains(&format!("authorization: Bearer {KEY}"))
    );
    let messages = &requests[1].body["messages"];
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["arguments"],
        "{\"command\":\"ls\"}"
    );
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_1");
    assert_eq!(requests[0].body["tools"][0]["type"], "function");
    assert_eq!(requests[0].body["max_tokens"], 256);
}

/// Each provider's id and a plain text reply in its format.
fn providers() -> [(&'static str, Value); 3] {
    [
        ("anthropic/claude-sonnet-4-20250514", anthropic_text()),
        ("openai/gpt-4.1", openai_text()),
        ("gemini/gemini-2.5-pro", gemini_text()),
    ]
}

#[tokio::test]
async fn rate_limits_honour_retry_after_then_succeed() {
    for (id, reply) in providers() {
        let limited = Reply::Json {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: json!({"error": {"message": "Rate limit reached"}}).to_string(),
        };
        let server = Server::start(vec![limited, ok(reply)]).await;
        let model = client(id, &server, RetryPolicy::default(), Duration::from_secs(10));
        assert!(
            !model
                .complete(&first_request())
                .await
                .unwrap()
                .text()
                .is_empty(),
            "{id}"
        );
        assert_eq!(server.requests().len(), 2, "{id}");
    }
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    for (id, reply) in providers() {
        let server = Server::start(vec![
            status(500, json!({"error": {"message": "internal"}})),
            Reply::Drop,
            status(529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
            status(503, json!({"error": {"message": "unavailable"}})),
            ok(reply),
        ])
        .await;
        let model = client(id, &server, fast_retries(5), Duration::from_secs(10));
        assert!(
            !model
                .complete(&first_request())
                .await
                .unwrap()
                .text()
                .is_empty(),
            "{id}"
        );
        assert_eq!(server.requests().len(), 5, "{id}");
    }
}

#[tokio::test]
async fn a_malformed_body_is_an_error_and_not_retried() {
    for (id, _) in providers() {
        let server = Server::start(vec![Reply::Json {
            status: 200,
            headers: vec![],
            body: "{\"choices\": [".into(),
        }])
        .await;
        let model = client(id, &server, fast_retries(5), Duration::from_secs(10));
        let e = model.complete(&first_request()).await.unwrap_err();
        assert!(matches!(e, ModelError::Malformed { .. }), "{id}: {e:?}");
        assert_eq!(server.requests().len(), 1, "{id}");
    }
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_times_out() {
    for (id, reply) in providers() {
        let slow = || Reply::Slow {
            delay: Duration::from_secs(5),
            body: reply.to_string(),
        };
        let server = Server::start(vec![slow(), slow()]).await;
        let model = client(id, &server, fast_retries(2), Duration::from_millis(300));
        let e = model.complete(&first_request()).await.unwrap_err();
        assert!(matches!(e, ModelError::Timeout { .. }), "{id}: {e:?}");
        assert_eq!(server.requests().len(), 2, "{id}: a timeout is retried");
    }
}

#[tokio::test]
async fn auth_failures_are_typed_not_retried_and_never_show_the_key() {
    let echoed = json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error", "code": "invalid_api_key"}});
    let server = Server::start(vec![status(401, echoed)]).await;
    let model = client("gpt-4.1", &server, fast_retries(5), Duration::from_secs(10));
    let e = model.complete(&first_request()).await.unwrap_err();
    assert!(matches!(e, ModelError::Auth { .. }), "{e:?}");
    assert!(!e.to_string().contains(KEY), "{e}");
    assert!(!format!("{e:?}").contains(KEY));
    assert!(!format!("{model:?}").contains(KEY));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn unknown_models_and_context_overflow_are_typed() {
    let server = Server::start(vec![
        status(404, json!({"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}})),
        status(400, json!({"error": {"message": "This model's maximum context length is 128000 tokens.", "code": "context_length_exceeded"}})),
    ])
    .await;
    let model = client("gpt-9", &server, fast_retries(1), Duration::from_secs(10));
    assert!(matches!(
        model.complete(&first_request()).await,
        Err(ModelError::UnknownModel { .. })
    ));
    assert!(matches!(
        model.complete(&first_request()).await,
        Err(ModelError::ContextOverflow { .. })
    ));
}

#[tokio::test]
async fn max_connections_is_shared_by_every_client_of_a_model() {
    let slow = || Reply::Slow {
        delay: Duration::from_millis(200),
        body: openai_text().to_string(),
    };
    let server = Server::start(vec![slow(), slow(), slow()]).await;
    let limit = Arc::new(tokio::sync::Semaphore::new(1));
    let clients: Vec<HttpModel> = (0..3)
        .map(|_| {
            client("gpt-4.1", &server, fast_retries(1), Duration::from_secs(10))
                .with_limit(limit.clone())
        })
        .collect();
    let request = first_request();
    let calls = clients.iter().map(|c| c.complete(&request));
    for result in futures_util::future::join_all(calls).await {
        assert!(result.is_ok());
    }
    assert_eq!(server.most_at_once.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_missing_key_is_an_error_before_any_request() {
    let config = ModelConfig::new("m", ModelId::parse("gpt-4.1").unwrap());
    let e = HttpModel::new(config, &|_| None).unwrap_err();
    assert_eq!(
        e,
        ModelError::MissingKey {
            variable: "OPENAI_API_KEY".into()
        }
    );
}

// --- Gemini generateContent ---------------------------------------------------------

fn gemini_call() -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "Running it."},
            {"functionCall": {"name": "bash", "args": {"command": "pwd"}}}]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 8, "totalTokenCount": 48, "cachedContentTokenCount": 10}})
}

fn gemini_text() -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Finished."}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 60, "candidatesTokenCount": 2, "totalTokenCount": 62}})
}

#[tokio::test]
async fn gemini_function_calls_multi_turn_and_usage() {
    let server = Server::start(vec![ok(gemini_call()), ok(gemini_text())]).await;
    let model = client(
        "gemini/gemini-2.5-pro",
        &server,
        fast_retries(1),
        Duration::from_secs(10),
    );
    let first = model.complete(&first_request()).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.tool_calls().next().unwrap().input["command"], "pwd");
    assert_eq!(
        (
            first.usage.input_tokens,
            first.usage.output_tokens,
            first.usage.cached_tokens
        ),
        (40, 8, 10)
    );
    let second = model.complete(&second_request(&first)).await.unwrap();
    assert_eq!(
        (second.text().as_str(), second.stop.clone()),
        ("Finished.", StopReason::EndTurn)
    );

    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
    assert!(
        requests[0]
            .headers
            .contains(&format!("x-goog-api-key: {KEY}"))
    );
    let body = &requests[1].body;
    assert_eq!(
        body["systemInstruction"]["parts"][0]["text"],
        "You are careful."
    );
    assert_eq!(body["tools"][0]["functionDeclarations"][0]["name"], "bash");
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 256);
    assert_eq!(body["contents"][1]["role"], "model");
    assert_eq!(
        body["contents"][1]["parts"][1]["functionCall"]["name"],
        "bash"
    );
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["name"],
        "bash"
    );
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["response"]["output"],
        "done"
    );
}

#[tokio::test]
async fn gemini_errors_are_typed() {
    let server = Server::start(vec![
        status(400, json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}})),
        status(400, json!({"error": {"code": 400, "message": "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}})),
        Reply::Json { status: 429, headers: vec![("retry-after", "0".into())], body: json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}).to_string() },
        ok(gemini_text()),
    ])
    .await;
    let model = client(
        "gemini-2.5-flash",
        &server,
        fast_retries(3),
        Duration::from_secs(10),
    );
    assert!(matches!(
        model.complete(&first_request()).await,
        Err(ModelError::Auth { .. })
    ));
    assert!(matches!(
        model.complete(&first_request()).await,
        Err(ModelError::ContextOverflow { .. })
    ));
    assert_eq!(
        model.complete(&first_request()).await.unwrap().text(),
        "Finished."
    );
}
