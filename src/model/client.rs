//! The HTTP client for the three providers: one request per call, inside the retry policy,
//! the per-model connection limit and a request timeout. The API key is sent and never
//! shown: it is taken out of every error message.

use std::sync::{Arc, Once};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;

use super::retry::{RetryPolicy, parse_retry_after};
use super::{
    Api, ChatRequest, ChatResponse, ModelClient, ModelError, ModelId, ModelParams, anthropic,
};

/// Everything needed to talk to one model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The model's name in the pipeline.
    pub name: String,
    pub id: ModelId,
    pub base_url: Option<String>,
    /// The environment variable with the API key.
    pub api_key_env: String,
    pub params: ModelParams,
    /// How long one request may take.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ModelConfig {
    pub fn new(name: &str, id: ModelId) -> ModelConfig {
        ModelConfig {
            name: name.to_string(),
            api_key_env: id.provider.default_key_env().to_string(),
            id,
            base_url: None,
            params: ModelParams::default(),
            request_timeout: Duration::from_secs(600),
            retry: RetryPolicy::default(),
        }
    }
}

/// A model reached over HTTP.
pub struct HttpModel {
    config: ModelConfig,
    api: Api,
    key: String,
    http: reqwest::Client,
    /// Shared by every trial that uses this model: its `max_connections`.
    limit: Option<Arc<Semaphore>>,
}

impl std::fmt::Debug for HttpModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpModel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Installs the TLS crypto provider once per process (every HTTPS client needs it).
pub(crate) fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl HttpModel {
    /// Reads the API key with `lookup` (the process environment in practice).
    pub fn new(
        config: ModelConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HttpModel, ModelError> {
        let api = config
            .id
            .provider
            .api()
            .ok_or_else(|| ModelError::BadRequest {
                provider: "scripted",
                status: 0,
                message: "a scripted model is not reached over HTTP".into(),
            })?;
        let key = lookup(&config.api_key_env)
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| ModelError::MissingKey {
                variable: config.api_key_env.clone(),
            })?;
        install_crypto();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("helios/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Connection {
                message: e.to_string(),
            })?;
        Ok(HttpModel {
            config,
            api,
            key,
            http,
            limit: None,
        })
    }

    /// Shares a connection limit with other clients of the same model.
    pub fn with_limit(mut self, limit: Arc<Semaphore>) -> HttpModel {
        self.limit = Some(limit);
        self
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn base(&self) -> &str {
        self.config
            .base_url
            .as_deref()
            .unwrap_or(self.api.default_base_url())
    }

    /// One request, no retry.
    pub async fn send_once(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let _permit = match &self.limit {
            Some(limit) => Some(
                limit
                    .acquire()
                    .await
                    .expect("model limits are never closed"),
            ),
            None => None,
        };
        let model = self.config.id.model.as_str();
        let params = &self.config.params;
        let wire = self.api.wire(request.computer.is_some());
        let builder = self.http.post(wire.endpoint(self.base(), model));
        let builder = match self.api {
            Api::Anthropic => {
                let builder = builder
                    .header("x-api-key", &self.key)
                    .header("anthropic-version", anthropic::API_VERSION);
                if request.computer.is_some() {
                    builder.header("anthropic-beta", anthropic::COMPUTER_BETA)
                } else {
                    builder
                }
            }
            Api::OpenAi => builder.bearer_auth(&self.key),
            Api::Gemini => builder.header("x-goog-api-key", &self.key),
        };
        let builder = builder.json(&wire.body(model, params, request)?);
        let timeout = self.config.request_timeout;
        let exchange = async {
            let response = builder.send().await.map_err(|e| self.transport_error(e))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = response
                .bytes()
                .await
                .map_err(|e| self.transport_error(e))?;
            Ok::<_, ModelError>((status, retry_after, body))
        };
        let (status, retry_after, body) =
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| ModelError::Timeout {
                    seconds: timeout.as_secs_f64(),
                })??;
        let outcome = if (200..300).contains(&status) {
            wire.parse(&body)
        } else {
            Err(wire.error(status, retry_after, &body, model))
        };
        outcome.map_err(|e| self.redact(e))
    }

    fn transport_error(&self, error: reqwest::Error) -> ModelError {
        if error.is_timeout() {
            ModelError::Timeout {
                seconds: self.config.request_timeout.as_secs_f64(),
            }
        } else {
            // The URL is ours and carries no key; reqwest's text describes the failure.
            ModelError::Connection {
                message: error.without_url().to_string(),
            }
        }
    }

    /// Takes the API key out of an error's message, in case a server echoed it.
    fn redact(&self, error: ModelError) -> ModelError {
        let clean = |message: String| message.replace(&self.key, "[redacted]");
        match error {
            ModelError::Auth { provider, message } => ModelError::Auth {
                provider,
                message: clean(message),
            },
            ModelError::UnknownModel {
                provider,
                model,
                message,
            } => ModelError::UnknownModel {
                provider,
                model,
                message: clean(message),
            },
            ModelError::ContextOverflow { message } => ModelError::ContextOverflow {
                message: clean(message),
            },
            ModelError::RateLimited {
                retry_after,
                message,
            } => ModelError::RateLimited {
                retry_after,
                message: clean(message),
            },
            ModelError::Server {
                provider,
                status,
                retry_after,
                message,
            } => ModelError::Server {
                provider,
                status,
                retry_after,
                message: clean(message),
            },
            ModelError::BadRequest {
                provider,
                status,
                message,
            } => ModelError::BadRequest {
                provider,
                status,
                message: clean(message),
            },
            ModelError::Unsupported { provider, message } => ModelError::Unsupported {
                provider,
                message: clean(message),
            },
            ModelError::Malformed { message } => ModelError::Malformed {
                message: clean(message),
            },
            ModelError::Connection { message } => ModelError::Connection {
                message: clean(message),
            },
            other => other,
        }
    }
}

impl ModelClient for HttpModel {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ModelError>> {
        Box::pin(super::retry::run(
            &self.config.retry,
            || self.send_once(request),
            |_, _| {},
        ))
    }
}

/// Sorts an HTTP error by status into the typed errors every provider shares.
pub(crate) fn classify(
    provider: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    message: String,
    model: &str,
    overflow: bool,
) -> ModelError {
    match status {
        _ if overflow => ModelError::ContextOverflow { message },
        401 | 403 => ModelError::Auth { provider, message },
        404 => ModelError::UnknownModel {
            provider,
            model: model.to_string(),
            message,
        },
        429 => ModelError::RateLimited {
            retry_after,
            message,
        },
        408 | 409 | 500..=599 => ModelError::Server {
            provider,
            status,
            retry_after,
            message,
        },
        _ => ModelError::BadRequest {
            provider,
            status,
            message,
        },
    }
}
