//! The model gateway: one HTTP server per run that agents inside sandboxes call instead of
//! a provider. Each trial gets a random token as its API key; the gateway maps the token to
//! the trial, forwards the call to the model the pipeline chose for it (with the host's key,
//! which never enters a sandbox), records every call, and enforces the agent's limits.
//!
//! It speaks the providers' own formats, so official SDKs and CLIs work unchanged:
//! Anthropic Messages (and `count_tokens`), OpenAI Chat Completions and Responses, Gemini
//! `generateContent` and `streamGenerateContent`, and the model lists. See the "gateway"
//! section of docs/models.md.

mod call;
mod http;
mod record;
mod tell;
mod vars;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::agent::AgentLimits;
use crate::events::{ErrorKind, RunEvent, TrialIndex};
use crate::model::Usage;
use crate::model::runtime::ModelRuntime;

pub use record::{CALLS_FILE, CallError, CallRecord, read_calls};
pub use vars::{VARIABLES, merge as merge_env};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {address} for the model gateway")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The model one trial's calls go to, and the limits they are held to.
#[derive(Debug, Clone)]
pub struct Route {
    pub model: ModelRuntime,
    /// `max_turns` counts model calls here; a limit left out is not enforced.
    pub limits: AgentLimits,
}

/// The run's gateway. Dropping it stops the server.
pub struct Gateway {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// What the server and the leases share: the open trials by token.
#[derive(Default)]
struct Shared {
    trials: Mutex<HashMap<String, Arc<call::Slot>>>,
}

impl Shared {
    fn slot(&self, token: &str) -> Option<Arc<call::Slot>> {
        self.trials
            .lock()
            .expect("the token table is never poisoned")
            .get(token)
            .cloned()
    }
}

impl Gateway {
    /// Starts a gateway listening on `host` (the address sandboxes see this machine on) at
    /// a port the system picks.
    pub async fn start(host: IpAddr) -> Result<Gateway, GatewayError> {
        let address = SocketAddr::new(host, 0);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| GatewayError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| GatewayError::Bind { address, source })?;
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let service_shared = shared.clone();
        tokio::spawn(crate::serve::serve(
            listener,
            move || http::Service::new(service_shared.clone()),
            stop.clone(),
        ));
        Ok(Gateway {
            address,
            shared,
            stop,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Opens a trial: its calls go to `route`, are recorded in `trial_dir`, and are accepted
    /// until the lease is closed. With `events`, each model turn is told there as it
    /// happens (`agent_turn`, `agent_text`, `tool_call`, `tool_result`), as helios's own
    /// model loop tells its turns.
    pub fn open(
        &self,
        route: &Route,
        trial_dir: PathBuf,
        session_id: &str,
        events: Option<(UnboundedSender<RunEvent>, TrialIndex)>,
    ) -> Lease {
        let token = new_token();
        let teller = events.map(|(sender, index)| tell::Teller::new(sender, index));
        let slot = Arc::new(call::Slot::new(route, trial_dir, session_id, teller));
        self.shared
            .trials
            .lock()
            .expect("the token table is never poisoned")
            .insert(token.clone(), slot.clone());
        let env = vars::for_trial(self.address, &token, &route.model);
        Lease {
            token,
            shared: self.shared.clone(),
            slot,
            env,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One trial's access to the gateway.
pub struct Lease {
    token: String,
    shared: Arc<Shared>,
    slot: Arc<call::Slot>,
    env: BTreeMap<String, String>,
}

impl Lease {
    /// The variables the trial's agent runs with: base URLs and the token as API key.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// The trial's token (its API key at the gateway).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Ends the trial's access (its token is refused from now on), writes an ATIF
    /// trajectory built from its calls, and says what the calls came to.
    pub fn close(self) -> GatewayUsage {
        self.shared
            .trials
            .lock()
            .expect("the token table is never poisoned")
            .remove(&self.token);
        self.slot.silence();
        self.slot.finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A lease dropped without `close` (a cancelled trial) still stops its token.
        if let Ok(mut trials) = self.shared.trials.lock() {
            trials.remove(&self.token);
        }
        self.slot.silence();
    }
}

/// What one trial's calls through the gateway came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayUsage {
    /// Calls answered by the model.
    pub calls: u32,
    pub usage: Usage,
    /// `None` when the model's price is unknown.
    pub cost_usd: Option<f64>,
    /// The limit the trial reached, with the message the agent was sent.
    pub limit: Option<(ErrorKind, String)>,
}

/// 32 random bytes, hex: a token nobody can guess.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator works");
    format!("helios-{}", hex::encode(bytes))
}
