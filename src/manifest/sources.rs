//! `[[tasks]]` entries that name a git repository or a registry dataset: which keys go
//! together, the spec handed to `crate::dataset`, and its errors as diagnostics at the
//! entry's line, with a hint.

use std::path::Path;

use super::document::Document;
use super::pipeline::TaskSource;
use crate::dataset::{Cache, DatasetError, Progress, Quiet, Resolved, Spec};
use crate::diagnostic::{Code, Diagnostic, suggestion_hint};

/// How git and dataset sources are resolved while a pipeline is loaded.
pub struct SourceOptions<'a> {
    pub cache: Cache,
    pub progress: &'a dyn Progress,
}

impl Default for SourceOptions<'_> {
    /// The cache of `$HELIOS_CACHE` (or the user cache directory), no progress shown.
    fn default() -> Self {
        SourceOptions {
            cache: Cache::from_env(),
            progress: &Quiet,
        }
    }
}

/// A `[[tasks]]` entry resolved through `crate::dataset`.
#[derive(Debug, Clone)]
pub struct PipelineSource {
    /// Which `[[tasks]]` entry, from 0.
    pub index: usize,
    /// Its line in the pipeline file.
    pub line: usize,
    pub resolved: Resolved,
}

/// What a `[[tasks]]` entry reads from.
pub(crate) enum Kind {
    /// A glob of directories relative to the pipeline file.
    Local(String),
    Remote(Spec),
}

/// The entry's kind, or diagnostics when its keys do not go together.
pub(crate) fn kind_of(
    file: &Path,
    base: &Path,
    i: usize,
    source: &TaskSource,
    doc: &Document,
    out: &mut Vec<Diagnostic>,
) -> Option<Kind> {
    let key = |field: &str| doc.key_span(&format!("/tasks/{i}/{field}"));
    let stray = |field: &str, needs: &str| {
        Diagnostic::error(
            Code::Conflict,
            file,
            format!("`{field}` goes with `{needs}`, which this entry does not have"),
        )
        .at(key(field))
        .label(format!("without `{needs}`"))
    };
    let errors_before = out.len();
    if source.git.is_some() && source.dataset.is_some() {
        out.push(
            Diagnostic::error(
                Code::Conflict,
                file,
                "an entry has `git` or `dataset`, not both",
            )
            .at(key("dataset"))
            .label("and `git` too")
            .hint("give each source its own `[[tasks]]` entry"),
        );
    }
    if source.rev.is_some() && source.git.is_none() {
        out.push(stray("rev", "git"));
    }
    if source.registry.is_some() && source.dataset.is_none() {
        out.push(stray("registry", "dataset"));
    }
    if source.dataset.is_some() && source.path.is_some() {
        out.push(
            Diagnostic::error(Code::Conflict, file, "`path` does not go with `dataset`")
                .at(key("path"))
                .label("a dataset lists its own task paths")
                .hint("pick tasks of a dataset with `include` and `exclude`"),
        );
    }
    if out.len() > errors_before {
        return None;
    }
    if let Some(git) = &source.git {
        return Some(Kind::Remote(Spec::Git {
            url: crate::dataset::git_url(git, base),
            rev: source.rev.clone(),
            path: source.path.clone().unwrap_or_else(|| "**".to_string()),
        }));
    }
    if let Some(dataset) = &source.dataset {
        let registries = source
            .registry
            .as_ref()
            .map(|r| r.list())
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                if crate::dataset::is_remote(&r) {
                    r
                } else {
                    base.join(r).display().to_string()
                }
            })
            .collect();
        return Some(Kind::Remote(Spec::dataset(dataset, registries)));
    }
    match &source.path {
        Some(path) => Some(Kind::Local(path.clone())),
        None => {
            out.push(
                Diagnostic::error(Code::MissingKey, file, "a `[[tasks]]` entry needs `path`, `git` or `dataset`")
                    .at(doc.value_span(&format!("/tasks/{i}")))
                    .label("says where no task comes from")
                    .hint("`path = \"tasks/*\"` for local directories, `git = \"URL\"` with `rev`, or `dataset = \"NAME@VERSION\"`"),
            );
            None
        }
    }
}

/// A resolution error at the key it is about.
pub(crate) fn diagnostic(
    file: &Path,
    doc: &Document,
    i: usize,
    spec: &Spec,
    error: DatasetError,
) -> Diagnostic {
    let span = |field: &str| doc.value_span(&format!("/tasks/{i}/{field}"));
    let is_git = matches!(spec, Spec::Git { .. });
    // Errors about a dataset's own tasks point at `dataset`, whatever repository they are in.
    let main = if is_git { span("git") } else { span("dataset") };
    let message = error.to_string();
    match error {
        DatasetError::UnknownDataset { name, known, .. } => {
            Diagnostic::error(Code::UndefinedReference, file, message)
                .at(main)
                .label("not in the registry")
                .maybe_hint(
                    suggestion_hint(&name, known.iter().map(String::as_str)).or_else(|| {
                        Some("`helios datasets list` shows what the registry has".to_string())
                    }),
                )
        }
        DatasetError::UnknownVersion { version, versions, .. } => {
            Diagnostic::error(Code::UndefinedReference, file, message)
                .at(main)
                .label("no such version")
                .maybe_hint(suggestion_hint(&version, versions.iter().map(String::as_str)))
        }
        DatasetError::NoVersion { name, versions } => {
            Diagnostic::error(Code::MissingKey, file, message)
                .at(main)
                .label("which version?")
                .hint(format!(
                    "write `{name}@VERSION` with one of {}",
                    versions.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
                ))
        }
        DatasetError::Unreachable { .. } => {
            let at = if !is_git && doc_has(doc, &format!("/tasks/{i}/registry")) {
                span("registry")
            } else {
                main
            };
            Diagnostic::error(Code::Io, file, message)
                .at(at)
                .label("unreachable")
                .hint("check the address and the network; once fetched, a source is used from the cache (`$HELIOS_CACHE`) without the network")
        }
        DatasetError::UnknownRev { rev, names, .. } => {
            Diagnostic::error(Code::UndefinedReference, file, message)
                .at(span("rev"))
                .label("no such branch or tag")
                .maybe_hint(closest(&rev, &names, "the branches and tags are"))
        }
        DatasetError::CommitNotFound { .. } => {
            let at = if is_git { span("rev") } else { main };
            Diagnostic::error(Code::UndefinedReference, file, message)
                .at(at)
                .label("no such commit")
                .hint("the commit may exist only in a clone that was never pushed; give a commit, tag or branch the repository has")
        }
        DatasetError::NoTask { pattern, tasks, .. } => {
            let at = if is_git && doc_has(doc, &format!("/tasks/{i}/path")) {
                span("path")
            } else {
                main
            };
            let hint = closest(&pattern, &tasks, "the task directories there are")
                .unwrap_or_else(|| {
                    "a task directory holds a `task.toml`; `*` matches within one directory level, `**` any depth".to_string()
                });
            Diagnostic::error(Code::NoMatch, file, message)
                .at(at)
                .label("matches no task")
                .hint(hint)
        }
        DatasetError::BadRegistry { .. } => {
            Diagnostic::error(Code::InvalidValue, file, message)
                .at(if doc_has(doc, &format!("/tasks/{i}/registry")) { span("registry") } else { main })
                .label("not a registry")
                .hint("a registry is a JSON list of `{name, version, description, tasks: [{name, git_url, git_commit_id, path}]}`")
        }
        DatasetError::Cache { .. } => Diagnostic::error(Code::Io, file, message)
            .at(main)
            .hint("set `HELIOS_CACHE` to a directory helios can write"),
        DatasetError::Unsupported { .. } | DatasetError::Git { .. } => {
            Diagnostic::error(Code::Io, file, message).at(main)
        }
    }
}

/// "did you mean" the closest of `candidates`, else a list of them introduced by `what`.
fn closest(wanted: &str, candidates: &[String], what: &str) -> Option<String> {
    suggestion_hint(wanted, candidates.iter().map(String::as_str))
        .map(|h| h.replace("expected one of", what))
}

fn doc_has(doc: &Document, pointer: &str) -> bool {
    doc.value.pointer(pointer).is_some()
}
