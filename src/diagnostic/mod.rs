//! Diagnostics: what is wrong with an input, where, and how to fix it.
//!
//! A [`Diagnostic`] names a file and, when it can, a byte range in it. Rendering (human or
//! JSON) is kept apart in [`render`] so that the checks never format text for a terminal.

pub mod render;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A stable, machine-readable name for the kind of problem.
///
/// The names are part of the `--format json` contract and are listed in `docs/cli.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// The file is not valid TOML or YAML.
    Syntax,
    /// A key the schema does not know.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value of the wrong type.
    WrongType,
    /// A value of the right type that the schema does not allow (range, enum, format, pattern).
    InvalidValue,
    /// A name that refers to nothing (agent, model, stage, verification step).
    UndefinedReference,
    /// A name defined twice.
    Duplicate,
    /// Stages whose `needs` form a cycle.
    Cycle,
    /// A file or directory the manifest needs is not there.
    MissingFile,
    /// A task glob or filter that selects nothing.
    NoMatch,
    /// Settings that contradict each other.
    Conflict,
    /// A prompt template that does not parse.
    Template,
    /// A file that could not be read at all.
    Io,
    /// A valid setting that helios cannot honour (yet): runs that need it are refused.
    Unsupported,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "syntax",
            Code::UnknownKey => "unknown-key",
            Code::MissingKey => "missing-key",
            Code::WrongType => "wrong-type",
            Code::InvalidValue => "invalid-value",
            Code::UndefinedReference => "undefined-reference",
            Code::Duplicate => "duplicate",
            Code::Cycle => "cycle",
            Code::MissingFile => "missing-file",
            Code::NoMatch => "no-match",
            Code::Conflict => "conflict",
            Code::Template => "template",
            Code::Io => "io",
            Code::Unsupported => "unsupported",
        }
    }
}

/// One problem found in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub file: PathBuf,
    /// Byte range in the file's text; `None` when the problem is the file itself.
    pub span: Option<Range<usize>>,
    /// A short note shown under the caret.
    pub label: Option<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: file.into(),
            span: None,
            label: None,
            hint: None,
        }
    }

    pub fn warning(code: Code, file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, file, message)
        }
    }

    pub fn at(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }
}

/// The texts of the files diagnostics point into, so they can be rendered with context.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    texts: BTreeMap<PathBuf, Arc<str>>,
}

impl Sources {
    pub fn insert(&mut self, path: impl Into<PathBuf>, text: Arc<str>) {
        self.texts.insert(path.into(), text);
    }

    pub fn get(&self, path: &Path) -> Option<&str> {
        self.texts.get(path).map(|t| &**t)
    }

    pub fn extend(&mut self, other: Sources) {
        self.texts.extend(other.texts);
    }

    /// `file:line:column: message` (`file: message` without a place), on one line.
    pub fn locate(&self, diagnostic: &Diagnostic) -> String {
        let file = diagnostic.file.display();
        match (&diagnostic.span, self.get(&diagnostic.file)) {
            (Some(span), Some(text)) => {
                let (line, column) = line_column(text, span.start);
                format!("{file}:{line}:{column}: {}", diagnostic.message)
            }
            _ => format!("{file}: {}", diagnostic.message),
        }
    }
}

/// Everything found while checking some inputs: the diagnostics and the sources they cite.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

impl Report {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn merge(&mut self, other: Report) {
        self.diagnostics.extend(other.diagnostics);
        self.sources.extend(other.sources);
    }

    pub fn error_count(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warning_count(&self) -> usize {
        self.count(Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// Orders diagnostics by file and position and drops exact repeats, so output is stable.
    pub fn sort(&mut self) {
        self.diagnostics.sort_by(|a, b| {
            (&a.file, a.span.as_ref().map(|s| s.start), a.severity).cmp(&(
                &b.file,
                b.span.as_ref().map(|s| s.start),
                b.severity,
            ))
        });
        self.diagnostics.dedup();
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render::human(self, false))
    }
}

/// A 1-based line and column (in characters) for a byte offset in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

pub(crate) fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Suggests the candidate closest to `wanted`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wanted, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A hint naming the closest candidate, or listing what is allowed when nothing is close.
pub fn suggestion_hint<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<String> {
    if let Some(close) = did_you_mean(wanted, candidates.clone()) {
        return Some(format!("did you mean `{close}`?"));
    }
    let all: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    match all.len() {
        0 => None,
        1..=12 => Some(format!("expected one of {}", all.join(", "))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_not_bytes() {
        let text = "a = 1\nné = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // "né " is 4 bytes but 3 characters.
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        let names = ["terminal", "oracle", "nop"];
        assert_eq!(did_you_mean("termnial", names), Some("terminal"));
        assert_eq!(did_you_mean("zzz", names), None);
    }

    #[test]
    fn suggestion_hint_lists_choices_when_nothing_is_close() {
        assert_eq!(
            suggestion_hint("xyz", ["a", "b"]).as_deref(),
            Some("expected one of `a`, `b`")
        );
    }
}
