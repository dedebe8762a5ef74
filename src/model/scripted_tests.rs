//! Tests of the scripted model: the neutral form, and provider formats played through the
//! providers' real encoders and decoders.

use serde_json::json;

use super::*;
use crate::model::{ComputerTool, Image, Message, Role, ToolResult};

fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn model(name: &str, text: &str) -> ScriptedModel {
    let (_dir, path) = write(name, text);
    ScriptedModel::new(Arc::new(Script::load(&path).unwrap()))
}

fn load_error(name: &str, text: &str) -> String {
    let (_dir, path) = write(name, text);
    let error = Script::load(&path).unwrap_err().to_string();
    assert!(error.contains(&path.display().to_string()), "{error}");
    error
}

#[tokio::test]
async fn plays_replies_in_order_then_says_it_ran_out() {
    let model = model(
        "s.yaml",
        "replies:\n  - text: hi\n    tool_calls:\n      - name: bash\n        input: { command: ls }\n    usage: { input_tokens: 5, output_tokens: 2, cached_tokens: 0 }\n  - text: bye\n",
    );
    let request = ChatRequest::default();
    let first = model.complete(&request).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.tool_calls().next().unwrap().input["command"], "ls");
    assert_eq!(first.usage.input_tokens, 5);
    let second = model.complete(&request).await.unwrap();
    assert_eq!(
        (second.text().as_str(), second.stop),
        ("bye", StopReason::EndTurn)
    );
    assert!(matches!(
        model.complete(&request).await,
        Err(ModelError::Malformed { .. })
    ));
    assert!(
        model.requests().is_empty(),
        "a neutral script encodes nothing"
    );
}

#[test]
fn script_errors_name_the_file_and_the_reply() {
    assert!(load_error("s.json", "{\"replies\": []}").contains("no replies"));
    assert!(load_error("s.json", "{\"replys\": []}").contains("replys"));
    let neutral = load_error(
        "s.yaml",
        "replies:\n  - text: fine\n  - text: x\n    tool_call: []\n",
    );
    assert!(
        neutral.contains("reply 2") && neutral.contains("tool_call"),
        "{neutral}"
    );
    let unknown = load_error("s.yaml", "format: mistral\nreplies:\n  - {}\n");
    assert!(unknown.contains("mistral"), "{unknown}");
    let no_status = load_error("s.yaml", "format: openai\nreplies:\n  - output: []\n");
    assert!(
        no_status.contains("reply 1")
            && no_status.contains("openai decoder")
            && no_status.contains("status"),
        "{no_status}"
    );
    let not_object = load_error("s.json", "{\"format\": \"gemini\", \"replies\": [\"hi\"]}");
    assert!(
        not_object.contains("reply 1") && not_object.contains("object"),
        "{not_object}"
    );
    let anthropic = load_error(
        "s.yaml",
        "format: anthropic\nreplies:\n  - content: []\n    stop_reason: end_turn\n  - content: []\n",
    );
    assert!(
        anthropic.contains("reply 2") && anthropic.contains("stop_reason"),
        "{anthropic}"
    );
}

/// A request with a system prompt, one user message, and a `bash` tool or none.
fn request(system: &str, user: &str, tools: bool) -> ChatRequest {
    ChatRequest {
        system: Some(system.into()),
        messages: vec![Message::user_text(user)],
        tools: if tools {
            vec![crate::model::ToolSpec {
                name: "bash".into(),
                description: "run a command".into(),
                parameters: json!({"type": "object"}),
            }]
        } else {
            Vec::new()
        },
        computer: None,
    }
}

/// A script whose title reply answers only the title request, and whose other replies
/// serve two tasks by their instruction.
const MATCHING: &str = "replies:
  - when: { system: 'title generator', tools: false }
    text: Create hello.txt
  - when: { user: hello.txt }
    text: writing hello
  - when: { user: hello.txt }
    text: hello done
  - when: { user: summary.json, tools: true }
    text: writing summary
";

#[tokio::test]
async fn a_side_request_gets_its_own_reply_whatever_its_order() {
    let title = request("You are a title generator.", "Create /app/hello.txt", false);
    let turn = request("You are an agent.", "Create /app/hello.txt", true);
    for title_first in [true, false] {
        let model = model("s.yaml", MATCHING);
        let mut texts = Vec::new();
        for request in if title_first {
            [&title, &turn, &turn]
        } else {
            [&turn, &title, &turn]
        } {
            texts.push(model.complete(request).await.unwrap().text());
        }
        let (title_text, turns): (Vec<_>, Vec<_>) =
            texts.into_iter().partition(|t| t == "Create hello.txt");
        assert_eq!(title_text.len(), 1, "title first: {title_first}");
        assert_eq!(turns, ["writing hello", "hello done"]);
    }
}

#[tokio::test]
async fn one_script_serves_two_tasks_by_their_instruction() {
    let scripted = model("s.yaml", MATCHING);
    let summary = request("You are an agent.", "Write /app/summary.json", true);
    assert_eq!(
        scripted.complete(&summary).await.unwrap().text(),
        "writing summary"
    );
    // Its one reply is played, and the hello replies do not meet it.
    let error = scripted.complete(&summary).await.unwrap_err().to_string();
    assert!(
        error.contains("request 2")
            && error.contains("`when`")
            && error.contains("Write /app/summary.json"),
        "{error}"
    );
    let untooled = request("You are an agent.", "Write /app/summary.json", false);
    let fresh = model("s.yaml", MATCHING);
    assert!(
        fresh.complete(&untooled).await.is_err(),
        "`tools: true` holds"
    );
}

#[test]
fn a_misspelt_when_is_a_script_error() {
    let error = load_error("s.yaml", "replies:\n  - when: { sytem: x }\n    text: hi\n");
    assert!(
        error.contains("reply 1") && error.contains("`when`") && error.contains("sytem"),
        "{error}"
    );
}

#[tokio::test]
async fn a_provider_reply_may_carry_a_when() {
    let model = model(
        "s.yaml",
        "format: anthropic
replies:
  - when: { user: title }
    content: [{ type: text, text: A title }]
    stop_reason: end_turn
  - content: [{ type: text, text: Done. }]
    stop_reason: end_turn
",
    );
    let work = request("agent", "work", false);
    assert_eq!(model.complete(&work).await.unwrap().text(), "Done.");
    let title = request("agent", "a title please", false);
    assert_eq!(model.complete(&title).await.unwrap().text(), "A title");
}

#[tokio::test]
async fn a_toml_script_can_hold_provider_bodies() {
    let model = model(
        "s.toml",
        "format = \"gemini\"\n[[replies]]\nusageMetadata = { promptTokenCount = 3 }\n[[replies.candidates]]\nfinishReason = \"STOP\"\ncontent = { role = \"model\", parts = [{ text = \"Done.\" }] }\n",
    );
    let reply = model.complete(&ChatRequest::default()).await.unwrap();
    assert_eq!(
        (reply.text().as_str(), reply.usage.input_tokens),
        ("Done.", 3)
    );
    assert_eq!(model.requests().len(), 1);
}

// --- Computer use in each provider's shapes -------------------------------------------------

const ANTHROPIC: &str = r#"
format: anthropic
replies:
  - content:
      - { type: thinking, thinking: "Name first.", signature: sig-1 }
      - { type: tool_use, id: toolu_01, name: computer, input: { action: left_click, coordinate: [400, 118] } }
      - { type: tool_use, id: toolu_02, name: computer, input: { action: key, text: "ctrl+s" } }
    stop_reason: tool_use
    usage: { input_tokens: 10, output_tokens: 4 }
  - content: [{ type: text, text: "Saved." }]
    stop_reason: end_turn
"#;

const OPENAI: &str = r#"{
  "format": "openai",
  "replies": [
    {"status": "completed", "output": [
      {"type": "reasoning", "id": "rs_1", "summary": []},
      {"type": "computer_call", "id": "cu_1", "call_id": "call_1", "status": "completed",
       "action": {"type": "type", "text": "Ada Lovelace"},
       "pending_safety_checks": [{"id": "cu_sc_1", "code": "sensitive_domain", "message": "Careful."}]}],
     "usage": {"input_tokens": 20, "output_tokens": 5}},
    {"status": "completed", "output": [
      {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "Saved."}]}]}
  ]
}"#;

const GEMINI: &str = r#"
format: gemini
replies:
  - candidates:
      - finishReason: STOP
        content:
          role: model
          parts:
            - functionCall: { name: click_at, args: { x: 391, y: 154, safety_decision: { decision: require_confirmation, explanation: "Submits." } } }
              thoughtSignature: c2lnLTE=
            - functionCall: { name: key_combination, args: { keys: "Control+S" } }
  - candidates:
      - finishReason: STOP
        content: { role: model, parts: [{ text: "Saved." }] }
"#;

fn computer_request() -> ChatRequest {
    ChatRequest {
        system: Some("Operate the desktop.".into()),
        messages: vec![Message {
            role: Role::User,
            parts: vec![
                Part::Text {
                    text: "Save the form.".into(),
                },
                Part::Image(Image {
                    media_type: "image/png".into(),
                    data: "AAAA".into(),
                }),
            ],
        }],
        tools: vec![],
        computer: Some(ComputerTool {
            display_width: 1024,
            display_height: 768,
            environment: "linux".into(),
            excluded_functions: vec!["navigate".into()],
        }),
    }
}

/// What the computer-use agent does: keeps the model's turn, answers each call with a
/// screenshot and the provider's acknowledgement fields.
fn answer(request: &mut ChatRequest, reply: &ChatResponse) {
    request.messages.push(Message {
        role: Role::Assistant,
        parts: reply.parts.clone(),
    });
    let results = reply
        .tool_calls()
        .map(|call| {
            let extra = if let Some(checks) = call.input.get("pending_safety_checks") {
                Some(json!({"acknowledged_safety_checks": checks}))
            } else if call.input.get("safety_decision").is_some() {
                Some(json!({"url": "about:blank", "safety_acknowledgement": "true"}))
            } else {
                Some(json!({"url": "about:blank"})).filter(|_| call.input.get("action").is_none())
            };
            Part::ToolResult(ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                output: String::new(),
                is_error: false,
                images: vec![Image {
                    media_type: "image/png".into(),
                    data: "BBBB".into(),
                }],
                extra,
            })
        })
        .collect();
    request.messages.push(Message {
        role: Role::User,
        parts: results,
    });
}

/// Plays the two turns of `script`; returns the first reply's calls and the bodies sent.
async fn play(name: &str, script: &str) -> (Vec<ToolCall>, Vec<Value>) {
    let model = model(name, script);
    let mut request = computer_request();
    let first = model.complete(&request).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    answer(&mut request, &first);
    let second = model.complete(&request).await.unwrap();
    assert_eq!(
        (second.text().as_str(), second.stop),
        ("Saved.", StopReason::EndTurn)
    );
    (first.tool_calls().cloned().collect(), model.requests())
}

#[tokio::test]
async fn an_anthropic_script_plays_computer_calls() {
    let (calls, sent) = play("a.yaml", ANTHROPIC).await;
    assert_eq!(
        calls,
        vec![
            ToolCall {
                id: "toolu_01".into(),
                name: "computer".into(),
                input: json!({"action": "left_click", "coordinate": [400, 118]}),
            },
            ToolCall {
                id: "toolu_02".into(),
                name: "computer".into(),
                input: json!({"action": "key", "text": "ctrl+s"}),
            },
        ]
    );
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["tools"][0]["type"], "computer_20250124");
    assert_eq!(sent[0]["messages"][0]["content"][1]["type"], "image");
    assert_eq!(sent[1]["messages"][1]["content"][0]["signature"], "sig-1");
    assert_eq!(
        sent[1]["messages"][2]["content"][1]["content"][0]["source"]["data"],
        "BBBB"
    );
}

#[tokio::test]
async fn an_openai_script_plays_computer_calls() {
    let (calls, sent) = play("o.json", OPENAI).await;
    assert_eq!(
        calls,
        vec![ToolCall {
            id: "call_1".into(),
            name: "computer".into(),
            input: json!({"action": {"type": "type", "text": "Ada Lovelace"},
                "pending_safety_checks": [{"id": "cu_sc_1", "code": "sensitive_domain", "message": "Careful."}]}),
        }]
    );
    assert_eq!(sent[0]["tools"][0]["type"], "computer_use_preview");
    assert_eq!(sent[0]["truncation"], "auto");
    let input = sent[1]["input"].as_array().unwrap();
    let kinds: Vec<&str> = input
        .iter()
        .map(|i| i["type"].as_str().unwrap_or("message"))
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "reasoning",
            "computer_call",
            "computer_call_output"
        ]
    );
    assert_eq!(input[3]["acknowledged_safety_checks"][0]["id"], "cu_sc_1");
}

#[tokio::test]
async fn a_gemini_script_plays_computer_calls() {
    let (calls, sent) = play("g.yaml", GEMINI).await;
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["click_at", "key_combination"]);
    assert_eq!(
        calls[0].input["safety_decision"]["decision"],
        "require_confirmation"
    );
    assert_eq!(
        sent[0]["tools"][0]["computerUse"]["excludedPredefinedFunctions"],
        json!(["navigate"])
    );
    assert_eq!(
        sent[1]["contents"][1]["parts"][0]["thoughtSignature"],
        "c2lnLTE="
    );
    assert_eq!(
        sent[1]["contents"][2]["parts"][0]["functionResponse"]["response"]["safety_acknowledgement"],
        "true"
    );
}

/// Plays the first reply, lets `spoil` change the agent's answer, and returns the error
/// of the second request and the number of bodies the encoder wrote.
async fn refused(name: &str, script: &str, spoil: impl Fn(&mut ChatRequest)) -> (String, usize) {
    let model = model(name, script);
    let mut request = computer_request();
    let first = model.complete(&request).await.unwrap();
    answer(&mut request, &first);
    spoil(&mut request);
    let error = model.complete(&request).await.unwrap_err();
    assert!(matches!(error, ModelError::Unsupported { .. }), "{error:?}");
    (error.to_string(), model.requests().len())
}

fn drop_natives(request: &mut ChatRequest) {
    request.messages[1]
        .parts
        .retain(|p| !matches!(p, Part::Native { .. }));
}

fn drop_extra(request: &mut ChatRequest) {
    for part in &mut request.messages[2].parts {
        if let Part::ToolResult(result) = part {
            result.extra = None;
        }
    }
}

#[tokio::test]
async fn what_a_provider_would_refuse_fails_the_run() {
    // The body was written, and the checks refused it (it is kept for inspection).
    let checked = |(e, sent): (String, usize)| {
        assert_eq!(sent, 2, "{e}");
        e
    };
    let e = checked(
        refused("a.yaml", ANTHROPIC, |r| {
            r.messages[2].parts.pop();
        })
        .await,
    );
    assert!(e.contains("toolu_02") && e.contains("request 2"), "{e}");
    let e = checked(refused("a.yaml", ANTHROPIC, drop_natives).await);
    assert!(e.contains("thinking"), "{e}");

    // Without its native item a computer call cannot even be written.
    let (e, sent) = refused("o.json", OPENAI, drop_natives).await;
    assert!(e.contains("call_1") && sent == 1, "{e}");
    let e = checked(
        refused("o.json", OPENAI, |r| {
            r.messages[1].parts.remove(0);
        })
        .await,
    );
    assert!(e.contains("reply 1"), "{e}");
    let e = checked(refused("o.json", OPENAI, drop_extra).await);
    assert!(e.contains("cu_sc_1"), "{e}");

    let e = checked(refused("g.yaml", GEMINI, drop_natives).await);
    assert!(e.contains("thoughtSignature"), "{e}");
    let e = checked(refused("g.yaml", GEMINI, drop_extra).await);
    assert!(e.contains("safety_acknowledgement"), "{e}");
    let e = checked(
        refused("g.yaml", GEMINI, |r| {
            r.messages.truncate(1);
        })
        .await,
    );
    assert!(e.contains("model turns in the conversation: 0"), "{e}");
}

#[tokio::test]
async fn the_provider_format_example_in_the_docs_plays() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/models.md")).unwrap();
    let start = docs.find("```yaml\nformat: openai\n").expect("the example") + "```yaml\n".len();
    let example = &docs[start..start + docs[start..].find("```").unwrap()];
    let model = model("docs.yaml", example);
    let reply = model.complete(&computer_request()).await.unwrap();
    assert_eq!(reply.tool_calls().next().unwrap().input["action"]["x"], 400);
}
