//! A task container's virtual desktop as an environment provides it: the
//! `[environment.desktop]` settings, and starting Xvfb, the window manager and the task's
//! autostart programs from the scripts embedded in helios.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{EnvError, ExecOutput, ExecSpec, Instance, tarball};

/// Where the scripts go in the container.
pub const SCRIPT_DIR: &str = "/helios/desktop";
const START_SCRIPT: &str = include_str!("../../environments/desktop/desktop-start.sh");
const SCREENSHOT_SCRIPT: &str = include_str!("../../environments/desktop/screenshot.sh");
/// The X display the desktop runs on.
pub const DISPLAY: &str = ":1";
/// How long the desktop may take to come up, each step bounded by the script itself.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// `[environment.desktop]`: the container runs a virtual X display (Xvfb) of this size
/// with a window manager; helios starts it after the container and before the agent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DesktopConfig {
    /// Screen width in pixels.
    #[serde(default = "default_desktop_width")]
    #[schemars(range(min = 64, max = 8192))]
    pub width: u32,
    /// Screen height in pixels.
    #[serde(default = "default_desktop_height")]
    #[schemars(range(min = 64, max = 8192))]
    pub height: u32,
    /// Colour depth: 16 or 24 bits.
    #[serde(default = "default_desktop_depth")]
    #[schemars(extend("enum" = [16, 24]))]
    pub depth: u32,
    /// Also serve the display over VNC on port 5900 (needs x11vnc in the image).
    #[serde(default)]
    pub vnc: bool,
    /// The desktop is ready only once a visible window's name matches this regular
    /// expression (`xdotool search --name`).
    #[schemars(length(min = 1))]
    pub wait_for_window: Option<String>,
}

fn default_desktop_width() -> u32 {
    1024
}

fn default_desktop_height() -> u32 {
    768
}

fn default_desktop_depth() -> u32 {
    24
}

/// Starts the desktop `config` asks for in the container and waits until it is ready:
/// Xvfb at the configured size, the window manager, the task's autostart programs.
pub async fn start(instance: &Instance, config: &DesktopConfig) -> Result<(), EnvError> {
    let io = |e: std::io::Error| EnvError::io("packing the desktop scripts", e);
    for (name, script) in [
        ("desktop-start.sh", START_SCRIPT),
        ("screenshot.sh", SCREENSHOT_SCRIPT),
    ] {
        let path = format!("{}/{name}", SCRIPT_DIR.trim_start_matches('/'));
        let archive = tarball::pack_file(&path, script.as_bytes(), 0o755).map_err(io)?;
        instance.upload_archive(archive).await?;
    }
    let mut env = BTreeMap::from([
        ("DISPLAY".to_string(), DISPLAY.to_string()),
        ("HELIOS_DESKTOP_WIDTH".into(), config.width.to_string()),
        ("HELIOS_DESKTOP_HEIGHT".into(), config.height.to_string()),
        ("HELIOS_DESKTOP_DEPTH".into(), config.depth.to_string()),
    ]);
    if config.vnc {
        env.insert("HELIOS_DESKTOP_VNC".into(), "1".into());
    }
    if let Some(window) = &config.wait_for_window {
        env.insert("HELIOS_DESKTOP_WAIT_WINDOW".into(), window.clone());
    }
    let output = instance
        .exec(&ExecSpec {
            command: format!("{SCRIPT_DIR}/desktop-start.sh"),
            workdir: None,
            env,
            deadline: Some(START_DEADLINE),
            user: None,
        })
        .await?;
    if output.exit_code == Some(0) {
        return Ok(());
    }
    let why = if output.timed_out {
        format!("it did not start within {}s", START_DEADLINE.as_secs())
    } else {
        let said = said(&output);
        if said.is_empty() {
            format!("desktop-start.sh exited with {:?}", output.exit_code)
        } else {
            said.lines().last().unwrap_or(said).to_string()
        }
    };
    Err(EnvError::Desktop(format!(
        "the desktop did not start: {why} (its logs are in the trial's desktop/ directory; the image needs Debian's xvfb, blackbox, xdotool, x11-apps, netpbm and x11-utils, see environments/desktop/Dockerfile)"
    )))
}

/// What a command said about its failure: stderr, or stdout where a provider merges them.
pub(crate) fn said(output: &ExecOutput) -> &str {
    let stderr = output.stderr.trim();
    if stderr.is_empty() {
        output.stdout.trim()
    } else {
        stderr
    }
}
