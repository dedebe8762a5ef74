//! YAML text → [`Document`], keeping the span of every key and value.
//!
//! Parsed by `serde-saphyr` (pure Rust, maintained) with strict booleans: only `true` and
//! `false` are booleans, so `country: no` stays the string "no" (see `docs/manifests.md`).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{Location, Spanned};

use super::document::{Document, pointer_push, syntax_error};
use crate::diagnostic::Diagnostic;

pub(crate) fn parse(path: &Path, text: &str) -> Result<Document, Vec<Diagnostic>> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    let root: Option<Spanned<Tree>> = match serde_saphyr::from_str_with_options(text, options) {
        Ok(root) => root,
        Err(e) => {
            let span = e.location().map_or(0..0, |l| error_span(text, &l));
            let raw = e.to_string();
            let (message, hint) = plain_message(&clean_message(&raw));
            // A tab is reported where the scanner stood (often the end of the line before);
            // the caret belongs under the tab itself.
            let span = if raw.contains("tab") {
                tab_after(text, span.start).map_or(span, |at| at..at + 1)
            } else if raw.starts_with("multiple YAML documents") {
                // Reported at the second document's first value; the cause is its `---`.
                text[..span.start.min(text.len())]
                    .rfind("\n---")
                    .map_or(span, |at| at + 1..at + 4)
            } else {
                span
            };
            return Err(vec![syntax_error(
                path,
                format!("invalid YAML: {message}"),
                span,
                hint,
            )]);
        }
    };
    let mut doc = Document::new(Value::Null);
    doc.record(String::new(), None, 0..text.len());
    // An empty file is an empty mapping, so the schema reports what is missing.
    doc.value = match root {
        Some(root) => convert(&mut doc, "", root),
        None => Value::Object(Map::new()),
    };
    Ok(doc)
}

/// Errors carry a line and column (characters, 1-based) but not always a byte offset.
fn error_span(text: &str, location: &Location) -> Range<usize> {
    let span = byte_span(location);
    if span != (0..0) || location.line() <= 1 && location.column() <= 1 {
        return span;
    }
    let line_start: usize = text
        .split_inclusive('\n')
        .take((location.line() as usize).saturating_sub(1))
        .map(str::len)
        .sum();
    let line = text[line_start..].lines().next().unwrap_or("");
    let column: usize = line
        .chars()
        .take((location.column() as usize).saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    let start = line_start + column;
    start..start
}

/// The parser's message without what the diagnostic already shows (the position) or what
/// only a library user could act on (its options).
fn clean_message(message: &str) -> String {
    let mut message = message
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    if let Some(i) = message.find(", set DuplicateKeyPolicy") {
        message.truncate(i);
    }
    message
}

/// The parser's words for what only its API could fix (a second document, a budget it
/// counts in, a tab) put in a manifest author's terms, with the fix as a hint.
fn plain_message(message: &str) -> (String, Option<String>) {
    if message.starts_with("multiple YAML documents") {
        return (
            "the file holds more than one YAML document".to_string(),
            Some(
                "a manifest is one document: remove the `---` line and what follows it".to_string(),
            ),
        );
    }
    if let Some(breach) = message.strip_prefix("budget breached: ") {
        let what = match breach.split([' ', '{']).next().unwrap_or("") {
            "Nodes" | "Events" => "values",
            "Depth" => "levels of nesting",
            "Aliases" | "Anchors" | "AliasAnchorRatio" | "MergeKeys" => "aliases and anchors",
            "ScalarBytes" | "InputBytes" => "text",
            _ => "content",
        };
        return (
            format!("the file has more {what} than a manifest may hold"),
            Some(
                "a manifest this large is a mistake: split it, or generate fewer entries"
                    .to_string(),
            ),
        );
    }
    if message.contains("tab") {
        return (
            "a tab where YAML allows only spaces".to_string(),
            Some("indent YAML with spaces, never tabs".to_string()),
        );
    }
    (message.to_string(), None)
}

/// The first tab at or after `from`, if it is within the next two lines.
fn tab_after(text: &str, from: usize) -> Option<usize> {
    let rest = text.get(from..)?;
    let window_end = rest
        .match_indices('\n')
        .nth(1)
        .map_or(rest.len(), |(i, _)| i);
    rest[..window_end].find('\t').map(|i| from + i)
}

fn byte_span(location: &Location) -> Range<usize> {
    let span = location.span();
    let start = span.byte_offset().unwrap_or(0) as usize;
    let len = span.byte_len().unwrap_or(0) as usize;
    start..start + len
}

fn convert(doc: &mut Document, pointer: &str, node: Spanned<Tree>) -> Value {
    match node.value {
        Tree::Scalar(v) => v,
        Tree::Seq(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let child = pointer_push(pointer, &i.to_string());
                    doc.record(child.clone(), None, byte_span(&item.referenced));
                    convert(doc, &child, item)
                })
                .collect(),
        ),
        Tree::Map(entries) => {
            let mut map = Map::new();
            for (key, item) in entries {
                let child = pointer_push(pointer, &key.value);
                doc.record(
                    child.clone(),
                    Some(byte_span(&key.referenced)),
                    byte_span(&item.referenced),
                );
                let value = convert(doc, &child, item);
                map.insert(key.value, value);
            }
            Value::Object(map)
        }
    }
}

/// A YAML node as serde-saphyr reports it, before it becomes JSON.
enum Tree {
    Scalar(Value),
    Seq(Vec<Spanned<Tree>>),
    Map(Vec<(Spanned<String>, Spanned<Tree>)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        // .inf and .nan have no JSON number; as text they fail any numeric schema clearly.
        Ok(Tree::Scalar(Number::from_f64(v).map_or_else(
            || Value::String(v.to_string()),
            Value::Number,
        )))
    }

    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        Tree::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries: Vec<(Spanned<String>, Spanned<Tree>)> = Vec::new();
        // A set beside the list, so checking for a duplicate is not a scan of every earlier
        // key (quadratic: 80,000 keys took 11.9 s).
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<Spanned<ScalarKey>>()? {
            let key = Spanned {
                value: key.value.0,
                referenced: key.referenced,
                defined: key.defined,
            };
            if !seen.insert(key.value.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{}`", key.value)));
            }
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Tree::Map(entries))
    }
}

/// A mapping key: manifests only use text keys, but `1: x` must not be an error of its own.
struct ScalarKey(String);

impl<'de> Deserialize<'de> for ScalarKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = ScalarKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text key")
            }
            fn visit_str<E>(self, v: &str) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ScalarKey, E> {
                Ok(ScalarKey(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<ScalarKey, E> {
                Ok(ScalarKey("null".to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        parse(Path::new("p.yaml"), text).unwrap()
    }

    #[test]
    fn converts_values_and_records_spans() {
        let text = "pipeline:\n  name: demo\n  on: no\nlist:\n  - 1\n  - 2.5\n";
        let d = doc(text);
        assert_eq!(
            d.value,
            serde_json::json!({"pipeline": {"name": "demo", "on": "no"}, "list": [1, 2.5]})
        );
        assert_eq!(&text[d.key_span("/pipeline/name")], "name");
        assert_eq!(&text[d.value_span("/pipeline/name")], "demo");
        assert_eq!(&text[d.value_span("/list/1")], "2.5");
    }

    #[test]
    fn syntax_errors_point_at_the_place() {
        let errors = parse(Path::new("p.yaml"), "a: [1, 2\nb: 3\n").unwrap_err();
        assert!(errors[0].message.starts_with("invalid YAML"), "{errors:?}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        assert!(parse(Path::new("p.yaml"), "a: 1\na: 2\n").is_err());
    }

    #[test]
    fn duplicate_keys_are_found_by_a_set_lookup_even_when_equal_only_as_text() {
        // Guards the set that replaced a scan of every earlier key (quadratic in size). The
        // parser finds keys that are the same YAML node; this check finds those that only
        // become the same as text (`1` and `"1"`).
        let mut text: String = (0..5_000).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("1: a\n");
        assert!(parse(Path::new("p.yaml"), &text).is_ok());
        text.push_str("\"1\": b\n");
        let errors = parse(Path::new("p.yaml"), &text).unwrap_err();
        assert!(
            errors[0].message.contains("duplicate key `1`"),
            "{errors:?}"
        );
    }

    #[test]
    fn tab_indent_points_at_the_tab() {
        let text = "stages:\n  - name: s\n\tagents: [nop]\n";
        let errors = parse(Path::new("p.yaml"), text).unwrap_err();
        assert_eq!(
            errors[0].span,
            Some(text.find('\t').unwrap()..text.find('\t').unwrap() + 1)
        );
        assert!(errors[0].message.contains("a tab"), "{errors:?}");
    }

    #[test]
    fn second_document_is_explained_without_parser_api_names() {
        let errors = parse(Path::new("p.yaml"), "a: 1\n---\nb: 2\n").unwrap_err();
        assert!(
            errors[0].message.contains("more than one YAML document"),
            "{errors:?}"
        );
        assert!(!errors[0].message.contains("from_str"), "{errors:?}");
    }

    #[test]
    fn node_budget_is_explained_without_parser_internals() {
        // The parser's words for a file past its budget of 250,000 nodes (a real one takes
        // seconds to parse in a debug build).
        let (message, hint) = plain_message("budget breached: Nodes { nodes: 250001 }");
        assert_eq!(message, "the file has more values than a manifest may hold");
        assert!(hint.is_some());
        let (message, _) = plain_message("budget breached: Depth { depth: 2001 }");
        assert_eq!(
            message,
            "the file has more levels of nesting than a manifest may hold"
        );
    }

    #[test]
    fn empty_file_is_an_empty_mapping() {
        assert_eq!(doc("").value, serde_json::json!({}));
    }
}
