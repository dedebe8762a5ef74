//! MCP servers given to installed agents: the agent layer's own description of a server
//! (the runner converts the task's `[[environment.mcp_servers]]` into it), and each
//! agent's configuration of them, rendered in that agent's format for its `run` template
//! (`{{ mcp_config }}`).
//!
//! Every format was checked against the agent's documentation:
//!
//! - Claude Code: a file given with `--mcp-config`, `{"mcpServers": {NAME: {"type":
//!   "http" | "sse" | "stdio", ...}}}`;
//! - Codex CLI: `[mcp_servers.NAME]` tables of `~/.codex/config.toml`, with `url` (a
//!   streamable HTTP server) or `command` and `args`; Codex has no SSE transport;
//! - Gemini CLI: `mcpServers` of `~/.gemini/settings.json`, with `httpUrl` (streamable
//!   HTTP), `url` (SSE) or `command` and `args`;
//! - OpenCode: `mcp` of `opencode.json`, `{"type": "remote", "url"}` (it tries streamable
//!   HTTP, then SSE) or `{"type": "local", "command": [COMMAND, ARGS...]}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// How an agent reaches an MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Server-sent events (MCP's older HTTP transport).
    Sse,
    /// Streamable HTTP: JSON-RPC over HTTP POST.
    StreamableHttp,
    /// A command the agent starts, speaking JSON-RPC on its standard input and output.
    Stdio,
}

/// An MCP server an agent is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServer {
    pub name: String,
    pub transport: Transport,
    /// The server's URL (`sse`, `streamable-http`).
    pub url: Option<String>,
    /// The command that starts it (`stdio`).
    pub command: Option<String>,
    pub args: Vec<String>,
}

/// The configuration format of an agent that takes MCP servers (a catalog entry's `mcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The `--mcp-config` file: the whole JSON document, `{"mcpServers": {...}}`. Also what
    /// a recipe of one's own (no catalog agent) sees, being the format most agents read.
    ClaudeCode,
    /// TOML tables `[mcp_servers.NAME]`, to append to `config.toml`.
    Codex,
    /// The JSON object of `settings.json`'s `mcpServers`.
    GeminiCli,
    /// The JSON object of `opencode.json`'s `mcp`.
    Opencode,
}

impl Format {
    /// The agent's name, for warnings.
    fn agent(self) -> &'static str {
        match self {
            Format::ClaudeCode => "Claude Code",
            Format::Codex => "Codex CLI",
            Format::GeminiCli => "Gemini CLI",
            Format::Opencode => "OpenCode",
        }
    }
}

/// The servers in one agent's format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// The configuration; empty when no server is given (so that a template can test it).
    pub text: String,
    /// Servers the agent cannot take, each with why.
    pub warnings: Vec<String>,
}

/// `servers` in `format`.
pub fn render(format: Format, servers: &[McpServer]) -> Rendered {
    let mut warnings = Vec::new();
    let mut entries = Map::new();
    let mut codex = toml::Table::new();
    for server in servers {
        let url = server.url.clone().unwrap_or_default();
        let command = server.command.clone().unwrap_or_default();
        let entry = match (format, server.transport) {
            (Format::ClaudeCode, Transport::StreamableHttp) => {
                json!({"type": "http", "url": url})
            }
            (Format::ClaudeCode, Transport::Sse) => json!({"type": "sse", "url": url}),
            (Format::ClaudeCode, Transport::Stdio) => {
                json!({"type": "stdio", "command": command, "args": server.args})
            }
            (Format::Codex, Transport::Sse) => {
                warnings.push(format!(
                    "{} does not speak MCP's SSE transport: it ran without MCP server `{}`",
                    format.agent(),
                    server.name
                ));
                continue;
            }
            (Format::Codex, transport) => {
                let mut table = toml::Table::new();
                if transport == Transport::Stdio {
                    table.insert("command".into(), command.into());
                    table.insert(
                        "args".into(),
                        toml::Value::Array(server.args.iter().cloned().map(Into::into).collect()),
                    );
                } else {
                    table.insert("url".into(), url.into());
                }
                codex.insert(server.name.clone(), toml::Value::Table(table));
                continue;
            }
            // `trust` skips Gemini CLI's confirmation of each tool call, as `--yolo` does for
            // its own tools.
            (Format::GeminiCli, Transport::StreamableHttp) => {
                json!({"httpUrl": url, "trust": true})
            }
            (Format::GeminiCli, Transport::Sse) => json!({"url": url, "trust": true}),
            (Format::GeminiCli, Transport::Stdio) => {
                json!({"command": command, "args": server.args, "trust": true})
            }
            (Format::Opencode, Transport::StreamableHttp | Transport::Sse) => {
                json!({"type": "remote", "url": url, "enabled": true})
            }
            (Format::Opencode, Transport::Stdio) => {
                let mut argv = vec![command];
                argv.extend(server.args.iter().cloned());
                json!({"type": "local", "command": argv, "enabled": true})
            }
        };
        entries.insert(server.name.clone(), entry);
    }
    let text = match format {
        Format::Codex if codex.is_empty() => String::new(),
        Format::Codex => {
            let mut document = toml::Table::new();
            document.insert("mcp_servers".into(), toml::Value::Table(codex));
            toml::to_string(&document).expect("a table of strings serializes")
        }
        _ if entries.is_empty() => String::new(),
        Format::ClaudeCode => json!({"mcpServers": entries}).to_string(),
        Format::GeminiCli | Format::Opencode => Value::Object(entries).to_string(),
    };
    Rendered { text, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<McpServer> {
        vec![
            McpServer {
                name: "notes".into(),
                transport: Transport::StreamableHttp,
                url: Some("http://mcp:8000/mcp".into()),
                command: None,
                args: Vec::new(),
            },
            McpServer {
                name: "events".into(),
                transport: Transport::Sse,
                url: Some("http://mcp:8000/sse".into()),
                command: None,
                args: Vec::new(),
            },
            McpServer {
                name: "files".into(),
                transport: Transport::Stdio,
                url: None,
                command: Some("mcp-files".into()),
                args: vec!["--root".into(), "/app".into()],
            },
        ]
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn claude_code_gets_an_mcp_config_file() {
        let rendered = render(Format::ClaudeCode, &servers());
        assert!(rendered.warnings.is_empty());
        assert_eq!(
            json(&rendered.text),
            json!({"mcpServers": {
                "notes": {"type": "http", "url": "http://mcp:8000/mcp"},
                "events": {"type": "sse", "url": "http://mcp:8000/sse"},
                "files": {"type": "stdio", "command": "mcp-files", "args": ["--root", "/app"]},
            }})
        );
    }

    #[test]
    fn codex_gets_toml_tables_and_no_sse_server() {
        let rendered = render(Format::Codex, &servers());
        let parsed: toml::Table = toml::from_str(&rendered.text).unwrap();
        let tables = parsed["mcp_servers"].as_table().unwrap();
        assert_eq!(tables["notes"]["url"].as_str(), Some("http://mcp:8000/mcp"));
        assert_eq!(tables["files"]["command"].as_str(), Some("mcp-files"));
        assert_eq!(tables["files"]["args"].as_array().unwrap().len(), 2);
        assert!(!tables.contains_key("events"));
        assert_eq!(rendered.warnings.len(), 1);
        assert!(rendered.warnings[0].contains("`events`"), "{rendered:?}");
    }

    #[test]
    fn gemini_cli_and_opencode_get_their_objects() {
        let gemini = json(&render(Format::GeminiCli, &servers()).text);
        assert_eq!(gemini["notes"]["httpUrl"], "http://mcp:8000/mcp");
        assert_eq!(gemini["events"]["url"], "http://mcp:8000/sse");
        assert_eq!(gemini["files"]["args"], json!(["--root", "/app"]));
        let opencode = json(&render(Format::Opencode, &servers()).text);
        assert_eq!(opencode["notes"]["type"], "remote");
        assert_eq!(opencode["events"]["type"], "remote");
        assert_eq!(
            opencode["files"]["command"],
            json!(["mcp-files", "--root", "/app"])
        );
    }

    #[test]
    fn no_server_is_an_empty_configuration() {
        for format in [
            Format::ClaudeCode,
            Format::Codex,
            Format::GeminiCli,
            Format::Opencode,
        ] {
            assert_eq!(render(format, &[]), Rendered::default());
        }
    }
}
