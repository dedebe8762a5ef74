//! A parsed manifest: its data as JSON plus where every key and value stands in the file.
//!
//! TOML and YAML both become a [`Document`], so the schema check, the typed deserialization
//! and the semantic checks are written once and point at the source the same way.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic};

/// Where one node of the document stands in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpan {
    /// The key that names the node, for table entries.
    pub key: Option<Range<usize>>,
    /// The node's value.
    pub value: Range<usize>,
}

/// A manifest's content and its spans, keyed by JSON Pointer (RFC 6901, as `jsonschema`
/// reports instance locations).
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    spans: HashMap<String, NodeSpan>,
}

impl Document {
    pub(crate) fn new(value: Value) -> Self {
        Document {
            value,
            spans: HashMap::new(),
        }
    }

    pub(crate) fn record(
        &mut self,
        pointer: String,
        key: Option<Range<usize>>,
        value: Range<usize>,
    ) {
        self.spans.insert(pointer, NodeSpan { key, value });
    }

    /// The span of the value at `pointer`, or of its nearest ancestor that has one.
    pub fn value_span(&self, pointer: &str) -> Range<usize> {
        self.nearest(pointer).value.clone()
    }

    /// The span of the key at `pointer` (its value's span when the node has no key).
    pub fn key_span(&self, pointer: &str) -> Range<usize> {
        let node = self.nearest(pointer);
        node.key.clone().unwrap_or_else(|| node.value.clone())
    }

    fn nearest(&self, pointer: &str) -> &NodeSpan {
        const WHOLE: NodeSpan = NodeSpan {
            key: None,
            value: 0..0,
        };
        let mut current = pointer;
        loop {
            if let Some(span) = self.spans.get(current) {
                return span;
            }
            match current.rfind('/') {
                Some(i) => current = &current[..i],
                None => return self.spans.get("").unwrap_or(&WHOLE),
            }
        }
    }
}

/// Appends one reference token to a JSON Pointer, escaping `~` and `/`.
pub fn pointer_push(base: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{base}/{escaped}")
}

/// Removes the member at `pointer` (a key of an object) from `value`, if it is there.
pub fn remove_at(value: &mut serde_json::Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    if let Some(serde_json::Value::Object(object)) = value.pointer_mut(parent) {
        object.remove(&key);
    }
}

/// Which syntax a manifest file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Toml,
    Yaml,
}

impl Syntax {
    /// The syntax a file's extension promises, if it is one helios reads.
    pub fn of(path: &Path) -> Option<Syntax> {
        match path.extension()?.to_str()? {
            "toml" => Some(Syntax::Toml),
            "yaml" | "yml" => Some(Syntax::Yaml),
            _ => None,
        }
    }
}

/// Parses `text` as `syntax`; syntax errors come back as diagnostics on `path`.
pub fn parse(syntax: Syntax, path: &Path, text: &str) -> Result<Document, Vec<Diagnostic>> {
    match syntax {
        Syntax::Toml => super::toml_source::parse(path, text),
        Syntax::Yaml => super::yaml_source::parse(path, text),
    }
}

pub(crate) fn syntax_error(
    path: &Path,
    message: String,
    span: Range<usize>,
    hint: Option<String>,
) -> Diagnostic {
    Diagnostic::error(Code::Syntax, path, message)
        .at(span)
        .maybe_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_fall_back_to_the_nearest_ancestor() {
        let mut doc = Document::new(Value::Null);
        doc.record(String::new(), None, 0..10);
        doc.record("/a".into(), Some(0..1), 4..10);
        assert_eq!(doc.value_span("/a/b/c"), 4..10);
        assert_eq!(doc.key_span("/a"), 0..1);
        assert_eq!(doc.value_span("/zzz"), 0..10);
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(pointer_push("/models", "a/b~c"), "/models/a~1b~0c");
    }
}
