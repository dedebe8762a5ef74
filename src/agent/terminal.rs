//! The `terminal` agent's tools: a model working in the task's container through `bash`,
//! until it calls `finish`. The loop around them is [`super::model_loop`].

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::model_loop::{Handled, Toolbox};
use crate::env::Instance;
use crate::env::{EnvError, ExecSpec, OUTPUT_CAP};
use crate::model::{ToolCall, ToolResult, ToolSpec};

/// Most characters of a command's output shown to the model: the head and the tail.
pub const OUTPUT_LIMIT: usize = 16_000;

pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "bash".into(),
            description: "Run a bash command in the task's container, in the working directory. Returns the exit \
                          code and the output (stdout then stderr)."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The command to run."},
                    "timeout_sec": {"type": "number", "description": "Seconds the command may take."}
                },
                "required": ["command"]
            }),
        },
        ToolSpec {
            name: "finish".into(),
            description: "Declare the task finished. Call it once the work is done and checked.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"summary": {"type": "string", "description": "What was done."}}
            }),
        },
    ]
}

/// `bash` and `finish` in a trial's container.
pub struct Bash<'a> {
    pub instance: &'a Instance,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    /// The user commands run as; the image's user when `None`.
    pub user: Option<String>,
}

impl Toolbox for Bash<'_> {
    fn tools(&self) -> Vec<ToolSpec> {
        tools()
    }

    fn call<'a>(
        &'a mut self,
        call: &'a ToolCall,
        limit: Duration,
    ) -> BoxFuture<'a, Result<Handled, EnvError>> {
        Box::pin(async move {
            let mut finished = false;
            let (output, is_error) = match call.name.as_str() {
                "finish" => {
                    finished = true;
                    ("The task is marked as finished.".to_string(), false)
                }
                "bash" => self.bash(&call.input, limit).await?,
                other => (
                    format!("unknown tool `{other}`; the tools are `bash` and `finish`"),
                    true,
                ),
            };
            Ok(Handled {
                content: output.clone().into(),
                result: ToolResult::text(call.id.clone(), call.name.clone(), output, is_error),
                finished,
                stop: None,
            })
        })
    }
}

impl Bash<'_> {
    /// Runs one `bash` call; `(output, is_error)`. A non-zero exit code is output, not an
    /// error: commands fail all the time and the model should see why.
    async fn bash(&self, input: &Value, limit: Duration) -> Result<(String, bool), EnvError> {
        let Some(command) = input.get("command").and_then(Value::as_str) else {
            return Ok(("`bash` needs a `command` string".to_string(), true));
        };
        let asked = input
            .get("timeout_sec")
            .and_then(Value::as_f64)
            .filter(|s| *s > 0.0);
        let deadline = asked.map_or(limit, |s| Duration::from_secs_f64(s).min(limit));
        if deadline.is_zero() {
            return Ok(("no time is left to run commands".to_string(), true));
        }
        let output = self
            .instance
            .exec(&ExecSpec {
                command: command.to_string(),
                workdir: self.workdir.clone(),
                env: self.env.clone(),
                deadline: Some(deadline),
                user: self.user.clone(),
            })
            .await?;
        let mut text = output.stdout;
        if !output.stderr.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&output.stderr);
        }
        let mut text = truncate_middle(&text, OUTPUT_LIMIT);
        // The environment kept only the first OUTPUT_CAP bytes: the tail shown is not the
        // end of what the command printed, and the model should know it.
        if output.cut > 0 {
            text.push_str(&format!(
                "\n[... and {} more bytes past the {} MiB of output kept were dropped]",
                output.cut,
                OUTPUT_CAP >> 20
            ));
        }
        if output.timed_out {
            let seconds = deadline.as_secs_f64();
            return Ok((
                format!("the command took longer than {seconds}s and was stopped\n{text}"),
                true,
            ));
        }
        let code = output
            .exit_code
            .map_or_else(|| "unknown".to_string(), |c| c.to_string());
        Ok((format!("exit code: {code}\n{text}"), false))
    }
}

/// Keeps the head and the tail of a long text with a marker saying how much was left out.
pub fn truncate_middle(text: &str, limit: usize) -> String {
    let count = text.chars().count();
    if count <= limit {
        return text.to_string();
    }
    let half = limit / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(count - half).collect();
    format!(
        "{head}\n[... {} characters omitted ...]\n{tail}",
        count - 2 * half
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::fake::{FakeEngine, FakeReply};
    use crate::env::{Engine, EnvSpec};

    #[tokio::test]
    async fn output_cut_at_the_environments_cap_is_said_to_the_model() {
        let engine = Engine::new(FakeEngine::new(|_| FakeReply {
            stdout: "y\n".repeat(OUTPUT_CAP / 2 + 500),
            ..FakeReply::ok()
        }));
        let instance = engine
            .create(&EnvSpec::default(), &Default::default())
            .await
            .unwrap();
        let bash = Bash {
            instance: &instance,
            workdir: None,
            env: BTreeMap::new(),
            user: None,
        };
        let (text, is_error) = bash
            .bash(&json!({"command": "yes"}), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!is_error);
        assert!(
            text.ends_with("[... and 1000 more bytes past the 4 MiB of output kept were dropped]"),
            "{}",
            &text[text.len() - 200..]
        );
    }

    #[test]
    fn long_output_keeps_head_and_tail() {
        let text: String = (0..100)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let cut = truncate_middle(&text, 20);
        assert!(
            cut.starts_with("abcdefghij\n[... 80 characters omitted ...]\n"),
            "{cut}"
        );
        assert!(cut.ends_with(&text[90..]));
        assert_eq!(truncate_middle("short", 20), "short");
    }
}
