//! A task container's virtual desktop: started with the scripts embedded in helios,
//! driven with xdotool, seen through PNG screenshots.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::BoxFuture;

use super::action::Action;
use crate::env::desktop::{DISPLAY, SCRIPT_DIR, said};
use crate::env::{EnvError, ExecSpec, Instance};

/// How long one action or screenshot may take (a `wait` adds its own seconds).
const ACTION_DEADLINE: Duration = Duration::from_secs(30);

/// What acting on a desktop answers: text for the model, or why the action failed (the
/// model is told); `Err` only when the environment itself fails.
pub type ActOutcome = Result<Option<String>, String>;

/// A desktop an agent acts on: the real one in a container, or a fake in tests.
pub trait Desktop: Send + Sync {
    /// The screen's size in pixels.
    fn screen(&self) -> (u32, u32);
    fn perform<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<ActOutcome, EnvError>>;
    /// A PNG of the whole screen.
    fn screenshot(&self) -> BoxFuture<'_, Result<Vec<u8>, EnvError>>;
    /// Where the pointer is, in screen pixels.
    fn cursor(&self) -> BoxFuture<'_, Result<(u32, u32), EnvError>>;
}

/// The desktop of a trial's container.
pub struct ContainerDesktop<'a> {
    pub instance: &'a Instance,
    pub screen: (u32, u32),
}

impl ContainerDesktop<'_> {
    async fn run(
        &self,
        command: String,
        extra: Duration,
    ) -> Result<crate::env::ExecOutput, EnvError> {
        self.instance
            .exec(&ExecSpec {
                command,
                workdir: None,
                env: BTreeMap::from([("DISPLAY".to_string(), DISPLAY.to_string())]),
                deadline: Some(ACTION_DEADLINE + extra),
                user: None,
            })
            .await
    }
}

impl Desktop for ContainerDesktop<'_> {
    fn screen(&self) -> (u32, u32) {
        self.screen
    }

    fn perform<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<ActOutcome, EnvError>> {
        Box::pin(async move {
            let Some(command) = action.command() else {
                return Ok(Ok(None));
            };
            let extra = match action {
                Action::Wait { seconds } | Action::HoldKeys { seconds, .. } => {
                    Duration::from_secs_f64(seconds.clamp(0.0, super::action::MAX_WAIT))
                }
                _ => Duration::ZERO,
            };
            let output = self.run(command, extra).await?;
            // xdotool exits 0 on an unknown key name and only warns.
            // Daytona returns both streams in `stdout`.
            let complaint = output
                .stderr
                .lines()
                .chain(output.stdout.lines())
                .find(|l| l.contains("No such key name") || l.contains("Invalid"))
                .map(str::to_string);
            Ok(match (output.exit_code, complaint) {
                (_, _) if output.timed_out => {
                    Err("the action took too long and was stopped".into())
                }
                (Some(0), None) => Ok(None),
                (_, Some(complaint)) => Err(complaint),
                (code, None) => Err(format!(
                    "the action failed (exit {code:?}): {}",
                    said(&output)
                )),
            })
        })
    }

    fn screenshot(&self) -> BoxFuture<'_, Result<Vec<u8>, EnvError>> {
        Box::pin(async move {
            let path = "/tmp/helios-screenshot.png";
            let output = self
                .run(
                    format!("{SCRIPT_DIR}/screenshot.sh {path} && base64 -w0 {path}"),
                    Duration::ZERO,
                )
                .await?;
            if output.exit_code != Some(0) {
                return Err(EnvError::Desktop(format!(
                    "a screenshot failed: {}",
                    said(&output)
                )));
            }
            let png = base64::engine::general_purpose::STANDARD
                .decode(output.stdout.trim())
                .map_err(|e| EnvError::Desktop(format!("a screenshot could not be read: {e}")))?;
            // Command output is capped: a cut PNG must fail here, not reach the model.
            if !png.ends_with(PNG_END) {
                return Err(EnvError::Desktop(format!(
                    "a screenshot arrived incomplete ({} bytes): the screen may be too large for command output",
                    png.len()
                )));
            }
            Ok(png)
        })
    }

    fn cursor(&self) -> BoxFuture<'_, Result<(u32, u32), EnvError>> {
        Box::pin(async move {
            let output = self
                .run("xdotool getmouselocation --shell".into(), Duration::ZERO)
                .await?;
            parse_location(&output.stdout).ok_or_else(|| {
                EnvError::Desktop(format!(
                    "the pointer's position could not be read: {}",
                    output.stderr.trim()
                ))
            })
        })
    }
}

/// The last bytes of every PNG: the IEND chunk and its checksum.
const PNG_END: &[u8] = b"IEND\xAE\x42\x60\x82";

/// `X=12\nY=34\n...` from `xdotool getmouselocation --shell`.
fn parse_location(text: &str) -> Option<(u32, u32)> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((value("X=")?, value("Y=")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pointer_location_is_parsed() {
        assert_eq!(
            parse_location("X=400\nY=118\nSCREEN=0\nWINDOW=123\n"),
            Some((400, 118))
        );
        assert_eq!(parse_location("garbage"), None);
    }
}
