//! The loop every model-driven agent runs: ask the model, carry out its tool calls with a
//! [`Toolbox`] (bash for `terminal`, the desktop for `computer-use`), record each step in
//! the ATIF trajectory, and stop when the agent finishes or a limit is reached.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::agent::ResolvedLimits;
use crate::agent::trajectory::{
    ATIF_VERSION, AgentInfo, Content, FinalMetrics, Observation, ObservationResult, Source, Step,
    StepMetrics, ToolCallRecord, Trajectory,
};
use crate::env::EnvError;
use crate::events::now_rfc3339;
use crate::events::{ErrorKind, RunEvent, TrialIndex};
use crate::model::pricing::Rates;
use crate::model::{
    ChatRequest, ChatResponse, ComputerTool, Message, ModelClient, ModelError, Part, Role,
    ToolCall, ToolResult, ToolSpec, Usage,
};

/// How a model-driven run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The model called `finish`.
    Finished,
    /// The model answered without calling a tool.
    EndedTurn,
    MaxTurns(u32),
    /// `max_time` (or the task's agent timeout) passed.
    TimedOut(f64),
    /// One model turn took longer than `timeout_per_turn`.
    TurnTimedOut(f64),
    TokenLimit(u64),
    CostLimit(f64),
    /// A tool call failed and `stop_on_tool_error` is set.
    ToolError(String),
    /// A provider's safety check asked for confirmation and the policy refuses.
    SafetyRefused(String),
    Model(ModelError),
}

impl Ending {
    /// The error kind and message recorded for endings that are not a clean finish.
    pub fn error(&self) -> Option<(ErrorKind, String)> {
        Some(match self {
            Ending::Finished | Ending::EndedTurn => return None,
            Ending::MaxTurns(n) => (
                ErrorKind::MaxTurns,
                format!("the agent used all {n} turns without finishing"),
            ),
            Ending::TimedOut(s) => (
                ErrorKind::AgentTimeout,
                format!("the agent did not finish within {s}s"),
            ),
            Ending::TurnTimedOut(s) => (
                ErrorKind::TurnTimeout,
                format!("a model turn took longer than {s}s"),
            ),
            Ending::TokenLimit(n) => (
                ErrorKind::TokenLimit,
                format!("the agent used more than {n} tokens"),
            ),
            Ending::CostLimit(c) => (
                ErrorKind::CostLimit,
                format!("the agent spent more than ${c}"),
            ),
            Ending::ToolError(m) => (
                ErrorKind::ToolError,
                format!("a tool call failed and stop_on_tool_error is set: {m}"),
            ),
            Ending::SafetyRefused(m) => (ErrorKind::SafetyRefused, m.clone()),
            Ending::Model(e) => (ErrorKind::from(e), e.to_string()),
        })
    }

    /// Whether the ending is a timeout (the trial's status is then `timed_out`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Ending::TimedOut(_) | Ending::TurnTimedOut(_))
    }
}

/// What a model-driven run did.
#[derive(Debug, Clone)]
pub struct LoopOutcome {
    pub ending: Ending,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub turns: u32,
}

/// The opening user message: its parts for the model and its content for the trajectory.
pub struct Opening {
    pub parts: Vec<Part>,
    pub content: Content,
}

/// A tool call carried out.
pub struct Handled {
    pub result: ToolResult,
    /// What the trajectory records (text, and the paths of saved images).
    pub content: Content,
    /// The agent declared the task finished.
    pub finished: bool,
    /// The run must end here.
    pub stop: Option<Ending>,
}

/// What one reply's tool calls came to.
#[derive(Default)]
struct TurnOutcome {
    results: Vec<ToolResult>,
    observed: Vec<ObservationResult>,
    finished: bool,
    /// The first failed call's output.
    tool_error: Option<String>,
    stop: Option<Ending>,
}

/// What an agent can do: its tools, how it opens, how it carries out a call.
pub trait Toolbox: Send {
    fn tools(&self) -> Vec<ToolSpec>;
    /// The provider's native computer tool, for computer-use agents.
    fn computer(&self) -> Option<ComputerTool> {
        None
    }
    /// The first user message, from the rendered user prompt.
    fn opening<'a>(&'a mut self, prompt: &'a str) -> BoxFuture<'a, Result<Opening, EnvError>> {
        Box::pin(async move {
            Ok(Opening {
                parts: vec![Part::Text {
                    text: prompt.to_string(),
                }],
                content: Content::Text(prompt.to_string()),
            })
        })
    }
    /// Trims the conversation before a request (old screenshots, for computer use).
    fn prune(&self, _messages: &mut [Message]) {}
    /// Carries out one call with at most `limit` of time left.
    fn call<'a>(
        &'a mut self,
        call: &'a ToolCall,
        limit: Duration,
    ) -> BoxFuture<'a, Result<Handled, EnvError>>;
}

/// Everything one run needs apart from its toolbox.
pub struct ModelLoop {
    /// The agent's name in the trajectory (`helios-terminal`).
    pub agent_name: String,
    pub model: Arc<dyn ModelClient>,
    /// `provider/model`, for the trajectory.
    pub model_id: String,
    pub rates: Option<Rates>,
    pub system_prompt: String,
    pub user_prompt: String,
    pub limits: ResolvedLimits,
    /// The task's `[agent] timeout_sec`; the run ends at the earlier of it and `max_time`.
    pub task_timeout: Option<Duration>,
    pub trajectory_path: PathBuf,
    pub session_id: String,
    /// Where to report text, tool calls and results as they happen, and the trial's index.
    pub events: Option<(tokio::sync::mpsc::UnboundedSender<RunEvent>, TrialIndex)>,
}

impl ModelLoop {
    pub async fn run(self, toolbox: &mut impl Toolbox) -> Result<LoopOutcome, EnvError> {
        let started = Instant::now();
        let limits = &self.limits;
        let max_time = Duration::from_secs_f64(limits.max_time);
        let budget = self.task_timeout.map_or(max_time, |t| t.min(max_time));
        let per_turn = Duration::from_secs_f64(limits.timeout_per_turn);
        let mut trajectory = self.new_trajectory();
        let mut request = self.opening(toolbox, &mut trajectory).await?;
        let mut usage = Usage::default();
        let mut turns = 0;
        let ending = loop {
            if turns >= limits.max_turns {
                break Ending::MaxTurns(limits.max_turns);
            }
            let Some(remaining) = budget
                .checked_sub(started.elapsed())
                .filter(|d| !d.is_zero())
            else {
                break Ending::TimedOut(budget.as_secs_f64());
            };
            turns += 1;
            toolbox.prune(&mut request.messages);
            let reply =
                match tokio::time::timeout(per_turn.min(remaining), self.model.complete(&request))
                    .await
                {
                    Err(_) if remaining <= per_turn => {
                        break Ending::TimedOut(budget.as_secs_f64());
                    }
                    Err(_) => break Ending::TurnTimedOut(limits.timeout_per_turn),
                    Ok(Err(error)) => break Ending::Model(error),
                    Ok(Ok(reply)) => reply,
                };
            usage += reply.usage;
            self.emit(|index| RunEvent::AgentTurn { index, turn: turns });
            let calls: Vec<_> = reply.tool_calls().cloned().collect();
            let mut step = self.agent_step(&trajectory, &reply, &calls);
            request.messages.push(Message {
                role: Role::Assistant,
                parts: reply.parts.clone(),
            });
            if calls.is_empty() {
                trajectory.steps.push(step);
                break Ending::EndedTurn;
            }
            let deadline =
                |started: Instant| per_turn.min(budget.saturating_sub(started.elapsed()));
            let turn = self
                .carry_out(toolbox, &calls, || deadline(started))
                .await?;
            step.observation = Some(Observation {
                results: turn.observed,
            });
            trajectory.steps.push(step);
            request.messages.push(Message {
                role: Role::User,
                parts: turn.results.into_iter().map(Part::ToolResult).collect(),
            });
            self.write(&mut trajectory, &usage);
            if let Some(stop) = turn.stop {
                break stop;
            }
            if turn.finished {
                break Ending::Finished;
            }
            if let Some(ending) = self.limit_passed(turn.tool_error, &usage) {
                break ending;
            }
        };
        if let Some((kind, message)) = ending.error() {
            trajectory.notes = Some(format!("{kind}: {message}"));
        }
        self.write(&mut trajectory, &usage);
        Ok(LoopOutcome {
            cost_usd: self.rates.map(|r| r.cost(&usage)),
            ending,
            usage,
            turns,
        })
    }

    /// An empty ATIF trajectory of this agent and model.
    fn new_trajectory(&self) -> Trajectory {
        Trajectory {
            schema_version: ATIF_VERSION.to_string(),
            session_id: self.session_id.clone(),
            agent: AgentInfo {
                name: self.agent_name.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                model_name: Some(self.model_id.clone()),
            },
            steps: Vec::new(),
            notes: None,
            final_metrics: FinalMetrics::default(),
        }
    }

    /// The system and user steps, and the first request (with the opening screenshot of a
    /// desktop, which the user step records as its observation).
    async fn opening(
        &self,
        toolbox: &mut impl Toolbox,
        trajectory: &mut Trajectory,
    ) -> Result<ChatRequest, EnvError> {
        self.push_step(trajectory, Source::System, self.system_prompt.clone());
        let opening = toolbox.opening(&self.user_prompt).await?;
        self.push_step(trajectory, Source::User, self.user_prompt.clone());
        if let Content::Parts(_) = &opening.content
            && let Some(step) = trajectory.steps.last_mut()
        {
            step.observation = Some(Observation {
                results: vec![ObservationResult {
                    source_call_id: None,
                    content: opening.content.clone(),
                }],
            });
        }
        Ok(ChatRequest {
            system: Some(self.system_prompt.clone()),
            messages: vec![Message {
                role: Role::User,
                parts: opening.parts,
            }],
            tools: toolbox.tools(),
            computer: toolbox.computer(),
        })
    }

    /// The trajectory step of a model reply (its observation comes once the calls ran).
    fn agent_step(
        &self,
        trajectory: &Trajectory,
        reply: &ChatResponse,
        calls: &[ToolCall],
    ) -> Step {
        let text = reply.text();
        if !text.is_empty() {
            self.emit(|index| RunEvent::AgentText {
                index,
                text: text.clone(),
            });
        }
        Step {
            step_id: trajectory.steps.len() as u32 + 1,
            timestamp: now_rfc3339(),
            source: Source::Agent,
            model_name: Some(self.model_id.clone()),
            message: text,
            tool_calls: calls
                .iter()
                .map(|c| ToolCallRecord {
                    tool_call_id: c.id.clone(),
                    function_name: c.name.clone(),
                    arguments: c.input.clone(),
                })
                .collect(),
            observation: None,
            metrics: Some(StepMetrics {
                prompt_tokens: reply.usage.input_tokens,
                completion_tokens: reply.usage.output_tokens,
                cached_tokens: reply.usage.cached_tokens,
                cost_usd: self.rates.map(|r| r.cost(&reply.usage)),
            }),
        }
    }

    /// Carries out one reply's tool calls in order, each within `deadline()`, until one
    /// asks the run to stop.
    async fn carry_out(
        &self,
        toolbox: &mut impl Toolbox,
        calls: &[ToolCall],
        deadline: impl Fn() -> Duration,
    ) -> Result<TurnOutcome, EnvError> {
        let mut turn = TurnOutcome::default();
        for call in calls {
            self.emit(|index| RunEvent::ToolCall {
                index,
                name: call.name.clone(),
                input: call.input.clone(),
            });
            let handled = toolbox.call(call, deadline()).await?;
            turn.finished |= handled.finished;
            let result = handled.result;
            if result.is_error && turn.tool_error.is_none() {
                turn.tool_error = Some(result.output.clone());
            }
            self.emit(|index| RunEvent::ToolResult {
                index,
                name: call.name.clone(),
                output: handled.content.text(),
                is_error: result.is_error,
                images: handled
                    .content
                    .image_paths()
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            });
            turn.observed.push(ObservationResult {
                source_call_id: Some(call.id.clone()),
                content: handled.content,
            });
            turn.results.push(result);
            if handled.stop.is_some() {
                turn.stop = handled.stop;
                break;
            }
        }
        Ok(turn)
    }

    /// The limit a turn passed, if any: a tool error with `stop_on_tool_error`, tokens,
    /// or cost.
    fn limit_passed(&self, tool_error: Option<String>, usage: &Usage) -> Option<Ending> {
        let limits = &self.limits;
        if let (Some(message), true) = (tool_error, limits.stop_on_tool_error) {
            return Some(Ending::ToolError(message));
        }
        if let Some(max) = limits
            .max_tokens
            .filter(|&m| usage.input_tokens + usage.output_tokens > m)
        {
            return Some(Ending::TokenLimit(max));
        }
        let spent = self.rates.map(|r| r.cost(usage));
        match (limits.max_cost_usd, spent) {
            (Some(max), Some(spent)) if spent > max => Some(Ending::CostLimit(max)),
            _ => None,
        }
    }

    fn emit(&self, event: impl FnOnce(TrialIndex) -> RunEvent) {
        if let Some((sender, index)) = &self.events {
            let _ = sender.send(event(*index));
        }
    }

    fn push_step(&self, trajectory: &mut Trajectory, source: Source, message: String) {
        trajectory.steps.push(Step {
            step_id: trajectory.steps.len() as u32 + 1,
            timestamp: now_rfc3339(),
            source,
            model_name: None,
            message,
            tool_calls: Vec::new(),
            observation: None,
            metrics: None,
        });
    }

    fn write(&self, trajectory: &mut Trajectory, usage: &Usage) {
        trajectory.final_metrics = FinalMetrics {
            total_prompt_tokens: usage.input_tokens,
            total_completion_tokens: usage.output_tokens,
            total_cached_tokens: usage.cached_tokens,
            total_cost_usd: self.rates.map(|r| r.cost(usage)),
            total_steps: trajectory.steps.len() as u32,
        };
        let mut bytes = serde_json::to_vec_pretty(&trajectory).expect("trajectories serialize");
        bytes.push(b'\n');
        // A trajectory that cannot be written must not end the trial; the result says so.
        if let Err(e) = crate::atomic::write_atomic(&self.trajectory_path, &bytes) {
            eprintln!(
                "helios: cannot write {}: {e}",
                self.trajectory_path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_map_to_kinds() {
        assert_eq!(Ending::Finished.error(), None);
        assert_eq!(Ending::MaxTurns(3).error().unwrap().0, ErrorKind::MaxTurns);
        assert_eq!(
            Ending::SafetyRefused("x".into()).error().unwrap().0,
            ErrorKind::SafetyRefused
        );
        assert!(Ending::TimedOut(1.0).is_timeout());
        assert_eq!(
            Ending::Model(ModelError::Timeout { seconds: 1.0 })
                .error()
                .unwrap()
                .0,
            ErrorKind::ModelTimeout
        );
    }
}
