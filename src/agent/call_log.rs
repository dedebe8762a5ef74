//! ATIF trajectories of agents that write none of their own, built from the model calls
//! they made through the gateway: the conversation as each request carried it, the model's
//! replies with their tool calls, and the tool results as the agent sent them back.

use super::trajectory::{
    ATIF_VERSION, AgentInfo, Content, FinalMetrics, ObservationResult, Source, Step, StepMetrics,
    ToolCallRecord, Trajectory,
};
use crate::model::pricing::Rates;
use crate::model::{ChatRequest, ChatResponse, Message, Part, Role, Usage};

/// One answered call.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub request: ChatRequest,
    pub response: ChatResponse,
    /// When the reply arrived (RFC 3339).
    pub timestamp: String,
}

/// The trajectory of a trial's calls, in order. Each request carries the whole conversation
/// so far; when it continues the previous call's conversation (its earlier messages and the
/// reply), only what is new becomes steps, so a conversation of many calls reads as one.
pub fn from_exchanges(
    session_id: &str,
    agent_name: &str,
    model_id: &str,
    rates: Option<Rates>,
    exchanges: &[Exchange],
) -> Trajectory {
    let mut builder = Builder {
        steps: Vec::new(),
        system: None,
    };
    let mut previous: Option<Vec<Message>> = None;
    let mut usage = Usage::default();
    for exchange in exchanges {
        let messages = &exchange.request.messages;
        let new = match &previous {
            Some(conversation) if continues(messages, conversation) => {
                &messages[conversation.len()..]
            }
            _ => &messages[..],
        };
        builder.system(exchange.request.system.as_deref(), &exchange.timestamp);
        for message in new {
            builder.message(message, &exchange.timestamp);
        }
        builder.reply(&exchange.response, model_id, rates, &exchange.timestamp);
        usage += exchange.response.usage;
        let mut conversation = messages.clone();
        conversation.push(Message {
            role: Role::Assistant,
            parts: exchange.response.parts.clone(),
        });
        previous = Some(conversation);
    }
    let total_steps = builder.steps.len() as u32;
    Trajectory {
        schema_version: ATIF_VERSION.to_string(),
        session_id: session_id.to_string(),
        agent: AgentInfo {
            name: agent_name.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            model_name: Some(model_id.to_string()),
        },
        steps: builder.steps,
        notes: Some("built by helios from the agent's model calls through the gateway".into()),
        final_metrics: FinalMetrics {
            total_prompt_tokens: usage.input_tokens,
            total_completion_tokens: usage.output_tokens,
            total_cached_tokens: usage.cached_tokens,
            total_cost_usd: rates.map(|r| r.cost(&usage)),
            total_steps,
        },
    }
}

/// Whether `messages` continues `conversation`: it is longer and begins with the same
/// messages. The assistant's turns are compared by their text and tool calls only, since
/// agents send replies back in their own shape (ids kept, provider extras dropped).
fn continues(messages: &[Message], conversation: &[Message]) -> bool {
    messages.len() > conversation.len()
        && messages
            .iter()
            .zip(conversation)
            .all(|(sent, had)| same_turn(sent, had))
}

fn same_turn(a: &Message, b: &Message) -> bool {
    let gist = |m: &Message| -> Vec<String> {
        m.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(format!("text:{}", text.trim())),
                Part::ToolCall(call) => Some(format!("call:{}", call.id)),
                Part::ToolResult(result) => Some(format!("result:{}", result.call_id)),
                Part::Image(_) => Some("image".into()),
                Part::Native { .. } => None,
            })
            .collect()
    };
    a.role == b.role && gist(a) == gist(b)
}

struct Builder {
    steps: Vec<Step>,
    system: Option<String>,
}

impl Builder {
    fn push(&mut self, source: Source, message: String, timestamp: &str) -> &mut Step {
        self.steps.push(Step {
            step_id: self.steps.len() as u32 + 1,
            timestamp: timestamp.to_string(),
            source,
            model_name: None,
            message,
            tool_calls: Vec::new(),
            observation: None,
            metrics: None,
        });
        self.steps.last_mut().expect("just pushed")
    }

    /// A system step when the system prompt is new or changed.
    fn system(&mut self, system: Option<&str>, timestamp: &str) {
        if let Some(system) = system
            && self.system.as_deref() != Some(system)
        {
            self.system = Some(system.to_string());
            self.push(Source::System, system.to_string(), timestamp);
        }
    }

    /// A message the agent sent: its tool results become the observation of the step whose
    /// call they answer, its text a user step. (An assistant message here is one the agent
    /// wrote into the conversation itself, kept as it was.)
    fn message(&mut self, message: &Message, timestamp: &str) {
        let mut text = Vec::new();
        for part in &message.parts {
            match part {
                Part::Text { text: t } => text.push(t.clone()),
                Part::ToolResult(result) => {
                    let observed = ObservationResult {
                        source_call_id: Some(result.call_id.clone()),
                        content: Content::Text(result.output.clone()),
                    };
                    match self.step_calling(&result.call_id) {
                        Some(step) => step
                            .observation
                            .get_or_insert_with(|| super::trajectory::Observation {
                                results: Vec::new(),
                            })
                            .results
                            .push(observed),
                        None => text.push(format!(
                            "[tool result for {}] {}",
                            result.call_id, result.output
                        )),
                    }
                }
                Part::Image(_) => text.push("[image]".into()),
                Part::ToolCall(_) | Part::Native { .. } => {}
            }
        }
        if !text.is_empty() {
            let source = match message.role {
                Role::User => Source::User,
                Role::Assistant => Source::Agent,
            };
            self.push(source, text.join("\n"), timestamp);
        }
    }

    fn step_calling(&mut self, call_id: &str) -> Option<&mut Step> {
        self.steps
            .iter_mut()
            .rev()
            .find(|s| s.tool_calls.iter().any(|c| c.tool_call_id == call_id))
    }

    fn reply(&mut self, reply: &ChatResponse, model_id: &str, rates: Option<Rates>, at: &str) {
        let step = self.push(Source::Agent, reply.text(), at);
        step.model_name = Some(model_id.to_string());
        step.tool_calls = reply
            .tool_calls()
            .map(|c| ToolCallRecord {
                tool_call_id: c.id.clone(),
                function_name: c.name.clone(),
                arguments: c.input.clone(),
            })
            .collect();
        step.metrics = Some(StepMetrics {
            prompt_tokens: reply.usage.input_tokens,
            completion_tokens: reply.usage.output_tokens,
            cached_tokens: reply.usage.cached_tokens,
            cost_usd: rates.map(|r| r.cost(&reply.usage)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{StopReason, ToolCall, ToolResult};
    use serde_json::json;

    fn exchange(messages: Vec<Message>, reply: Vec<Part>) -> Exchange {
        Exchange {
            request: ChatRequest {
                system: Some("Be brief.".into()),
                messages,
                ..ChatRequest::default()
            },
            response: ChatResponse {
                parts: reply,
                stop: StopReason::EndTurn,
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 2,
                    cached_tokens: 0,
                },
            },
            timestamp: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_conversation_of_several_calls_reads_as_one_with_tool_results_as_observations() {
        let user = Message::user_text("Write hello.txt");
        let call = ToolCall {
            id: "call_1".into(),
            name: "write_file".into(),
            input: json!({"path": "hello.txt"}),
        };
        let assistant = Message {
            role: Role::Assistant,
            parts: vec![Part::ToolCall(call.clone())],
        };
        let result = Message {
            role: Role::User,
            parts: vec![Part::ToolResult(ToolResult::text(
                "call_1",
                "write_file",
                "written",
                false,
            ))],
        };
        let trajectory = from_exchanges(
            "t",
            "gateway",
            "scripted/demo",
            None,
            &[
                exchange(vec![user.clone()], vec![Part::ToolCall(call)]),
                exchange(
                    vec![user, assistant, result],
                    vec![Part::Text {
                        text: "Done.".into(),
                    }],
                ),
            ],
        );
        let sources: Vec<Source> = trajectory.steps.iter().map(|s| s.source).collect();
        assert_eq!(
            sources,
            [Source::System, Source::User, Source::Agent, Source::Agent]
        );
        let steps = trajectory.tool_steps();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].tool_name, "write_file");
        assert_eq!(steps[0].tool_output, "written");
        assert_eq!(trajectory.steps[3].message, "Done.");
        assert_eq!(trajectory.final_metrics.total_prompt_tokens, 20);
        assert_eq!(trajectory.final_metrics.total_steps, 4);
    }

    #[test]
    fn calls_that_start_over_each_bring_their_whole_conversation() {
        let trajectory = from_exchanges(
            "t",
            "gateway",
            "m",
            None,
            &[
                exchange(
                    vec![Message::user_text("one")],
                    vec![Part::Text { text: "1".into() }],
                ),
                exchange(
                    vec![Message::user_text("two")],
                    vec![Part::Text { text: "2".into() }],
                ),
            ],
        );
        let messages: Vec<&str> = trajectory
            .steps
            .iter()
            .map(|s| s.message.as_str())
            .collect();
        assert_eq!(messages, ["Be brief.", "one", "1", "two", "2"]);
    }
}
