//! Model ids as manifests write them: `provider/model`, or a bare id whose provider is known.

use std::fmt;

use super::Api;

/// Who answers a model: a provider's API, or a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelProvider {
    Api(Api),
    /// Replies read from a script file: deterministic runs with no network.
    Scripted,
}

impl ModelProvider {
    pub const NAMES: [&'static str; 4] = [
        Api::Anthropic.name(),
        Api::OpenAi.name(),
        Api::Gemini.name(),
        "scripted",
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "scripted" => Some(ModelProvider::Scripted),
            "google" => Some(ModelProvider::Api(Api::Gemini)),
            _ => Api::from_name(name).map(ModelProvider::Api),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelProvider::Api(api) => api.name(),
            ModelProvider::Scripted => "scripted",
        }
    }

    /// The environment variable that holds the API key unless a manifest names another.
    pub fn default_key_env(self) -> &'static str {
        match self {
            ModelProvider::Api(api) => api.default_key_env(),
            ModelProvider::Scripted => "",
        }
    }

    /// The API behind the model; none for a script.
    pub fn api(self) -> Option<Api> {
        match self {
            ModelProvider::Api(api) => Some(api),
            ModelProvider::Scripted => None,
        }
    }
}

/// A parsed model id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelId {
    pub provider: ModelProvider,
    pub model: String,
}

/// Why a model id could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelIdError {
    UnknownProvider(String),
    EmptyModel,
    CannotInfer(String),
}

impl fmt::Display for ModelIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelIdError::UnknownProvider(p) => write!(f, "unknown model provider `{p}`"),
            ModelIdError::EmptyModel => f.write_str("the model name after `/` is empty"),
            ModelIdError::CannotInfer(id) => write!(f, "cannot tell which provider serves `{id}`"),
        }
    }
}

impl ModelId {
    pub fn parse(id: &str) -> Result<ModelId, ModelIdError> {
        if let Some((provider, model)) = id.split_once('/') {
            let provider = ModelProvider::from_name(provider)
                .ok_or_else(|| ModelIdError::UnknownProvider(provider.to_string()))?;
            if model.is_empty() {
                return Err(ModelIdError::EmptyModel);
            }
            return Ok(ModelId {
                provider,
                model: model.to_string(),
            });
        }
        let provider = if id == "scripted" {
            ModelProvider::Scripted
        } else if id.starts_with("claude-") {
            ModelProvider::Api(Api::Anthropic)
        } else if id.starts_with("gpt-")
            || id.starts_with("chatgpt-")
            || id.starts_with("computer-use-")
            || ["o1", "o3", "o4"]
                .iter()
                .any(|p| id == *p || id.starts_with(&format!("{p}-")))
        {
            ModelProvider::Api(Api::OpenAi)
        } else if id.starts_with("gemini-") {
            ModelProvider::Api(Api::Gemini)
        } else {
            return Err(ModelIdError::CannotInfer(id.to_string()));
        };
        Ok(ModelId {
            provider,
            model: id.to_string(),
        })
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.provider {
            ModelProvider::Scripted => f.write_str("scripted"),
            provider => write!(f, "{}/{}", provider.name(), self.model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_and_inferred_providers() {
        let id = ModelId::parse("anthropic/claude-sonnet-4-20250514").unwrap();
        assert_eq!(id.provider, ModelProvider::Api(Api::Anthropic));
        assert_eq!(ModelId::parse("claude-sonnet-4-20250514").unwrap(), id);
        assert_eq!(
            ModelId::parse("gpt-4.1").unwrap().provider,
            ModelProvider::Api(Api::OpenAi)
        );
        assert_eq!(
            ModelId::parse("o3-mini").unwrap().provider,
            ModelProvider::Api(Api::OpenAi)
        );
        assert_eq!(
            ModelId::parse("gemini/gemini-2.5-computer-use-preview-10-2025")
                .unwrap()
                .provider,
            ModelProvider::Api(Api::Gemini)
        );
        // Compatible servers keep their own model names after `openai/`.
        assert_eq!(
            ModelId::parse("openai/meta-llama/Llama-3-8B")
                .unwrap()
                .model,
            "meta-llama/Llama-3-8B"
        );
    }

    #[test]
    fn unreadable_ids() {
        assert_eq!(
            ModelId::parse("antropic/claude"),
            Err(ModelIdError::UnknownProvider("antropic".into()))
        );
        assert_eq!(
            ModelId::parse("llama3"),
            Err(ModelIdError::CannotInfer("llama3".into()))
        );
        assert_eq!(ModelId::parse("openai/"), Err(ModelIdError::EmptyModel));
    }
}
