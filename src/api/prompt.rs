//! Runs on a prompt instead of a task: an [`Agent`] (a name, instructions and a model)
//! answers an input in a default sandbox, a Debian container for its bash tool, through
//! the same path as [`AgentRunner`]. [`Runner::run`] returns the [`RunResult`] (with
//! [`RunResult::final_output`]), [`Runner::stream`] its events; `history` carries the
//! earlier turns of a conversation.
//!
//! ```no_run
//! # async fn demo() -> Result<(), helios::RunnerError> {
//! use helios::{Agent, Message, RunConfig, Runner};
//!
//! let agent = Agent::new("Assistant", "You are helpful.").model("claude-sonnet-4-20250514");
//! let history = [Message::user("Hi, I am Alice.")];
//! let result = Runner::new().run(&agent, "What is my name?", &RunConfig::default(), &history).await?;
//! println!("{}", result.final_output.unwrap_or_default());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{AgentRunner, RunConfig, RunResult, RunStream, RunnerError};

/// The model an [`Agent`] uses when it names none (the model of the reference examples).
pub const DEFAULT_AGENT_MODEL: &str = "claude-sonnet-4-20250514";

/// The sandbox's image: the base every bundled task builds on.
const SANDBOX_DOCKERFILE: &str = "FROM debian:bookworm-slim\nWORKDIR /app\n";

/// A prompt run has nothing to check: the verifier records reward 1 once the agent is done,
/// so `success` says the agent finished.
const SANDBOX_TEST: &str =
    "#!/usr/bin/env bash\nmkdir -p /logs/verifier\necho 1 > /logs/verifier/reward.txt\n";

/// What the agent is told about its tools, after its own instructions.
const TOOL_GUIDANCE: &str = "\n\nYou work in a Linux container: the `bash` tool runs a \
command there (each call starts a new shell in /app). Answer in plain text. When you are \
done, call the `finish` tool.\nYou have at most {{ limits.max_turns }} turns and \
{{ limits.max_time }} seconds.";

/// An agent that answers prompts: its name, its instructions (the system prompt) and its
/// model.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub name: String,
    pub instructions: String,
    /// A model id as [`AgentRunner::model`] takes it ([`DEFAULT_AGENT_MODEL`] by default).
    pub model: String,
    /// For the `scripted` model: the file of replies.
    pub script: Option<PathBuf>,
    /// An OpenAI-compatible endpoint for `openai/...` models.
    pub base_url: Option<String>,
}

impl Agent {
    pub fn new(name: impl Into<String>, instructions: impl Into<String>) -> Agent {
        Agent {
            name: name.into(),
            instructions: instructions.into(),
            model: DEFAULT_AGENT_MODEL.to_string(),
            script: None,
            base_url: None,
        }
    }

    pub fn model(mut self, id: impl Into<String>) -> Agent {
        self.model = id.into();
        self
    }

    pub fn script(mut self, path: impl Into<PathBuf>) -> Agent {
        self.script = Some(path.into());
        self
    }

    pub fn base_url(mut self, url: impl Into<String>) -> Agent {
        self.base_url = Some(url.into());
        self
    }
}

/// Who said a [`Message`] of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    /// `"user"` or `"assistant"`, as the reference history spells them.
    pub fn parse(role: &str) -> Option<Role> {
        match role {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One earlier turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Runs agents on prompts. Its settings are those of [`AgentRunner`] that a prompt run
/// has: where results go, the provider and the labels.
#[derive(Debug, Clone)]
pub struct Runner {
    output_dir: PathBuf,
    provider: String,
    labels: BTreeMap<String, String>,
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new()
    }
}

impl Runner {
    /// Results in `output/`, sandboxes in Docker.
    pub fn new() -> Runner {
        Runner {
            output_dir: PathBuf::from("output"),
            provider: "docker".into(),
            labels: BTreeMap::new(),
        }
    }

    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = dir.into();
        self
    }

    /// `docker` (the default) or `daytona`.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// A label on the sandbox's container and image.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Runs `agent` on `input` to the end. The earlier turns in `history` come before the
    /// input in the agent's first message.
    pub async fn run(
        &self,
        agent: &Agent,
        input: &str,
        config: &RunConfig,
        history: &[Message],
    ) -> Result<RunResult, RunnerError> {
        self.runner(agent, input, config, history)?.run().await
    }

    /// Starts the run and returns its events as they happen (see [`AgentRunner::stream`]).
    pub async fn stream(
        &self,
        agent: &Agent,
        input: &str,
        config: &RunConfig,
        history: &[Message],
    ) -> Result<RunStream, RunnerError> {
        self.runner(agent, input, config, history)?.stream().await
    }

    /// The [`AgentRunner`] of a prompt run: a sandbox task written to a temporary
    /// directory that lives as long as the run.
    fn runner(
        &self,
        agent: &Agent,
        input: &str,
        config: &RunConfig,
        history: &[Message],
    ) -> Result<AgentRunner, RunnerError> {
        let scratch = tempfile::Builder::new()
            .prefix("helios-prompt-")
            .tempdir()
            .map_err(|e| RunnerError::Sandbox(e.to_string()))?;
        let task = scratch.path().join("prompt");
        let files = [
            ("task.toml".to_string(), sandbox_manifest(config)),
            ("instruction.md".to_string(), input.to_string()),
            ("environment/Dockerfile".into(), SANDBOX_DOCKERFILE.into()),
            ("tests/test.sh".into(), SANDBOX_TEST.into()),
            (
                "prompts/system.j2".into(),
                format!("{}{TOOL_GUIDANCE}", raw(&agent.instructions)),
            ),
            ("prompts/user.j2".into(), user_prompt(history)),
        ];
        for (name, content) in files {
            let path = task.join(name);
            std::fs::create_dir_all(path.parent().expect("a file in the task"))
                .and_then(|()| std::fs::write(&path, content))
                .map_err(|e| RunnerError::Sandbox(format!("{}: {e}", path.display())))?;
        }
        let mut config = config.clone();
        config.run_id = config.run_id.or_else(|| Some(run_id(&agent.name)));
        let mut runner = AgentRunner::new(&task)
            .agent("terminal")
            .model(agent.model.clone())
            .system_prompt(task.join("prompts/system.j2"))
            .user_prompt(task.join("prompts/user.j2"))
            .provider(self.provider.clone())
            .output_dir(self.output_dir.clone())
            .config(config);
        if let Some(script) = &agent.script {
            runner = runner.script(script.clone());
        }
        if let Some(url) = &agent.base_url {
            runner = runner.base_url(url.clone());
        }
        for (key, value) in &self.labels {
            runner = runner.label(key.clone(), value.clone());
        }
        runner.keep_alive = Some(Arc::new(scratch));
        Ok(runner)
    }
}

/// The sandbox's `task.toml`: the agent may use the whole of `max_time`.
fn sandbox_manifest(config: &RunConfig) -> String {
    format!(
        "schema_version = \"1.0\"\n\n[metadata]\ncategory = \"prompt\"\n\n[agent]\n\
         timeout_sec = {:.1}\n\n[verifier]\ntimeout_sec = 30.0\n\n[environment]\n\
         workdir = \"/app\"\ncpus = 1\nmemory_mb = 1024\n",
        config.max_time.max(1.0)
    )
}

/// The first user message: the conversation so far, then the input.
fn user_prompt(history: &[Message]) -> String {
    if history.is_empty() {
        return "{{ instruction }}".into();
    }
    let mut said = String::from("The conversation so far:\n\n");
    for message in history {
        said.push_str(&format!(
            "{}: {}\n\n",
            message.role.as_str(),
            message.content
        ));
    }
    said.push_str("Now the user says:\n\n");
    format!("{}{{{{ instruction }}}}", raw(&said))
}

/// Text a template shows as it is.
fn raw(text: &str) -> String {
    format!(
        "{{% raw %}}{}{{% endraw %}}",
        text.replace("{% endraw %}", "{% endraw %}{{ '{% endraw %}' }}{% raw %}")
    )
}

/// A run id from the agent's name and the time: `assistant-1764590000000`.
fn run_id(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_matches('-');
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{}-{millis}", if slug.is_empty() { "agent" } else { slug })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{compile, render, tests::sample};

    #[test]
    fn instructions_and_history_reach_the_prompts_as_written() {
        let mut context = sample();
        context.instruction = "What is my name?".into();
        let system = format!("{}{TOOL_GUIDANCE}", raw("Be {{ brief }} {% endraw %}."));
        let system = render("system", &system, &context).unwrap();
        assert!(
            system.starts_with("Be {{ brief }} {% endraw %}.\n\nYou work"),
            "{system}"
        );
        let history = [
            Message::user("I am Alice."),
            Message::assistant("Hello Alice!"),
        ];
        let user = render("user", &user_prompt(&history), &context).unwrap();
        assert_eq!(
            user,
            "The conversation so far:\n\nuser: I am Alice.\n\nassistant: Hello Alice!\n\n\
             Now the user says:\n\nWhat is my name?"
        );
        assert!(compile("user", &user_prompt(&[])).is_ok());
    }

    #[test]
    fn the_sandbox_is_a_valid_task() {
        let runner = Runner::new()
            .runner(
                &Agent::new("My Agent!", "Be brief."),
                "Say hi",
                &RunConfig::default(),
                &[],
            )
            .unwrap();
        let task = crate::manifest::load_task(&runner.task_path).unwrap().value;
        assert_eq!(task.name, "prompt");
        assert_eq!(task.manifest.agent.timeout_sec, Some(300.0));
        assert!(runner.config.run_id.unwrap().starts_with("my-agent-"));
    }
}
