//! Task sources beyond local directories: git repositories at a rev and datasets named in
//! a Harbor-format registry, resolved to commits and tree ids, fetched once into a
//! verified, content-keyed cache ([`Cache`]) and read from it offline afterwards.
//!
//! Everything here is synchronous (git is a child process; a registry download runs on a
//! runtime of its own), so the manifest loader can resolve sources as it checks a file.

pub mod cache;
mod git;
pub mod registry;
mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};
use serde::{Deserialize, Serialize};

pub use cache::{Cache, VerifyReport};
pub use registry::{DEFAULT_REGISTRY, Registry};

/// What a `[[tasks]]` entry (or `helios datasets pull`) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// Task directories matching `path` (a glob inside the repository) at `rev`.
    Git {
        url: String,
        /// A commit id, tag or branch; `None` is the remote's `HEAD`.
        rev: Option<String>,
        path: String,
    },
    /// `NAME@VERSION` in the first of `registries` that lists `NAME`.
    Dataset {
        name: String,
        version: Option<String>,
        registries: Vec<String>,
    },
}

impl Spec {
    /// `NAME@VERSION` (or `NAME`) as a dataset spec.
    pub fn dataset(text: &str, registries: Vec<String>) -> Spec {
        let (name, version) = match text.rsplit_once('@') {
            Some((name, version)) => (name.to_string(), Some(version.to_string())),
            None => (text.to_string(), None),
        };
        Spec::Dataset {
            name,
            version,
            registries,
        }
    }

    /// How the source is named in plans and lock files.
    pub fn label(&self) -> String {
        match self {
            Spec::Git { url, rev, path } => {
                format!("git {url} @ {} : {path}", rev.as_deref().unwrap_or("HEAD"))
            }
            Spec::Dataset { name, version, .. } => match version {
                Some(v) => format!("dataset {name}@{v}"),
                None => format!("dataset {name}"),
            },
        }
    }
}

/// Where a resolved task's files came from: a directory of a repository at a commit, and
/// the tree id of that directory (its content digest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub url: String,
    pub commit: String,
    pub path: String,
    pub tree: String,
}

/// A task of a resolved source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTask {
    pub name: String,
    /// Its checkout in the cache (or, for a registry beside its tasks, the directory).
    pub dir: PathBuf,
    pub origin: Origin,
}

/// A source resolved to commits and tree ids, its tasks in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub label: String,
    /// The rev as written (`None` for datasets, whose tasks name their commits).
    pub rev: Option<String>,
    pub tasks: Vec<ResolvedTask>,
    /// Downloads made (git fetches, registry downloads); 0 is a cache hit.
    pub fetches: usize,
    /// Task directories written into the cache.
    pub checkouts: usize,
    /// Things worth saying (a registry or remote unreachable, the cached copy used).
    pub notes: Vec<String>,
}

/// What resolving is doing, for progress bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A download started: a git fetch or a registry.
    Fetching {
        what: String,
    },
    Fetched {
        what: String,
    },
    /// `total` task directories are being looked up or checked out.
    Tasks {
        total: usize,
    },
    TaskDone,
    /// A cache entry failed its check and is written again.
    Repairing {
        what: String,
    },
    /// `helios datasets verify`: `total` entries to check.
    Checking {
        total: usize,
    },
    Checked,
}

/// Receives [`Event`]s; the command line draws bars from them.
pub trait Progress: Sync {
    fn event(&self, event: Event);
}

/// Progress nobody watches.
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _event: Event) {}
}

/// Why a source could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("no dataset `{name}` in {}", list(registries))]
    UnknownDataset {
        name: String,
        registries: Vec<String>,
        /// Every dataset the registries list, for "did you mean".
        known: Vec<String>,
    },
    #[error("dataset `{name}` has no version `{version}`")]
    UnknownVersion {
        name: String,
        version: String,
        versions: Vec<String>,
    },
    #[error("dataset `{name}` has several versions; say which")]
    NoVersion { name: String, versions: Vec<String> },
    #[error("cannot reach `{url}`: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("`{rev}` is not a branch, tag or commit of `{url}`")]
    UnknownRev {
        url: String,
        rev: String,
        /// The remote's branch and tag names.
        names: Vec<String>,
    },
    #[error("commit `{commit}` is not in `{url}`")]
    CommitNotFound { url: String, commit: String },
    #[error(
        "`{pattern}` matches no task directory in `{url}` at {}",
        short(commit)
    )]
    NoTask {
        url: String,
        commit: String,
        pattern: String,
        /// Directories of the commit that hold a `task.toml`, for "did you mean".
        tasks: Vec<String>,
    },
    #[error("registry `{registry}` is not in Harbor's format: {detail}")]
    BadRegistry { registry: String, detail: String },
    #[error("{detail}")]
    Unsupported { detail: String },
    #[error("{command} failed: {detail}")]
    Git { command: String, detail: String },
    #[error("cache `{}`: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DatasetError {
    fn git(failure: git::GitFailure) -> DatasetError {
        DatasetError::Git {
            command: failure.command,
            detail: failure.detail,
        }
    }
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Resolves a source: its commits, its task directories and their tree ids, each task
/// checked out into (or found in) the cache.
pub fn resolve(
    spec: &Spec,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<Resolved, DatasetError> {
    let mut resolved = Resolved {
        label: spec.label(),
        rev: None,
        tasks: Vec::new(),
        fetches: 0,
        checkouts: 0,
        notes: Vec::new(),
    };
    match spec {
        Spec::Git { url, rev, path } => {
            resolved.rev = rev.clone();
            let mut repo = Repo::open(url, cache, progress)?;
            let commit = repo.resolve(rev.as_deref(), &mut resolved)?;
            let entries = repo.entries(&commit, &mut resolved)?;
            let dirs = matching_dirs(&entries, path).ok_or_else(|| DatasetError::NoTask {
                url: url.clone(),
                commit: commit.clone(),
                pattern: path.clone(),
                tasks: task_dirs(&entries).map(|(p, _)| p.to_string()).collect(),
            })?;
            progress.event(Event::Tasks { total: dirs.len() });
            for (dir, tree) in dirs {
                let name = dir.rsplit('/').next().unwrap_or(&dir).to_string();
                let task = repo.checkout(&entries, &commit, &dir, &tree, &name, &mut resolved)?;
                resolved.tasks.push(task);
                progress.event(Event::TaskDone);
            }
        }
        Spec::Dataset {
            name,
            version,
            registries,
        } => {
            let locations = if registries.is_empty() {
                vec![DEFAULT_REGISTRY.to_string()]
            } else {
                registries.clone()
            };
            let mut loaded = Vec::new();
            for location in &locations {
                let registry = Registry::load(location, cache, progress)?;
                if location.starts_with("http") && registry.stale.is_none() {
                    resolved.fetches += 1;
                }
                if let Some(detail) = &registry.stale {
                    resolved.notes.push(format!(
                        "registry `{location}` is unreachable ({detail}); using the copy in the cache"
                    ));
                }
                loaded.push(registry);
            }
            let (registry, entry) = registry::find(&loaded, name, version.as_deref())?;
            resolve_dataset(registry, entry, cache, progress, &mut resolved)?;
        }
    }
    Ok(resolved)
}

fn resolve_dataset(
    registry: &Registry,
    entry: &registry::DatasetEntry,
    cache: &Cache,
    progress: &dyn Progress,
    resolved: &mut Resolved,
) -> Result<(), DatasetError> {
    progress.event(Event::Tasks {
        total: entry.tasks.len(),
    });
    // Tasks of one repository at one commit share a mirror and one listing.
    let mut repos: BTreeMap<String, Repo> = BTreeMap::new();
    let mut listings: BTreeMap<(String, String), Vec<git::Entry>> = BTreeMap::new();
    for task in &entry.tasks {
        let path = task.path.trim_start_matches("./").trim_end_matches('/');
        let Some(url) = &task.git_url else {
            let base = registry.base.clone().unwrap_or_default();
            let dir = base.join(path);
            let tree = tree::tree_id(&dir, tree::ObjectFormat::Sha1)
                .ok()
                .flatten()
                .ok_or_else(|| DatasetError::NoTask {
                    url: registry.location.clone(),
                    commit: String::new(),
                    pattern: task.path.clone(),
                    tasks: Vec::new(),
                })?;
            resolved.tasks.push(ResolvedTask {
                name: task.name.clone(),
                dir,
                origin: Origin {
                    url: base.display().to_string(),
                    commit: String::new(),
                    path: path.to_string(),
                    tree,
                },
            });
            progress.event(Event::TaskDone);
            continue;
        };
        if !repos.contains_key(url) {
            repos.insert(url.clone(), Repo::open(url, cache, progress)?);
        }
        let repo = repos.get_mut(url).expect("just inserted");
        let commit = repo.resolve(task.git_commit_id.as_deref(), resolved)?;
        let key = (url.clone(), commit.clone());
        if !listings.contains_key(&key) {
            listings.insert(key.clone(), repo.entries(&commit, resolved)?);
        }
        let entries = &listings[&key];
        let tree = entries
            .iter()
            .find(|e| e.kind == "tree" && e.path == path)
            .map(|e| e.id.clone())
            .ok_or_else(|| DatasetError::NoTask {
                url: url.clone(),
                commit: commit.clone(),
                pattern: task.path.clone(),
                tasks: task_dirs(entries).map(|(p, _)| p.to_string()).collect(),
            })?;
        let checked = repo.checkout(entries, &commit, path, &tree, &task.name, resolved)?;
        resolved.tasks.push(checked);
        progress.event(Event::TaskDone);
    }
    Ok(())
}

/// A repository's mirror in the cache, and what has been resolved in it.
struct Repo<'a> {
    url: String,
    mirror: PathBuf,
    cache: &'a Cache,
    progress: &'a dyn Progress,
    /// The remote's refs, once asked (`Err` when it could not be reached).
    remote: Option<Result<Vec<(String, String)>, String>>,
    /// Revs already resolved.
    revs: BTreeMap<Option<String>, String>,
}

impl<'a> Repo<'a> {
    fn open(
        url: &str,
        cache: &'a Cache,
        progress: &'a dyn Progress,
    ) -> Result<Repo<'a>, DatasetError> {
        Ok(Repo {
            url: url.to_string(),
            mirror: cache.mirror(url)?,
            cache,
            progress,
            remote: None,
            revs: BTreeMap::new(),
        })
    }

    fn remote_refs(&mut self) -> &Result<Vec<(String, String)>, String> {
        let url = self.url.clone();
        self.remote
            .get_or_insert_with(|| git::ls_remote(&url).map_err(|f| f.detail))
    }

    fn fetch(&self, refspecs: &[&str], resolved: &mut Resolved) -> Result<(), git::GitFailure> {
        self.progress.event(Event::Fetching {
            what: self.url.clone(),
        });
        resolved.fetches += 1;
        let outcome = git::fetch(&self.mirror, &self.url, refspecs);
        if outcome.is_ok() {
            self.progress.event(Event::Fetched {
                what: self.url.clone(),
            });
        }
        outcome
    }

    /// The commit `rev` names, fetching only what the mirror lacks.
    fn resolve(
        &mut self,
        rev: Option<&str>,
        resolved: &mut Resolved,
    ) -> Result<String, DatasetError> {
        let key = rev.map(str::to_string);
        if let Some(commit) = self.revs.get(&key) {
            return Ok(commit.clone());
        }
        let commit = match rev {
            Some(id) if git::is_hex_id(id) => self.resolve_id(id, resolved)?,
            _ => self.resolve_name(rev.unwrap_or("HEAD"), resolved)?,
        };
        self.revs.insert(key, commit.clone());
        Ok(commit)
    }

    fn resolve_id(&mut self, id: &str, resolved: &mut Resolved) -> Result<String, DatasetError> {
        if let Some(commit) = git::commit_of(&self.mirror, id) {
            return Ok(commit);
        }
        // A whole id can be asked for directly; an abbreviated one needs the refs.
        if git::is_full_id(id)
            && self.fetch(&[id], resolved).is_ok()
            && let Some(commit) = git::commit_of(&self.mirror, id)
        {
            return Ok(commit);
        }
        if let Err(detail) = self.remote_refs().clone() {
            return Err(DatasetError::Unreachable {
                url: self.url.clone(),
                detail,
            });
        }
        self.fetch(
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            resolved,
        )
        .map_err(DatasetError::git)?;
        git::commit_of(&self.mirror, id).ok_or_else(|| DatasetError::CommitNotFound {
            url: self.url.clone(),
            commit: id.to_string(),
        })
    }

    fn resolve_name(&mut self, rev: &str, resolved: &mut Resolved) -> Result<String, DatasetError> {
        let candidates: Vec<String> = if rev == "HEAD" {
            vec!["HEAD".to_string()]
        } else if rev.starts_with("refs/") {
            vec![format!("{rev}^{{}}"), rev.to_string()]
        } else {
            vec![
                format!("refs/tags/{rev}^{{}}"),
                format!("refs/tags/{rev}"),
                format!("refs/heads/{rev}"),
            ]
        };
        // Where a fetched rev is kept in the mirror, so it resolves offline later.
        let local_name = |candidate: &str| -> String {
            let name = candidate.trim_end_matches("^{}");
            if name == "HEAD" {
                "refs/helios/HEAD".to_string()
            } else {
                name.to_string()
            }
        };
        let url = self.url.clone();
        match self.remote_refs().clone() {
            Ok(refs) => {
                let found = candidates.iter().find_map(|c| {
                    refs.iter()
                        .find(|(n, _)| n == c)
                        .map(|(n, id)| (n.clone(), id.clone()))
                });
                let Some((name, id)) = found else {
                    let mut names: Vec<String> = refs
                        .iter()
                        .filter(|(n, _)| !n.ends_with("^{}"))
                        .filter_map(|(n, _)| {
                            n.strip_prefix("refs/heads/")
                                .or_else(|| n.strip_prefix("refs/tags/"))
                                .map(str::to_string)
                        })
                        .collect();
                    names.sort();
                    names.dedup();
                    return Err(DatasetError::UnknownRev {
                        url,
                        rev: rev.to_string(),
                        names,
                    });
                };
                if let Some(commit) = git::commit_of(&self.mirror, &id) {
                    // Keep the mirror's ref current, so an offline run sees the same.
                    let _ = git::update_ref(&self.mirror, &local_name(&name), &commit);
                    return Ok(commit);
                }
                let target = local_name(&name);
                let source = name.trim_end_matches("^{}").to_string();
                let refspec = format!("+{source}:{target}");
                self.fetch(&[&refspec], resolved)
                    .map_err(DatasetError::git)?;
                git::commit_of(&self.mirror, &id)
                    .ok_or(DatasetError::CommitNotFound { url, commit: id })
            }
            Err(detail) => {
                let local = git::local_refs(&self.mirror);
                let found = candidates.iter().find_map(|c| {
                    let wanted = if c == "HEAD" {
                        "refs/helios/HEAD".to_string()
                    } else {
                        c.clone()
                    };
                    local
                        .iter()
                        .find(|(n, _)| *n == wanted)
                        .map(|(_, id)| id.clone())
                });
                match found.and_then(|id| git::commit_of(&self.mirror, &id)) {
                    Some(commit) => {
                        resolved.notes.push(format!(
                            "`{url}` is unreachable ({detail}); `{rev}` is {} as last fetched",
                            short(&commit)
                        ));
                        Ok(commit)
                    }
                    None => Err(DatasetError::Unreachable { url, detail }),
                }
            }
        }
    }

    fn entries(
        &mut self,
        commit: &str,
        resolved: &mut Resolved,
    ) -> Result<Vec<git::Entry>, DatasetError> {
        match git::ls_tree(&self.mirror, commit) {
            Ok(entries) => Ok(entries),
            Err(_) => {
                self.refetch(commit, resolved)?;
                git::ls_tree(&self.mirror, commit).map_err(DatasetError::git)
            }
        }
    }

    /// Replaces a damaged mirror by a fresh fetch of `commit`.
    fn refetch(&mut self, commit: &str, resolved: &mut Resolved) -> Result<(), DatasetError> {
        self.progress.event(Event::Repairing {
            what: self.mirror.display().to_string(),
        });
        self.cache.drop_mirror(&self.mirror);
        self.mirror = self.cache.mirror(&self.url)?;
        self.revs.clear();
        self.resolve_id(commit, resolved).map(drop)
    }

    fn checkout(
        &mut self,
        entries: &[git::Entry],
        commit: &str,
        path: &str,
        tree: &str,
        name: &str,
        resolved: &mut Resolved,
    ) -> Result<ResolvedTask, DatasetError> {
        let outcome = self
            .cache
            .checkout(&self.mirror, entries, path, tree, name, self.progress);
        let (dir, written) = match outcome {
            // The mirror lost objects it had: fetch it again, once.
            Err(DatasetError::Git { .. }) => {
                self.refetch(commit, resolved)?;
                self.cache
                    .checkout(&self.mirror, entries, path, tree, name, self.progress)?
            }
            other => other?,
        };
        if written {
            resolved.checkouts += 1;
        }
        Ok(ResolvedTask {
            name: name.to_string(),
            dir,
            origin: Origin {
                url: self.url.clone(),
                commit: commit.to_string(),
                path: path.to_string(),
                tree: tree.to_string(),
            },
        })
    }
}

/// Directories of a commit that hold a `task.toml`, with their tree ids.
fn task_dirs(entries: &[git::Entry]) -> impl Iterator<Item = (&str, &str)> {
    let manifests: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.kind == "blob")
        .filter_map(|e| e.path.strip_suffix("/task.toml"))
        .collect();
    entries
        .iter()
        .filter(move |e| e.kind == "tree" && manifests.contains(e.path.as_str()))
        .map(|e| (e.path.as_str(), e.id.as_str()))
}

/// Task directories matching `pattern` (`*` stays within one directory level), in path
/// order; `None` when there is none.
fn matching_dirs(entries: &[git::Entry], pattern: &str) -> Option<Vec<(String, String)>> {
    let pattern = Pattern::new(pattern.trim_start_matches("./").trim_end_matches('/')).ok()?;
    let options = MatchOptions {
        require_literal_separator: true,
        ..MatchOptions::new()
    };
    let dirs: Vec<(String, String)> = task_dirs(entries)
        .filter(|(path, _)| pattern.matches_with(path, options))
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    (!dirs.is_empty()).then_some(dirs)
}

/// Whether `text` names a remote (a URL or `user@host:path`) rather than a local path.
pub fn is_remote(text: &str) -> bool {
    text.contains("://")
        || text
            .split_once(':')
            .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'))
}

/// A `git =` value as git should see it: a remote as written, a local path made absolute
/// against `base` (the pipeline file's directory).
pub fn git_url(text: &str, base: &Path) -> String {
    if is_remote(text) {
        text.to_string()
    } else {
        let path = base.join(text.strip_prefix("file://").unwrap_or(text));
        std::fs::canonicalize(&path)
            .or_else(|_| std::path::absolute(&path))
            .unwrap_or(path)
            .display()
            .to_string()
    }
}
