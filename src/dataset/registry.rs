//! Registries in Harbor's format: a JSON list of datasets, each a name, a version, a
//! description and its tasks, every task a `git_url`, a `git_commit_id` and a `path`
//! inside that repository. Read from a file or over HTTP(S), with the last copy fetched
//! kept in the cache for when the network is gone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache::Cache;
use super::{DatasetError, Event, Progress};

/// Harbor's own registry, where `terminal-bench@2.0` is listed.
pub const DEFAULT_REGISTRY: &str =
    "https://raw.githubusercontent.com/laude-institute/harbor/main/registry.json";

/// A dataset of a registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub tasks: Vec<TaskEntry>,
}

/// One task of a dataset: a directory of a repository at a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEntry {
    pub name: String,
    /// The repository; absent for a registry file that sits beside its tasks (the path is
    /// then relative to the registry file's directory).
    #[serde(default)]
    pub git_url: Option<String>,
    /// The commit; absent means the repository's default branch as it is now.
    #[serde(default)]
    pub git_commit_id: Option<String>,
    pub path: String,
}

/// A registry as read.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Where it was read from, as given.
    pub location: String,
    /// The directory a local registry's relative task paths start from.
    pub base: Option<PathBuf>,
    pub datasets: Vec<DatasetEntry>,
    /// The copy in the cache was used because the registry could not be reached.
    pub stale: Option<String>,
}

impl Registry {
    /// Reads the registry at `location`: an `http(s)://` URL, a `file://` URL or a path.
    pub fn load(
        location: &str,
        cache: &Cache,
        progress: &dyn Progress,
    ) -> Result<Registry, DatasetError> {
        let bad = |detail: String| DatasetError::BadRegistry {
            registry: location.to_string(),
            detail,
        };
        if location.starts_with("http://") || location.starts_with("https://") {
            progress.event(Event::Fetching {
                what: location.to_string(),
            });
            let copy = cache.registry_copy(location);
            let (bytes, stale) = match http_get(location) {
                Ok(bytes) => {
                    // Only a copy that parses is worth keeping for offline use.
                    let datasets: Vec<DatasetEntry> =
                        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
                    cache.store_registry_copy(&copy, &bytes)?;
                    progress.event(Event::Fetched {
                        what: location.to_string(),
                    });
                    return Ok(Registry {
                        location: location.to_string(),
                        base: None,
                        datasets,
                        stale: None,
                    });
                }
                Err(detail) => match std::fs::read(&copy) {
                    Ok(bytes) => (bytes, Some(detail)),
                    Err(_) => {
                        return Err(DatasetError::Unreachable {
                            url: location.to_string(),
                            detail,
                        });
                    }
                },
            };
            let datasets = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
            return Ok(Registry {
                location: location.to_string(),
                base: None,
                datasets,
                stale,
            });
        }
        let path = Path::new(location.strip_prefix("file://").unwrap_or(location));
        let bytes = std::fs::read(path).map_err(|e| DatasetError::Unreachable {
            url: location.to_string(),
            detail: format!("cannot read `{}`: {e}", path.display()),
        })?;
        Ok(Registry {
            location: location.to_string(),
            base: path.parent().map(Path::to_path_buf),
            datasets: serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?,
            stale: None,
        })
    }

    /// The versions of the dataset `name`, in registry order.
    pub fn versions(&self, name: &str) -> Vec<&DatasetEntry> {
        self.datasets.iter().filter(|d| d.name == name).collect()
    }
}

/// Finds `name@version` in the first registry that lists `name`.
pub(crate) fn find<'a>(
    registries: &'a [Registry],
    name: &str,
    version: Option<&str>,
) -> Result<(&'a Registry, &'a DatasetEntry), DatasetError> {
    let Some(registry) = registries.iter().find(|r| !r.versions(name).is_empty()) else {
        let mut known: Vec<String> = registries
            .iter()
            .flat_map(|r| r.datasets.iter().map(|d| d.name.clone()))
            .collect();
        known.sort();
        known.dedup();
        return Err(DatasetError::UnknownDataset {
            name: name.to_string(),
            registries: registries.iter().map(|r| r.location.clone()).collect(),
            known,
        });
    };
    let versions = registry.versions(name);
    let all: Vec<String> = versions.iter().map(|d| d.version.clone()).collect();
    let entry = match version {
        Some(version) => versions.into_iter().find(|d| d.version == version),
        None if versions.len() == 1 => versions.into_iter().next(),
        None => {
            return Err(DatasetError::NoVersion {
                name: name.to_string(),
                versions: all,
            });
        }
    };
    match entry {
        Some(entry) => Ok((registry, entry)),
        None => Err(DatasetError::UnknownVersion {
            name: name.to_string(),
            version: version.unwrap_or_default().to_string(),
            versions: all,
        }),
    }
}

/// GET over HTTP(S) with reqwest, on a runtime of its own so that it can be called from
/// synchronous code whether or not a tokio runtime is running on this thread.
fn http_get(url: &str) -> Result<Vec<u8>, String> {
    let url = url.to_string();
    let job = move || -> Result<Vec<u8>, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(15))
                .timeout(std::time::Duration::from_secs(120))
                .build()
                .map_err(|e| e.to_string())?;
            let response = client.get(&url).send().await.map_err(plain_error)?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("the server answered {status}"));
            }
            response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(plain_error)
        })
    };
    std::thread::scope(|scope| {
        scope
            .spawn(job)
            .join()
            .unwrap_or_else(|_| Err("the download thread panicked".to_string()))
    })
}

/// reqwest's error with its causes, which say what actually went wrong.
fn plain_error(error: reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
