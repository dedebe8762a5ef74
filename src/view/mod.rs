//! The web viewer: a read-only HTTP server over a results directory (runs, the matrix of a
//! run, trial pages with trajectories), with live updates of a run in progress over
//! server-sent events. Its page, script and styles are embedded in the binary.

mod assets;
pub mod catalog;
mod compact;
pub mod live;
mod routes;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a connection may take to send a request's headers, and how long an idle
/// keep-alive connection is kept.
pub const HEADER_READ_TIMEOUT: std::time::Duration = crate::serve::HEADER_READ_TIMEOUT;
pub use catalog::{Catalog, CatalogError, TrialRow};
pub use live::{LiveHub, LiveMessage, LiveStep};

use crate::events::RunEvent;

/// The port tried first when none is given.
pub const DEFAULT_PORT: u16 = 8080;
/// Ports tried after the default one is taken, before asking the system for any.
const PORT_TRIES: u16 = 100;

/// Why the viewer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot serve `{path}`: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: CatalogError,
    },
    #[error("cannot write into `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr}: {source} (choose another port with `--port`, or `--port 0` for any free one)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Where to serve what.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// A run directory or a directory of runs (a pipeline's `output_dir`).
    pub root: PathBuf,
    pub host: IpAddr,
    /// `None`: 8080, or the next free port when it is taken. `Some(0)`: any free port.
    pub port: Option<u16>,
}

impl ViewOptions {
    pub fn new(root: impl Into<PathBuf>) -> ViewOptions {
        ViewOptions {
            root: root.into(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: None,
        }
    }
}

/// A running viewer. Dropping it leaves the server running until the runtime ends; call
/// [`Viewer::stop`] to end it cleanly.
pub struct Viewer {
    addr: SocketAddr,
    catalog: Arc<Catalog>,
    live: LiveHub,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

impl Viewer {
    /// Binds the port and starts serving in the background.
    pub async fn start(options: ViewOptions) -> Result<Viewer, ViewError> {
        let catalog = Catalog::new(&options.root).map_err(|source| ViewError::Root {
            path: options.root.clone(),
            source,
        })?;
        let listener = bind(options.host, options.port).await?;
        let addr = listener.local_addr().map_err(|source| ViewError::Bind {
            addr: SocketAddr::new(options.host, options.port.unwrap_or(DEFAULT_PORT)),
            source,
        })?;
        let catalog = Arc::new(catalog);
        let live = LiveHub::new();
        let stop = CancellationToken::new();
        let app = routes::router(routes::AppState {
            catalog: catalog.clone(),
            live: live.clone(),
            stop: stop.clone(),
            loopback: addr.ip().is_loopback(),
        });
        let server = tokio::spawn(crate::serve::serve(
            listener,
            move || hyper_util::service::TowerToHyperService::new(app.clone()),
            stop.clone(),
        ));
        Ok(Viewer {
            addr,
            catalog,
            live,
            stop,
            server,
        })
    }

    /// Starts a viewer over the output directory of the run in `run_dir` that follows it
    /// from the start: the runner has written its lock file already (see
    /// `runner::Run::open`), so the run is listed and followed before its first event. The
    /// viewer writes nothing. `options.root` is ignored.
    pub async fn watch(mut options: ViewOptions, run_dir: &Path) -> Result<Viewer, ViewError> {
        options.root = run_dir
            .parent()
            .map_or_else(|| run_dir.to_path_buf(), Path::to_path_buf);
        let viewer = Viewer::start(options).await?;
        viewer.live.begin(run_dir);
        Ok(viewer)
    }

    /// The page of the run in `run_dir`, a directory of the served root.
    pub fn page_of(&self, run_dir: &Path) -> String {
        let name = run_dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        self.run_url(&name)
    }

    /// `http://host:port/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The address of the page of the run called `name` (a directory of the served root).
    pub fn run_url(&self, name: &str) -> String {
        format!("{}#/run/{}", self.url(), encode(name))
    }

    /// What the runner's events go through to reach browsers; cheap to clone and send.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            live: self.live.clone(),
            catalog: self.catalog.clone(),
        }
    }

    /// Serves until Ctrl-C, then stops.
    pub async fn serve_until_interrupted(self) {
        let _ = tokio::signal::ctrl_c().await;
        self.stop().await;
    }

    /// Stops serving: open event streams end, and the server is awaited.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.server.await;
    }
}

impl crate::events::Reporter for Recorder {
    fn event(&mut self, event: &RunEvent) {
        self.record(event);
    }
}

/// Passes runner events to a viewer's browsers (see [`Viewer::recorder`]).
#[derive(Clone)]
pub struct Recorder {
    live: LiveHub,
    catalog: Arc<Catalog>,
}

impl Recorder {
    pub fn record(&self, event: &RunEvent) {
        self.live.record(event, &self.catalog);
    }

    /// Forwards every event from `events` to `next` after recording it, until the
    /// sender side closes.
    pub async fn forward(
        self,
        mut events: tokio::sync::mpsc::UnboundedReceiver<RunEvent>,
        next: tokio::sync::mpsc::UnboundedSender<RunEvent>,
    ) {
        while let Some(event) = events.recv().await {
            self.record(&event);
            let _ = next.send(event);
        }
    }
}

async fn bind(host: IpAddr, port: Option<u16>) -> Result<TcpListener, ViewError> {
    let error = |port: u16, source| ViewError::Bind {
        addr: SocketAddr::new(host, port),
        source,
    };
    if let Some(port) = port {
        return TcpListener::bind((host, port))
            .await
            .map_err(|e| error(port, e));
    }
    let mut first_error = None;
    for port in DEFAULT_PORT..DEFAULT_PORT + PORT_TRIES {
        match TcpListener::bind((host, port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(error(port, e)),
        }
    }
    // All of them taken: any free port will do.
    TcpListener::bind((host, 0))
        .await
        .map_err(|e| error(DEFAULT_PORT, first_error.unwrap_or(e)))
}

/// Percent-encodes a run name for a URL fragment.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_default_port_moves_to_the_next_free_one() {
        let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Hold whatever the default search lands on, then search again.
        let first = bind(host, None).await.unwrap();
        let taken = first.local_addr().unwrap().port();
        let second = bind(host, None).await.unwrap();
        assert_ne!(second.local_addr().unwrap().port(), taken);
    }

    #[tokio::test]
    async fn an_explicit_taken_port_is_an_error_that_says_what_to_do() {
        let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let held = bind(host, Some(0)).await.unwrap();
        let port = held.local_addr().unwrap().port();
        let error = bind(host, Some(port)).await.unwrap_err().to_string();
        assert!(error.contains("--port"), "{error}");
    }

    #[test]
    fn run_names_are_encoded_for_urls() {
        assert_eq!(encode("my run/1"), "my%20run%2F1");
    }

    /// Paused time: tokio moves the clock on when every task waits, so hyper's deadline
    /// passes at once and no test sleeps.
    #[tokio::test(start_paused = true)]
    async fn idle_connections_are_dropped_after_the_header_read_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let root = tempfile::tempdir().unwrap();
        let mut options = ViewOptions::new(root.path());
        options.port = Some(0);
        let viewer = Viewer::start(options).await.unwrap();
        let started = tokio::time::Instant::now();
        // Connected, a header begun and never finished: half-open.
        let mut idle = tokio::net::TcpStream::connect(viewer.addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let closed =
            tokio::time::timeout(HEADER_READ_TIMEOUT * 3, idle.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "the idle connection must be closed");
        assert!(
            started.elapsed() >= HEADER_READ_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
        // Connected and silent.
        let mut silent = tokio::net::TcpStream::connect(viewer.addr).await.unwrap();
        let closed =
            tokio::time::timeout(HEADER_READ_TIMEOUT * 3, silent.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "a silent connection must be closed");
        // A whole request is still answered, and the kept-alive connection closed after.
        let mut client = tokio::net::TcpStream::connect(viewer.addr).await.unwrap();
        client
            .write_all(b"GET /api/runs HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let closed =
            tokio::time::timeout(HEADER_READ_TIMEOUT * 3, client.read_to_end(&mut answer)).await;
        assert!(
            closed.is_ok(),
            "an idle kept-alive connection must be closed"
        );
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        viewer.stop().await;
    }
}
