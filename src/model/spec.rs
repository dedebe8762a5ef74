//! What a pipeline's `[models.NAME]` says about a model: its id, where it is reached, its
//! sampling parameters and prices. The manifest reads these; the model layer owns them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[models.NAME]`: a model an agent talks to.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// `provider/model` (`anthropic/claude-sonnet-4-20250514`), a bare `claude-*`,
    /// `gpt-*`, `o1*`/`o3*`/`o4*` or `gemini-*` id whose provider is inferred, or
    /// `scripted` (replies from `script`).
    #[schemars(length(min = 1))]
    pub id: String,
    /// API endpoint, for OpenAI-compatible servers (vLLM, Ollama, LiteLLM, ...).
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key (default per provider).
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub api_key_env: Option<String>,
    /// Requests in flight to this model at once, across all trials.
    #[schemars(range(min = 1))]
    pub max_connections: Option<u32>,
    /// Sampling parameters sent with every request.
    #[serde(default)]
    pub params: ModelParams,
    /// For `id = "scripted"`: the file of replies (each request gets the first not yet
    /// played whose `when` it meets), relative to the pipeline file.
    pub script: Option<String>,
    /// Prices in US dollars per million tokens, instead of helios's price table.
    pub price: Option<Price>,
    /// Retries of a failed request (429, 5xx, timeouts, dropped connections); default 5.
    pub max_retries: Option<u32>,
    /// Seconds one request may take (default 600).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub request_timeout_sec: Option<f64>,
}

/// What a model costs, in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[schemars(range(min = 0.0))]
    pub input_per_mtok: f64,
    #[schemars(range(min = 0.0))]
    pub output_per_mtok: f64,
    /// Input tokens read from the prompt cache (default: the input price).
    #[schemars(range(min = 0.0))]
    pub cached_input_per_mtok: Option<f64>,
}

/// Sampling parameters of a model.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub top_p: Option<f64>,
    /// Most tokens one reply may have.
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u32>,
    pub seed: Option<i64>,
    #[serde(default)]
    pub stop: Vec<String>,
    /// Provider-specific fields merged into the request body as they are.
    #[serde(default)]
    pub extra: BTreeMap<String, Value>,
}
