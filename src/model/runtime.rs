//! The models of a run, made once from the pipeline: HTTP clients shared by every trial
//! (with the model's connection limit), or scripts that each trial plays from the start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::computer::Protocol;
use super::pricing::{self, Rates};
use super::retry::RetryPolicy;
use super::scripted::{Script, ScriptedModel};
use super::{HttpModel, ModelClient, ModelConfig};
use super::{ModelId, ModelProvider, ModelSpec};

/// One model of the pipeline, ready for trials.
#[derive(Clone)]
pub struct ModelRuntime {
    pub name: String,
    /// `provider/model`.
    pub id: String,
    pub rates: Option<Rates>,
    source: Source,
}

#[derive(Clone)]
enum Source {
    Http(Arc<HttpModel>),
    Scripted(Arc<Script>),
}

impl std::fmt::Debug for ModelRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRuntime")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ModelRuntime {
    /// A scripted model (`scripted/NAME`) playing `script`, priced at `rates`.
    pub fn scripted(name: &str, script: Script, rates: Option<Rates>) -> ModelRuntime {
        ModelRuntime {
            name: name.to_string(),
            id: format!("{}/{name}", ModelProvider::Scripted.name()),
            rates,
            source: Source::Scripted(Arc::new(script)),
        }
    }

    /// A client for one trial.
    pub fn client(&self) -> Arc<dyn ModelClient> {
        match &self.source {
            Source::Http(model) => model.clone(),
            Source::Scripted(script) => Arc::new(ScriptedModel::new(script.clone())),
        }
    }

    /// The computer tool a `computer-use` agent uses with this model: its provider's, or
    /// for a script, that of the provider whose replies it holds.
    pub fn computer_protocol(&self) -> Option<Protocol> {
        match &self.source {
            Source::Http(model) => model.config().id.provider.api(),
            Source::Scripted(script) => script.format.api(),
        }
    }
}

/// Why a model of the pipeline cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The model's name under `[models]`.
    pub model: String,
    /// The API key variable that is unset, when that is why.
    pub missing_key: Option<String>,
    /// What is wrong, phrased for people.
    pub message: String,
}

/// Makes every model of the pipeline; all problems (a missing key, a broken script) are
/// returned together.
pub fn build(
    models: &BTreeMap<String, ModelSpec>,
    base_dir: &Path,
    host: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, ModelRuntime>, Vec<Unavailable>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, spec) in models {
        let unavailable = |missing_key: Option<String>, message: String| Unavailable {
            model: name.clone(),
            missing_key,
            message,
        };
        let id = match ModelId::parse(&spec.id) {
            Ok(id) => id,
            Err(e) => {
                problems.push(unavailable(None, format!("model `{name}`: {e}")));
                continue;
            }
        };
        let rates = pricing::rates(&id, spec.price.as_ref());
        let source = if id.provider == ModelProvider::Scripted {
            let Some(script) = &spec.script else {
                problems.push(unavailable(
                    None,
                    format!("model `{name}` is scripted but has no `script`"),
                ));
                continue;
            };
            match Script::load(&base_dir.join(script)) {
                Ok(script) => Source::Scripted(Arc::new(script)),
                Err(e) => {
                    problems.push(unavailable(None, format!("model `{name}`: {e}")));
                    continue;
                }
            }
        } else {
            let mut config = ModelConfig::new(name, id.clone());
            config.base_url = spec.base_url.clone();
            if let Some(variable) = &spec.api_key_env {
                config.api_key_env = variable.clone();
            }
            config.params = spec.params.clone();
            if let Some(seconds) = spec.request_timeout_sec {
                config.request_timeout = Duration::from_secs_f64(seconds);
            }
            if let Some(retries) = spec.max_retries {
                config.retry = RetryPolicy {
                    max_attempts: retries as usize + 1,
                    ..RetryPolicy::default()
                };
            }
            match HttpModel::new(config, host) {
                Ok(model) => {
                    let model = match spec.max_connections {
                        Some(n) => model.with_limit(Arc::new(Semaphore::new(n as usize))),
                        None => model,
                    };
                    Source::Http(Arc::new(model))
                }
                Err(e) => {
                    let missing_key = match &e {
                        super::ModelError::MissingKey { variable } => Some(variable.clone()),
                        _ => None,
                    };
                    problems.push(unavailable(missing_key, format!("model `{name}`: {e}")));
                    continue;
                }
            }
        };
        out.insert(
            name.clone(),
            ModelRuntime {
                name: name.clone(),
                id: id.to_string(),
                rates,
                source,
            },
        );
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
