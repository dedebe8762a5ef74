//! Daytona's REST API as helios uses it: the wire types of the documented endpoints, and
//! one way to call them (bearer key, request timeout, retries on 429 and 5xx that honour
//! `Retry-After`, errors that never show the key).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, RequestBuilder, Url};
use serde::{Deserialize, Serialize};

use crate::env::{EnvError, Provider};
use crate::retry::{self, RetryPolicy, Transient, parse_retry_after};

/// `POST /sandbox`: a sandbox from a Dockerfile (Daytona's declarative build). Resources
/// are only accepted with a build, never with a snapshot, so helios always sends one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateSandbox {
    pub labels: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// GiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// GiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// Minutes; 0 disables auto-stop.
    pub auto_stop_interval: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_archive_interval: Option<u32>,
    /// Minutes; 0 deletes at once on stop, negative never.
    pub auto_delete_interval: i32,
    pub network_block_all: bool,
    pub build_info: BuildInfo,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BuildInfo {
    pub dockerfile_content: String,
    /// Hashes of build-context archives in Daytona's object storage; helios sends none.
    pub context_hashes: Vec<String>,
}

/// A sandbox as `POST /sandbox`, `GET /sandbox/{id}` and `GET /sandbox` return it (only the
/// fields helios reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SandboxDto {
    pub id: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub error_reason: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `GET /sandbox/{id}/toolbox-proxy-url`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ToolboxProxyUrl {
    pub url: String,
}

/// Toolbox `POST /process/execute`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ExecuteRequest {
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Seconds; the toolbox kills the command's process group then and answers 408.
    pub timeout: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ExecuteResponse {
    /// Older toolboxes call it `code`.
    #[serde(rename = "exitCode", alias = "code")]
    pub exit_code: i64,
    /// Standard output and standard error, together.
    #[serde(default)]
    pub result: String,
}

/// A failed call.
#[derive(Debug, Clone)]
pub(super) enum ApiError {
    Status {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
        /// Whether calling again is safe and may help.
        retryable: bool,
    },
    /// No answer: refused connection, reset, timeout.
    Transport { message: String, retryable: bool },
}

impl ApiError {
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Transport { .. } => None,
        }
    }

    /// The same error, retried only if the request surely did not run (429).
    fn unless_rate_limited(self) -> ApiError {
        match self {
            ApiError::Status {
                status,
                retry_after,
                message,
                ..
            } => ApiError::Status {
                retryable: status == 429,
                status,
                retry_after,
                message,
            },
            ApiError::Transport { message, .. } => ApiError::Transport {
                message,
                retryable: false,
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            ApiError::Transport { message, .. } => f.write_str(message),
        }
    }
}

impl Transient for ApiError {
    fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { retryable, .. } | ApiError::Transport { retryable, .. } => {
                *retryable
            }
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            ApiError::Transport { .. } => None,
        }
    }
}

/// Whether a call may be made twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// Reads, deletes, and creates whose strays are cleaned up: retried on 429, 5xx and
    /// lost connections.
    Safe,
    /// Commands: retried only on 429, which means it did not run.
    OnlyIfRateLimited,
}

/// Tracks a create call, so that a cancel or a lost answer can be cleaned up after.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    /// Requests sent so far.
    pub sent: AtomicUsize,
    /// A request is on the wire now.
    pub in_flight: AtomicBool,
}

/// The client of one Daytona API.
pub(super) struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
    retry: RetryPolicy,
    request_timeout: Duration,
}

impl Api {
    pub(super) fn new(
        base: &str,
        key: String,
        retry: RetryPolicy,
        request_timeout: Duration,
    ) -> Result<Api, EnvError> {
        crate::model::client::install_crypto();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("helios/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                EnvError::engine(
                    Provider::Daytona,
                    format!("cannot make an HTTP client: {e}"),
                )
            })?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
            retry,
            request_timeout,
        })
    }

    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// `<api url>/<path>` with query pairs.
    pub(super) fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, EnvError> {
        absolute(
            &format!("{}/{}", self.base, path.trim_start_matches('/')),
            query,
        )
    }

    /// A request with the key, to `url`.
    pub(super) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.key)
    }

    /// Sends what `make` builds until it succeeds or the policy is spent; the answer's body.
    /// `timeout` bounds each try (the API's request timeout when `None`).
    pub(super) async fn call(
        &self,
        make: impl Fn() -> RequestBuilder,
        replay: Replay,
        timeout: Option<Duration>,
        attempts: Option<&Attempts>,
    ) -> Result<Bytes, ApiError> {
        let timeout = timeout.unwrap_or(self.request_timeout);
        retry::run(
            &self.retry,
            || async {
                if let Some(a) = attempts {
                    a.sent.fetch_add(1, Ordering::SeqCst);
                    a.in_flight.store(true, Ordering::SeqCst);
                }
                let outcome = once(make(), timeout).await;
                if let Some(a) = attempts {
                    a.in_flight.store(false, Ordering::SeqCst);
                }
                match replay {
                    Replay::Safe => outcome,
                    Replay::OnlyIfRateLimited => outcome.map_err(ApiError::unless_rate_limited),
                }
            },
            |_, _| {},
        )
        .await
    }

    /// Like [`Api::call`], but a 2xx answer comes back unread, so a large body can be
    /// streamed; only getting the answer is retried, never reading its body.
    pub(super) async fn open(
        &self,
        make: impl Fn() -> RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, ApiError> {
        retry::run(&self.retry, || open_once(make(), timeout), |_, _| {}).await
    }

    /// A JSON answer of [`Api::call`].
    pub(super) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        make: impl Fn() -> RequestBuilder,
        replay: Replay,
        attempts: Option<&Attempts>,
    ) -> Result<T, EnvError> {
        let body = self
            .call(make, replay, None, attempts)
            .await
            .map_err(|e| to_env(what, &e))?;
        serde_json::from_slice(&body).map_err(|e| {
            EnvError::engine(
                Provider::Daytona,
                format!(
                    "{what}: the answer is not what the API documents: {e}: {}",
                    excerpt(&body)
                ),
            )
        })
    }
}

/// One request, no retry.
async fn once(builder: RequestBuilder, timeout: Duration) -> Result<Bytes, ApiError> {
    let transport = |e: reqwest::Error| ApiError::Transport {
        message: e.without_url().to_string(),
        retryable: true,
    };
    let exchange = async {
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.bytes().await.map_err(transport)?;
        Ok::<_, ApiError>((status, retry_after, body))
    };
    let (status, retry_after, body) =
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ApiError::Transport {
                message: format!("no answer within {}s", timeout.as_secs_f64()),
                retryable: true,
            })??;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    Err(ApiError::Status {
        status,
        retry_after,
        message: message_of(&body),
        retryable: status == 429 || status == 408 || status >= 500,
    })
}

async fn open_once(
    builder: RequestBuilder,
    timeout: Duration,
) -> Result<reqwest::Response, ApiError> {
    let no_answer = || ApiError::Transport {
        message: format!("no answer within {}s", timeout.as_secs_f64()),
        retryable: true,
    };
    let response = tokio::time::timeout(timeout, builder.send())
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| ApiError::Transport {
            message: e.without_url().to_string(),
            retryable: true,
        })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = tokio::time::timeout(timeout, response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Err(ApiError::Status {
        status,
        retry_after,
        message: message_of(&body),
        retryable: status == 429 || status == 408 || status >= 500,
    })
}

/// The `message` of Daytona's error body, or the start of the body.
fn message_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .map(|m| m.to_string().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| excerpt(body))
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A parsed absolute URL with query pairs.
pub(super) fn absolute(url: &str, query: &[(&str, &str)]) -> Result<Url, EnvError> {
    let mut url = Url::parse(url)
        .map_err(|e| EnvError::engine(Provider::Daytona, format!("`{url}` is not a URL: {e}")))?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

/// An API error as an environment error: a refused key is an [`EnvError::Auth`].
pub(super) fn to_env(what: &str, error: &ApiError) -> EnvError {
    match error.status() {
        Some(401 | 403) => EnvError::Auth(format!(
            "Daytona refused the API key in `{}` ({what}: {error}) (hint: check the key, or \
             create one in the Daytona dashboard)",
            super::KEY_VARIABLE
        )),
        _ => EnvError::engine(Provider::Daytona, format!("{what}: {error}")),
    }
}
