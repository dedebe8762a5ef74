//! JSON Schemas of the manifests: generated from the Rust types, committed under `schemas/`,
//! embedded in the binary, and used to check every manifest before it is deserialized.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, Validator};
use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::document::{Document, pointer_push};
use super::pipeline::PipelineManifest;
use super::size::{SIZE_FORMAT, SIZE_HINT, parse_size};
use super::task::TaskManifest;
use crate::diagnostic::{Code, Diagnostic, suggestion_hint};

/// Which manifest a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// `task.toml` of a task directory.
    Task,
    /// A pipeline file (TOML or YAML).
    Pipeline,
}

impl SchemaKind {
    pub const ALL: [SchemaKind; 2] = [SchemaKind::Task, SchemaKind::Pipeline];

    /// The schema's file name under `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::Task => "task.schema.json",
            SchemaKind::Pipeline => "pipeline.schema.json",
        }
    }

    /// The committed schema, as embedded in the binary.
    pub fn embedded(self) -> &'static str {
        match self {
            SchemaKind::Task => include_str!("../../schemas/task.schema.json"),
            SchemaKind::Pipeline => include_str!("../../schemas/pipeline.schema.json"),
        }
    }

    /// The schema the Rust types generate now; the committed file must equal it.
    pub fn generate(self) -> String {
        let generator = SchemaSettings::draft2020_12().into_generator();
        let schema = match self {
            SchemaKind::Task => generator.into_root_schema_for::<TaskManifest>(),
            SchemaKind::Pipeline => generator.into_root_schema_for::<PipelineManifest>(),
        };
        let mut schema = schema.to_value();
        tidy_all(&mut schema);
        let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
        text.push('\n');
        text
    }

    fn parsed(self) -> &'static Value {
        static TASK: OnceLock<Value> = OnceLock::new();
        static PIPELINE: OnceLock<Value> = OnceLock::new();
        let cell = match self {
            SchemaKind::Task => &TASK,
            SchemaKind::Pipeline => &PIPELINE,
        };
        cell.get_or_init(|| serde_json::from_str(self.embedded()).expect("embedded schema is JSON"))
    }

    fn validator(self) -> &'static Validator {
        static TASK: OnceLock<Validator> = OnceLock::new();
        static PIPELINE: OnceLock<Validator> = OnceLock::new();
        let cell = match self {
            SchemaKind::Task => &TASK,
            SchemaKind::Pipeline => &PIPELINE,
        };
        cell.get_or_init(|| {
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .with_format(SIZE_FORMAT, |text: &str| parse_size(text).is_some())
                .build(self.parsed())
                .expect("embedded schema compiles")
        })
    }
}

/// Shapes generated schemas for people and for good error messages:
/// - optional fields are simply absent: TOML has no null, and a YAML `~` for a number should
///   be an error, not "unset", so `null` is taken out;
/// - documented enums become a plain `enum` (whose errors can list the choices) with the
///   variants' docs folded into the description;
/// - Rust-only number formats (`uint32`, `double`) are dropped;
/// - unset optional fields are left out of `default` tables;
/// - a tagged union (`oneOf` objects told apart by a `const` property, such as an agent's
///   `kind`) becomes the tag with its choices and one `if`/`then` per choice, so that the
///   errors of a table are those of its own kind ("`agents.t` of kind `terminal` takes
///   no `command`") rather than "matches none of the variants".
fn tidy_all(schema: &mut Value) {
    let Value::Object(object) = schema else {
        return;
    };
    tidy(object);
    order_keys(object);
    for (keyword, value) in object.iter_mut() {
        match (keyword.as_str(), value) {
            ("properties" | "$defs", Value::Object(schemas)) => {
                schemas.values_mut().for_each(tidy_all)
            }
            ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(schemas)) => {
                schemas.iter_mut().for_each(tidy_all)
            }
            ("items" | "additionalProperties" | "not" | "then", value) => tidy_all(value),
            _ => {}
        }
    }
}

/// Puts schema keywords in the order people read them; property tables keep the order of
/// the Rust fields.
fn order_keys(object: &mut serde_json::Map<String, Value>) {
    const ORDER: [&str; 22] = [
        "$schema",
        "title",
        "description",
        "type",
        "enum",
        "const",
        "$ref",
        "format",
        "pattern",
        "minimum",
        "exclusiveMinimum",
        "maximum",
        "minLength",
        "minItems",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "default",
        "examples",
        "deprecated",
        "$defs",
    ];
    let rank = |key: &str| {
        ORDER
            .iter()
            .position(|k| *k == key)
            .unwrap_or(ORDER.len() - 1)
    };
    let mut entries: Vec<(String, Value)> = std::mem::take(object).into_iter().collect();
    entries.sort_by_key(|(key, _)| rank(key));
    object.extend(entries);
}

fn tidy(object: &mut serde_json::Map<String, Value>) {
    if let Some(Value::Object(default)) = object.get_mut("default") {
        default.retain(|_, v| !v.is_null());
    }
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            object.insert("type".into(), only);
        }
    }
    let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
    if let Some(Value::Array(choices)) = object.get("anyOf")
        && choices.len() == 2
        && choices.iter().any(is_null)
    {
        let other = choices.iter().find(|c| !is_null(c)).cloned();
        object.shift_remove("anyOf");
        if let Some(Value::Object(other)) = other {
            for (key, value) in other {
                object.entry(key).or_insert(value);
            }
        }
    }
    if let Some(Value::Array(variants)) = object.get("oneOf")
        && variants
            .iter()
            .all(|v| v.get("const").is_some_and(Value::is_string))
    {
        let names: Vec<Value> = variants.iter().map(|v| v["const"].clone()).collect();
        let docs: Vec<String> = variants
            .iter()
            .map(|v| {
                format!(
                    "`{}`: {}",
                    v["const"].as_str().unwrap_or_default(),
                    v["description"].as_str().unwrap_or("")
                )
            })
            .collect();
        let description = match object.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d}\n\n{}", docs.join("\n")),
            None => docs.join("\n"),
        };
        object.shift_remove("oneOf");
        object.insert("type".into(), "string".into());
        object.insert("enum".into(), Value::Array(names));
        object.insert("description".into(), description.into());
    }
    if let Some(Value::Array(variants)) = object.get("oneOf")
        && let Some(tag) = union_tag(variants)
    {
        let variants = variants.clone();
        object.shift_remove("oneOf");
        let names: Vec<Value> = variants
            .iter()
            .map(|v| v["properties"][&tag]["const"].clone())
            .collect();
        let docs: Vec<String> = variants
            .iter()
            .map(|v| {
                format!(
                    "`{}`: {}",
                    v["properties"][&tag]["const"].as_str().unwrap_or_default(),
                    v["description"].as_str().unwrap_or("")
                )
            })
            .collect();
        let branches: Vec<Value> = variants
            .into_iter()
            .map(|variant| {
                let name = variant["properties"][&tag]["const"].clone();
                serde_json::json!({
                    "if": { "properties": { &tag: { "const": name } }, "required": [&tag] },
                    "then": variant,
                })
            })
            .collect();
        object.insert("type".into(), "object".into());
        object.insert(
            "properties".into(),
            serde_json::json!({ &tag: {
                "description": docs.join("\n"),
                "type": "string",
                "enum": names,
            }}),
        );
        object.insert("required".into(), serde_json::json!([tag]));
        object.insert("allOf".into(), Value::Array(branches));
    }
    if object
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| {
            matches!(
                f,
                "double"
                    | "float"
                    | "int8"
                    | "int16"
                    | "int32"
                    | "int64"
                    | "uint"
                    | "uint8"
                    | "uint16"
                    | "uint32"
                    | "uint64"
            )
        })
    {
        object.shift_remove("format");
    }
}

/// The property that tells the variants of a `oneOf` apart, when each is a table with a
/// string `const` under the same property (what serde's `#[serde(tag = "...")]` makes).
fn union_tag(variants: &[Value]) -> Option<String> {
    let tag_of = |variant: &Value| {
        variant
            .get("properties")?
            .as_object()?
            .iter()
            .find(|(_, p)| p.get("const").is_some_and(Value::is_string))
            .map(|(name, _)| name.clone())
    };
    let tag = tag_of(variants.first()?)?;
    variants
        .iter()
        .all(|v| tag_of(v).as_ref() == Some(&tag))
        .then_some(tag)
}

/// Checks `doc` against the schema of `kind`; every violation becomes a diagnostic.
pub fn check(kind: SchemaKind, doc: &Document, file: &std::path::Path) -> Vec<Diagnostic> {
    check_with(kind, doc, file, None).diagnostics
}

/// What [`check_with`] found: the diagnostics, and the unknown keys that are only warned
/// about (JSON Pointers), to be left out before the document is deserialized.
#[derive(Debug, Default)]
pub struct Checked {
    pub diagnostics: Vec<Diagnostic>,
    pub ignored: Vec<String>,
}

/// [`check`], where with `newer_format` set an unknown key that is no likely typo of a
/// known one is a warning (a newer version of the format may have it) rather than an
/// error: task directories written for a newer Harbor still load, and what helios does
/// not know is named. `newer_format` is how the warning names the file's format version.
pub fn check_with(
    kind: SchemaKind,
    doc: &Document,
    file: &std::path::Path,
    newer_format: Option<&str>,
) -> Checked {
    let schema = kind.parsed();
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    for error in kind.validator().iter_errors(&doc.value) {
        let pointer = error.instance_path().as_str().to_string();
        if let (Some(format), ValidationErrorKind::AdditionalProperties { unexpected }) =
            (newer_format, error.kind())
        {
            let allowed = allowed_keys(schema, &doc.value, &pointer);
            let (typos, unknown): (Vec<&String>, Vec<&String>) =
                unexpected.iter().partition(|key| {
                    crate::diagnostic::did_you_mean(key, allowed.iter().map(String::as_str))
                        .is_some()
                });
            for key in unknown {
                let child = pointer_push(&pointer, key);
                let place = if pointer.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in `{}`", dotted(&pointer))
                };
                out.push(
                    Diagnostic::warning(
                        Code::UnknownKey,
                        file,
                        format!("unknown key `{key}` {place} is ignored"),
                    )
                    .at(doc.key_span(&child))
                    .label("not in any task format helios knows")
                    .hint(format!(
                        "helios knows Harbor's task format up to schema {KNOWN_TASK_SCHEMA}; this \
                         task says {format}. Remove the key, or upgrade helios if a newer \
                         format added it (`--strict` makes this an error)"
                    )),
                );
                ignored.push(child);
            }
            for key in typos {
                out.push(unknown_key(schema, doc, file, &pointer, key));
            }
            continue;
        }
        let instance = error.instance().as_ref().clone();
        out.extend(describe(
            schema,
            doc,
            file,
            &pointer,
            &instance,
            error.kind(),
            &error.to_string(),
        ));
    }
    drop_missing_keys_explained_by_typos(&mut out);
    Checked {
        diagnostics: out,
        ignored,
    }
}

/// The error of a key the schema does not allow at `pointer`, with "did you mean".
fn unknown_key(
    schema: &Value,
    doc: &Document,
    file: &std::path::Path,
    pointer: &str,
    key: &str,
) -> Diagnostic {
    let allowed = allowed_keys(schema, &doc.value, pointer);
    let place = if pointer.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{}`", dotted(pointer))
    };
    // A field of another kind of a tagged union: say whose it is.
    if let Some(union) = union_at(schema, &doc.value, pointer) {
        let owners: Vec<&str> = union
            .branches
            .iter()
            .filter(|(_, keys)| keys.iter().any(|k| k == key))
            .map(|(name, _)| name.as_str())
            .collect();
        if !owners.is_empty() {
            let (tag, value) = (union.tag, &union.value);
            let quoted: Vec<String> = owners.iter().map(|o| format!("`{o}`")).collect();
            let owners_list = match quoted.split_last() {
                Some((last, [])) => format!("{tag} {last}"),
                Some((last, rest)) => format!("{tag}s {} and {last}", rest.join(", ")),
                None => String::new(),
            };
            // A known key in the wrong kind: a conflict, as `validate` always said.
            return Diagnostic::error(
                Code::Conflict,
                file,
                format!("`{}` of {tag} `{value}` takes no `{key}`", dotted(pointer)),
            )
            .at(doc.key_span(&pointer_push(pointer, key)))
            .label(format!("not a field of {tag} `{value}`"))
            .hint(format!(
                "`{key}` is a field of {owners_list}: use `{tag} = \"{}\"`, or remove `{key}`",
                owners[0]
            ));
        }
    }
    Diagnostic::error(
        Code::UnknownKey,
        file,
        format!("unknown key `{key}` {place}"),
    )
    .at(doc.key_span(&pointer_push(pointer, key)))
    .label("unknown key")
    .maybe_hint(suggestion_hint(key, allowed.iter().map(String::as_str)))
}

/// The newest version of Harbor's task format whose every key helios knows.
pub const KNOWN_TASK_SCHEMA: &str = "1.4";

/// `[[stage]]` for `[[stages]]` is one mistake: the unknown key's "did you mean `stages`?"
/// says it all, so the matching "missing key `stages`" is left out.
fn drop_missing_keys_explained_by_typos(diagnostics: &mut Vec<Diagnostic>) {
    let suggested: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.code == Code::UnknownKey)
        .filter_map(|d| {
            d.hint
                .as_deref()?
                .strip_prefix("did you mean `")?
                .strip_suffix("`?")
                .map(str::to_string)
        })
        .collect();
    diagnostics.retain(|d| {
        d.code != Code::MissingKey
            || !suggested
                .iter()
                .any(|s| d.message.starts_with(&format!("missing key `{s}` ")))
    });
}

fn describe(
    schema: &Value,
    doc: &Document,
    file: &std::path::Path,
    pointer: &str,
    instance: &Value,
    kind: &ValidationErrorKind,
    fallback: &str,
) -> Vec<Diagnostic> {
    let name = dotted(pointer);
    let at_value = doc.value_span(pointer);
    let diagnostic = match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            return unexpected
                .iter()
                .map(|key| unknown_key(schema, doc, file, pointer, key))
                .collect();
        }
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            let place = match union_at(schema, &doc.value, pointer) {
                _ if pointer.is_empty() => "at the top level".to_string(),
                Some(union) => format!("in `{name}` ({} `{}`)", union.tag, union.value),
                None => format!("in `{name}`"),
            };
            let d = Diagnostic::error(
                Code::MissingKey,
                file,
                format!("missing key `{property}` {place}"),
            );
            let d = match description(schema, &doc.value, &pointer_push(pointer, property)) {
                Some(about) => d.hint(format!("add `{property}`: {}", lowercase_first(&about))),
                None => d.hint(format!("add `{property}`")),
            };
            if pointer.is_empty() {
                d
            } else {
                d.at(doc.key_span(pointer))
                    .label(format!("`{property}` is missing here"))
            }
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => type_name(*t).to_string(),
                TypeKind::Multiple(set) => {
                    set.iter().map(type_name).collect::<Vec<_>>().join(" or ")
                }
            };
            Diagnostic::error(
                Code::WrongType,
                file,
                format!("`{name}` must be {expected}, not {}", value_kind(instance)),
            )
            .at(at_value)
            .label(format!("expected {expected}"))
        }
        ValidationErrorKind::Enum { options } => {
            let choices: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let shown = short(instance);
            let hint = match instance.as_str() {
                Some(text) => suggestion_hint(text, choices.iter().copied()),
                None => suggestion_hint("", choices.iter().copied()),
            };
            Diagnostic::error(
                Code::InvalidValue,
                file,
                format!("`{name}` cannot be {shown}"),
            )
            .at(at_value)
            .label("not allowed here")
            .maybe_hint(hint)
        }
        ValidationErrorKind::Format { format } if format == SIZE_FORMAT => Diagnostic::error(
            Code::InvalidValue,
            file,
            format!("`{name}` is not a size: {}", short(instance)),
        )
        .at(at_value)
        .label("not a size")
        .hint(SIZE_HINT),
        ValidationErrorKind::Minimum { limit } => {
            bound(file, &name, at_value, instance, "at least", limit)
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            bound(file, &name, at_value, instance, "greater than", limit)
        }
        ValidationErrorKind::Maximum { limit } => {
            bound(file, &name, at_value, instance, "at most", limit)
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            bound(file, &name, at_value, instance, "less than", limit)
        }
        ValidationErrorKind::MinItems { limit } => Diagnostic::error(
            Code::InvalidValue,
            file,
            if *limit == 1 {
                format!("`{name}` must not be empty")
            } else {
                format!("`{name}` needs at least {limit} entries")
            },
        )
        .at(at_value)
        .label("empty"),
        ValidationErrorKind::MinLength { .. } => Diagnostic::error(
            Code::InvalidValue,
            file,
            format!("`{name}` must not be empty"),
        )
        .at(at_value)
        .label("empty"),
        ValidationErrorKind::Pattern { pattern } => Diagnostic::error(
            Code::InvalidValue,
            file,
            format!("`{name}` is not valid: {}", short(instance)),
        )
        .at(at_value)
        .label("not allowed here")
        .hint(pattern_hint(pattern)),
        _ => Diagnostic::error(Code::InvalidValue, file, format!("`{name}`: {fallback}"))
            .at(at_value),
    };
    vec![diagnostic]
}

fn bound(
    file: &std::path::Path,
    name: &str,
    span: std::ops::Range<usize>,
    instance: &Value,
    relation: &str,
    limit: &Value,
) -> Diagnostic {
    Diagnostic::error(
        Code::InvalidValue,
        file,
        format!("`{name}` must be {relation} {limit}, not {instance}"),
    )
    .at(span)
    .label("out of range")
}

fn pattern_hint(pattern: &str) -> String {
    match pattern {
        r"^[A-Za-z0-9][A-Za-z0-9._-]*$" => {
            "use ASCII letters (a-z, A-Z), digits, `.`, `_` and `-`, starting with a letter or digit".to_string()
        }
        r"^1(\.[0-9]+)*$" => "helios reads version 1 of the task format: write \"1.0\"".to_string(),
        "^/" | r"^(/|[A-Za-z]:[\\/])" => {
            "write an absolute path inside the container, such as \"/app\"".to_string()
        }
        r"^[a-zA-Z0-9][a-zA-Z0-9._-]*/[a-zA-Z0-9][a-zA-Z0-9._-]*$" => {
            "write `org/name`: letters, digits, `.`, `_` and `-`, each part starting with a letter or digit".to_string()
        }
        r"^[A-Za-z_][A-Za-z0-9_]*$" => {
            "write the name of an environment variable, such as \"OPENAI_API_KEY\"".to_string()
        }
        other => format!("it must match the pattern `{other}`"),
    }
}

/// `/stages/1/needs/0` → `stages[1].needs[0]`: how a person names a place in a manifest.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.parse::<usize>().is_ok() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}

fn type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "a list",
        JsonType::Boolean => "true or false",
        JsonType::Integer => "a whole number",
        JsonType::Null => "empty",
        JsonType::Number => "a number",
        JsonType::Object => "a table",
        JsonType::String => "a string",
    }
}

const NON_FINITE: [&str; 8] = [
    "nan",
    "+nan",
    "-nan",
    "inf",
    "+inf",
    "-inf",
    "infinity",
    "-infinity",
];

fn value_kind(value: &Value) -> String {
    match value {
        Value::Null => "empty".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("the number {n}"),
        Value::Number(n) => format!("the whole number {n}"),
        // TOML's `nan` and `inf` (and YAML's) reach the schema as text: they have no JSON number.
        Value::String(s) if NON_FINITE.contains(&s.to_ascii_lowercase().as_str()) => {
            format!("`{s}`, which is not a finite number")
        }
        Value::String(s) => format!("the string {}", short(&Value::String(s.clone()))),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a table".to_string(),
    }
}

fn short(value: &Value) -> String {
    let text = match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The subschema that governs the value at `pointer` of `instance`, following `$ref`s and,
/// in a tagged union, the branch of the value's tag.
fn schema_at<'a>(root: &'a Value, instance: &Value, pointer: &str) -> Option<&'a Value> {
    let mut node = resolve(root, root)?;
    let mut at = String::new();
    for token in pointer.split('/').skip(1) {
        node = branch(root, node, instance.pointer(&at));
        at = format!("{at}/{token}");
        let token = token.replace("~1", "/").replace("~0", "~");
        let next = node
            .get("properties")
            .and_then(|p| p.get(&token))
            .or_else(|| node.get("items"))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
        node = resolve(root, next)?;
    }
    Some(branch(root, node, instance.pointer(&at)))
}

/// The tag of a tagged union's branch (`if: {properties: {kind: {const: "terminal"}}}`):
/// the property and its value.
fn branch_tag(branch: &Value) -> Option<(&str, &Value)> {
    let (tag, condition) = branch
        .get("if")?
        .get("properties")?
        .as_object()?
        .iter()
        .next()?;
    Some((tag.as_str(), condition.get("const")?))
}

/// In a tagged union, the branch `value` takes by its tag; else `node` itself.
fn branch<'a>(root: &'a Value, node: &'a Value, value: Option<&Value>) -> &'a Value {
    let Some(branches) = node.get("allOf").and_then(Value::as_array) else {
        return node;
    };
    branches
        .iter()
        .find(|b| {
            branch_tag(b).is_some_and(|(tag, want)| value.and_then(|v| v.get(tag)) == Some(want))
        })
        .and_then(|b| resolve(root, b.get("then")?))
        .unwrap_or(node)
}

/// Of a tagged union at `pointer`: its tag, the tag's value there, and each branch's value
/// with the properties it allows.
struct Union<'a> {
    tag: &'a str,
    value: String,
    branches: Vec<(String, Vec<String>)>,
}

fn union_at<'a>(root: &'a Value, instance: &Value, pointer: &str) -> Option<Union<'a>> {
    let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
    let node = match pointer {
        "" => resolve(root, root)?,
        _ => {
            let key = pointer
                .rsplit('/')
                .next()?
                .replace("~1", "/")
                .replace("~0", "~");
            let holder = schema_at(root, instance, parent)?;
            let next = holder
                .get("properties")
                .and_then(|p| p.get(&key))
                .or_else(|| holder.get("items"))
                .or_else(|| holder.get("additionalProperties").filter(|a| a.is_object()))?;
            resolve(root, next)?
        }
    };
    let branches = node.get("allOf")?.as_array()?;
    let (tag, _) = branches.iter().find_map(branch_tag)?;
    let value = instance.pointer(pointer)?.get(tag)?.as_str()?.to_string();
    let branches = branches
        .iter()
        .filter_map(|b| {
            let (_, name) = branch_tag(b)?;
            let then = resolve(root, b.get("then")?)?;
            let keys = then
                .get("properties")?
                .as_object()?
                .keys()
                .cloned()
                .collect();
            Some((name.as_str()?.to_string(), keys))
        })
        .collect();
    Some(Union {
        tag,
        value,
        branches,
    })
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => root.pointer(reference.strip_prefix('#')?),
        None => Some(node),
    }
}

fn allowed_keys(root: &Value, instance: &Value, pointer: &str) -> Vec<String> {
    schema_at(root, instance, pointer)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn description(root: &Value, instance: &Value, pointer: &str) -> Option<String> {
    let (parent, key) = pointer.rsplit_once('/')?;
    let parent = schema_at(root, instance, parent)?;
    let property = parent.get("properties")?.get(key)?;
    let text = property
        .get("description")
        .or_else(|| resolve(root, property)?.get("description"))?
        .as_str()?;
    Some(
        text.lines()
            .next()
            .unwrap_or(text)
            .trim_end_matches('.')
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_read_like_the_manifest() {
        assert_eq!(dotted("/stages/1/needs/0"), "stages[1].needs[0]");
        assert_eq!(dotted("/models/a~1b"), "models.a/b");
        assert_eq!(dotted(""), "");
    }

    #[test]
    fn schema_at_follows_refs_into_tables_and_maps() {
        let schema = SchemaKind::Pipeline.parsed();
        let instance = serde_json::json!({"agents": {"t": {"kind": "terminal", "limits": {}}}});
        let keys = allowed_keys(schema, &instance, "/agents/t/limits");
        assert!(keys.contains(&"max_turns".to_string()), "{keys:?}");
        let keys = allowed_keys(schema, &instance, "/stages/3");
        assert!(keys.contains(&"needs".to_string()), "{keys:?}");
    }

    #[test]
    fn a_tagged_union_is_read_by_the_branch_of_its_tag() {
        let schema = SchemaKind::Pipeline.parsed();
        let instance = serde_json::json!({"agents": {
            "t": {"kind": "terminal"},
            "c": {"kind": "command"},
        }});
        let keys = allowed_keys(schema, &instance, "/agents/t");
        assert!(keys.contains(&"system_prompt".to_string()), "{keys:?}");
        assert!(!keys.contains(&"command".to_string()), "{keys:?}");
        let union = union_at(schema, &instance, "/agents/c").unwrap();
        assert_eq!((union.tag, union.value.as_str()), ("kind", "command"));
        assert!(
            union
                .branches
                .iter()
                .any(|(name, keys)| name == "installed" && keys.contains(&"run".to_string()))
        );
    }

    #[test]
    fn embedded_schemas_compile() {
        for kind in SchemaKind::ALL {
            let _ = kind.validator();
        }
    }
}
