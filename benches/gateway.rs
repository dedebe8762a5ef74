//! Benchmark: what the model gateway adds to one non-streaming call.
//!
//! Run with `cargo bench --bench gateway`. A local fake provider answers OpenAI Chat
//! Completions with a fixed reply; the same request is sent to it directly and through a
//! gateway forwarding to it (token lookup, decoding, the model client with its retry
//! policy, encoding, the call recorded to `model-calls.jsonl`), one call at a time. The
//! medians and their difference are printed; figures are recorded in docs/benchmarks.md.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::measuring;
use helios::agent::AgentLimits;
use helios::gateway::{Gateway, Route};
use helios::model::ModelSpec;
use helios::model::runtime;
use helios::model::scripted::Script;
use serde_json::json;

fn reply() -> serde_json::Value {
    json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "gpt-bench",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "The answer is 42."}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 6, "total_tokens": 56},
    })
}

fn request() -> serde_json::Value {
    json!({
        "model": "gpt-bench",
        "messages": [
            {"role": "system", "content": "You are a careful assistant. ".repeat(20)},
            {"role": "user", "content": "What is six times seven?"},
        ],
    })
}

async fn fake_provider() -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async { axum::Json(reply()) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1")
}

/// Times `calls` sequential calls to `url`; returns them sorted.
async fn time_calls(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    calls: usize,
) -> Vec<Duration> {
    let body = request();
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let response = client
            .post(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn quantile(times: &[Duration], q: f64) -> f64 {
    times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    let calls = if measuring() { 2_000 } else { 20 };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let provider = fake_provider().await;
        let spec = ModelSpec {
            id: "openai/gpt-bench".into(),
            base_url: Some(provider.clone()),
            api_key_env: Some("BENCH_KEY".into()),
            ..ModelSpec::default()
        };
        let models = BTreeMap::from([("upstream".to_string(), spec)]);
        let host = |name: &str| (name == "BENCH_KEY").then(|| "sk-bench".to_string());
        let model = runtime::build(&models, std::path::Path::new("."), &host)
            .unwrap()
            .remove("upstream")
            .unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let gateway = Gateway::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .await
            .unwrap();
        let forwarded = gateway.open(
            &Route {
                model,
                limits: AgentLimits::default(),
            },
            scratch.path().join("forwarded"),
            "bench",
            None,
        );
        let replies = vec![json!({"text": "The answer is 42."}); calls + 10];
        let script = Script::from_parts(Default::default(), replies).unwrap();
        let scripted = gateway.open(
            &Route {
                model: runtime::ModelRuntime::scripted("bench", script, None),
                limits: AgentLimits::default(),
            },
            scratch.path().join("scripted"),
            "bench-scripted",
            None,
        );
        let client = reqwest::Client::new();
        let through = format!("http://{}/v1/chat/completions", gateway.address());
        // Warm both paths (connections, first allocations).
        time_calls(
            &client,
            &format!("{provider}/chat/completions"),
            "sk-bench",
            10,
        )
        .await;
        time_calls(&client, &through, forwarded.token(), 10).await;

        let direct = time_calls(
            &client,
            &format!("{provider}/chat/completions"),
            "sk-bench",
            calls,
        )
        .await;
        let via = time_calls(&client, &through, forwarded.token(), calls).await;
        let script_only = time_calls(&client, &through, scripted.token(), calls).await;
        println!("{calls} sequential non-streaming OpenAI Chat calls, median / p90 (ms):");
        println!(
            "  direct to the fake provider      {:7.3} / {:7.3}",
            quantile(&direct, 0.5),
            quantile(&direct, 0.9)
        );
        println!(
            "  through the gateway              {:7.3} / {:7.3}",
            quantile(&via, 0.5),
            quantile(&via, 0.9)
        );
        println!(
            "  gateway answering from a script  {:7.3} / {:7.3}",
            quantile(&script_only, 0.5),
            quantile(&script_only, 0.9)
        );
        println!(
            "  overhead per proxied call (median difference): {:.3} ms",
            quantile(&via, 0.5) - quantile(&direct, 0.5)
        );
        forwarded.close();
        scripted.close();
    });
}
