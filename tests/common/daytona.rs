//! A fake Daytona for tests: an HTTP server in the test process that speaks the endpoints
//! of Daytona's API the provider uses (create, state, list, toolbox proxy URL, delete, and
//! the toolbox's execute, upload and download), keeps records of every sandbox, and can
//! misbehave on request (429 and 500 on create, a sandbox that never starts, deletes that
//! fail). Each sandbox is a real Docker container built from the Dockerfile text it was
//! created with and the CPUs, memory and network it asked for, so trials run their whole
//! lifecycle with absolute paths and limits, as in Daytona.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

pub(crate) const KEY: &str = "test-daytona-key";

/// What the server does wrong, and how often.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// Answers to the first create calls: 429 (with `Retry-After: 1`, nothing made), or
    /// 500 (the sandbox is made, then the answer is lost).
    pub create: Vec<u16>,
    /// Sandboxes stay `pending_build` for ever.
    pub never_ready: bool,
    /// How many deletes fail with 500 before they work (`usize::MAX`: all).
    pub delete_failures: usize,
    /// Each create call takes this long to answer.
    pub create_delay: Duration,
}

/// One sandbox as the server knows it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: String,
    /// The body of the create call that made it.
    pub body: Value,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub deleted: bool,
    container: Option<String>,
}

struct Inner {
    name: String,
    base: String,
    faults: Mutex<Faults>,
    sandboxes: Mutex<BTreeMap<String, Record>>,
    requests: Mutex<Vec<String>>,
    next: AtomicUsize,
    creating: AtomicUsize,
    most_creating: AtomicUsize,
    /// Woken at every request.
    seen: tokio::sync::Notify,
}

type Shared = Arc<Inner>;

/// The running fake; its containers and images are removed when it is dropped.
pub(crate) struct FakeDaytona {
    pub url: String,
    inner: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FakeDaytona {
    pub(crate) async fn start(faults: Faults) -> FakeDaytona {
        static SERVERS: AtomicUsize = AtomicUsize::new(0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let inner = Arc::new(Inner {
            name: format!(
                "{}-{}",
                std::process::id(),
                SERVERS.fetch_add(1, Ordering::SeqCst)
            ),
            base: url.clone(),
            faults: Mutex::new(faults),
            sandboxes: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            creating: AtomicUsize::new(0),
            most_creating: AtomicUsize::new(0),
            seen: tokio::sync::Notify::new(),
        });
        let app = Router::new()
            .route("/sandbox", post(create).get(list))
            .route("/sandbox/{id}", get(sandbox).delete(delete))
            .route("/sandbox/{id}/toolbox-proxy-url", get(proxy_url))
            .route("/toolbox/{id}/process/execute", post(execute))
            .route("/toolbox/{id}/files/upload", post(upload))
            .route("/toolbox/{id}/files/download", get(download))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), guard))
            .layer(DefaultBodyLimit::disable())
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeDaytona { url, inner, server }
    }

    /// Every sandbox ever created, deleted or not.
    pub(crate) fn records(&self) -> Vec<Record> {
        self.inner
            .sandboxes
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }

    /// The ids of sandboxes not deleted.
    pub(crate) fn undeleted(&self) -> Vec<String> {
        self.records()
            .into_iter()
            .filter(|r| !r.deleted)
            .map(|r| r.id)
            .collect()
    }

    /// [`FakeDaytona::undeleted`] as a function that can outlive this borrow.
    pub(crate) fn undeleted_handle(&self) -> impl Fn() -> Vec<String> + Send + Sync + 'static {
        let inner = self.inner.clone();
        move || {
            let sandboxes = inner.sandboxes.lock().unwrap();
            sandboxes
                .values()
                .filter(|r| !r.deleted)
                .map(|r| r.id.clone())
                .collect()
        }
    }

    /// `METHOD /path?query` of every request, in order.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Waits (without a timer) until `ready` holds of the requests so far.
    pub(crate) async fn wait_for(&self, ready: impl Fn(&[String]) -> bool) {
        loop {
            let notified = self.inner.seen.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready(&self.requests()) {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }

    /// The most create calls in flight at once.
    pub(crate) fn most_creating(&self) -> usize {
        self.inner.most_creating.load(Ordering::SeqCst)
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock().unwrap() = faults;
    }
}

impl Drop for FakeDaytona {
    fn drop(&mut self) {
        self.server.abort();
        let label = format!("label=helios-fake-daytona={}", self.inner.name);
        let listed = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output();
        if let Ok(out) = listed {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        let _ = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker images -q --filter {label} | xargs -r docker rmi -f >/dev/null 2>&1"
                ),
            ])
            .output();
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"statusCode": status.as_u16(), "message": message})),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", "1".parse().unwrap());
    } else if status.is_server_error() {
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
    }
    response
}

/// Records every request and refuses those without the key, as the API and the toolbox do.
async fn guard(State(inner): State<Shared>, request: Request, next: Next) -> Response {
    let uri = request.uri();
    let line = format!(
        "{} {}",
        request.method(),
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    inner.requests.lock().unwrap().push(line);
    inner.seen.notify_waiters();
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {KEY}"));
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    next.run(request).await
}

fn view(record: &Record) -> Value {
    json!({
        "id": record.id,
        "organizationId": "org",
        "name": record.id,
        "state": record.state,
        "errorReason": if record.state == "build_failed" { Value::from("the build failed") } else { Value::Null },
        "labels": record.labels,
        "env": record.body["env"],
        "target": record.body["target"].as_str().unwrap_or("us"),
        "cpu": record.body["cpu"].as_u64().unwrap_or(1),
        "memory": record.body["memory"].as_u64().unwrap_or(1),
        "disk": record.body["disk"].as_u64().unwrap_or(3),
    })
}

async fn create(State(inner): State<Shared>, body: Bytes) -> Response {
    let now = inner.creating.fetch_add(1, Ordering::SeqCst) + 1;
    inner.most_creating.fetch_max(now, Ordering::SeqCst);
    let (fault, delay, never_ready) = {
        let mut faults = inner.faults.lock().unwrap();
        let fault = (!faults.create.is_empty()).then(|| faults.create.remove(0));
        (fault, faults.create_delay, faults.never_ready)
    };
    tokio::time::sleep(delay).await;
    let response = create_now(&inner, &body, fault, never_ready).await;
    inner.creating.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn create_now(
    inner: &Shared,
    body: &[u8],
    fault: Option<u16>,
    never_ready: bool,
) -> Response {
    if fault == Some(429) {
        return error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let Some(dockerfile) = body["buildInfo"]["dockerfileContent"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "buildInfo.dockerfileContent is required",
        );
    };
    let id = format!(
        "sbx-{}-{}",
        inner.name,
        inner.next.fetch_add(1, Ordering::SeqCst)
    );
    let labels: BTreeMap<String, String> =
        serde_json::from_value(body["labels"].clone()).unwrap_or_default();
    let record = Record {
        id: id.clone(),
        body: body.clone(),
        labels,
        state: "pending_build".into(),
        deleted: false,
        container: None,
    };
    inner
        .sandboxes
        .lock()
        .unwrap()
        .insert(id.clone(), record.clone());
    if !never_ready {
        tokio::spawn(boot(
            inner.clone(),
            id.clone(),
            dockerfile.to_string(),
            body.clone(),
        ));
    }
    if fault == Some(500) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the answer was lost");
    }
    axum::Json(view(&record)).into_response()
}

/// Builds the sandbox's image from its Dockerfile text and starts its container.
async fn boot(inner: Shared, id: String, dockerfile: String, body: Value) {
    let label = format!("helios-fake-daytona={}", inner.name);
    let tag = format!(
        "helios-fake-daytona-{}:{:x}",
        inner.name,
        dockerfile
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
    );
    let mut build = tokio::process::Command::new("docker")
        .args(["build", "-q", "--label", &label, "-t", &tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = build.stdin.take().unwrap();
    stdin.write_all(dockerfile.as_bytes()).await.unwrap();
    drop(stdin);
    let built = build.wait_with_output().await.unwrap();
    if !built.status.success() {
        set_state(&inner, &id, "build_failed");
        return;
    }
    let mut run = tokio::process::Command::new("docker");
    run.args(["run", "-d", "--init", "--label", &label]);
    if body["networkBlockAll"].as_bool() == Some(true) {
        run.args(["--network", "none"]);
    }
    // The sandbox's resources, as Daytona gives them: whole CPUs (at most this machine's,
    // which is all Docker accepts), memory in GiB.
    if let Some(cpu) = body["cpu"].as_u64() {
        let here = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        run.args(["--cpus", &cpu.min(here).to_string()]);
    }
    if let Some(memory) = body["memory"].as_u64() {
        run.args(["--memory", &format!("{memory}g")]);
    }
    if let Some(env) = body["env"].as_object() {
        for (k, v) in env {
            run.args(["-e", &format!("{k}={}", v.as_str().unwrap_or_default())]);
        }
    }
    let out = run
        .args([&tag, "sleep", "infinity"])
        .output()
        .await
        .unwrap();
    let container = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let deleted = {
        let mut sandboxes = inner.sandboxes.lock().unwrap();
        let record = sandboxes.get_mut(&id).unwrap();
        record.container = Some(container.clone());
        if out.status.success() && !record.deleted {
            record.state = "started".into();
        }
        record.deleted
    };
    if deleted {
        remove_container(&container).await;
    }
}

fn set_state(inner: &Shared, id: &str, state: &str) {
    if let Some(record) = inner.sandboxes.lock().unwrap().get_mut(id) {
        record.state = state.into();
    }
}

async fn remove_container(container: &str) {
    let _ = tokio::process::Command::new("docker")
        .args(["rm", "-f", container])
        .output()
        .await;
}

async fn list(
    State(inner): State<Shared>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let filter: BTreeMap<String, String> = query
        .get("labels")
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_default();
    let sandboxes = inner.sandboxes.lock().unwrap();
    let found: Vec<Value> = sandboxes
        .values()
        .filter(|r| !r.deleted && filter.iter().all(|(k, v)| r.labels.get(k) == Some(v)))
        .map(view)
        .collect();
    axum::Json(Value::from(found)).into_response()
}

fn live(inner: &Shared, id: &str) -> Option<Record> {
    inner
        .sandboxes
        .lock()
        .unwrap()
        .get(id)
        .filter(|r| !r.deleted)
        .cloned()
}

async fn sandbox(State(inner): State<Shared>, Path(id): Path<String>) -> Response {
    match live(&inner, &id) {
        Some(record) => axum::Json(view(&record)).into_response(),
        None => error(StatusCode::NOT_FOUND, "sandbox not found"),
    }
}

async fn delete(State(inner): State<Shared>, Path(id): Path<String>) -> Response {
    {
        let mut faults = inner.faults.lock().unwrap();
        if faults.delete_failures > 0 {
            faults.delete_failures = faults.delete_failures.saturating_sub(1);
            return error(StatusCode::INTERNAL_SERVER_ERROR, "could not delete");
        }
    }
    let container = {
        let mut sandboxes = inner.sandboxes.lock().unwrap();
        match sandboxes.get_mut(&id).filter(|r| !r.deleted) {
            Some(record) => {
                record.deleted = true;
                record.state = "destroyed".into();
                record.container.clone()
            }
            None => return error(StatusCode::NOT_FOUND, "sandbox not found"),
        }
    };
    if let Some(container) = container {
        remove_container(&container).await;
    }
    StatusCode::OK.into_response()
}

async fn proxy_url(State(inner): State<Shared>, Path(id): Path<String>) -> Response {
    if live(&inner, &id).is_none() {
        return error(StatusCode::NOT_FOUND, "sandbox not found");
    }
    axum::Json(json!({"url": format!("{}/toolbox", inner.base)})).into_response()
}

/// The container of a started sandbox.
fn container_of(inner: &Shared, id: &str) -> Result<String, (StatusCode, &'static str)> {
    match live(inner, id) {
        Some(Record {
            container: Some(container),
            state,
            ..
        }) if state == "started" => Ok(container),
        Some(_) => Err((StatusCode::BAD_REQUEST, "the sandbox is not started")),
        None => Err((StatusCode::NOT_FOUND, "sandbox not found")),
    }
}

/// The toolbox's own split of a command line: spaces outside quotes, no escapes.
fn split(command: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in command.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            (' ', None) => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            (c, _) => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

async fn execute(State(inner): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let container = match container_of(&inner, &id) {
        Ok(c) => c,
        Err((status, message)) => return error(status, message),
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(command) = request["command"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "command is required");
    };
    let mut exec = tokio::process::Command::new("docker");
    exec.arg("exec");
    if let Some(cwd) = request["cwd"].as_str() {
        exec.args(["-w", cwd]);
    }
    exec.arg(&container).args(split(command)).kill_on_drop(true);
    let run = exec.output();
    let outcome = match request["timeout"].as_u64().filter(|&t| t > 0) {
        Some(seconds) => match tokio::time::timeout(Duration::from_secs(seconds), run).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("Command execution timed out after {seconds} seconds"),
                );
            }
        },
        None => run.await,
    };
    let out = outcome.unwrap();
    let mut result = String::from_utf8_lossy(&out.stdout).into_owned();
    result.push_str(&String::from_utf8_lossy(&out.stderr));
    axum::Json(json!({"exitCode": out.status.code().unwrap_or(-1), "result": result}))
        .into_response()
}

async fn upload(
    State(inner): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let container = match container_of(&inner, &id) {
        Ok(c) => c,
        Err((status, message)) => return error(status, message),
    };
    let Some(path) = query.get("path") else {
        return error(StatusCode::BAD_REQUEST, "path is required");
    };
    let is_multipart = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        return error(StatusCode::BAD_REQUEST, "expected multipart/form-data");
    }
    let mut bytes = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some("file") {
            bytes = Some(field.bytes().await.unwrap());
        }
    }
    let Some(bytes) = bytes else {
        return error(StatusCode::BAD_REQUEST, "the `file` field is missing");
    };
    let mut child = tokio::process::Command::new("docker")
        .args(["exec", "-i", &container, "sh", "-c"])
        .arg(r#"mkdir -p "$(dirname "$1")" && cat > "$1""#)
        .args(["sh", path])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).await.unwrap();
    drop(stdin);
    if child.wait().await.unwrap().success() {
        StatusCode::OK.into_response()
    } else {
        error(StatusCode::BAD_REQUEST, "cannot write the file")
    }
}

async fn download(
    State(inner): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let container = match container_of(&inner, &id) {
        Ok(c) => c,
        Err((status, message)) => return error(status, message),
    };
    let Some(path) = query.get("path") else {
        return error(StatusCode::BAD_REQUEST, "path is required");
    };
    let out = tokio::process::Command::new("docker")
        .args(["exec", &container, "cat", path])
        .output()
        .await
        .unwrap();
    if !out.status.success() {
        return error(StatusCode::NOT_FOUND, "file not found");
    }
    (
        [("content-type", "application/octet-stream")],
        Bytes::from(out.stdout),
    )
        .into_response()
}
