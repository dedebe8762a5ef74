//! Debian's Chromium, headless, driven through chromedriver (WebDriver) for the viewer's
//! end-to-end tests, and the `helios` processes that serve the viewer.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver and the browser session it runs; both end on drop.
pub(crate) struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

impl Browser {
    pub(crate) async fn start() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: install Debian's `chromium` and `chromium-driver` packages \
                 (`.ci/run` does)"
            );
        }
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // chromedriver says when it listens; no guessing with sleeps.
        let stdout = driver.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines
                .next()
                .expect("chromedriver printed that it started")
                .unwrap();
            if line.contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--no-first-run",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session starts");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Waits until an element matching `css` exists (WebDriver polls; the wait is bounded).
    pub(crate) async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(std::time::Duration::from_secs(60))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` appeared: {e}"))
    }

    pub(crate) async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(element.text().await.unwrap());
        }
        out
    }

    /// Saves a PNG of the page under `target/tmp/viewer-screenshots/` and returns its path.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("viewer-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Ends the browser session; chromedriver ends on drop.
    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `helios` process that serves the viewer; interrupted (Ctrl-C) on drop.
pub(crate) struct Served {
    pub child: Child,
    /// The address it printed (`http://127.0.0.1:PORT/...`).
    pub url: String,
    /// Its standard error up to the address.
    pub stderr: Vec<String>,
    /// Reads the rest of standard error, so the process never blocks on a full pipe.
    rest: Option<std::thread::JoinHandle<String>>,
}

impl Served {
    /// Spawns `command` (stderr piped) and reads its stderr until a line with `marker`
    /// holds an `http://` address.
    pub(crate) fn spawn(mut command: Command, marker: &str) -> Served {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("helios ended before serving: {}", seen.join("\n"));
            };
            let found = line
                .find("http://")
                .filter(|_| line.contains(marker))
                .map(|start| line[start..].split_whitespace().next().unwrap().to_string());
            seen.push(line);
            if let Some(url) = found {
                break url;
            }
        };
        let rest =
            std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
        Served {
            child,
            url,
            stderr: seen,
            rest: Some(rest),
        }
    }

    /// `http://host:port/`.
    pub(crate) fn base(&self) -> String {
        let after = &self.url["http://".len()..];
        format!("http://{}/", after.split('/').next().unwrap())
    }

    /// Sends Ctrl-C and returns the exit code and the rest of standard error.
    pub(crate) fn interrupt(mut self) -> (Option<i32>, String) {
        interrupt(&self.child);
        let status = self.child.wait().unwrap();
        let rest = self.rest.take().unwrap().join().unwrap();
        (status.code(), rest)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.rest.is_some() {
            interrupt(&self.child);
            let _ = self.child.wait();
        }
    }
}

fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}
