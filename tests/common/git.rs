//! Real git repositories for the dataset tests: repositories of tasks made on the spot,
//! bare copies to fetch from over `file://`, and an HTTP server in the test process that
//! speaks git's smart HTTP protocol (through `git http-backend`, as a CGI) and serves a
//! registry file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

/// Runs git in `dir` with a fixed identity and no user configuration; returns stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .stdin(Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes a valid task directory `<dir>/<name>` (a copy of the bundled `create-hello-file` with
/// its own instruction).
pub(crate) fn write_task(dir: &Path, name: &str, instruction: &str) {
    let task = dir.join(name);
    std::fs::create_dir_all(dir).unwrap();
    super::project::copy_tree("tasks/create-hello-file", &task);
    std::fs::write(task.join("instruction.md"), instruction).unwrap();
}

/// A working repository with a bare copy beside it to fetch from.
pub(crate) struct Repo {
    pub work: PathBuf,
    pub bare: PathBuf,
}

impl Repo {
    /// `tasks/<name>` for every name, committed, tagged `v1` and pushed to the bare copy
    /// `<root>/<name>.git`.
    pub(crate) fn with_tasks(root: &Path, repo: &str, names: &[&str]) -> Repo {
        let work = root.join(format!("{repo}-work"));
        let bare = root.join(format!("{repo}.git"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        for name in names {
            write_task(&work.join("tasks"), name, &format!("Task {name}.\n"));
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", "tasks"]);
        git(&work, &["tag", "-a", "v1", "-m", "v1"]);
        git(root, &["init", "-q", "--bare", bare.to_str().unwrap()]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main", "v1"]);
        Repo { work, bare }
    }

    pub(crate) fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The tree id of `path` at `rev`.
    pub(crate) fn tree(&self, rev: &str, path: &str) -> String {
        git(&self.work, &["rev-parse", &format!("{rev}:{path}")])
    }

    /// Changes one task's instruction, commits, moves tag `v1` and `main` there, pushes.
    pub(crate) fn move_tag(&self, task: &str) -> String {
        std::fs::write(
            self.work.join(format!("tasks/{task}/instruction.md")),
            "Changed.\n",
        )
        .unwrap();
        git(&self.work, &["commit", "-qam", "change"]);
        git(&self.work, &["tag", "-f", "-a", "v1", "-m", "v1 again"]);
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                self.bare.to_str().unwrap(),
                "main",
                "v1",
            ],
        );
        self.head()
    }

    pub(crate) fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

/// An HTTP server in the test process: `/git/<repo>.git/...` is git's smart HTTP
/// protocol over the bare repositories in `root`, `/registry.json` a registry file.
pub(crate) struct GitServer {
    pub addr: SocketAddr,
    /// Requests served so far.
    pub requests: Arc<AtomicUsize>,
    pub registry: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ServerState {
    root: Arc<PathBuf>,
    requests: Arc<AtomicUsize>,
    registry: Arc<Mutex<String>>,
}

impl GitServer {
    pub(crate) async fn start(root: &Path) -> GitServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ServerState {
            root: Arc::new(root.to_path_buf()),
            requests: Arc::new(AtomicUsize::new(0)),
            registry: Arc::new(Mutex::new("[]".to_string())),
        };
        let app = Router::new()
            .route("/registry.json", axum::routing::get(registry))
            .route("/git/{*path}", axum::routing::any(git_cgi))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        GitServer {
            addr,
            requests: state.requests,
            registry: state.registry,
            task,
        }
    }

    /// The smart-HTTP URL of the bare repository `<root>/<name>`.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("http://{}/git/{name}", self.addr)
    }

    pub(crate) fn registry_url(&self) -> String {
        format!("http://{}/registry.json", self.addr)
    }

    /// Stops listening: from now on the host refuses connections.
    pub(crate) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn registry(State(state): State<ServerState>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let body = state.registry.lock().unwrap().clone();
    ([("content-type", "application/json")], body).into_response()
}

/// `git http-backend` as a CGI: the request in its environment and stdin, its headers
/// and body back.
async fn git_cgi(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let path_info = uri.path().strip_prefix("/git").unwrap_or("/").to_string();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", state.root.as_path())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATH_INFO", path_info)
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let protocol = header("git-protocol");
    if !protocol.is_empty() {
        command.env("GIT_PROTOCOL", protocol);
    }
    let encoding = header("content-encoding");
    if !encoding.is_empty() {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let mut child = command.spawn().expect("git http-backend starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let output = child
        .wait_with_output()
        .await
        .expect("git http-backend runs");
    let _ = writer.await;
    cgi_response(&output.stdout)
}

fn cgi_response(out: &[u8]) -> Response {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, skip)) = split else {
        return (StatusCode::BAD_GATEWAY, "no CGI headers").into_response();
    };
    let mut status = StatusCode::OK;
    let mut builder = Response::builder();
    for line in String::from_utf8_lossy(&out[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("200");
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(status);
        } else {
            builder = builder.header(name, value);
        }
    }
    builder
        .status(status)
        .body(axum::body::Body::from(out[end + skip..].to_vec()))
        .unwrap()
}
