//! An ad-hoc run written as the pipeline it stands for: `helios run`'s tasks (a directory,
//! a glob, a registry dataset or a git repository), agent (built in or from the catalog),
//! model and attempts become a pipeline manifest, so the run goes through `apply` and a
//! saved copy (`--save`) reruns it, finding done what is done.

use std::path::{Path, PathBuf};

use crate::agent::AgentKind;
use crate::agent::installed;
use crate::env::Provider;

/// Where an ad-hoc run's tasks come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdHocSource {
    /// A task directory, a directory of tasks or a glob of task directories.
    Tasks(String),
    /// A registry dataset, `NAME@VERSION`.
    Dataset(String),
    /// A git repository (a URL).
    Git(String),
}

impl AdHocSource {
    /// What `target` names: an existing path is tasks (a directory without `task.toml`
    /// holds them), a URL is a git repository, `NAME@VERSION` a dataset, anything else a
    /// glob of task directories.
    pub fn parse(target: &str) -> AdHocSource {
        let path = Path::new(target);
        if path.is_dir() {
            return if path.join("task.toml").is_file() {
                AdHocSource::Tasks(target.to_string())
            } else {
                AdHocSource::Tasks(path.join("*").display().to_string())
            };
        }
        let url = ["https://", "http://", "ssh://", "file://", "git@"]
            .iter()
            .any(|scheme| target.starts_with(scheme))
            || target.ends_with(".git");
        if url {
            AdHocSource::Git(target.to_string())
        } else if target.contains('@') && !target.contains(['/', '*', '?', '[']) {
            AdHocSource::Dataset(target.to_string())
        } else {
            AdHocSource::Tasks(target.to_string())
        }
    }

    /// Whether this is one task directory.
    pub fn is_one_task(&self) -> bool {
        matches!(self, AdHocSource::Tasks(path) if Path::new(path).join("task.toml").is_file())
    }
}

/// Why an ad-hoc run cannot be written as a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdHocError {
    #[error(
        "unknown agent `{name}` (hint: a built-in agent ({}) or a catalog agent ({}))",
        .builtin.join(", "), .catalog.join(", ")
    )]
    UnknownAgent {
        name: String,
        builtin: Vec<String>,
        catalog: Vec<String>,
    },
    #[error("the `{0}` agent needs a model (hint: `--model provider/model` or `--model scripted`)")]
    NeedsModel(String),
    #[error("the `command` agent needs its command (hint: `--command '...'`)")]
    NeedsCommand,
    #[error(
        "`{0}` is not a pipeline name: letters, digits, `.`, `_` and `-`, first a letter or a digit"
    )]
    BadName(String),
}

/// What `helios run` was asked, as a pipeline.
#[derive(Debug, Clone)]
pub struct AdHoc {
    /// The pipeline's name: results go to `<output_dir>/<name>/`.
    pub name: String,
    pub source: AdHocSource,
    /// For a dataset: registries (URLs or paths) to look in; for a git repository: none.
    pub registries: Vec<String>,
    /// For a git repository: the rev and the glob of task directories in it.
    pub rev: Option<String>,
    pub path: Option<String>,
    /// A built-in agent kind (`terminal`) or a catalog agent (`claude-code`).
    pub agent: String,
    pub model: Option<String>,
    /// For the `scripted` model: the file of replies.
    pub script: Option<PathBuf>,
    pub base_url: Option<String>,
    /// For the `command` agent.
    pub command: Option<String>,
    pub attempts: u32,
    pub concurrency: Option<u32>,
    pub provider: Provider,
    pub output_dir: PathBuf,
}

impl AdHoc {
    /// The pipeline manifest, its paths relative to `base` (the directory the file goes
    /// in) where they are under it, else absolute.
    pub fn to_toml(&self, base: &Path) -> Result<String, AdHocError> {
        let valid_name = self
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid_name {
            return Err(AdHocError::BadName(self.name.clone()));
        }
        let kind = self.kind()?;
        let mut out = String::from(
            "# Written by `helios run`: `helios apply` of this file runs the same trials again,\n\
             # and finds done what is done.\n\n",
        );
        out.push_str("[pipeline]\n");
        out.push_str(&format!("name = {}\n", quote(&self.name)));
        out.push_str(&format!(
            "output_dir = {}\n",
            quote(&relative(&self.output_dir.display().to_string(), base))
        ));
        if let Some(concurrency) = self.concurrency {
            out.push_str(&format!("concurrency = {concurrency}\n"));
        }
        if self.provider != Provider::default() {
            out.push_str(&format!(
                "\n[environment]\nprovider = {}\n",
                quote(self.provider.as_str())
            ));
        }
        out.push_str("\n[[tasks]]\n");
        match &self.source {
            AdHocSource::Tasks(glob) => {
                out.push_str(&format!("path = {}\n", quote(&relative(glob, base))));
            }
            AdHocSource::Dataset(spec) => {
                out.push_str(&format!("dataset = {}\n", quote(spec)));
                let registries: Vec<String> = self
                    .registries
                    .iter()
                    .map(|r| {
                        if r.contains("://") {
                            quote(r)
                        } else {
                            quote(&relative(r, base))
                        }
                    })
                    .collect();
                match registries.as_slice() {
                    [] => {}
                    [one] => out.push_str(&format!("registry = {one}\n")),
                    many => out.push_str(&format!("registry = [{}]\n", many.join(", "))),
                }
            }
            AdHocSource::Git(url) => {
                out.push_str(&format!("git = {}\n", quote(url)));
                if let Some(rev) = &self.rev {
                    out.push_str(&format!("rev = {}\n", quote(rev)));
                }
                if let Some(path) = &self.path {
                    out.push_str(&format!("path = {}\n", quote(path)));
                }
            }
        }
        let model = self.model.as_ref().map(|id| (model_name(id), id));
        if let Some((name, id)) = &model {
            out.push_str(&format!("\n[models.{}]\nid = {}\n", key(name), quote(id)));
            if let Some(script) = &self.script {
                out.push_str(&format!(
                    "script = {}\n",
                    quote(&relative(&script.display().to_string(), base))
                ));
            }
            if let Some(url) = &self.base_url {
                out.push_str(&format!("base_url = {}\n", quote(url)));
            }
        }
        let agent = match kind {
            AgentKind::Oracle | AgentKind::Nop => self.agent.clone(),
            _ => {
                out.push_str(&format!(
                    "\n[agents.{}]\nkind = {}\n",
                    key(&self.agent),
                    quote(kind.as_str())
                ));
                if kind == AgentKind::Installed {
                    out.push_str(&format!("agent = {}\n", quote(&self.agent)));
                }
                if let Some(command) = &self.command {
                    out.push_str(&format!("command = {}\n", quote(command)));
                }
                if let Some((name, _)) = &model {
                    out.push_str(&format!("model = {}\n", quote(name)));
                }
                self.agent.clone()
            }
        };
        out.push_str(&format!(
            "\n[[stages]]\nname = \"run\"\nagents = [{}]\nattempts = {}\n",
            quote(&agent),
            self.attempts.max(1)
        ));
        Ok(out)
    }

    /// The agent's kind: a built-in one by its name, else the catalog's installed agent.
    fn kind(&self) -> Result<AgentKind, AdHocError> {
        let kind = match self.agent.as_str() {
            "oracle" => AgentKind::Oracle,
            "nop" => AgentKind::Nop,
            "terminal" => AgentKind::Terminal,
            "computer-use" => AgentKind::ComputerUse,
            "command" => AgentKind::Command,
            name if installed::names().any(|n| n == name) => AgentKind::Installed,
            name => {
                return Err(AdHocError::UnknownAgent {
                    name: name.to_string(),
                    builtin: ["oracle", "nop", "terminal", "computer-use", "command"]
                        .map(String::from)
                        .to_vec(),
                    catalog: installed::names().map(String::from).collect(),
                });
            }
        };
        if kind.needs_model() && self.model.is_none() {
            return Err(AdHocError::NeedsModel(self.agent.clone()));
        }
        if kind == AgentKind::Command && self.command.is_none() {
            return Err(AdHocError::NeedsCommand);
        }
        Ok(kind)
    }
}

/// A model's name under `[models]`: its id without the provider (`claude-sonnet-4-5`).
fn model_name(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// `name` as a TOML key: bare when it can be.
fn key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_string()
    } else {
        quote(name)
    }
}

/// `text` as a TOML string.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// `path` relative to `base` when it is under it, else absolute (lexically: a glob need
/// not exist).
fn relative(path: &str, base: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (path, base) = (absolute(Path::new(path)), absolute(base));
    match path.strip_prefix(&base) {
        Ok(inside) if inside.as_os_str().is_empty() => ".".to_string(),
        Ok(inside) => inside.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adhoc(source: &str, agent: &str, model: Option<&str>) -> AdHoc {
        AdHoc {
            name: "run".into(),
            source: AdHocSource::parse(source),
            registries: vec!["/work/p/registry.json".into()],
            rev: None,
            path: None,
            agent: agent.into(),
            model: model.map(String::from),
            script: model.map(|_| PathBuf::from("/work/p/replies.yaml")),
            base_url: None,
            command: None,
            attempts: 8,
            concurrency: Some(4),
            provider: Provider::default(),
            output_dir: PathBuf::from("/work/p/output"),
        }
    }

    #[test]
    fn a_target_is_tasks_a_dataset_or_a_repository() {
        assert_eq!(
            AdHocSource::parse("terminal-bench@2.0"),
            AdHocSource::Dataset("terminal-bench@2.0".into())
        );
        assert_eq!(
            AdHocSource::parse("https://github.com/org/tasks.git"),
            AdHocSource::Git("https://github.com/org/tasks.git".into())
        );
        assert_eq!(
            AdHocSource::parse("no/such/tasks/*"),
            AdHocSource::Tasks("no/such/tasks/*".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let tasks = dir.path().display().to_string();
        assert_eq!(
            AdHocSource::parse(&tasks),
            AdHocSource::Tasks(format!("{tasks}/*"))
        );
    }

    #[test]
    fn a_catalog_agent_on_a_dataset_is_an_installed_agent_stage() {
        let text = adhoc(
            "terminal-bench@2.0",
            "claude-code",
            Some("anthropic/claude-sonnet-4-5"),
        )
        .to_toml(Path::new("/work/p"))
        .unwrap();
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(manifest["pipeline"]["output_dir"].as_str(), Some("output"));
        assert_eq!(manifest["pipeline"]["concurrency"].as_integer(), Some(4));
        assert_eq!(
            manifest["tasks"][0]["dataset"].as_str(),
            Some("terminal-bench@2.0")
        );
        assert_eq!(
            manifest["tasks"][0]["registry"].as_str(),
            Some("registry.json")
        );
        let agent = &manifest["agents"]["claude-code"];
        assert_eq!(agent["kind"].as_str(), Some("installed"));
        assert_eq!(agent["agent"].as_str(), Some("claude-code"));
        assert_eq!(agent["model"].as_str(), Some("claude-sonnet-4-5"));
        let model = &manifest["models"]["claude-sonnet-4-5"];
        assert_eq!(model["id"].as_str(), Some("anthropic/claude-sonnet-4-5"));
        assert_eq!(model["script"].as_str(), Some("replies.yaml"));
        assert_eq!(manifest["stages"][0]["attempts"].as_integer(), Some(8));
    }

    #[test]
    fn agents_that_cannot_run_as_asked_are_refused() {
        let err = |agent: &str, model: Option<&str>| {
            adhoc("t@1", agent, model)
                .to_toml(Path::new("/"))
                .unwrap_err()
        };
        assert!(matches!(
            err("claud-code", None),
            AdHocError::UnknownAgent { .. }
        ));
        assert_eq!(err("codex", None), AdHocError::NeedsModel("codex".into()));
        assert_eq!(err("command", None), AdHocError::NeedsCommand);
        let mut bad = adhoc("t@1", "oracle", None);
        bad.name = "-x".into();
        assert!(matches!(
            bad.to_toml(Path::new("/")),
            Err(AdHocError::BadName(_))
        ));
    }
}
