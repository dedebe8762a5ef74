//! The ATIF trajectory of an agent that ran in its sandbox, rebuilt from the model calls
//! it made through the gateway (each request as the agent sent it, and its reply).
//!
//! Steps: the first request's system prompt, then per call the user's new text (the
//! messages after the conversation's last reply, unless the request repeats the one before
//! it, as a retry does) and an agent step with the reply's text and tool calls. An agent
//! step's observation is the tool results of the first later request that carries that
//! reply on (matched by call id). Images of results are left out (the trajectory has no
//! files of them). Calls outside the conversation (an agent's side calls, such as a
//! title) are agent steps too: a reply is a step whatever it was for.

use std::collections::HashSet;

use super::trajectory::{
    ATIF_VERSION, AgentInfo, Content, FinalMetrics, Observation, ObservationResult, Source, Step,
    StepMetrics, ToolCallRecord, Trajectory,
};
use crate::model::{ChatRequest, ChatResponse, Message, Part, Role};

/// One model call of a trial, as the gateway recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    pub request: ChatRequest,
    pub response: ChatResponse,
    /// When the call was made, RFC 3339.
    pub timestamp: String,
    pub cost_usd: Option<f64>,
}

/// The trajectory of one trial's calls, in the order they were made.
pub fn trajectory_from_calls(
    session_id: &str,
    agent: AgentInfo,
    calls: &[RecordedCall],
) -> Trajectory {
    let mut steps: Vec<Step> = Vec::new();
    let step = |steps: &Vec<Step>, source, message, timestamp: &str| Step {
        step_id: steps.len() as u32 + 1,
        timestamp: timestamp.to_string(),
        source,
        model_name: None,
        message,
        tool_calls: Vec::new(),
        observation: None,
        metrics: None,
    };
    if let Some(first) = calls.first()
        && let Some(system) = &first.request.system
    {
        steps.push(step(
            &steps,
            Source::System,
            system.clone(),
            &first.timestamp,
        ));
    }
    let mut metrics = FinalMetrics::default();
    let mut costs = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let latest = latest_turn(&call.request);
        let repeated = i > 0 && latest == latest_turn(&calls[i - 1].request);
        if !repeated {
            for message in latest {
                let text = user_text(message);
                if !text.is_empty() {
                    steps.push(step(&steps, Source::User, text, &call.timestamp));
                }
            }
        }
        let usage = call.response.usage;
        let mut agent_step = step(&steps, Source::Agent, call.response.text(), &call.timestamp);
        agent_step.model_name = agent.model_name.clone();
        agent_step.tool_calls = call
            .response
            .tool_calls()
            .map(|c| ToolCallRecord {
                tool_call_id: c.id.clone(),
                function_name: c.name.clone(),
                arguments: c.input.clone(),
            })
            .collect();
        agent_step.observation = observation(&call.response, &calls[i + 1..]);
        agent_step.metrics = Some(StepMetrics {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            cached_tokens: usage.cached_tokens,
            cost_usd: call.cost_usd,
        });
        steps.push(agent_step);
        metrics.total_prompt_tokens += usage.input_tokens;
        metrics.total_completion_tokens += usage.output_tokens;
        metrics.total_cached_tokens += usage.cached_tokens;
        costs.extend(call.cost_usd);
    }
    metrics.total_cost_usd = (!costs.is_empty()).then(|| costs.iter().sum());
    metrics.total_steps = steps.len() as u32;
    Trajectory {
        schema_version: ATIF_VERSION.to_string(),
        session_id: session_id.to_string(),
        agent,
        steps,
        notes: None,
        final_metrics: metrics,
    }
}

/// The messages after the conversation's last reply: what the agent sends the model anew.
fn latest_turn(request: &ChatRequest) -> &[Message] {
    let start = request
        .messages
        .iter()
        .rposition(|m| m.role == Role::Assistant)
        .map_or(0, |i| i + 1);
    &request.messages[start..]
}

fn user_text(message: &Message) -> String {
    message
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The results of a reply's calls, from the first later request that answers any of them.
fn observation(response: &ChatResponse, later: &[RecordedCall]) -> Option<Observation> {
    let ids: HashSet<&str> = response.tool_calls().map(|c| c.id.as_str()).collect();
    if ids.is_empty() {
        return None;
    }
    later.iter().find_map(|call| {
        let results: Vec<ObservationResult> = latest_turn(&call.request)
            .iter()
            .flat_map(|m| &m.parts)
            .filter_map(|part| match part {
                Part::ToolResult(result) if ids.contains(result.call_id.as_str()) => {
                    Some(ObservationResult {
                        source_call_id: Some(result.call_id.clone()),
                        content: Content::Text(result.output.clone()),
                    })
                }
                _ => None,
            })
            .collect();
        (!results.is_empty()).then_some(Observation { results })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::agent::trajectory::ToolStep;
    use crate::model::{StopReason, ToolCall, ToolResult, Usage};

    fn reply(text: &str, calls: &[(&str, &str)], tokens: u64) -> ChatResponse {
        let mut parts = vec![Part::Text { text: text.into() }];
        parts.extend(calls.iter().map(|(id, command)| {
            Part::ToolCall(ToolCall {
                id: id.to_string(),
                name: "bash".into(),
                input: json!({"command": command}),
            })
        }));
        ChatResponse {
            parts,
            stop: StopReason::EndTurn,
            usage: Usage {
                input_tokens: tokens,
                output_tokens: 10,
                cached_tokens: 1,
            },
        }
    }

    fn results(outputs: &[(&str, &str)]) -> Message {
        Message {
            role: Role::User,
            parts: outputs
                .iter()
                .map(|(id, out)| Part::ToolResult(ToolResult::text(*id, "bash", *out, false)))
                .collect(),
        }
    }

    #[test]
    fn calls_make_steps_with_their_observations() {
        let first = reply("Looking.", &[("c1", "ls"), ("c2", "pwd")], 100);
        let second = reply("Done.", &[], 200);
        let mut request = ChatRequest {
            system: Some("You are an agent.".into()),
            messages: vec![Message::user_text("make a file")],
            ..ChatRequest::default()
        };
        let mut calls = vec![RecordedCall {
            request: request.clone(),
            response: first.clone(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            cost_usd: Some(0.5),
        }];
        request.messages.push(Message {
            role: Role::Assistant,
            parts: first.parts.clone(),
        });
        let mut answer = results(&[("c2", "/app"), ("c1", "a.txt")]);
        answer.parts.push(Part::Text {
            text: "also, hurry".into(),
        });
        request.messages.push(answer);
        let second_call = RecordedCall {
            request,
            response: second,
            timestamp: "2026-01-01T00:00:05Z".into(),
            cost_usd: Some(0.25),
        };
        // A retry of the second request: a step of its own, no second user step.
        calls.extend([second_call.clone(), second_call]);
        let agent = AgentInfo {
            name: "claude-code".into(),
            version: "2.0".into(),
            model_name: Some("anthropic/claude-sonnet-4-5".into()),
        };
        let trajectory = trajectory_from_calls("trial-1", agent, &calls);
        let sources: Vec<(Source, &str)> = trajectory
            .steps
            .iter()
            .map(|s| (s.source, s.message.as_str()))
            .collect();
        assert_eq!(
            sources,
            [
                (Source::System, "You are an agent."),
                (Source::User, "make a file"),
                (Source::Agent, "Looking."),
                (Source::User, "also, hurry"),
                (Source::Agent, "Done."),
                (Source::Agent, "Done."),
            ]
        );
        assert_eq!(
            trajectory.tool_steps(),
            [
                ToolStep {
                    tool_name: "bash".into(),
                    tool_input: json!({"command": "ls"}),
                    tool_output: "a.txt".into()
                },
                ToolStep {
                    tool_name: "bash".into(),
                    tool_input: json!({"command": "pwd"}),
                    tool_output: "/app".into()
                },
            ]
        );
        let ids: Vec<u32> = trajectory.steps.iter().map(|s| s.step_id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        assert_eq!(trajectory.steps[4].timestamp, "2026-01-01T00:00:05Z");
        let totals = &trajectory.final_metrics;
        assert_eq!(
            (
                totals.total_prompt_tokens,
                totals.total_completion_tokens,
                totals.total_cached_tokens
            ),
            (500, 30, 3)
        );
        assert_eq!(totals.total_cost_usd, Some(1.0));
        assert_eq!(totals.total_steps, 6);
        assert_eq!(
            trajectory.steps[2].metrics.as_ref().unwrap().cost_usd,
            Some(0.5)
        );
    }

    #[test]
    fn no_calls_no_steps() {
        let agent = AgentInfo {
            name: "a".into(),
            version: "1".into(),
            model_name: None,
        };
        let trajectory = trajectory_from_calls("t", agent, &[]);
        assert!(trajectory.steps.is_empty());
        assert_eq!(trajectory.final_metrics, FinalMetrics::default());
    }
}
