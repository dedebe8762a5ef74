//! Manifests: reading task directories and pipeline files, checking them completely, and
//! handing back typed values.
//!
//! Every input goes through the same steps: parse (TOML or YAML, with spans) → JSON Schema →
//! typed deserialization → semantic checks. Each step reports all it finds as
//! [`Diagnostic`]s with a place in the file; a later step runs only when the earlier ones
//! found no error in that file.

mod check_pipeline;
mod check_task;
pub mod compose;
pub mod discover;
pub mod document;
pub mod env_expand;
pub mod paths;
pub mod pipeline;
pub mod schema;
pub mod size;
pub mod sources;
pub mod stage_graph;
pub mod task;
pub mod task_support;
mod toml_source;
pub mod trials;
mod yaml_source;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

/// The names a prompt template may use at its top level.
pub use crate::template::VARIABLES as TEMPLATE_CONTEXT;
pub use check_pipeline::BUILTIN_AGENTS;
pub use document::{Document, Syntax};
pub use pipeline::PipelineManifest;
pub use schema::SchemaKind;
pub use sources::{PipelineSource, SourceOptions};
pub use task::TaskManifest;

use crate::diagnostic::{Code, Diagnostic, Report};

/// A task directory whose manifest and files passed every check.
#[derive(Debug, Clone)]
pub struct TaskDir {
    /// The directory's name, which is the task's name in results.
    pub name: String,
    pub dir: PathBuf,
    pub manifest: TaskManifest,
}

/// A pipeline that passed every check, with the tasks it selects.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub path: PathBuf,
    /// The directory the pipeline's relative paths start from.
    pub base_dir: PathBuf,
    pub manifest: PipelineManifest,
    pub tasks: Vec<TaskDir>,
    /// The git and dataset sources, as resolved (commits, tree ids, cache directories).
    pub sources: Vec<PipelineSource>,
    /// Invalid tasks of sources with `on_invalid = "skip"`, left out of the run.
    pub skipped: Vec<SkippedTask>,
}

/// A task left out because it is invalid and its source says `on_invalid = "skip"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedTask {
    pub name: String,
    pub dir: PathBuf,
    /// Each problem found, one line each (`file:line:column: message`).
    pub problems: Vec<String>,
}

/// The manifests were not valid; the report holds every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.report)]
pub struct ManifestError {
    pub report: Report,
}

/// A loaded value and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub value: T,
    pub warnings: Report,
}

/// Loads and checks one task directory.
pub fn load_task(dir: &Path) -> Result<Loaded<TaskDir>, ManifestError> {
    let options = SourceOptions::default();
    let mut loader = Loader::new(&options);
    let task = loader.task(dir);
    loader.finish(task)
}

/// Loads and checks a pipeline file and every task it selects.
pub fn load_pipeline(path: &Path) -> Result<Loaded<Pipeline>, ManifestError> {
    load_pipeline_with(path, &SourceOptions::default())
}

/// [`load_pipeline`] with git and dataset sources resolved through `options`' cache, with
/// its progress reported.
pub fn load_pipeline_with(
    path: &Path,
    options: &SourceOptions<'_>,
) -> Result<Loaded<Pipeline>, ManifestError> {
    let mut loader = Loader::new(options);
    let pipeline = loader.pipeline(path);
    loader.finish(pipeline)
}

/// The result of checking several inputs, as `helios validate` does.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    pub report: Report,
    /// How many files were read.
    pub files_checked: usize,
}

/// Checks pipeline files and task directories; a path that is a directory is a task, a
/// `task.toml` stands for its directory, any other file is a pipeline.
pub fn validate_paths(paths: &[PathBuf]) -> Validation {
    let options = SourceOptions::default();
    let mut loader = Loader::new(&options);
    for path in paths {
        let path = paths::clean(path);
        if path.is_dir() {
            loader.task(&path);
        } else if path.file_name().is_some_and(|n| n == "task.toml") {
            loader.task(&paths::base_dir(&path));
        } else if path.exists() {
            loader.pipeline(&path);
        } else {
            loader.report.push(
                Diagnostic::error(
                    Code::Io,
                    &path,
                    format!("`{}` does not exist", path.display()),
                )
                .hint("give a pipeline file or a task directory"),
            );
        }
    }
    loader.report.sort();
    Validation {
        files_checked: loader.files.len(),
        report: loader.report,
    }
}

struct Loader<'a> {
    report: Report,
    files: BTreeSet<PathBuf>,
    tasks: HashMap<PathBuf, Option<TaskDir>>,
    sources: &'a SourceOptions<'a>,
}

impl<'a> Loader<'a> {
    fn new(sources: &'a SourceOptions<'a>) -> Loader<'a> {
        Loader {
            report: Report::default(),
            files: BTreeSet::new(),
            tasks: HashMap::new(),
            sources,
        }
    }

    fn finish<T>(mut self, value: Option<T>) -> Result<Loaded<T>, ManifestError> {
        self.report.sort();
        match value {
            Some(value) if !self.report.has_errors() => Ok(Loaded {
                value,
                warnings: self.report,
            }),
            _ => Err(ManifestError {
                report: self.report,
            }),
        }
    }

    fn read(&mut self, path: &Path) -> Option<Arc<str>> {
        self.files.insert(path.to_path_buf());
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.report.push(Diagnostic::error(
                    Code::Io,
                    path,
                    format!("cannot read `{}`: {e}", path.display()),
                ));
                return None;
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) => {
                let text: Arc<str> = text.into();
                self.report.sources.insert(path, text.clone());
                Some(text)
            }
            Err(e) => {
                // The lossy text is the same as the file up to the first bad byte, so the
                // caret lands on the replacement character shown for it.
                let at = e.utf8_error().valid_up_to();
                let byte = e.as_bytes()[at];
                let lossy: Arc<str> = String::from_utf8_lossy(e.as_bytes()).into();
                self.report.sources.insert(path, lossy);
                self.report.push(
                    Diagnostic::error(
                        Code::Io,
                        path,
                        format!("`{}` is not UTF-8 text", path.display()),
                    )
                    .at(at..at + char::REPLACEMENT_CHARACTER.len_utf8())
                    .label(format!("byte 0x{byte:02X} is not UTF-8"))
                    .hint("save the file as UTF-8"),
                );
                None
            }
        }
    }

    /// Parse → schema → typed value; `None` (with diagnostics) when any step fails.
    fn typed<T: DeserializeOwned>(
        &mut self,
        kind: SchemaKind,
        path: &Path,
        syntax: Syntax,
    ) -> Option<(T, Document)> {
        let text = self.read(path)?;
        let doc = match document::parse(syntax, path, &text) {
            Ok(doc) => doc,
            Err(errors) => {
                self.report.diagnostics.extend(errors);
                return None;
            }
        };
        // A task may come from a newer Harbor: keys no known format has are warned about
        // and left out, where a pipeline (helios's own format) refuses them.
        let newer_format = (kind == SchemaKind::Task).then(|| task_format(&doc.value));
        let checked = schema::check_with(kind, &doc, path, newer_format.as_deref());
        let failed = checked
            .diagnostics
            .iter()
            .any(|d| d.severity == crate::diagnostic::Severity::Error);
        self.report.diagnostics.extend(checked.diagnostics);
        if failed {
            return None;
        }
        let mut value = std::borrow::Cow::Borrowed(&doc.value);
        for pointer in &checked.ignored {
            document::remove_at(value.to_mut(), pointer);
        }
        match serde_path_to_error::deserialize::<_, T>(value.as_ref()) {
            Ok(value) => Some((value, doc)),
            Err(e) => {
                let pointer = pointer_of(e.path());
                let span = doc.value_span(&pointer);
                self.report.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        path,
                        format!(
                            "`{}`: {}",
                            schema::dotted(&pointer),
                            plain_serde_message(&e.inner().to_string())
                        ),
                    )
                    .at(span),
                );
                None
            }
        }
    }

    fn task(&mut self, dir: &Path) -> Option<TaskDir> {
        let dir = paths::clean(dir);
        if let Some(done) = self.tasks.get(&dir) {
            return done.clone();
        }
        let task = self.check_task(&dir);
        self.tasks.insert(dir, task.clone());
        task
    }

    fn check_task(&mut self, dir: &Path) -> Option<TaskDir> {
        let manifest_path = dir.join("task.toml");
        if !manifest_path.is_file() {
            let message = if dir.is_dir() {
                format!(
                    "`{}` is not a task directory: it has no `task.toml`",
                    dir.display()
                )
            } else {
                format!("task directory `{}` does not exist", dir.display())
            };
            self.report.push(
                Diagnostic::error(Code::MissingFile, &manifest_path, message)
                    .hint("a task directory holds task.toml, instruction.md, environment/ and tests/test.sh"),
            );
            return None;
        }
        let (manifest, doc) =
            self.typed::<TaskManifest>(SchemaKind::Task, &manifest_path, Syntax::Toml)?;
        let mut errors = check_task::check(dir, &manifest_path, &manifest, &doc);
        if let Some(path) = compose::find(dir) {
            errors.extend(self.check_compose(&path));
        }
        let failed = errors
            .iter()
            .any(|d| d.severity == crate::diagnostic::Severity::Error);
        self.report.diagnostics.extend(errors);
        if failed {
            return None;
        }
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Some(TaskDir {
            name,
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The diagnostics of a task's Compose file (its text kept for their snippets).
    fn check_compose(&mut self, path: &Path) -> Vec<Diagnostic> {
        let Some(text) = self.read(path) else {
            return Vec::new();
        };
        match document::parse(Syntax::Yaml, path, &text) {
            Ok(doc) => compose::check(path, &doc),
            Err(errors) => errors,
        }
    }

    fn pipeline(&mut self, path: &Path) -> Option<Pipeline> {
        let Some(syntax) = Syntax::of(path) else {
            self.report.push(
                Diagnostic::error(Code::Io, path, format!("`{}` is neither TOML nor YAML", path.display()))
                    .hint("pipeline files end in .toml, .yaml or .yml; task directories are given as directories"),
            );
            return None;
        };
        let (manifest, doc) = self.typed::<PipelineManifest>(SchemaKind::Pipeline, path, syntax)?;
        let base_dir = paths::base_dir(path);
        let errors_before = self.report.error_count();
        let (discovered, errors) =
            discover::discover(path, &base_dir, &manifest.tasks, &doc, self.sources);
        self.report.diagnostics.extend(errors);
        let found = discovered.found;
        let text = self
            .report
            .sources
            .get(path)
            .unwrap_or_default()
            .to_string();
        let sources = discovered
            .resolved
            .into_iter()
            .map(|(index, resolved)| PipelineSource {
                index,
                line: crate::diagnostic::line_column(
                    &text,
                    doc.key_span(&format!("/tasks/{index}")).start,
                )
                .0,
                resolved,
            })
            .collect();
        let mut skipped = Vec::new();
        let mut task_names = Vec::with_capacity(found.len());
        let mut tasks: Vec<Option<TaskDir>> = Vec::with_capacity(found.len());
        for t in &found {
            let skippable = manifest
                .tasks
                .get(t.source)
                .is_some_and(|s| s.on_invalid == pipeline::OnInvalid::Skip);
            if !skippable {
                task_names.push(t.name.clone());
                tasks.push(self.task(&t.dir));
                continue;
            }
            let before = self.report.diagnostics.len();
            // A valid task that needs what helios cannot run is left out just the same.
            let refused = |task: &TaskDir| -> Vec<String> {
                task_support::unsupported(&task.dir, &task.manifest)
                    .into_iter()
                    .filter(|u| u.refused)
                    .map(|u| format!("{}: {}", task.dir.join("task.toml").display(), u.message))
                    .collect()
            };
            match self.task(&t.dir) {
                Some(task) if !refused(&task).is_empty() => {
                    skipped.push(SkippedTask {
                        name: t.name.clone(),
                        dir: t.dir.clone(),
                        problems: refused(&task),
                    });
                }
                Some(task) => {
                    task_names.push(t.name.clone());
                    tasks.push(Some(task));
                }
                None => {
                    // The task's errors become warnings: the pipeline stands without it.
                    let mut problems = Vec::new();
                    for d in &mut self.report.diagnostics[before..] {
                        if d.severity == crate::diagnostic::Severity::Error {
                            d.severity = crate::diagnostic::Severity::Warning;
                            problems.push(self.report.sources.locate(d));
                        }
                    }
                    if problems.is_empty() {
                        problems.push(format!("task `{}` is invalid", t.name));
                    }
                    skipped.push(SkippedTask {
                        name: t.name.clone(),
                        dir: t.dir.clone(),
                        problems,
                    });
                }
            }
        }
        check_pipeline::PipelineCheck {
            file: path,
            base: &base_dir,
            doc: &doc,
            manifest: &manifest,
            task_names: &task_names,
            tasks: &tasks,
        }
        .run(&mut self.report);
        if self.report.error_count() > errors_before {
            return None;
        }
        Some(Pipeline {
            path: path.to_path_buf(),
            base_dir,
            manifest,
            tasks: tasks.into_iter().collect::<Option<Vec<_>>>()?,
            sources,
            skipped,
        })
    }
}

/// How a task manifest names its format version, for people: `schema_version = "1.5"`.
fn task_format(value: &serde_json::Value) -> String {
    for key in ["schema_version", "version"] {
        if let Some(version) = value.get(key).and_then(|v| v.as_str()) {
            return format!("`{key} = \"{version}\"`");
        }
    }
    "no `schema_version`".to_string()
}

/// serde's words for a number out of its type's range (`expected u32`) in a manifest
/// author's terms; other messages are already written for people.
fn plain_serde_message(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid value: integer `") else {
        return message.to_string();
    };
    let Some((number, ty)) = rest.split_once("`, expected ") else {
        return message.to_string();
    };
    let largest = match ty {
        "u8" => u64::from(u8::MAX),
        "u16" => u64::from(u16::MAX),
        "u32" => u64::from(u32::MAX),
        "u64" | "usize" => u64::MAX,
        "i32" => i32::MAX as u64,
        "i64" | "isize" => i64::MAX as u64,
        _ => return message.to_string(),
    };
    if number.starts_with('-') {
        format!("{number} is negative; write a whole number from 0 to {largest}")
    } else {
        format!("{number} is too large; the largest allowed is {largest}")
    }
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer = document::pointer_push(&pointer, &index.to_string())
            }
            Segment::Map { key } => pointer = document::pointer_push(&pointer, key),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_reported_at_its_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, b"[pipeline]\nname = \"a\xffb\"\n").unwrap();
        let report = validate_paths(std::slice::from_ref(&path)).report;
        let d = &report.diagnostics[0];
        assert!(d.message.contains("is not UTF-8 text"), "{report}");
        let text = report.sources.get(&path).unwrap();
        let span = d.span.clone().unwrap();
        assert_eq!(&text[span.clone()], "\u{fffd}");
        assert_eq!(crate::diagnostic::line_column(text, span.start).0, 2);
    }

    #[test]
    fn integer_range_errors_do_not_name_rust_types() {
        let m = plain_serde_message("invalid value: integer `5000000000`, expected u32");
        assert_eq!(
            m,
            "5000000000 is too large; the largest allowed is 4294967295"
        );
        assert!(
            plain_serde_message("invalid value: integer `-1`, expected u64").contains("negative")
        );
    }
}
