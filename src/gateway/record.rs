//! `agent/model-calls.jsonl`: one line per call through the gateway, with the request and
//! reply bodies, status, timing, usage and cost. Headers are not recorded, so neither the
//! trial's token nor any key is.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::ErrorKind;
use crate::model::Usage;

/// Where a trial's calls are recorded, in its directory.
pub const CALLS_FILE: &str = "agent/model-calls.jsonl";

/// One call, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// 1 for the trial's first call.
    pub seq: u32,
    pub started_at: String,
    pub duration_ms: f64,
    /// The request's path, without its query (which may hold a key).
    pub path: String,
    /// `anthropic`, `openai-chat`, `openai-responses` or `gemini`.
    pub format: String,
    pub stream: bool,
    pub status: u16,
    /// The model the agent asked for; the call went to the pipeline's model whatever it
    /// was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_model: Option<String>,
    /// The body as the agent sent it (a string when it was not JSON).
    pub request: Value,
    /// The reply's body; for a streamed reply, the same reply unstreamed.
    pub response: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CallError>,
}

/// Why a call was not answered by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
}

/// A body as recorded: its JSON, or its text when it is not JSON.
pub(super) fn body_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Appends one call to the trial's file. Recording is best effort: a call is answered even
/// when its line cannot be written (the trial's directory gone, a full disk).
pub(super) fn append(trial_dir: &Path, record: &CallRecord) -> std::io::Result<()> {
    let path = trial_dir.join(CALLS_FILE);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

/// Reads a trial's recorded calls back (for reports, tests and the viewer).
pub fn read_calls(trial_dir: &Path) -> std::io::Result<Vec<CallRecord>> {
    let text = match std::fs::read_to_string(trial_dir.join(CALLS_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).map_err(std::io::Error::other))
        .collect()
}
