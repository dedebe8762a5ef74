//! The `computer-use` agent's toolbox: the model's native computer tool, carried out on
//! the task's desktop; every tool call is answered with a fresh screenshot, scaled to the
//! size the provider recommends, and saved beside the trajectory.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::BoxFuture;

use super::model_loop::{Ending, Handled, Opening, Toolbox};
use crate::agent::computer::Desktop;
use crate::agent::trajectory::{Content, ContentPart, ImageSource};
use crate::env::EnvError;
use crate::model::computer::{Action, MapError, Protocol, SafetyPolicy, Scaling};
use crate::model::{ComputerTool, Image, Message, Part, ToolCall, ToolResult, ToolSpec};

/// Where screenshots go, relative to the trajectory's directory.
pub const SCREENSHOT_DIR: &str = "screenshots";
/// Screenshots kept in the conversation (Anthropic and Gemini): older ones are replaced by
/// a note, so requests stay within the providers' limits and cost does not grow with the
/// square of the turns. OpenAI's computer calls need theirs; its `truncation: auto` trims.
pub const KEEP_SCREENSHOTS: usize = 3;
/// How long the screen is given to show an action's effect before the screenshot.
const SETTLE: Duration = Duration::from_millis(400);
const PNG: &str = "image/png";
/// What an old screenshot becomes.
const OMITTED: &str = "[an older screenshot, omitted]";

/// The desktop as a model's computer tool.
pub struct Computer<'a> {
    desktop: &'a dyn Desktop,
    protocol: Protocol,
    safety: SafetyPolicy,
    scaling: Scaling,
    /// Where screenshots are saved (`agent/screenshots`).
    dir: PathBuf,
    shots: u32,
}

impl<'a> Computer<'a> {
    pub fn new(
        desktop: &'a dyn Desktop,
        protocol: Protocol,
        safety: SafetyPolicy,
        dir: PathBuf,
    ) -> Computer<'a> {
        Computer {
            scaling: protocol.scaling(desktop.screen()),
            desktop,
            protocol,
            safety,
            dir,
            shots: 0,
        }
    }

    /// A screenshot at the model's size: for the model, and saved for the trajectory.
    async fn shoot(&mut self) -> Result<(Image, ContentPart), EnvError> {
        let png = self.desktop.screenshot().await?;
        let scaling = self.scaling;
        // Decoding, resizing and encoding a PNG is CPU work: off the async workers.
        let png = tokio::task::spawn_blocking(move || scaling.screenshot(png))
            .await
            .map_err(|e| EnvError::Desktop(e.to_string()))?
            .map_err(|e| EnvError::Desktop(e.to_string()))?;
        self.shots += 1;
        let name = format!("{:04}.png", self.shots);
        let io = |e: std::io::Error| {
            EnvError::io(
                format!("saving a screenshot in `{}`", self.dir.display()),
                e,
            )
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        std::fs::write(self.dir.join(&name), &png).map_err(io)?;
        Ok((
            Image {
                media_type: PNG.into(),
                data: base64::engine::general_purpose::STANDARD.encode(&png),
            },
            ContentPart::Image {
                source: ImageSource {
                    media_type: PNG.into(),
                    path: format!("{SCREENSHOT_DIR}/{name}"),
                },
            },
        ))
    }

    /// Carries out the actions in order; the text for the model, or why one failed.
    async fn perform(&self, actions: &[Action]) -> Result<Result<String, String>, EnvError> {
        let mut said = Vec::new();
        for action in actions {
            match action {
                Action::Screenshot => {}
                Action::CursorPosition => {
                    let at = self.desktop.cursor().await?;
                    said.push(self.protocol.cursor_text(&self.scaling, at));
                }
                action => match self.desktop.perform(action).await? {
                    Ok(Some(text)) => said.push(text),
                    Ok(None) => {}
                    Err(why) => return Ok(Err(why)),
                },
            }
        }
        Ok(Ok(said.join("\n")))
    }
}

impl Toolbox for Computer<'_> {
    fn tools(&self) -> Vec<ToolSpec> {
        Vec::new()
    }

    fn computer(&self) -> Option<ComputerTool> {
        Some(self.protocol.tool(&self.scaling))
    }

    fn prune(&self, messages: &mut [Message]) {
        if self.protocol == Protocol::OpenAi {
            return;
        }
        let mut seen = 0;
        for message in messages.iter_mut().rev() {
            let has_image = message.parts.iter().any(|part| match part {
                Part::Image(_) => true,
                Part::ToolResult(result) => !result.images.is_empty(),
                _ => false,
            });
            if !has_image {
                continue;
            }
            seen += 1;
            if seen <= KEEP_SCREENSHOTS {
                continue;
            }
            for part in message.parts.iter_mut() {
                match part {
                    Part::Image(_) => {
                        *part = Part::Text {
                            text: OMITTED.into(),
                        }
                    }
                    Part::ToolResult(result) if !result.images.is_empty() => {
                        result.images.clear();
                        if !result.output.is_empty() {
                            result.output.push('\n');
                        }
                        result.output.push_str(OMITTED);
                    }
                    _ => {}
                }
            }
        }
    }

    fn opening<'b>(&'b mut self, prompt: &'b str) -> BoxFuture<'b, Result<Opening, EnvError>> {
        Box::pin(async move {
            let (image, saved) = self.shoot().await?;
            Ok(Opening {
                parts: vec![
                    Part::Text {
                        text: prompt.to_string(),
                    },
                    Part::Image(image),
                ],
                content: Content::Parts(vec![
                    ContentPart::Text {
                        text: "the screen at the start".into(),
                    },
                    saved,
                ]),
            })
        })
    }

    fn call<'b>(
        &'b mut self,
        call: &'b ToolCall,
        limit: Duration,
    ) -> BoxFuture<'b, Result<Handled, EnvError>> {
        Box::pin(async move {
            let mapped = self
                .protocol
                .map(&call.name, &call.input, &self.scaling, self.safety);
            let (outcome, extra, mut notes, stop) = match mapped {
                Err(MapError::Refused(why)) => {
                    let message = format!("refused by the safety policy: {why}");
                    (
                        Err(message.clone()),
                        None,
                        Vec::new(),
                        Some(Ending::SafetyRefused(why)),
                    )
                }
                Err(error) => (Err(error.to_string()), None, Vec::new(), None),
                Ok(mapped) => {
                    // The run's time budget bounds the actions (a `wait` of 30 s included).
                    let outcome =
                        match tokio::time::timeout(limit, self.perform(&mapped.actions)).await {
                            Ok(outcome) => outcome?,
                            Err(_) => Err(format!(
                                "the actions did not finish within the {:.0}s left",
                                limit.as_secs_f64()
                            )),
                        };
                    let notes = mapped
                        .acknowledged
                        .map(|check| vec![format!("safety check acknowledged: {check}")])
                        .unwrap_or_default();
                    (outcome, mapped.extra, notes, None)
                }
            };
            let acted = outcome.is_ok();
            if acted {
                tokio::time::sleep(SETTLE).await;
            }
            // Every call is answered with the screen as it is now, even a failed one: the
            // providers expect a screenshot for each computer call.
            let (image, saved) = self.shoot().await?;
            let (output, is_error) = match outcome {
                Ok(text) => (text, false),
                Err(why) => (why, true),
            };
            if !output.is_empty() {
                notes.insert(0, output.clone());
            }
            let mut parts: Vec<ContentPart> = notes
                .into_iter()
                .map(|text| ContentPart::Text { text })
                .collect();
            parts.push(saved);
            Ok(Handled {
                result: ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    output,
                    is_error,
                    images: vec![image],
                    extra,
                },
                content: Content::Parts(parts),
                finished: false,
                stop,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::agent::computer::desktop::ActOutcome;

    /// A desktop that records actions and answers with a generated screenshot.
    struct Fake {
        screen: (u32, u32),
        done: Mutex<Vec<Action>>,
    }

    impl Desktop for Fake {
        fn screen(&self) -> (u32, u32) {
            self.screen
        }
        fn perform<'a>(
            &'a self,
            action: &'a Action,
        ) -> BoxFuture<'a, Result<ActOutcome, EnvError>> {
            self.done.lock().unwrap().push(action.clone());
            Box::pin(async { Ok(Ok(None)) })
        }
        fn screenshot(&self) -> BoxFuture<'_, Result<Vec<u8>, EnvError>> {
            let (w, h) = self.screen;
            Box::pin(async move {
                let mut png = Vec::new();
                image::DynamicImage::new_rgb8(w, h)
                    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                    .unwrap();
                Ok(png)
            })
        }
        fn cursor(&self) -> BoxFuture<'_, Result<(u32, u32), EnvError>> {
            Box::pin(async { Ok((960, 540)) })
        }
    }

    #[tokio::test]
    async fn a_call_is_acted_on_and_answered_with_a_scaled_screenshot() {
        let fake = Fake {
            screen: (1920, 1080),
            done: Mutex::new(Vec::new()),
        };
        let dir = tempfile::tempdir().unwrap();
        let mut computer = Computer::new(
            &fake,
            Protocol::Anthropic,
            SafetyPolicy::Acknowledge,
            dir.path().join(SCREENSHOT_DIR),
        );
        assert_eq!(computer.computer().unwrap().display_width, 1366);
        let call = ToolCall {
            id: "t1".into(),
            name: "computer".into(),
            input: serde_json::json!({"action": "left_click", "coordinate": [683, 384]}),
        };
        let handled = computer.call(&call, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            fake.done.lock().unwrap().as_slice(),
            [Action::Click {
                to: Some((960, 540)),
                button: crate::model::computer::Button::Left,
                count: 1,
                modifiers: vec![]
            }]
        );
        assert!(!handled.result.is_error);
        let png = base64::engine::general_purpose::STANDARD
            .decode(&handled.result.images[0].data)
            .unwrap();
        let seen = image::load_from_memory(&png).unwrap();
        assert_eq!((seen.width(), seen.height()), (1366, 768));
        assert_eq!(handled.content.image_paths(), ["screenshots/0001.png"]);
        assert!(dir.path().join("screenshots/0001.png").is_file());

        let cursor = ToolCall {
            id: "t2".into(),
            name: "computer".into(),
            input: serde_json::json!({"action": "cursor_position"}),
        };
        let handled = computer
            .call(&cursor, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(handled.result.output, "X=683,Y=384");
    }

    #[test]
    fn only_the_latest_screenshots_stay_in_the_conversation() {
        let fake = Fake {
            screen: (1024, 768),
            done: Mutex::new(Vec::new()),
        };
        let shot = || Image {
            media_type: PNG.into(),
            data: "x".into(),
        };
        let mut messages = vec![Message {
            role: crate::model::Role::User,
            parts: vec![
                Part::Text {
                    text: "task".into(),
                },
                Part::Image(shot()),
            ],
        }];
        for i in 0..4 {
            let mut result = ToolResult::text(format!("c{i}"), "computer", "", false);
            result.images.push(shot());
            messages.push(Message {
                role: crate::model::Role::User,
                parts: vec![Part::ToolResult(result)],
            });
        }
        let images = |messages: &[Message]| -> usize {
            messages
                .iter()
                .flat_map(|m| &m.parts)
                .map(|p| match p {
                    Part::Image(_) => 1,
                    Part::ToolResult(r) => r.images.len(),
                    _ => 0,
                })
                .sum()
        };
        let dir = tempfile::tempdir().unwrap();
        let computer = Computer::new(
            &fake,
            Protocol::Anthropic,
            SafetyPolicy::Acknowledge,
            dir.path().into(),
        );
        let mut pruned = messages.clone();
        computer.prune(&mut pruned);
        assert_eq!(images(&pruned), KEEP_SCREENSHOTS);
        assert!(matches!(&pruned[0].parts[1], Part::Text { text } if text == OMITTED));
        assert!(matches!(&pruned[4].parts[0], Part::ToolResult(r) if r.images.len() == 1));
        // OpenAI's computer calls must each carry their screenshot.
        let openai = Computer::new(
            &fake,
            Protocol::OpenAi,
            SafetyPolicy::Acknowledge,
            dir.path().into(),
        );
        let mut kept = messages.clone();
        openai.prune(&mut kept);
        assert_eq!(images(&kept), 5);
    }

    #[tokio::test]
    async fn a_bad_call_is_an_error_for_the_model_and_a_refusal_ends_the_run() {
        let fake = Fake {
            screen: (1024, 768),
            done: Mutex::new(Vec::new()),
        };
        let dir = tempfile::tempdir().unwrap();
        let mut computer = Computer::new(
            &fake,
            Protocol::OpenAi,
            SafetyPolicy::Refuse,
            dir.path().into(),
        );
        let outside = ToolCall {
            id: "c1".into(),
            name: "computer".into(),
            input: serde_json::json!({"action": {"type": "click", "x": 5000, "y": 1}}),
        };
        let handled = computer
            .call(&outside, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(handled.result.is_error);
        assert!(
            handled.result.output.contains("outside the screen"),
            "{}",
            handled.result.output
        );
        assert_eq!(
            handled.result.images.len(),
            1,
            "still answered with a screenshot"
        );
        assert!(handled.stop.is_none());
        let risky = ToolCall {
            id: "c2".into(),
            name: "computer".into(),
            input: serde_json::json!({"action": {"type": "click", "x": 5, "y": 1},
                "pending_safety_checks": [{"id": "s", "code": "sensitive_domain", "message": "bank"}]}),
        };
        let handled = computer.call(&risky, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(handled.stop, Some(Ending::SafetyRefused(_))));
        assert!(fake.done.lock().unwrap().is_empty(), "nothing was done");
    }
}
