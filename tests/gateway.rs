//! The model gateway as a library, without containers: tokens, the three formats streamed
//! and not, recording, limits, and upstream faults from a local fake provider.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use common::http::{self, Reply, Server};
use helios::agent::AgentLimits;
use helios::gateway::{CallRecord, Gateway, Lease, Route, read_calls};
use helios::model::ModelSpec;
use helios::model::runtime::{self, ModelRuntime};
use helios::model::scripted::Script;
use serde_json::{Value, json};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn scripted(replies: Vec<Value>) -> ModelRuntime {
    let script = Script::from_parts(Default::default(), replies).unwrap();
    ModelRuntime::scripted("demo", script, None)
}

fn route(model: ModelRuntime) -> Route {
    Route {
        model,
        limits: AgentLimits::default(),
    }
}

fn text_reply(text: &str, input: u64, output: u64) -> Value {
    json!({"text": text, "usage": {"input_tokens": input, "output_tokens": output}})
}

async fn post(lease: &Lease, path: &str, body: Value) -> (u16, String) {
    let url = format!("{}{path}", lease.env()["HELIOS_GATEWAY_URL"]);
    let response = client()
        .post(url)
        .header("x-api-key", lease.token())
        .header("authorization", format!("Bearer {}", lease.token()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn anthropic_request(stream: bool) -> Value {
    json!({
        "model": "claude-anything",
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello."}],
    })
}

#[tokio::test]
async fn a_token_of_a_finished_trial_or_of_another_run_gets_401() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(LOOPBACK).await.unwrap();
    let other_run = Gateway::start(LOOPBACK).await.unwrap();
    let lease = gateway.open(
        &route(scripted(vec![text_reply("hi", 1, 1)])),
        dir.path().join("t1"),
        "t1",
        None,
    );
    let finished = gateway.open(
        &route(scripted(vec![text_reply("hi", 1, 1)])),
        dir.path().join("t2"),
        "t2",
        None,
    );
    let finished_token = finished.token().to_string();
    finished.close();

    let call = |base: String, token: String| async move {
        client()
            .post(format!("{base}/v1/messages"))
            .header("x-api-key", token)
            .json(&anthropic_request(false))
            .send()
            .await
            .unwrap()
    };
    let base = |g: &Gateway| format!("http://{}", g.address());
    let refused = call(base(&gateway), finished_token).await;
    assert_eq!(refused.status().as_u16(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");

    let foreign = call(base(&other_run), lease.token().to_string()).await;
    assert_eq!(foreign.status().as_u16(), 401);
    let unknown = call(base(&gateway), "sk-ant-guess".into()).await;
    assert_eq!(unknown.status().as_u16(), 401);

    let accepted = call(base(&gateway), lease.token().to_string()).await;
    assert_eq!(accepted.status().as_u16(), 200);
    lease.close();
}

#[tokio::test]
async fn each_format_is_answered_streamed_and_not_and_every_call_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(LOOPBACK).await.unwrap();
    let replies = (1..=8)
        .map(|i| text_reply(&format!("reply {i}"), 10, 2))
        .collect();
    let lease = gateway.open(
        &route(scripted(replies)),
        dir.path().to_path_buf(),
        "t",
        None,
    );

    let (status, body) = post(&lease, "/v1/messages", anthropic_request(false)).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["content"][0]["text"], "reply 1");
    assert_eq!(body["usage"]["input_tokens"], 10);

    let (status, stream) = post(&lease, "/v1/messages", anthropic_request(true)).await;
    assert_eq!(status, 200);
    assert!(stream.contains("event: message_start"), "{stream}");
    assert!(stream.contains("reply 2"), "{stream}");
    assert!(stream.contains("event: message_stop"), "{stream}");

    let chat = |stream: bool| {
        json!({
            "model": "gpt-anything",
            "stream": stream,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        })
    };
    let (status, body) = post(&lease, "/v1/chat/completions", chat(false)).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "reply 3");
    let (_, stream) = post(&lease, "/v1/chat/completions", chat(true)).await;
    assert!(stream.contains("reply 4"), "{stream}");
    assert!(stream.trim_end().ends_with("data: [DONE]"), "{stream}");

    let responses =
        |stream: bool| json!({"model": "gpt-anything", "stream": stream, "input": "Hi"});
    let (status, body) = post(&lease, "/v1/responses", responses(false)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("reply 5"), "{body}");
    let (_, stream) = post(&lease, "/v1/responses", responses(true)).await;
    assert!(stream.contains("response.completed"), "{stream}");
    assert!(stream.contains("reply 6"), "{stream}");

    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]});
    let (status, body) = post(
        &lease,
        "/v1beta/models/gemini-anything:generateContent",
        gemini.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        "reply 7"
    );
    let (_, stream) = post(
        &lease,
        "/v1beta/models/gemini-anything:streamGenerateContent?alt=sse",
        gemini,
    )
    .await;
    assert!(stream.starts_with("data: "), "{stream}");
    assert!(stream.contains("reply 8"), "{stream}");

    let used = lease.close();
    assert_eq!(used.calls, 8);
    assert_eq!(used.usage.input_tokens, 80);
    assert_eq!(used.usage.output_tokens, 16);
    let calls: Vec<CallRecord> = read_calls(dir.path()).unwrap();
    let formats: Vec<(&str, bool)> = calls
        .iter()
        .map(|c| (c.format.as_str(), c.stream))
        .collect();
    assert_eq!(
        formats,
        [
            ("anthropic", false),
            ("anthropic", true),
            ("openai-chat", false),
            ("openai-chat", true),
            ("openai-responses", false),
            ("openai-responses", true),
            ("gemini", false),
            ("gemini", true),
        ]
    );
    assert!(calls.iter().all(|c| c.status == 200 && c.usage.is_some()));
    assert_eq!(calls[1].request["stream"], true);
    let recorded = std::fs::read_to_string(dir.path().join(helios::gateway::CALLS_FILE)).unwrap();
    assert!(
        !recorded.contains(lease_token_prefix()),
        "a token was recorded"
    );
    let trajectory: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(helios::store::TRAJECTORY_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(trajectory["schema_version"], "ATIF-v1.4");
    let messages: Vec<&str> = trajectory["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["source"] == "agent")
        .filter_map(|s| s["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"reply 1") && messages.contains(&"reply 8"),
        "{messages:?}"
    );
}

/// Every token starts so; none may appear in a record.
fn lease_token_prefix() -> &'static str {
    "helios-"
}

#[tokio::test]
async fn past_max_tokens_the_agent_gets_its_providers_error_and_the_limit_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(LOOPBACK).await.unwrap();
    let limited = Route {
        model: scripted(vec![text_reply("a", 40, 20), text_reply("b", 40, 20)]),
        limits: AgentLimits {
            max_tokens: Some(50),
            ..AgentLimits::default()
        },
    };
    let lease = gateway.open(&limited, dir.path().to_path_buf(), "t", None);
    let (status, _) = post(&lease, "/v1/messages", anthropic_request(false)).await;
    assert_eq!(
        status, 200,
        "the call that passes the limit is still delivered"
    );
    let (status, body) = post(&lease, "/v1/messages", anthropic_request(false)).await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["type"], "error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{body}"
    );
    let used = lease.close();
    let (kind, _) = used.limit.expect("the limit is reported");
    assert_eq!(kind, helios::events::ErrorKind::TokenLimit);
    assert_eq!(used.calls, 1);
}

#[tokio::test]
async fn max_turns_counts_model_calls() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(LOOPBACK).await.unwrap();
    let limited = Route {
        model: scripted(vec![text_reply("a", 1, 1), text_reply("b", 1, 1)]),
        limits: AgentLimits {
            max_turns: Some(1),
            ..AgentLimits::default()
        },
    };
    let lease = gateway.open(&limited, dir.path().to_path_buf(), "t", None);
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(
        post(&lease, "/v1/chat/completions", chat.clone()).await.0,
        200
    );
    let (status, body) = post(&lease, "/v1/chat/completions", chat).await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_turns")
    );
    let used = lease.close();
    assert_eq!(used.limit.unwrap().0, helios::events::ErrorKind::MaxTurns);
}

/// An OpenAI-compatible model at the fake provider, with `retries` retries.
fn upstream(server: &Server, retries: u32) -> ModelRuntime {
    let spec = ModelSpec {
        id: "openai/gpt-test".into(),
        base_url: Some(format!("{}/v1", server.url())),
        api_key_env: Some("HELIOS_TEST_UPSTREAM_KEY".into()),
        max_retries: Some(retries),
        ..ModelSpec::default()
    };
    let models = BTreeMap::from([("upstream".to_string(), spec)]);
    let host = |name: &str| (name == "HELIOS_TEST_UPSTREAM_KEY").then(|| "sk-host-key".to_string());
    runtime::build(&models, std::path::Path::new("."), &host)
        .unwrap()
        .remove("upstream")
        .unwrap()
}

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    })
}

#[tokio::test]
async fn upstream_faults_are_retried_or_reach_the_agent_as_the_providers_error() {
    let server = Server::start(vec![
        // A rate limit, then a stream dropped halfway: both retried, then answered.
        Reply::Json {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: json!({"error": {"message": "slow down", "type": "rate_limit"}}).to_string(),
        },
        Reply::Truncated {
            body: completion("lost").to_string(),
        },
        http::ok(completion("after faults")),
        // A server error that persists past the one retry.
        http::status(500, json!({"error": {"message": "boom"}})),
        http::status(500, json!({"error": {"message": "boom"}})),
        // A body that is not JSON at all.
        Reply::Json {
            status: 200,
            headers: vec![],
            body: "<html>not json</html>".into(),
        },
        Reply::Json {
            status: 200,
            headers: vec![],
            body: "<html>not json</html>".into(),
        },
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(LOOPBACK).await.unwrap();
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});

    let lease = gateway.open(
        &route(upstream(&server, 2)),
        dir.path().join("a"),
        "a",
        None,
    );
    let (status, body) = post(&lease, "/v1/chat/completions", chat.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("after faults"), "{body}");
    lease.close();

    let lease = gateway.open(
        &route(upstream(&server, 1)),
        dir.path().join("b"),
        "b",
        None,
    );
    let (status, body) = post(&lease, "/v1/chat/completions", chat.clone()).await;
    assert_eq!(status, 500, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("boom"),
        "{body}"
    );

    let (status, body) = post(&lease, "/v1/chat/completions", chat).await;
    assert_eq!(status, 502, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(error["error"]["message"].is_string(), "{body}");
    lease.close();

    let sent = server.requests();
    assert!(
        sent.iter().all(|r| r.headers.contains("sk-host-key")),
        "the host's key goes upstream"
    );
    let calls = read_calls(&dir.path().join("b")).unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].error.as_ref().unwrap().kind,
        helios::events::ErrorKind::ModelServerError
    );
}

/// An HTTP client (its TLS needs a crypto provider installed, once per process).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test]
async fn token_counts_and_model_lists_are_answered_in_each_providers_shape() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(LOOPBACK).await.unwrap();
    let lease = gateway.open(
        &route(scripted(vec![text_reply("hi", 1, 1)])),
        dir.path().to_path_buf(),
        "t",
        None,
    );
    let count = json!({"model": "m", "messages": [{"role": "user", "content": "Count these words please."}]});
    let (status, body) = post(&lease, "/v1/messages/count_tokens", count).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["input_tokens"].as_u64().unwrap() > 0, "{body}");
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "Count me."}]}]});
    let (status, body) = post(&lease, "/v1beta/models/g:countTokens", gemini).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("totalTokens"), "{body}");

    let base = &lease.env()["HELIOS_GATEWAY_URL"];
    let models = |anthropic: bool| {
        let mut request = client()
            .get(format!("{base}/v1/models"))
            .bearer_auth(lease.token());
        if anthropic {
            request = request.header("anthropic-version", "2023-06-01");
        }
        request.send()
    };
    let openai: Value = models(false).await.unwrap().json().await.unwrap();
    assert_eq!(openai["object"], "list", "{openai}");
    assert_eq!(openai["data"][0]["id"], "demo", "{openai}");
    let anthropic: Value = models(true).await.unwrap().json().await.unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model", "{anthropic}");
    assert!(
        read_calls(dir.path()).unwrap().is_empty(),
        "counts and lists are not model calls"
    );
    lease.close();
}

/// An installed agent's turns reach the run's events through the gateway, as helios's own
/// model loop tells its own: the turn, its text, its tool calls, and each tool result once.
#[tokio::test]
async fn a_trials_model_turns_are_told_as_events_with_each_tool_result_once() {
    use helios::events::TrialIndex;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(LOOPBACK).await.unwrap();
    let replies = vec![
        json!({"text": "I'll look.", "tool_calls": [{"name": "bash", "input": {"command": "ls"}}],
               "usage": {"input_tokens": 10, "output_tokens": 5}}),
        text_reply("Done.", 20, 2),
        text_reply("Still done.", 20, 2),
    ];
    let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
    let lease = gateway.open(
        &route(scripted(replies)),
        dir.path().to_path_buf(),
        "t",
        Some((sender, TrialIndex(7))),
    );
    let (status, body) = post(&lease, "/v1/messages", anthropic_request(false)).await;
    assert_eq!(status, 200, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    let call = first["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["type"] == "tool_use")
        .unwrap_or_else(|| panic!("{first}"))
        .clone();
    let follow_up = json!({
        "model": "claude-anything",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": first["content"]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call["id"], "content": "a.txt"}
            ]},
        ],
    });
    // The same conversation twice (an agent retrying a call): its result is told once.
    for _ in 0..2 {
        let (status, body) = post(&lease, "/v1/messages", follow_up.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    lease.close();

    let mut told = Vec::new();
    while let Ok(event) = events.try_recv() {
        told.push(serde_json::to_value(&event).unwrap());
    }
    let kinds: Vec<&str> = told.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "agent_turn",
            "agent_text",
            "tool_call",
            "tool_result",
            "agent_turn",
            "agent_text",
            "agent_turn",
            "agent_text"
        ],
        "{told:#?}"
    );
    assert!(told.iter().all(|e| e["index"] == 7), "{told:#?}");
    assert_eq!(told[0]["turn"], 1);
    assert_eq!(told[2]["name"], "bash");
    assert_eq!(told[2]["input"], json!({"command": "ls"}));
    assert_eq!(
        (&told[3]["name"], &told[3]["output"]),
        (&json!("bash"), &json!("a.txt"))
    );
    assert_eq!(told[6]["turn"], 3);
}
