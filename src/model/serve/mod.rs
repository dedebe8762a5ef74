//! The server side of each wire format: requests decoded and replies encoded as the provider
//! would, for the gateway.
//!
//! An agent in a sandbox speaks its provider's format to the gateway (an official SDK, a
//! CLI, curl). [`Wire::decode_request`] reads its body into helios's neutral
//! [`ChatRequest`]; the gateway asks a [`super::ModelClient`] for a [`ChatResponse`];
//! [`Wire::encode_response`] or [`Wire::encode_stream`] answers in the caller's format, and
//! [`Wire::encode_error`] refuses in it. Each format is the inverse of the client-side codec
//! of the same name (`super::anthropic`, `super::openai`, ...): a request the client encodes
//! decodes back to itself, and a reply encoded here parses back with the client's parser,
//! up to the normalisations each submodule lists.
//!
//! Normalisations common to every format:
//! - a tool result's `name` is the name of the call it answers (Anthropic and OpenAI
//!   results carry only the call's id), empty when no call in the conversation has that id;
//! - several system texts (a list of blocks, `system`/`developer` messages) are joined
//!   with a blank line into one system prompt;
//! - a tool without a schema gets the empty object schema
//!   `{"type": "object", "properties": {}}`.

mod anthropic;
mod gemini;
mod openai_chat;
mod responses;
mod sse;

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{ChatRequest, ChatResponse, Image, ModelError, Part, Usage, Wire};
pub use sse::{SseEvent, parse_sse};

/// A request as the gateway needs it: the conversation, and what the caller asked of the
/// reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub request: ChatRequest,
    /// The caller wants the reply as a server-sent event stream.
    pub stream: bool,
    /// The model the caller named (in the body, or in the path for Gemini).
    pub model: Option<String>,
    /// `max_tokens`, `max_completion_tokens`, `max_output_tokens` or
    /// `generationConfig.maxOutputTokens`.
    pub max_output_tokens: Option<u64>,
    /// OpenAI Chat's `stream_options.include_usage`: a streamed reply ends with a usage
    /// chunk.
    pub include_usage: bool,
    /// What the request held that helios's conversation cannot carry and was left out (a
    /// provider's server-side tools), one line each, for the gateway's log.
    pub ignored: Vec<String>,
}

impl Decoded {
    fn new(request: ChatRequest) -> Decoded {
        Decoded {
            request,
            stream: false,
            model: None,
            max_output_tokens: None,
            include_usage: false,
            ignored: Vec::new(),
        }
    }
}

/// Why a request body could not be decoded. Paths are JSON paths into the body
/// (`messages[2].content[0].tool_use_id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServeError {
    #[error("the request body is not JSON: {message}")]
    NotJson { message: String },
    #[error("`{path}` is required")]
    Missing { path: String },
    #[error("`{path}` {message}")]
    Invalid { path: String, message: String },
    #[error("`{path}` is not supported: {message}")]
    Unsupported { path: String, message: String },
    #[error("`{path}` is not a Gemini model route (expected `.../models/MODEL:generateContent`)")]
    Route { path: String },
}

impl ServeError {
    /// How the error is answered: an unknown route is not found, anything else a bad
    /// request.
    pub fn kind(&self) -> ServeErrorKind {
        match self {
            ServeError::Route { .. } => ServeErrorKind::NotFound,
            _ => ServeErrorKind::BadRequest,
        }
    }
}

/// What went wrong, as [`Wire::encode_error`] answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeErrorKind {
    /// The body is malformed or asks for what the gateway cannot do (HTTP 400).
    BadRequest,
    /// The token is not one the gateway issued (HTTP 401).
    Auth,
    /// An unknown route or model (HTTP 404).
    NotFound,
    /// One of the agent's helios limits (turns, tokens, cost, time) is used up. Answered as a
    /// 400 invalid request, which the official SDKs and CLIs do not retry.
    LimitReached,
    /// The model behind the gateway failed, passed on with its status (429 rate limited,
    /// 500, 503, 529 overloaded, ...), which the SDKs retry as they would the provider's.
    Upstream { status: u16 },
}

impl ServeErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ServeErrorKind::BadRequest | ServeErrorKind::LimitReached => 400,
            ServeErrorKind::Auth => 401,
            ServeErrorKind::NotFound => 404,
            ServeErrorKind::Upstream { status } => status,
        }
    }

    /// How a failed model call is passed on to the agent. A refused request stays a bad
    /// request (an overlong conversation included, so agents that compact on it do); a
    /// provider that refused helios's own key is a server failure to the agent, whose token
    /// was fine; timeouts and lost connections are 504 and 502.
    pub fn of(error: &ModelError) -> ServeErrorKind {
        let upstream = |status| ServeErrorKind::Upstream { status };
        match error {
            ModelError::RateLimited { .. } => upstream(429),
            ModelError::Server { status, .. } if *status >= 500 => upstream(*status),
            ModelError::Server { status: 408, .. } | ModelError::Timeout { .. } => upstream(504),
            ModelError::Server { .. } | ModelError::Connection { .. } => upstream(502),
            ModelError::Malformed { .. } => upstream(502),
            ModelError::MissingKey { .. } | ModelError::Auth { .. } => upstream(500),
            ModelError::UnknownModel { .. } => ServeErrorKind::NotFound,
            ModelError::ContextOverflow { .. }
            | ModelError::BadRequest { .. }
            | ModelError::Unsupported { .. } => ServeErrorKind::BadRequest,
        }
    }
}

impl Wire {
    /// A request body as the agent sent it to `path`. Only Gemini reads the path, which
    /// names its model and whether it streams (`/v1beta/models/MODEL:streamGenerateContent`);
    /// the other formats say both in the body.
    pub fn decode_request(self, path: &str, body: &[u8]) -> Result<Decoded, ServeError> {
        self.decode(path, body, false)
    }

    /// The body of a token count (Anthropic's `POST /v1/messages/count_tokens`, which has no
    /// `max_tokens`; Gemini's `:countTokens`, whose request may be wrapped in
    /// `generateContentRequest`), for [`count_tokens_estimate`].
    pub fn decode_count_tokens(self, path: &str, body: &[u8]) -> Result<Decoded, ServeError> {
        self.decode(path, body, true)
    }

    fn decode(self, path: &str, body: &[u8], counting: bool) -> Result<Decoded, ServeError> {
        let body: Value = serde_json::from_slice(body).map_err(|e| ServeError::NotJson {
            message: e.to_string(),
        })?;
        let root = body.as_object().ok_or_else(|| ServeError::Invalid {
            path: "body".into(),
            message: "is not a JSON object".into(),
        })?;
        match self {
            Wire::Anthropic => anthropic::decode(root, counting),
            Wire::OpenAiChat => openai_chat::decode(root),
            Wire::OpenAiResponses => responses::decode(root),
            Wire::Gemini => {
                let route = GeminiRoute::parse(path).ok_or_else(|| ServeError::Route {
                    path: path.to_string(),
                })?;
                let mut decoded = gemini::decode(root)?;
                decoded.model = Some(route.model);
                decoded.stream = route.method == GeminiMethod::StreamGenerateContent;
                Ok(decoded)
            }
        }
    }

    /// The non-streaming reply body, as the provider would send it. `id` is the reply's id
    /// (`msg_...`, `chatcmpl-...`, `resp_...`; Gemini's `responseId`).
    pub fn encode_response(self, model: &str, id: &str, response: &ChatResponse) -> Value {
        match self {
            Wire::Anthropic => anthropic::encode_response(model, id, response),
            Wire::OpenAiChat => openai_chat::encode_response(model, id, response),
            Wire::OpenAiResponses => responses::encode_response(model, id, response),
            Wire::Gemini => gemini::encode_response(model, id, response),
        }
    }

    /// The same reply as the provider's event stream, event by event, each written out
    /// with [`SseEvent::to_bytes`]. `include_usage` is OpenAI Chat's
    /// `stream_options.include_usage` (the other formats always report usage).
    pub fn encode_stream(
        self,
        model: &str,
        id: &str,
        response: &ChatResponse,
        include_usage: bool,
    ) -> Vec<SseEvent> {
        match self {
            Wire::Anthropic => anthropic::encode_stream(model, id, response),
            Wire::OpenAiChat => openai_chat::encode_stream(model, id, response, include_usage),
            Wire::OpenAiResponses => responses::encode_stream(model, id, response),
            Wire::Gemini => gemini::encode_stream(model, id, response),
        }
    }

    /// An error as the provider would send it: the HTTP status and the body.
    pub fn encode_error(self, kind: ServeErrorKind, message: &str) -> (u16, Value) {
        let status = kind.status();
        let body = match self {
            Wire::Anthropic => anthropic::error_body(kind, message),
            Wire::OpenAiChat | Wire::OpenAiResponses => openai_chat::error_body(kind, message),
            Wire::Gemini => gemini::error_body(kind, message),
        };
        (status, body)
    }

    /// The complete reply body of a stream as the provider sends it, put back together from
    /// its events (what a streamed call is recorded as).
    pub fn assemble_stream(self, stream: &[u8]) -> Result<Value, ModelError> {
        let events = parse_sse(stream);
        match self {
            Wire::Anthropic => anthropic::assemble(&events),
            Wire::OpenAiChat => openai_chat::assemble(&events),
            Wire::OpenAiResponses => responses::assemble(&events),
            Wire::Gemini => gemini::assemble(&events),
        }
    }

    /// The reply of a stream as the provider sends it.
    pub fn parse_stream(self, stream: &[u8]) -> Result<ChatResponse, ModelError> {
        let body = self.assemble_stream(stream)?;
        self.parse(body.to_string().as_bytes())
    }

    /// The body of a token count (`POST /v1/messages/count_tokens`, Gemini's
    /// `:countTokens`); `None` for the OpenAI formats, which have no such route.
    pub fn encode_count_tokens(self, tokens: u64) -> Option<Value> {
        match self {
            Wire::Anthropic => Some(json!({"input_tokens": tokens})),
            Wire::Gemini => Some(json!({"totalTokens": tokens})),
            Wire::OpenAiChat | Wire::OpenAiResponses => None,
        }
    }
}

/// Gemini's methods on a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeminiMethod {
    GenerateContent,
    StreamGenerateContent,
    CountTokens,
}

/// What a Gemini path names: `.../models/MODEL:METHOD`, with any prefix
/// (`/v1beta/`, `/gemini/v1beta/`) and query (`?alt=sse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiRoute {
    pub model: String,
    pub method: GeminiMethod,
}

impl GeminiRoute {
    pub fn parse(path: &str) -> Option<GeminiRoute> {
        let path = path.split('?').next().unwrap_or_default();
        let (_, rest) = path.rsplit_once("models/")?;
        let (model, method) = rest.split_once(':')?;
        let method = match method {
            "generateContent" => GeminiMethod::GenerateContent,
            "streamGenerateContent" => GeminiMethod::StreamGenerateContent,
            "countTokens" => GeminiMethod::CountTokens,
            _ => return None,
        };
        (!model.is_empty() && !model.contains('/')).then(|| GeminiRoute {
            model: model.to_string(),
            method,
        })
    }
}

/// `GET /v1/models` (Anthropic's and OpenAI's shapes) and Gemini's `GET /v1beta/models`:
/// the models the gateway offers.
pub fn models_list(api: super::Api, models: &[&str]) -> Value {
    let data: Vec<Value> = models.iter().map(|m| model_info(api, m)).collect();
    match api {
        super::Api::Anthropic => json!({
            "data": data,
            "has_more": false,
            "first_id": models.first(),
            "last_id": models.last(),
        }),
        super::Api::OpenAi => json!({"object": "list", "data": data}),
        super::Api::Gemini => json!({"models": data}),
    }
}

/// `GET /v1/models/{id}` (Gemini: `/v1beta/models/{id}`): one model.
pub fn model_info(api: super::Api, model: &str) -> Value {
    match api {
        super::Api::Anthropic => json!({
            "type": "model",
            "id": model,
            "display_name": model,
            "created_at": "1970-01-01T00:00:00Z",
        }),
        super::Api::OpenAi => {
            json!({"id": model, "object": "model", "created": 0, "owned_by": "helios"})
        }
        super::Api::Gemini => json!({
            "name": format!("models/{model}"),
            "baseModelId": model,
            "displayName": model,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        }),
    }
}

/// Tokens charged per image by [`count_tokens_estimate`]: Anthropic's count for an image
/// of about 1.15 megapixels (width × height / 750), the largest it takes unscaled.
pub const IMAGE_TOKENS: u64 = 1_600;

/// An estimate of a request's input tokens, for Anthropic's `count_tokens` and Gemini's
/// `countTokens`: a token per four bytes of the text the model reads (system prompt,
/// messages' text, tool calls' JSON input, tool results' output, each tool's name,
/// description and JSON schema), [`IMAGE_TOKENS`] per image and four per message for its
/// framing, rounded up. English prose and code run at three to five bytes a token in the
/// providers' tokenizers, so this is within a factor of about 1.5 of the real count;
/// agents use it to decide when to compact, where that is close enough.
pub fn count_tokens_estimate(request: &ChatRequest) -> u64 {
    let mut bytes = request.system.as_ref().map_or(0, String::len);
    let mut images = 0;
    for tool in &request.tools {
        bytes += tool.name.len() + tool.description.len() + tool.parameters.to_string().len();
    }
    for part in request.messages.iter().flat_map(|m| &m.parts) {
        match part {
            Part::Text { text } => bytes += text.len(),
            Part::ToolCall(call) => bytes += call.name.len() + call.input.to_string().len(),
            Part::ToolResult(result) => {
                bytes += result.output.len();
                images += result.images.len();
            }
            Part::Image(_) => images += 1,
            Part::Native { item, .. } => bytes += item.to_string().len(),
        }
    }
    (bytes as u64).div_ceil(4) + images as u64 * IMAGE_TOKENS + 4 * request.messages.len() as u64
}

/// The id → name of every tool call seen so far in a conversation, which names the results
/// that answer them.
#[derive(Default)]
struct CallNames(HashMap<String, String>);

impl CallNames {
    fn saw(&mut self, id: &str, name: &str) {
        self.0.insert(id.to_string(), name.to_string());
    }

    fn name(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_default()
    }
}

/// The schema of a tool that declares none.
fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

fn missing(path: impl Into<String>) -> ServeError {
    ServeError::Missing { path: path.into() }
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ServeError {
    ServeError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

fn unsupported(path: impl Into<String>, message: impl Into<String>) -> ServeError {
    ServeError::Unsupported {
        path: path.into(),
        message: message.into(),
    }
}

/// `parent.key`, or `key` at the top.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A present, non-null field.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ServeError> {
    value
        .as_object()
        .ok_or_else(|| invalid(path, "is not an object"))
}

fn req_object<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a Map<String, Value>, ServeError> {
    let path = join(parent, key);
    self::object(field(object, key).ok_or_else(|| missing(&path))?, &path)
}

fn req_str<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a str, ServeError> {
    opt_str(object, parent, key)?.ok_or_else(|| missing(join(parent, key)))
}

fn opt_str<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<Option<&'a str>, ServeError> {
    field(object, key)
        .map(|v| {
            v.as_str()
                .ok_or_else(|| invalid(join(parent, key), "is not a string"))
        })
        .transpose()
}

fn req_array<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a [Value], ServeError> {
    opt_array(object, parent, key)?.ok_or_else(|| missing(join(parent, key)))
}

fn opt_array<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<Option<&'a [Value]>, ServeError> {
    field(object, key)
        .map(|v| {
            v.as_array()
                .map(Vec::as_slice)
                .ok_or_else(|| invalid(join(parent, key), "is not a list"))
        })
        .transpose()
}

fn opt_u64(
    object: &Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<Option<u64>, ServeError> {
    field(object, key)
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| invalid(join(parent, key), "is not a whole number"))
        })
        .transpose()
}

fn opt_bool(object: &Map<String, Value>, parent: &str, key: &str) -> Result<bool, ServeError> {
    field(object, key)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| invalid(join(parent, key), "is not true or false"))
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// A JSON object and its path in the body.
type Located<'a> = (String, &'a Map<String, Value>);

/// The objects of a list, each with its path (`parent[i]`).
fn objects<'a>(list: &'a [Value], parent: &str) -> Result<Vec<Located<'a>>, ServeError> {
    list.iter()
        .enumerate()
        .map(|(i, value)| {
            let path = format!("{parent}[{i}]");
            object(value, &path).map(|object| (path, object))
        })
        .collect()
}

/// A screen size field of a computer tool.
fn pixels(tool: &Map<String, Value>, path: &str, key: &str) -> Result<u32, ServeError> {
    opt_u64(tool, path, key)?
        .ok_or_else(|| missing(join(path, key)))
        .and_then(|n| u32::try_from(n).map_err(|_| invalid(join(path, key), "is too large")))
}

/// A message's content as text: a string, or its text parts (`text`, `input_text`,
/// `output_text`, `refusal`) joined; absent or `null` is empty.
fn content_text(content: Option<&Value>, path: &str) -> Result<String, ServeError> {
    match content {
        None => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (path, part) in objects(parts, path)? {
                match req_str(part, &path, "type")? {
                    "text" | "input_text" | "output_text" => {
                        out.push_str(req_str(part, &path, "text")?);
                    }
                    "refusal" => out.push_str(req_str(part, &path, "refusal")?),
                    other => {
                        return Err(unsupported(
                            join(&path, "type"),
                            format!("this message holds text, not `{other}`"),
                        ));
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(invalid(path, "is neither text nor a list of parts")),
    }
}

/// The items of `provider` among a reply's parts: what goes back to its own client as the
/// reply, when there are any.
fn natives(response: &ChatResponse, provider: &str) -> Vec<Value> {
    response
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Native {
                provider: owner,
                item,
            } if owner == provider => Some(item.clone()),
            _ => None,
        })
        .collect()
}

/// An image in a `data:` URL (`data:image/png;base64,...`); images by address are refused,
/// since the gateway fetches nothing.
fn data_url(url: &str, path: &str) -> Result<Image, ServeError> {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
    match parsed {
        Some((media_type, data)) => Ok(Image {
            media_type: media_type.to_string(),
            data: data.to_string(),
        }),
        None => Err(unsupported(
            path,
            "only base64 `data:` image URLs are accepted (the gateway fetches nothing)",
        )),
    }
}

/// A tool call's input as the JSON text of OpenAI's `arguments`; an input that is a string
/// (arguments that were not JSON) goes back as that text.
fn arguments(input: &Value) -> String {
    match input {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

/// A tool call's `arguments` text as its input: the JSON it holds, or the text itself when
/// it is not JSON (which is what the client-side parsers do).
fn parse_arguments(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()))
}

/// `text` in pieces of at most [`CHUNK_CHARS`] characters, as a stream sends it.
fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = rest
            .char_indices()
            .nth(CHUNK_CHARS)
            .map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(cut);
        out.push(piece);
        rest = tail;
    }
    out
}

/// Characters per text delta of a stream.
const CHUNK_CHARS: usize = 24;

/// A delta appended to the string at `key` of `target` (absent counts as empty).
fn append(target: &mut Value, key: &str, delta: &Value) {
    let text = format!(
        "{}{}",
        target[key].as_str().unwrap_or_default(),
        delta.as_str().unwrap_or_default()
    );
    target[key] = Value::String(text);
}

/// A stream's event data as JSON; events whose data is not JSON are skipped by the
/// assemblers (`[DONE]`).
fn event_json(event: &SseEvent) -> Option<Value> {
    serde_json::from_str(&event.data).ok()
}

fn malformed_stream(message: impl Into<String>) -> ModelError {
    ModelError::Malformed {
        message: message.into(),
    }
}

/// Seconds since the epoch, for the `created` fields of OpenAI's replies.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Usage without the cached tokens (Anthropic counts those apart).
fn uncached(usage: &Usage) -> u64 {
    usage.input_tokens.saturating_sub(usage.cached_tokens)
}

#[cfg(test)]
mod tests;
