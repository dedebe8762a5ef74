//! The providers helios reaches over HTTP, and what follows from each: its name, its API
//! key's variable, its endpoint, its wire formats and its computer tool. This is the one
//! place a provider is spelled out; model ids, scripts and computer use derive from it.

use std::time::Duration;

use serde_json::Value;

use super::{
    ChatRequest, ChatResponse, ModelError, ModelParams, anthropic, gemini, openai, openai_responses,
};

/// A provider's API. Its computer tool is [`crate::model::computer::Protocol`], which is
/// this same enum: a provider has one tool, so naming the provider names the tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Anthropic,
    OpenAi,
    Gemini,
}

impl Api {
    pub const ALL: [Api; 3] = [Api::Anthropic, Api::OpenAi, Api::Gemini];

    /// The name in model ids (`anthropic/...`), scripts' `format` and native parts.
    pub const fn name(self) -> &'static str {
        match self {
            Api::Anthropic => "anthropic",
            Api::OpenAi => "openai",
            Api::Gemini => "gemini",
        }
    }

    /// The API whose [`name`](Api::name) this is.
    pub fn from_name(name: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|api| api.name() == name)
    }

    /// The environment variable that holds the API key unless a manifest names another.
    pub const fn default_key_env(self) -> &'static str {
        match self {
            Api::Anthropic => "ANTHROPIC_API_KEY",
            Api::OpenAi => "OPENAI_API_KEY",
            Api::Gemini => "GEMINI_API_KEY",
        }
    }

    pub const fn default_base_url(self) -> &'static str {
        match self {
            Api::Anthropic => anthropic::DEFAULT_BASE_URL,
            Api::OpenAi => openai::DEFAULT_BASE_URL,
            Api::Gemini => gemini::DEFAULT_BASE_URL,
        }
    }

    /// The wire format of one request. OpenAI's computer tool exists only in the
    /// Responses API, so a request with one goes there and any other to Chat Completions
    /// (which compatible servers speak too).
    pub const fn wire(self, computer: bool) -> Wire {
        match self {
            Api::Anthropic => Wire::Anthropic,
            Api::OpenAi if computer => Wire::OpenAiResponses,
            Api::OpenAi => Wire::OpenAiChat,
            Api::Gemini => Wire::Gemini,
        }
    }

    /// The wire format that can carry every request, the computer tool included: the one a
    /// script of this provider's replies is written in.
    pub const fn full_wire(self) -> Wire {
        self.wire(true)
    }
}

/// The wire format of a request and its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Chat Completions.
    OpenAiChat,
    /// OpenAI Responses.
    OpenAiResponses,
    /// Gemini generateContent.
    Gemini,
}

impl Wire {
    pub fn endpoint(self, base: &str, model: &str) -> String {
        match self {
            Wire::Anthropic => anthropic::endpoint(base),
            Wire::OpenAiChat => openai::endpoint(base),
            Wire::OpenAiResponses => openai_responses::endpoint(base),
            Wire::Gemini => gemini::endpoint(base, model),
        }
    }

    /// The request body; refused before anything is sent when the format cannot express
    /// the request.
    pub fn body(
        self,
        model: &str,
        params: &ModelParams,
        request: &ChatRequest,
    ) -> Result<Value, ModelError> {
        match self {
            Wire::Anthropic => Ok(anthropic::body(model, params, request)),
            Wire::OpenAiChat => openai::body(model, params, request),
            Wire::OpenAiResponses => openai_responses::body(model, params, request),
            Wire::Gemini => Ok(gemini::body(params, request)),
        }
    }

    /// A successful reply's body.
    pub fn parse(self, bytes: &[u8]) -> Result<ChatResponse, ModelError> {
        match self {
            Wire::Anthropic => anthropic::parse(bytes),
            Wire::OpenAiChat => openai::parse(bytes),
            Wire::OpenAiResponses => openai_responses::parse(bytes),
            Wire::Gemini => gemini::parse(bytes),
        }
    }

    /// The typed error of a reply with an HTTP error status.
    pub fn error(
        self,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
        model: &str,
    ) -> ModelError {
        match self {
            Wire::Anthropic => anthropic::error(status, retry_after, body, model),
            Wire::OpenAiChat => openai::error(status, retry_after, body, model),
            Wire::OpenAiResponses => openai_responses::error(status, retry_after, body, model),
            Wire::Gemini => gemini::error(status, retry_after, body, model),
        }
    }
}
