//! One trial at the gateway and one call of it: the request decoded from the agent's
//! format, checked against the trial's limits, answered by the trial's model, encoded back
//! in the agent's format, and recorded.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::GatewayUsage;
use super::record::{self, CallError, CallRecord};
use super::tell::Teller;
use crate::agent::AgentLimits;
use crate::agent::call_log::{self, Exchange};
use crate::events::{ErrorKind, now_rfc3339};
use crate::model::pricing::Rates;
use crate::model::serve::{Decoded, ServeErrorKind, SseEvent};
use crate::model::{ChatRequest, ChatResponse, ModelClient, Usage, Wire};

/// The agent name in trajectories built from calls.
const AGENT_NAME: &str = "gateway";

/// One open trial.
pub(super) struct Slot {
    client: Arc<dyn ModelClient>,
    model_id: String,
    rates: Option<Rates>,
    limits: AgentLimits,
    dir: PathBuf,
    session_id: String,
    state: Mutex<State>,
    /// Where the trial's model turns are told, if anywhere.
    teller: Option<Teller>,
}

#[derive(Default)]
struct State {
    /// Calls received, answered or not.
    seq: u32,
    /// Calls let through to the model (each one of `max_turns`).
    admitted: u32,
    /// Calls the model answered.
    answered: u32,
    usage: Usage,
    limit: Option<(ErrorKind, String)>,
    exchanges: Vec<Exchange>,
}

/// A call as the HTTP layer hands it over.
pub(super) struct Incoming<'a> {
    pub wire: Wire,
    /// The path without its query, for the record.
    pub path: &'a str,
    pub body: &'a [u8],
}

/// A reply, ready for the HTTP layer.
pub(super) struct Reply {
    pub status: u16,
    pub body: ReplyBody,
}

pub(super) enum ReplyBody {
    Json(serde_json::Value),
    /// A streamed reply, and the same reply unstreamed (what the call is recorded as).
    Events {
        events: Vec<SseEvent>,
        unstreamed: serde_json::Value,
    },
}

impl Reply {
    pub(super) fn error(wire: Wire, kind: ServeErrorKind, message: &str) -> Reply {
        let (status, body) = wire.encode_error(kind, message);
        Reply {
            status,
            body: ReplyBody::Json(body),
        }
    }
}

impl Slot {
    pub(super) fn new(
        route: &super::Route,
        dir: PathBuf,
        session_id: &str,
        teller: Option<Teller>,
    ) -> Slot {
        Slot {
            client: route.model.client(),
            model_id: route.model.id.clone(),
            rates: route.model.rates,
            limits: route.limits.clone(),
            dir,
            session_id: session_id.to_string(),
            state: Mutex::new(State::default()),
            teller,
        }
    }

    /// Tells no more of the trial's turns (its lease ended).
    pub(super) fn silence(&self) {
        if let Some(teller) = &self.teller {
            teller.silence();
        }
    }

    /// The id (`provider/model`) of the model the trial's calls go to.
    pub(super) fn model_id(&self) -> &str {
        &self.model_id
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("a slot's state is never poisoned")
    }

    /// Answers one call and records it.
    pub(super) async fn call(&self, incoming: Incoming<'_>) -> Reply {
        let started_at = now_rfc3339();
        let clock = Instant::now();
        let seq = {
            let mut state = self.state();
            state.seq += 1;
            state.seq
        };
        let decoded = incoming.wire.decode_request(incoming.path, incoming.body);
        let (reply, decoded, outcome) = match decoded {
            Err(e) => {
                let message = e.to_string();
                let reply = Reply::error(incoming.wire, e.kind(), &message);
                let error = CallError {
                    kind: ErrorKind::ModelBadRequest,
                    message,
                };
                (reply, None, Err(error))
            }
            Ok(decoded) => {
                let (reply, outcome) = self.answer(incoming.wire, seq, &decoded).await;
                (reply, Some(decoded), outcome)
            }
        };
        let (usage, cost_usd, error) = match &outcome {
            Ok(response) => (
                Some(response.usage),
                self.rates.map(|r| r.cost(&response.usage)),
                None,
            ),
            Err(error) => (None, None, Some(error.clone())),
        };
        let record = CallRecord {
            seq,
            started_at,
            duration_ms: clock.elapsed().as_secs_f64() * 1000.0,
            path: incoming.path.to_string(),
            format: format_name(incoming.wire).to_string(),
            stream: decoded.as_ref().is_some_and(|d| d.stream),
            status: reply.status,
            requested_model: decoded.as_ref().and_then(|d| d.model.clone()),
            request: record::body_value(incoming.body),
            response: match &reply.body {
                ReplyBody::Json(body) => body.clone(),
                ReplyBody::Events { unstreamed, .. } => unstreamed.clone(),
            },
            usage,
            cost_usd,
            error,
        };
        let _ = record::append(&self.dir, &record);
        reply
    }

    /// The limits check, the model's answer, and the accounting, for a decoded call.
    async fn answer(
        &self,
        wire: Wire,
        seq: u32,
        decoded: &Decoded,
    ) -> (Reply, Result<ChatResponse, CallError>) {
        if let Err((kind, message)) = self.admit() {
            let reply = Reply::error(wire, ServeErrorKind::LimitReached, &message);
            return (reply, Err(CallError { kind, message }));
        }
        if let Some(teller) = &self.teller {
            teller.request(&decoded.request);
        }
        match self.client.complete(&decoded.request).await {
            Err(error) => {
                let message = error.to_string();
                let reply = Reply::error(wire, ServeErrorKind::of(&error), &message);
                let kind = ErrorKind::from(&error);
                (reply, Err(CallError { kind, message }))
            }
            Ok(response) => {
                let turn = self.account(&decoded.request, &response);
                if let Some(teller) = &self.teller {
                    teller.reply(turn, &response);
                }
                let id = reply_id(wire, seq);
                let unstreamed = wire.encode_response(&self.model_id, &id, &response);
                let body = if decoded.stream {
                    ReplyBody::Events {
                        events: wire.encode_stream(
                            &self.model_id,
                            &id,
                            &response,
                            decoded.include_usage,
                        ),
                        unstreamed,
                    }
                } else {
                    ReplyBody::Json(unstreamed)
                };
                (Reply { status: 200, body }, Ok(response))
            }
        }
    }

    /// Lets a call through, or says which limit stops it. `max_turns` is counted as calls
    /// let through, so calls made at once cannot pass it together.
    fn admit(&self) -> Result<(), (ErrorKind, String)> {
        let mut state = self.state();
        if let Some(limit) = &state.limit {
            return Err(limit.clone());
        }
        if let Some(max) = self.limits.max_turns
            && state.admitted >= max
        {
            let limit = (
                ErrorKind::MaxTurns,
                format!("helios: the trial's limit of {max} model calls (max_turns) is reached"),
            );
            state.limit = Some(limit.clone());
            return Err(limit);
        }
        state.admitted += 1;
        Ok(())
    }

    /// Adds a reply's usage; a reply that passes `max_tokens` or `max_cost_usd` is still
    /// delivered (it was paid for), and every later call is refused. Returns the call's
    /// turn: how many calls the model has answered, this one included.
    fn account(&self, request: &ChatRequest, response: &ChatResponse) -> u32 {
        let mut state = self.state();
        state.answered += 1;
        let turn = state.answered;
        state.usage += response.usage;
        state.exchanges.push(Exchange {
            request: request.clone(),
            response: response.clone(),
            timestamp: now_rfc3339(),
        });
        if state.limit.is_some() {
            return turn;
        }
        let used = state.usage.input_tokens + state.usage.output_tokens;
        if let Some(max) = self.limits.max_tokens
            && used > max
        {
            state.limit = Some((
                ErrorKind::TokenLimit,
                format!(
                    "helios: the trial used {used} tokens, past its limit of {max} (max_tokens)"
                ),
            ));
        } else if let (Some(max), Some(rates)) = (self.limits.max_cost_usd, self.rates) {
            let spent = rates.cost(&state.usage);
            if spent > max {
                state.limit = Some((
                    ErrorKind::CostLimit,
                    format!(
                        "helios: the trial spent ${spent:.6}, past its limit of ${max} (max_cost_usd)"
                    ),
                ));
            }
        }
        turn
    }

    /// What the trial's calls came to, with its trajectory written when it made any.
    pub(super) fn finish(&self) -> GatewayUsage {
        let state = self.state();
        if !state.exchanges.is_empty() {
            let trajectory = call_log::from_exchanges(
                &self.session_id,
                AGENT_NAME,
                &self.model_id,
                self.rates,
                &state.exchanges,
            );
            let path = self.dir.join(crate::store::TRAJECTORY_FILE);
            if let Ok(bytes) = serde_json::to_vec_pretty(&trajectory) {
                let _ = crate::atomic::write_atomic(&path, &bytes);
            }
        }
        GatewayUsage {
            calls: state.answered,
            usage: state.usage,
            cost_usd: self.rates.map(|r| r.cost(&state.usage)),
            limit: state.limit.clone(),
        }
    }
}

/// The reply's id, in the provider's style.
fn reply_id(wire: Wire, seq: u32) -> String {
    let prefix = match wire {
        Wire::Anthropic => "msg_helios",
        Wire::OpenAiChat => "chatcmpl-helios",
        Wire::OpenAiResponses => "resp_helios",
        Wire::Gemini => "helios",
    };
    format!("{prefix}_{seq:06}")
}

/// The name of a format in records.
pub(super) fn format_name(wire: Wire) -> &'static str {
    match wire {
        Wire::Anthropic => "anthropic",
        Wire::OpenAiChat => "openai-chat",
        Wire::OpenAiResponses => "openai-responses",
        Wire::Gemini => "gemini",
    }
}

/// SSE events as the bytes of a stream.
pub(super) fn event_bytes(events: &[SseEvent]) -> Bytes {
    Bytes::from(
        events
            .iter()
            .flat_map(SseEvent::to_bytes)
            .collect::<Vec<u8>>(),
    )
}
