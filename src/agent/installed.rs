//! Installed agents (`kind = "installed"`): the built-in catalog (`data/agents.toml`),
//! recipes (a catalog entry with the pipeline's overrides, or a user's own), the install
//! script and its content address, and the command a trial runs; `setup` installs recipes
//! on an engine and probes task images for them.

pub(crate) mod setup;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::template::{TemplateError, render_with};

/// The catalog's text, embedded.
const CATALOG: &str = include_str!("../../data/agents.toml");

/// Where the agent's standard error goes, in `/logs/agent/`.
pub const STDERR_LOG: &str = "stderr.txt";

/// The log of an agent whose recipe names none.
pub const DEFAULT_LOG: &str = "installed.txt";

/// The dynamic loader every binary of an agent's volume (Node, CPython, native modules)
/// needs: glibc's, for x86-64.
pub const GLIBC_LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// What an image lacks when it has no glibc loader.
pub const LOADER_MISSING: &str =
    "glibc's x86-64 dynamic loader (/lib64/ld-linux-x86-64.so.2): it is not a glibc x86-64 image";

/// What an image lacks when the agent's runtime does not start in it.
pub const RUNTIME_MISSING: &str = "a C library the agent's runtime can run on";

/// The file in the agent's volume that says its install finished.
pub const COMPLETE_MARKER: &str = ".helios-complete";

/// The built-in catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// The image the install scripts run in.
    pub installer_image: String,
    /// Where an agent's volume is mounted, in the installer and in every trial.
    pub prefix: String,
    pub runtimes: BTreeMap<String, Runtime>,
    pub agents: BTreeMap<String, Entry>,
}

/// A runtime an agent runs on (Node, Python): its install script, which runs before the
/// agent's own, and its pinned versions, which both scripts see.
#[derive(Debug, Clone, Deserialize)]
pub struct Runtime {
    pub install: String,
    /// A command that runs the runtime in a task's image (with the agent's volume
    /// mounted): it fails where the image cannot run the agent.
    #[serde(default)]
    pub check: Option<String>,
    #[serde(flatten)]
    pub pins: BTreeMap<String, String>,
}

/// An agent of the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub description: String,
    /// The version installed when the pipeline names none.
    pub version: String,
    pub runtime: Option<String>,
    /// The wire format the agent speaks to its model.
    pub format: String,
    /// Its standard output's file in `/logs/agent/`.
    pub log: String,
    pub install: String,
    /// The format of its MCP configuration, if it takes MCP servers.
    #[serde(default)]
    pub mcp: Option<super::mcp::Format>,
    pub run: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

static PARSED: LazyLock<Catalog> =
    LazyLock::new(|| toml::from_str(CATALOG).expect("data/agents.toml is a valid catalog"));

/// The built-in catalog.
pub fn catalog() -> &'static Catalog {
    &PARSED
}

/// The names of the catalog's agents.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    catalog().agents.keys().map(String::as_str)
}

/// What a pipeline says of an installed agent (every field optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecipeFields<'a> {
    pub agent: Option<&'a str>,
    pub version: Option<&'a str>,
    pub runtime: Option<&'a str>,
    pub install: Option<&'a str>,
    pub run: Option<&'a str>,
}

/// Why an installed agent has no recipe.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecipeError {
    #[error("`{0}` is not an agent of the catalog")]
    UnknownAgent(String),
    #[error("`{0}` is not a runtime of the catalog")]
    UnknownRuntime(String),
    #[error("an installed agent needs `agent` (a catalog agent) or both `install` and `run`")]
    Incomplete,
}

/// Everything that decides how an installed agent is installed and run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipe {
    /// The catalog agent, or the pipeline's name of a user recipe.
    pub agent: String,
    pub version: String,
    pub runtime: Option<String>,
    pub install: String,
    pub run: String,
    /// The catalog's variables (the pipeline's own `env` is added to them per trial).
    pub env: BTreeMap<String, String>,
    pub log: String,
    pub installer_image: String,
    pub prefix: String,
    /// The format its `run` template's `mcp_config` is in: the catalog agent's, or
    /// Claude Code's `{"mcpServers": ...}` for a recipe of one's own.
    pub mcp: super::mcp::Format,
}

/// What an install script sees.
#[derive(Serialize)]
struct InstallContext<'a> {
    prefix: &'a str,
    version: &'a str,
    #[serde(flatten)]
    pins: BTreeMap<String, String>,
}

/// What a `run` template sees.
#[derive(Debug, Clone, Serialize)]
pub struct RunContext {
    /// The task's instruction.
    pub instruction: String,
    /// Where the instruction is in the container.
    pub instruction_file: String,
    /// The model's name without its provider (for `--model`).
    pub model: String,
    /// The model as `provider/model`.
    pub model_id: String,
    pub workdir: String,
    pub log_dir: String,
    pub prefix: String,
    pub version: String,
    /// The task's MCP servers, for a recipe of one's own to configure its agent with.
    pub mcp_servers: Vec<super::mcp::McpServer>,
    /// The task's MCP servers in the agent's format (`Recipe::mcp`); empty when the task
    /// has none.
    pub mcp_config: String,
}

impl RunContext {
    /// A context of the right shape, for checking templates before any trial.
    pub fn sample(recipe: &Recipe) -> RunContext {
        RunContext {
            instruction: "Create hello.txt.".into(),
            instruction_file: super::INSTRUCTION_PATH.into(),
            model: "model".into(),
            model_id: "provider/model".into(),
            workdir: "/app".into(),
            log_dir: "/logs/agent".into(),
            prefix: recipe.prefix.clone(),
            version: recipe.version.clone(),
            mcp_servers: Vec::new(),
            mcp_config: String::new(),
        }
    }
}

/// The recipe of the installed agent `name`: its catalog entry (if `agent` names one) with
/// the pipeline's fields over it.
pub fn resolve(name: &str, fields: RecipeFields<'_>) -> Result<Recipe, RecipeError> {
    let catalog = catalog();
    let entry = match fields.agent {
        Some(agent) => Some(
            catalog
                .agents
                .get(agent)
                .ok_or_else(|| RecipeError::UnknownAgent(agent.to_string()))?,
        ),
        None => None,
    };
    let runtime = fields
        .runtime
        .map(str::to_string)
        .or_else(|| entry.and_then(|e| e.runtime.clone()));
    if let Some(runtime) = &runtime
        && !catalog.runtimes.contains_key(runtime)
    {
        return Err(RecipeError::UnknownRuntime(runtime.clone()));
    }
    let install = fields
        .install
        .map(str::to_string)
        .or_else(|| entry.map(|e| e.install.clone()));
    let run = fields
        .run
        .map(str::to_string)
        .or_else(|| entry.map(|e| e.run.clone()));
    let (Some(install), Some(run)) = (install, run) else {
        return Err(RecipeError::Incomplete);
    };
    Ok(Recipe {
        agent: fields.agent.unwrap_or(name).to_string(),
        version: fields
            .version
            .map(str::to_string)
            .or_else(|| entry.map(|e| e.version.clone()))
            .unwrap_or_else(|| "custom".into()),
        runtime,
        install,
        run,
        env: entry.map(|e| e.env.clone()).unwrap_or_default(),
        log: entry.map_or_else(|| DEFAULT_LOG.to_string(), |e| e.log.clone()),
        installer_image: catalog.installer_image.clone(),
        prefix: catalog.prefix.clone(),
        mcp: entry
            .and_then(|e| e.mcp)
            .unwrap_or(super::mcp::Format::ClaudeCode),
    })
}

impl Recipe {
    /// The whole install script: strict shell, the runtime's script, the agent's, and the
    /// marker that says it finished.
    pub(crate) fn install_script(&self) -> Result<String, TemplateError> {
        let runtime = self
            .runtime
            .as_ref()
            .and_then(|r| catalog().runtimes.get(r));
        let context = InstallContext {
            prefix: &self.prefix,
            version: &self.version,
            pins: runtime.map(|r| r.pins.clone()).unwrap_or_default(),
        };
        let mut script = String::from("set -eu\n");
        if let (Some(name), Some(runtime)) = (&self.runtime, runtime) {
            script.push_str(&render_with(
                &format!("runtime {name} install"),
                &runtime.install,
                &context,
            )?);
            script.push('\n');
        }
        script.push_str(&render_with(
            &format!("{} install", self.agent),
            &self.install,
            &context,
        )?);
        script.push_str(&format!("\ntouch {}/{COMPLETE_MARKER}\n", self.prefix));
        Ok(script)
    }

    /// The script that checks a task's image can run the agent, with its volume mounted: it
    /// prints `helios-fit`, or `helios-missing: WHAT` and what went wrong. The loader is
    /// glibc's (every binary in the volume needs it); the runtime's own check runs its
    /// executable, which fails on a C library too old or not glibc.
    pub(crate) fn image_check_script(&self) -> Result<String, TemplateError> {
        let mut script = format!(
            "if [ ! -e {GLIBC_LOADER} ]; then echo \"helios-missing: {LOADER_MISSING}\"; exit 0; fi\n"
        );
        let runtime = self
            .runtime
            .as_ref()
            .and_then(|r| catalog().runtimes.get(r).map(|rt| (r, rt)));
        if let Some((name, runtime)) = runtime
            && let Some(check) = &runtime.check
        {
            let context = InstallContext {
                prefix: &self.prefix,
                version: &self.version,
                pins: runtime.pins.clone(),
            };
            let check = render_with(&format!("runtime {name} check"), check, &context)?;
            script.push_str(&format!(
                "if ! out=\"$( {{ {check}\n}} 2>&1 )\"; then echo \"helios-missing: {RUNTIME_MISSING} ($name: $out)\"; exit 0; fi\n",
                check = check.trim_end(),
            ));
        }
        script.push_str("echo helios-fit\n");
        Ok(script)
    }

    /// The content address of the install: the installer image, the prefix and the script.
    pub(crate) fn digest(&self) -> Result<String, TemplateError> {
        let mut hash = Sha256::new();
        for part in [&self.installer_image, &self.prefix, &self.install_script()?] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        Ok(hex::encode(hash.finalize()))
    }

    /// The Docker volume the agent is installed in.
    pub(crate) fn volume(&self) -> Result<String, TemplateError> {
        let clean = |text: &str| -> String {
            text.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        Ok(format!(
            "helios-agent-{}-{}-{}",
            clean(&self.agent),
            clean(&self.version),
            &self.digest()?[..12]
        ))
    }

    /// The task's MCP servers as the agent takes them: `None` when its `run` template uses
    /// neither `mcp_config` nor `mcp_servers`, so the agent cannot be given any.
    pub fn mcp_config(&self, servers: &[super::mcp::McpServer]) -> Option<super::mcp::Rendered> {
        let takes = ["mcp_config", "mcp_servers"]
            .into_iter()
            .any(|name| crate::template::uses_variable(&self.run, name));
        takes.then(|| super::mcp::render(self.mcp, servers))
    }

    /// The shell command a trial runs: the agent's bin directories on `PATH`, its runtime's
    /// libraries found, and its `run` template with its output in `/logs/agent/`.
    pub(crate) fn command(&self, context: &RunContext) -> Result<String, TemplateError> {
        let run = render_with(&format!("{} run", self.agent), &self.run, context)?;
        let prefix = &self.prefix;
        Ok(format!(
            "export PATH=\"{prefix}/bin:{prefix}/node/bin:$PATH\"\n\
             export LD_LIBRARY_PATH=\"{prefix}/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n\
             {{ {run}\n}} > {log_dir}/{log} 2> {log_dir}/{STDERR_LOG}",
            run = run.trim_end(),
            log_dir = context.log_dir,
            log = self.log,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_parses_and_every_entry_renders() {
        let catalog = catalog();
        for name in [
            "claude-code",
            "codex",
            "gemini-cli",
            "opencode",
            "mini-swe-agent",
            "aider",
        ] {
            let recipe = resolve(
                name,
                RecipeFields {
                    agent: Some(name),
                    ..Default::default()
                },
            )
            .unwrap();
            let script = recipe.install_script().unwrap();
            assert!(script.contains(&recipe.version), "{name}: {script}");
            assert!(script.ends_with(&format!("touch /helios/agent/{COMPLETE_MARKER}\n")));
            let command = recipe.command(&RunContext::sample(&recipe)).unwrap();
            assert!(
                command.contains(&format!("/logs/agent/{}", recipe.log)),
                "{command}"
            );
            assert!(
                catalog
                    .runtimes
                    .contains_key(recipe.runtime.as_ref().unwrap())
            );
        }
    }

    #[test]
    fn the_volume_is_addressed_by_the_recipe() {
        let fields = RecipeFields {
            agent: Some("claude-code"),
            ..Default::default()
        };
        let default = resolve("cc", fields).unwrap();
        let other = resolve(
            "cc",
            RecipeFields {
                version: Some("2.0.0"),
                ..fields
            },
        )
        .unwrap();
        assert_eq!(
            default.volume().unwrap(),
            resolve("another-name", fields).unwrap().volume().unwrap()
        );
        assert_ne!(default.volume().unwrap(), other.volume().unwrap());
        assert!(
            other
                .volume()
                .unwrap()
                .starts_with("helios-agent-claude-code-2.0.0-")
        );
    }

    #[test]
    fn a_user_recipe_needs_install_and_run() {
        assert_eq!(
            resolve("mine", RecipeFields::default()),
            Err(RecipeError::Incomplete)
        );
        assert_eq!(
            resolve(
                "mine",
                RecipeFields {
                    agent: Some("claude"),
                    ..Default::default()
                }
            ),
            Err(RecipeError::UnknownAgent("claude".into()))
        );
        let recipe = resolve(
            "mine",
            RecipeFields {
                install: Some("echo {{ version }} > {{ prefix }}/v"),
                run: Some("cat {{ prefix }}/v; echo {{ model }}"),
                version: Some("3"),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            recipe
                .install_script()
                .unwrap()
                .contains("echo 3 > /helios/agent/v")
        );
        assert_eq!(recipe.log, DEFAULT_LOG);
        let mut context = RunContext::sample(&recipe);
        context.model = "sonnet".into();
        assert!(recipe.command(&context).unwrap().contains("echo sonnet"));
        let bad = Recipe {
            run: "{{ modle }}".into(),
            ..recipe
        };
        let error = bad.command(&context).unwrap_err();
        assert!(error.to_string().contains("modle"), "{error}");
    }
}

#[cfg(test)]
mod mcp_tests {
    use super::*;
    use crate::agent::mcp::{McpServer, Transport};

    fn recipe(agent: &str) -> Recipe {
        resolve(
            agent,
            RecipeFields {
                agent: Some(agent),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn notes() -> Vec<McpServer> {
        vec![McpServer {
            name: "notes".into(),
            transport: Transport::StreamableHttp,
            url: Some("http://mcp:8000/mcp?k=$HOME".into()),
            command: None,
            args: Vec::new(),
        }]
    }

    #[test]
    fn the_agents_that_take_mcp_servers_get_them_in_their_configuration() {
        for (agent, expected) in [
            ("claude-code", "--mcp-config /logs/agent/mcp.json"),
            ("codex", "[mcp_servers.notes]"),
            ("gemini-cli", "\"mcpServers\": {\"notes\":"),
            // Escaped for its unquoted heredoc.
            ("opencode", "\"url\":\"http://mcp:8000/mcp?k=\\$HOME\""),
        ] {
            let recipe = recipe(agent);
            let rendered = recipe.mcp_config(&notes()).expect(agent);
            assert!(rendered.warnings.is_empty(), "{agent}: {rendered:?}");
            let mut context = RunContext::sample(&recipe);
            context.mcp_servers = notes();
            context.mcp_config = rendered.text;
            let command = recipe.command(&context).unwrap();
            assert!(command.contains(expected), "{agent}: {command}");
            // Without servers, the command is as it was.
            let plain = recipe.command(&RunContext::sample(&recipe)).unwrap();
            assert!(!plain.contains("mcp"), "{agent}: {plain}");
        }
    }

    #[test]
    fn the_agents_that_cannot_take_mcp_servers_say_so() {
        for agent in ["mini-swe-agent", "aider"] {
            assert_eq!(recipe(agent).mcp_config(&notes()), None, "{agent}");
        }
        let own = resolve(
            "mine",
            RecipeFields {
                install: Some("true"),
                run: Some("my-agent {% for s in mcp_servers %}--mcp {{ s.url }} {% endfor %}"),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(own.mcp_config(&notes()).is_some());
    }
}
