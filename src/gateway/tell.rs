//! The run's events for an installed agent's model turns (`agent_turn`, `agent_text`,
//! `tool_call`, `tool_result`), told from the calls that pass the gateway, as helios's own
//! model loop tells its own: an installed agent runs its loop in its container, and the
//! gateway is where helios sees it.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::mpsc::UnboundedSender;

use crate::events::{RunEvent, TrialIndex};
use crate::model::{ChatRequest, ChatResponse, Part, Role};

/// Where one trial's turns are told.
pub(super) struct Teller {
    /// Taken when the trial's lease ends: a call still in flight then (its agent killed, a
    /// slow model) tells nothing after its trial's end, nor holds the run's stream open.
    sender: Mutex<Option<UnboundedSender<RunEvent>>>,
    index: TrialIndex,
    /// The tool results told, by the assistant message that made the call (its place in
    /// the conversation) and the call's id: an agent sends its whole conversation with
    /// every call (and again when it retries one), and each result is told once. Ids alone
    /// are not enough: Gemini's may repeat from turn to turn (`call_0`).
    told_results: Mutex<HashSet<(usize, String)>>,
}

impl Teller {
    pub(super) fn new(sender: UnboundedSender<RunEvent>, index: TrialIndex) -> Teller {
        Teller {
            sender: Mutex::new(Some(sender)),
            index,
            told_results: Mutex::default(),
        }
    }

    /// Tells nothing more: the trial is over.
    pub(super) fn silence(&self) {
        self.sender
            .lock()
            .expect("the sender is never poisoned")
            .take();
    }

    fn send(&self, event: RunEvent) {
        if let Some(sender) = &*self.sender.lock().expect("the sender is never poisoned") {
            // A run whose receiver is gone has no one left to tell.
            let _ = sender.send(event);
        }
    }

    /// Tells the results of the agent's tool calls that a request carries back to the
    /// model for the first time: those after the conversation's last assistant message.
    pub(super) fn request(&self, request: &ChatRequest) {
        let last_reply = request
            .messages
            .iter()
            .rposition(|m| m.role == Role::Assistant);
        let Some(last_reply) = last_reply else {
            return;
        };
        let calls = &request.messages[last_reply].parts;
        let mut told = self
            .told_results
            .lock()
            .expect("the told results are never poisoned");
        for part in request.messages[last_reply + 1..]
            .iter()
            .flat_map(|m| &m.parts)
        {
            let Part::ToolResult(result) = part else {
                continue;
            };
            if !told.insert((last_reply, result.call_id.clone())) {
                continue;
            }
            // Some formats (Anthropic's) name a result's call by id only.
            let name = if result.name.is_empty() {
                calls
                    .iter()
                    .find_map(|p| match p {
                        Part::ToolCall(call) if call.id == result.call_id => {
                            Some(call.name.clone())
                        }
                        _ => None,
                    })
                    .unwrap_or_default()
            } else {
                result.name.clone()
            };
            self.send(RunEvent::ToolResult {
                index: self.index,
                name,
                output: result.output.clone(),
                is_error: result.is_error,
                images: Vec::new(),
            });
        }
    }

    /// Tells the model's reply to the trial's `turn`th answered call: the turn, its text,
    /// and the tools it asks the agent to call.
    pub(super) fn reply(&self, turn: u32, response: &ChatResponse) {
        self.send(RunEvent::AgentTurn {
            index: self.index,
            turn,
        });
        let text = response.text();
        if !text.is_empty() {
            self.send(RunEvent::AgentText {
                index: self.index,
                text,
            });
        }
        for call in response.tool_calls() {
            self.send(RunEvent::ToolCall {
                index: self.index,
                name: call.name.clone(),
                input: call.input.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Message, ToolCall, ToolResult};
    use tokio::sync::mpsc::unbounded_channel;

    fn assistant_calling(id: &str, name: &str) -> Message {
        Message {
            role: Role::Assistant,
            parts: vec![Part::ToolCall(ToolCall {
                id: id.into(),
                name: name.into(),
                input: serde_json::json!({"command": "ls"}),
            })],
        }
    }

    fn results(call_id: &str) -> Message {
        Message {
            role: Role::User,
            parts: vec![Part::ToolResult(ToolResult::text(
                call_id, "", "a.txt", false,
            ))],
        }
    }

    #[test]
    fn each_tool_result_is_told_once_with_the_name_of_its_call() {
        let (sender, mut events) = unbounded_channel();
        let teller = Teller::new(sender, TrialIndex(3));
        let mut request = ChatRequest {
            messages: vec![Message::user_text("list the files")],
            ..ChatRequest::default()
        };
        teller.request(&request);
        request.messages.push(assistant_calling("c1", "bash"));
        request.messages.push(results("c1"));
        teller.request(&request);
        // The same conversation again (a retried call), then one more turn.
        teller.request(&request);
        request.messages.push(assistant_calling("c2", "bash"));
        request.messages.push(results("c2"));
        teller.request(&request);
        let mut told = Vec::new();
        while let Ok(event) = events.try_recv() {
            told.push(event);
        }
        assert_eq!(told.len(), 2, "{told:?}");
        for event in told {
            let RunEvent::ToolResult {
                index,
                name,
                output,
                ..
            } = event
            else {
                panic!("{event:?}");
            };
            assert_eq!(
                (index, name.as_str(), output.as_str()),
                (TrialIndex(3), "bash", "a.txt")
            );
        }
    }

    fn told(events: &mut tokio::sync::mpsc::UnboundedReceiver<RunEvent>) -> Vec<RunEvent> {
        let mut told = Vec::new();
        while let Ok(event) = events.try_recv() {
            told.push(event);
        }
        told
    }

    #[test]
    fn a_call_id_that_repeats_from_turn_to_turn_is_told_each_turn() {
        // Gemini's calls carry no ids; they are numbered in each reply (`call_0`).
        let (sender, mut events) = unbounded_channel();
        let teller = Teller::new(sender, TrialIndex(0));
        let mut request = ChatRequest {
            messages: vec![Message::user_text("go")],
            ..ChatRequest::default()
        };
        for _ in 0..3 {
            request.messages.push(assistant_calling("call_0", "bash"));
            request.messages.push(results("call_0"));
            teller.request(&request);
        }
        assert_eq!(told(&mut events).len(), 3);
    }

    #[test]
    fn a_silenced_teller_tells_nothing_more() {
        let (sender, mut events) = unbounded_channel();
        let teller = Teller::new(sender, TrialIndex(0));
        teller.silence();
        let reply = ChatResponse {
            parts: vec![Part::Text {
                text: "late".into(),
            }],
            stop: crate::model::StopReason::EndTurn,
            usage: Default::default(),
        };
        teller.reply(1, &reply);
        assert!(told(&mut events).is_empty());
        assert!(
            matches!(
                events.try_recv(),
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
            ),
            "and the run's stream is not held open"
        );
    }
}
