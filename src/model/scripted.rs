//! The `scripted` model: replies read from a file, in order. It makes a pipeline run
//! deterministically with no network, for demos, the README and regression tests of agents.
//!
//! A reply may carry a `when` (text its request's system prompt or user messages contain,
//! whether it offers tools): each request gets the first reply not yet played whose `when`
//! it meets, so an agent's side requests (a session title asked for beside the first turn)
//! get their own replies whatever order they arrive in, and one script can serve several
//! tasks.
//!
//! A script is written in helios's own form (`text`, `tool_calls`, `usage`), or, with
//! `format: anthropic | openai | gemini`, as that provider's raw response bodies. In a
//! provider format each request is encoded by the provider's real encoder and checked as
//! the provider would check it ([`super::script_checks`]), and each reply is decoded by
//! the provider's real decoder, so an agent meets tool calls in their exact shapes.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use super::ModelParams;
use super::{
    Api, ChatRequest, ChatResponse, ModelClient, ModelError, Part, Role, StopReason, ToolCall,
    Usage, script_checks,
};

/// How a script's replies are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScriptFormat {
    /// helios's own form: `text`, `tool_calls`, `usage`.
    #[default]
    Neutral,
    /// A provider's response bodies, in the wire format that carries its computer tool
    /// (OpenAI's are Responses API bodies).
    Provider(Api),
}

impl ScriptFormat {
    /// What `format` may say.
    const NAMES: [&'static str; 4] = [
        "neutral",
        Api::Anthropic.name(),
        Api::OpenAi.name(),
        Api::Gemini.name(),
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScriptFormat::Neutral => "neutral",
            ScriptFormat::Provider(api) => api.name(),
        }
    }

    /// The provider whose bodies the script holds, and so whose computer tool it speaks.
    pub fn api(self) -> Option<Api> {
        match self {
            ScriptFormat::Neutral => None,
            ScriptFormat::Provider(api) => Some(api),
        }
    }
}

impl<'de> Deserialize<'de> for ScriptFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "neutral" => Ok(ScriptFormat::Neutral),
            _ => Api::from_name(&name)
                .map(ScriptFormat::Provider)
                .ok_or_else(|| serde::de::Error::unknown_variant(&name, &ScriptFormat::NAMES)),
        }
    }
}

/// Decodes a reply body with the provider's own decoder.
fn decode(api: Api, body: &Value) -> Result<ChatResponse, ModelError> {
    api.full_wire().parse(body.to_string().as_bytes())
}

/// Encodes a request with the provider's own encoder, as the HTTP client would.
fn encode(api: Api, request: &ChatRequest) -> Result<Value, ModelError> {
    api.full_wire()
        .body(MODEL, &ModelParams::default(), request)
}

/// The model name in the requests a scripted model encodes.
const MODEL: &str = "scripted";

/// A script: its format and the replies, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub format: ScriptFormat,
    pub replies: Vec<Scripted>,
}

/// A reply of a script and the requests it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Scripted {
    pub when: When,
    pub reply: ScriptReply,
}

/// Which requests a reply answers: every condition given must hold (none: every request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Text the request's system prompt contains.
    #[serde(default)]
    pub system: Option<String>,
    /// Text one of the request's user messages contains (its text, not tool results).
    #[serde(default)]
    pub user: Option<String>,
    /// Whether the request offers the model tools (function tools or a computer tool).
    #[serde(default)]
    pub tools: Option<bool>,
}

impl When {
    /// Whether `request` meets every condition.
    pub fn matches(&self, request: &ChatRequest) -> bool {
        let system = self.system.as_ref().is_none_or(|text| {
            request
                .system
                .as_ref()
                .is_some_and(|system| system.contains(text.as_str()))
        });
        let user = self.user.as_ref().is_none_or(|text| {
            request
                .messages
                .iter()
                .filter(|m| m.role == Role::User)
                .flat_map(|m| &m.parts)
                .any(|part| matches!(part, Part::Text { text: t } if t.contains(text.as_str())))
        });
        let tools = self
            .tools
            .is_none_or(|tools| tools == (!request.tools.is_empty() || request.computer.is_some()));
        system && user && tools
    }
}

/// One reply of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptReply {
    /// helios's own form.
    Neutral(ScriptedReply),
    /// A provider's response body, decoded when it is played.
    Provider(Value),
}

/// One reply: text and/or tool calls, and what it should count as in tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedReply {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ScriptedCall>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    pub name: String,
    #[serde(default = "empty_object")]
    pub input: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The file as written, before each reply is read in its format.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    #[serde(default)]
    format: ScriptFormat,
    replies: Vec<Value>,
}

/// Why a script could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("script `{path}`: {message}")]
pub struct ScriptError {
    pub path: String,
    pub message: String,
}

impl Script {
    /// Reads a script in YAML (`.yaml`, `.yml`), JSON (`.json`) or TOML (`.toml`); every
    /// reply is read (a provider's body decoded) now, so a broken one is found before a run.
    pub fn load(path: &Path) -> Result<Script, ScriptError> {
        let error = |message: String| ScriptError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let file: ScriptFile = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => serde_json::from_str(&text).map_err(|e| error(e.to_string()))?,
            Some("toml") => toml::from_str(&text).map_err(|e| error(e.message().to_string()))?,
            Some("yaml" | "yml") => {
                serde_saphyr::from_str(&text).map_err(|e| error(e.to_string()))?
            }
            _ => {
                return Err(error(
                    "a script is a .yaml, .yml, .json or .toml file".into(),
                ));
            }
        };
        Script::from_parts(file.format, file.replies).map_err(error)
    }

    /// A script from replies written in `format`; the error names the reply (from 1).
    pub fn from_parts(format: ScriptFormat, replies: Vec<Value>) -> Result<Script, String> {
        if replies.is_empty() {
            return Err("it has no replies".into());
        }
        let replies = replies
            .into_iter()
            .enumerate()
            .map(|(i, reply)| {
                read_scripted(format, reply).map_err(|e| format!("reply {}: {e}", i + 1))
            })
            .collect::<Result<_, _>>()?;
        Ok(Script { format, replies })
    }
}

/// A reply and its `when` (a key beside the reply's own, in either form).
fn read_scripted(format: ScriptFormat, mut reply: Value) -> Result<Scripted, String> {
    let when = match reply.as_object_mut().and_then(|o| o.remove("when")) {
        Some(when) => serde_json::from_value(when).map_err(|e| format!("`when`: {e}"))?,
        None => When::default(),
    };
    Ok(Scripted {
        when,
        reply: read_reply(format, reply)?,
    })
}

fn read_reply(format: ScriptFormat, reply: Value) -> Result<ScriptReply, String> {
    let ScriptFormat::Provider(api) = format else {
        return serde_json::from_value(reply)
            .map(ScriptReply::Neutral)
            .map_err(|e| e.to_string());
    };
    if !reply.is_object() {
        return Err(format!(
            "a reply of a `{}` script is the provider's response body, an object",
            api.name()
        ));
    }
    decode(api, &reply).map_err(|e| format!("the {} decoder cannot read it: {e}", api.name()))?;
    Ok(ScriptReply::Provider(reply))
}

/// A model that plays a script from its first reply; each trial gets its own.
pub struct ScriptedModel {
    script: Arc<Script>,
    /// The indexes of the replies played so far, in the order they were played.
    played: Mutex<Vec<usize>>,
    /// How many requests came so far.
    requests: AtomicUsize,
    /// The request bodies encoded so far (provider formats).
    sent: Mutex<Vec<Value>>,
}

impl ScriptedModel {
    pub fn new(script: Arc<Script>) -> ScriptedModel {
        ScriptedModel {
            script,
            played: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
            sent: Mutex::new(Vec::new()),
        }
    }

    /// The request bodies the provider's encoder wrote so far, oldest first (empty for a
    /// neutral script), to check what an agent would have sent.
    pub fn requests(&self) -> Vec<Value> {
        self.sent.lock().expect("not poisoned").clone()
    }

    fn play(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let number = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let (index, earlier) = self.choose(number, request)?;
        if let Some(api) = self.script.format.api() {
            self.check_request(api, number, &earlier, request)?;
        }
        match &self.script.replies[index].reply {
            ScriptReply::Neutral(reply) => Ok(neutral_response(index, reply)),
            ScriptReply::Provider(body) => match self.script.format.api() {
                Some(api) => decode(api, body),
                None => unreachable!("a neutral script holds no provider bodies"),
            },
        }
    }

    /// The first reply not yet played whose `when` the request meets, marked played, and
    /// the replies of its conversation (the same `when`) played before it, in order.
    fn choose(
        &self,
        number: usize,
        request: &ChatRequest,
    ) -> Result<(usize, Vec<usize>), ModelError> {
        let mut played = self.played.lock().expect("not poisoned");
        let replies = &self.script.replies;
        let Some(index) =
            (0..replies.len()).find(|i| !played.contains(i) && replies[*i].when.matches(request))
        else {
            let left = replies.len() - played.len();
            let message = if left == 0 {
                format!(
                    "the script has no reply {number} (it has {})",
                    replies.len()
                )
            } else {
                format!(
                    "no reply of the script is left for request {number}: the {left} not \
                     played yet have a `when` it does not meet ({})",
                    describe(request)
                )
            };
            return Err(ModelError::Malformed { message });
        };
        let earlier = played
            .iter()
            .copied()
            .filter(|i| replies[*i].when == replies[index].when)
            .collect();
        played.push(index);
        Ok((index, earlier))
    }

    /// Encodes the request, keeps the body, and refuses what the provider would refuse.
    fn check_request(
        &self,
        api: Api,
        number: usize,
        earlier: &[usize],
        request: &ChatRequest,
    ) -> Result<(), ModelError> {
        let body = encode(api, request)?;
        self.sent.lock().expect("not poisoned").push(body.clone());
        let played: Vec<&Value> = earlier
            .iter()
            .filter_map(|i| match &self.script.replies[*i].reply {
                ScriptReply::Provider(body) => Some(body),
                ScriptReply::Neutral(_) => None,
            })
            .collect();
        script_checks::check(api, &body, &played).map_err(|message| ModelError::Unsupported {
            provider: match api {
                Api::Anthropic => "Anthropic (scripted)",
                Api::OpenAi => "OpenAI Responses (scripted)",
                Api::Gemini => "Gemini (scripted)",
            },
            message: format!("request {number}: {message}"),
        })
    }
}

/// What a `when` looks at in a request, shortened, for an error.
fn describe(request: &ChatRequest) -> String {
    fn short(text: &str) -> String {
        let line = text.lines().next().unwrap_or_default();
        match line.char_indices().nth(60) {
            Some((end, _)) => format!("{}…", &line[..end]),
            None => line.to_string(),
        }
    }
    let user = request
        .messages
        .iter()
        .filter(|m| m.role == Role::User)
        .flat_map(|m| &m.parts)
        .find_map(|part| match part {
            Part::Text { text } => Some(short(text)),
            _ => None,
        });
    format!(
        "system prompt `{}`, first user text `{}`, {}",
        short(request.system.as_deref().unwrap_or_default()),
        user.unwrap_or_default(),
        if request.tools.is_empty() && request.computer.is_none() {
            "no tools"
        } else {
            "tools"
        }
    )
}

fn neutral_response(index: usize, reply: &ScriptedReply) -> ChatResponse {
    let mut parts = Vec::new();
    if let Some(text) = &reply.text {
        parts.push(Part::Text { text: text.clone() });
    }
    for (i, call) in reply.tool_calls.iter().enumerate() {
        parts.push(Part::ToolCall(ToolCall {
            id: format!("scripted_{}_{i}", index + 1),
            name: call.name.clone(),
            input: call.input.clone(),
        }));
    }
    ChatResponse {
        stop: if reply.tool_calls.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolUse
        },
        parts,
        usage: reply.usage.unwrap_or_default(),
    }
}

impl ModelClient for ScriptedModel {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ModelError>> {
        Box::pin(async move { self.play(request) })
    }
}

#[cfg(test)]
#[path = "scripted_tests.rs"]
mod tests;
