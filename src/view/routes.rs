//! The viewer's HTTP routes: the embedded page, the JSON API over the catalog, files of a
//! run, and the server-sent events of a live run. Only GET is routed: nothing here writes.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::assets;
use super::catalog::{Catalog, CatalogError, RunInfo, TrialRow, TrialView};
use super::compact::CompactRows;
use super::live::{LiveHub, LiveMessage, LiveStep};
use crate::store::compare::Comparison;
use crate::store::summary::Summary;

#[derive(Clone)]
pub(super) struct AppState {
    pub catalog: Arc<Catalog>,
    pub live: LiveHub,
    /// Fires when the server stops, so that event streams end and shutdown completes.
    pub stop: CancellationToken,
    /// Served on a loopback address: only requests naming a local host are answered.
    pub loopback: bool,
}

pub(super) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/api/runs", get(runs))
        .route("/api/runs/{run}", get(run))
        .route("/api/compare", get(compare))
        .route("/api/runs/{run}/events", get(events))
        .route("/api/runs/{run}/trials/{*key}", get(trial))
        .route("/api/runs/{run}/files/{*path}", get(file))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            local_hosts_only,
        ))
        .with_state(state)
}

/// On a loopback address, refuses requests whose `Host` is not a local name: a web page
/// elsewhere cannot reach the viewer through a DNS name rebound to 127.0.0.1.
async fn local_hosts_only(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.loopback {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !is_local_host(host) {
            return ApiError(
                StatusCode::FORBIDDEN,
                format!("the viewer answers only to localhost, not to `{host}`"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// `localhost`, `127.0.0.1` or `[::1]` (any case), with or without a port. The value is
/// parsed as an authority, so `localhost:1@evil.com` (user info naming another host) and
/// `localhost:x` (not a port) are refused.
fn is_local_host(host: &str) -> bool {
    if host.contains('@') {
        return false;
    }
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
        return false;
    };
    // What follows the host is nothing or `:port`, and the port a number.
    let rest = &authority.as_str()[authority.host().len()..];
    match rest.strip_prefix(':') {
        Some(port) if port.parse::<u16>().is_err() => return false,
        None if !rest.is_empty() => return false,
        _ => {}
    }
    let name = authority.host().to_ascii_lowercase();
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]")
}

/// An API error: a status and a JSON body `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        let status = match error {
            CatalogError::UnknownRun(_)
            | CatalogError::UnknownTrial(_)
            | CatalogError::NoFile(_) => StatusCode::NOT_FOUND,
            CatalogError::Outside(_) => StatusCode::FORBIDDEN,
            CatalogError::Unreadable { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such page".into())
}

async fn index() -> Response {
    page(assets::INDEX_HTML, "text/html; charset=utf-8")
}

async fn asset(Path(file): Path<String>) -> Response {
    match assets::named(&file) {
        Some((body, content_type)) => page(body, content_type),
        None => not_found().await.into_response(),
    }
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
            ),
        ],
        body,
    )
        .into_response()
}

/// Runs a blocking read of the results directory off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn runs(State(state): State<AppState>) -> Result<Json<Vec<RunInfo>>, ApiError> {
    blocking(move || {
        Ok(state
            .catalog
            .run_dirs()
            .into_iter()
            .map(|(name, dir)| {
                let live = state.live.run_state(&dir).is_some();
                state.catalog.run_info(&name, &dir, live)
            })
            .collect())
    })
    .await
    .map(Json)
}

#[derive(Serialize)]
struct RunPage {
    name: String,
    pipeline: Option<String>,
    /// `running`, `cancelling` or `finished` for the run this process applies; null else.
    live: Option<String>,
    rows: Rows,
    /// The run's statistics per group, from the results there are (null before any).
    summary: Option<Summary>,
}

/// A run page's rows: objects (the default), or compact (`?rows=compact`, what the page
/// asks for).
#[derive(Serialize)]
#[serde(untagged)]
enum Rows {
    Full(Vec<TrialRow>),
    Compact(CompactRows),
}

#[derive(Deserialize)]
struct RunQuery {
    #[serde(default)]
    rows: RowsFormat,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum RowsFormat {
    #[default]
    Full,
    Compact,
}

#[derive(Deserialize)]
struct CompareQuery {
    a: String,
    b: String,
}

/// Two runs compared group by group: B − A, paired tests, flipped tasks.
async fn compare(
    State(state): State<AppState>,
    Query(query): Query<CompareQuery>,
) -> Result<Json<Comparison>, ApiError> {
    blocking(move || {
        let summary_of = |name: &str| -> Result<Summary, ApiError> {
            let dir = state.catalog.run_dir(name)?;
            let scan = state.catalog.scan(&dir);
            state.catalog.summary(&dir, &scan).ok_or_else(|| {
                ApiError(
                    StatusCode::NOT_FOUND,
                    format!("run `{name}` has no results yet"),
                )
            })
        };
        let a = summary_of(&query.a)?;
        let b = summary_of(&query.b)?;
        Ok(Comparison::of_runs(&query.a, &a, &query.b, &b))
    })
    .await
    .map(Json)
}

/// A run's page: every trial as a row, and the statistics.
async fn run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let format = query
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?
        .0
        .rows;
    blocking(move || {
        let dir = state.catalog.run_dir(&name)?;
        let mut scan = state.catalog.scan(&dir);
        let summary = state.catalog.summary(&dir, &scan);
        let mut rows = std::mem::take(&mut scan.rows);
        state.live.overlay(&dir, &mut rows);
        Ok(RunPage {
            live: state.live.run_state(&dir),
            summary,
            name,
            pipeline: scan.pipeline,
            rows: match format {
                RowsFormat::Full => Rows::Full(rows),
                RowsFormat::Compact => Rows::Compact(CompactRows::of(rows)),
            },
        })
    })
    .await
    .map(Json)
}

#[derive(Serialize)]
struct TrialPage {
    #[serde(flatten)]
    view: TrialView,
    /// The run's state, as on the run page.
    live: Option<String>,
    /// What the agent did so far while the trial runs (its trajectory is written at the end).
    live_steps: Vec<LiveStep>,
}

async fn trial(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<TrialPage>, ApiError> {
    blocking(move || {
        let dir = state.catalog.run_dir(&name)?;
        let mut view = state.catalog.trial(&name, &dir, &key)?;
        state
            .live
            .overlay(&dir, std::slice::from_mut(&mut view.row));
        Ok(TrialPage {
            live_steps: state.live.steps(&dir, &view.row.key),
            live: state.live.run_state(&dir),
            view,
        })
    })
    .await
    .map(Json)
}

async fn file(
    State(state): State<AppState>,
    Path((name, rel)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let path: PathBuf = blocking(move || {
        let dir = state.catalog.run_dir(&name)?;
        let path = state.catalog.inside(&dir, &rel)?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(CatalogError::NoFile(rel).into())
        }
    })
    .await?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    // Files come from agents and tasks: never let one run script in the viewer's origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

fn content_type(path: &std::path::Path) -> &'static str {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "json" => "application/json",
        "txt" | "log" | "md" | "sh" | "py" | "toml" | "yaml" | "yml" | "csv" => {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

/// Server-sent events of one run: `hello` first, then `trial`, `step` and `run` messages as
/// the run goes on; `reload` when this browser fell too far behind.
async fn events(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let dir = {
        let catalog = state.catalog.clone();
        blocking(move || Ok(catalog.run_dir(&name)?)).await?
    };
    let receiver = state.live.subscribe();
    let hello = Event::default()
        .event("hello")
        .data(serde_json::json!({ "live": state.live.run_state(&dir) }).to_string());
    let updates = futures_util::stream::unfold(receiver, move |mut receiver| {
        let dir = dir.clone();
        async move {
            loop {
                match receiver.recv().await {
                    Ok(message) if message.run_dir() == dir => {
                        return Some((event_of(&message), receiver));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        return Some((Event::default().event("reload").data("{}"), receiver));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let stream = futures_util::stream::once(async move { hello })
        .chain(updates)
        .map(Ok)
        .take_until(state.stop.cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn event_of(message: &LiveMessage) -> Event {
    Event::default()
        .event(message.name())
        .data(serde_json::to_string(message).unwrap_or_else(|_| "{}".into()))
}

#[cfg(test)]
mod tests {
    use super::is_local_host;

    #[test]
    fn only_local_host_names_pass() {
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8081",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_local_host(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "",
            "[::2]:80",
        ] {
            assert!(!is_local_host(host), "{host}");
        }
    }

    #[test]
    fn host_check_parses_the_authority() {
        for host in [
            "localhost:1@evil.com",
            "localhost@evil.com",
            "localhost:x",
            "localhost:99999",
            "localhost:80:80",
            "localhost/evil",
        ] {
            assert!(!is_local_host(host), "{host}");
        }
    }

    #[test]
    fn host_check_ignores_case() {
        for host in ["LOCALHOST", "LocalHost:8080", "[::1]:8080"] {
            assert!(is_local_host(host), "{host}");
        }
    }
}
