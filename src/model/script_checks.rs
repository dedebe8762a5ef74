//! What a provider would refuse in a request, checked by the scripted model on the bodies
//! it encodes: model turns not sent back as they were received (thinking blocks, reasoning
//! items, thought signatures), calls without results and results without calls, safety
//! checks not acknowledged. So an agent's mistakes show without a network.

use serde_json::Value;

use super::Api;

/// Checks an encoded request `body` (in `api`'s full wire format) against the reply bodies
/// `played` before it.
pub(crate) fn check(api: Api, body: &Value, played: &[&Value]) -> Result<(), String> {
    match api {
        Api::Anthropic => anthropic(body, played),
        Api::OpenAi => openai(body, played),
        Api::Gemini => gemini(body, played),
    }
}

fn list<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The model's turns must come back in order, one per reply played.
fn same_count(turns: usize, played: usize) -> Result<(), String> {
    if turns == played {
        Ok(())
    } else {
        Err(format!(
            "every reply played must be sent back, in order (model turns in the \
             conversation: {turns}, replies played: {played})"
        ))
    }
}

// --- Anthropic --------------------------------------------------------------------------

/// The blocks of a turn the API wants back unchanged: tool calls and thinking (text may
/// differ), as the encoder writes them.
fn anthropic_kept(block: &Value) -> Option<Value> {
    match str_at(block, "/type") {
        "tool_use" => Some(serde_json::json!({"type": "tool_use", "id": block["id"],
            "name": block["name"], "input": block["input"]})),
        "thinking" | "redacted_thinking" => Some(block.clone()),
        _ => None,
    }
}

fn anthropic(body: &Value, played: &[&Value]) -> Result<(), String> {
    let messages = list(body, "/messages");
    let assistant: Vec<usize> = (0..messages.len())
        .filter(|&i| str_at(&messages[i], "/role") == "assistant")
        .collect();
    same_count(assistant.len(), played.len())?;
    for (k, (&at, reply)) in assistant.iter().zip(played).enumerate() {
        let expected: Vec<Value> = list(reply, "/content")
            .iter()
            .filter_map(anthropic_kept)
            .collect();
        let content = list(&messages[at], "/content");
        let kept: Vec<Value> = content.iter().filter_map(anthropic_kept).collect();
        if kept != expected {
            return Err(format!(
                "assistant turn {} does not hold the tool_use and thinking blocks of reply {} \
                 as received",
                k + 1,
                k + 1
            ));
        }
        let calls: Vec<&str> = content
            .iter()
            .filter(|b| str_at(b, "/type") == "tool_use")
            .map(|b| str_at(b, "/id"))
            .collect();
        let next = messages.get(at + 1);
        let results: Vec<&str> = next
            .filter(|m| str_at(m, "/role") == "user")
            .map(|m| list(m, "/content"))
            .unwrap_or(&[])
            .iter()
            .filter(|b| str_at(b, "/type") == "tool_result")
            .map(|b| str_at(b, "/tool_use_id"))
            .collect();
        let mut sorted_calls = calls.clone();
        let mut sorted_results = results.clone();
        sorted_calls.sort_unstable();
        sorted_results.sort_unstable();
        if sorted_calls != sorted_results {
            return Err(format!(
                "the tool_use blocks {calls:?} of assistant turn {} need tool_result blocks \
                 for exactly those ids in the next user message (found {results:?})",
                k + 1
            ));
        }
    }
    Ok(())
}

// --- OpenAI Responses -------------------------------------------------------------------

fn openai(body: &Value, played: &[&Value]) -> Result<(), String> {
    let input = list(body, "/input");
    // Every item of every reply comes back, unchanged and in order.
    let mut from = 0;
    for (k, reply) in played.iter().enumerate() {
        let output = list(reply, "/output");
        let found = (from..=input.len().saturating_sub(output.len()))
            .find(|&i| input.get(i..i + output.len()) == Some(output));
        match found {
            Some(i) => from = i + output.len(),
            None => {
                return Err(format!(
                    "the output items of reply {} are not sent back unchanged and in order \
                     (reasoning and computer_call items included)",
                    k + 1
                ));
            }
        }
    }
    for (i, item) in input.iter().enumerate() {
        let kind = str_at(item, "/type");
        let answer = match kind {
            "computer_call" => "computer_call_output",
            "function_call" => "function_call_output",
            _ => continue,
        };
        let call_id = str_at(item, "/call_id");
        let Some(output) = input[i + 1..]
            .iter()
            .find(|o| str_at(o, "/type") == answer && str_at(o, "/call_id") == call_id)
        else {
            return Err(format!("{kind} `{call_id}` has no {answer}"));
        };
        if kind == "computer_call" {
            if str_at(output, "/output/type") != "computer_screenshot"
                || !str_at(output, "/output/image_url").starts_with("data:image/")
            {
                return Err(format!(
                    "the computer_call_output of `{call_id}` is not a computer_screenshot \
                     with an image data URL"
                ));
            }
            let acknowledged: Vec<&str> = list(output, "/acknowledged_safety_checks")
                .iter()
                .map(|c| str_at(c, "/id"))
                .collect();
            for pending in list(item, "/pending_safety_checks") {
                let id = str_at(pending, "/id");
                if !acknowledged.contains(&id) {
                    return Err(format!(
                        "the pending safety check `{id}` of computer_call `{call_id}` is not \
                         in its output's acknowledged_safety_checks"
                    ));
                }
            }
        }
    }
    for (i, item) in input.iter().enumerate() {
        let call = match str_at(item, "/type") {
            "computer_call_output" => "computer_call",
            "function_call_output" => "function_call",
            _ => continue,
        };
        let call_id = str_at(item, "/call_id");
        if !input[..i]
            .iter()
            .any(|c| str_at(c, "/type") == call && str_at(c, "/call_id") == call_id)
        {
            return Err(format!(
                "an output answers `{call_id}`, which no earlier {call} has"
            ));
        }
    }
    Ok(())
}

// --- Gemini -----------------------------------------------------------------------------

fn gemini(body: &Value, played: &[&Value]) -> Result<(), String> {
    let contents = list(body, "/contents");
    let model: Vec<usize> = (0..contents.len())
        .filter(|&i| str_at(&contents[i], "/role") == "model")
        .collect();
    same_count(model.len(), played.len())?;
    for (k, (&at, reply)) in model.iter().zip(played).enumerate() {
        let parts = list(&contents[at], "/parts");
        if parts != list(reply, "/candidates/0/content/parts") {
            return Err(format!(
                "model turn {} is not reply {} as received (every part, thoughtSignature \
                 included)",
                k + 1,
                k + 1
            ));
        }
        let calls: Vec<&Value> = parts.iter().filter_map(|p| p.get("functionCall")).collect();
        let responses: Vec<&Value> = contents
            .get(at + 1)
            .filter(|c| str_at(c, "/role") == "user")
            .map(|c| list(c, "/parts"))
            .unwrap_or(&[])
            .iter()
            .filter_map(|p| p.get("functionResponse"))
            .collect();
        let names = |items: &[&Value]| -> Vec<String> {
            items
                .iter()
                .map(|v| str_at(v, "/name").to_string())
                .collect()
        };
        if names(&calls) != names(&responses) {
            return Err(format!(
                "the function calls {:?} of model turn {} need one functionResponse each, \
                 in order, in the next user turn (found {:?})",
                names(&calls),
                k + 1,
                names(&responses)
            ));
        }
        for (call, response) in calls.iter().zip(&responses) {
            let confirm = str_at(call, "/args/safety_decision/decision") == "require_confirmation";
            if confirm && str_at(response, "/response/safety_acknowledgement") != "true" {
                return Err(format!(
                    "`{}` of model turn {} requires confirmation; its functionResponse needs \
                     \"safety_acknowledgement\": \"true\"",
                    str_at(call, "/name"),
                    k + 1
                ));
            }
        }
    }
    Ok(())
}
