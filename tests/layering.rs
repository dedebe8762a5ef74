//! The modules of `src/` are layered, and the layers are written down in one place: the
//! table under `## Layers` in `docs/design/architecture.md`. This test reads that table and
//! checks the code against it:
//!
//! - every top-level module in `src/` is in the table, and every module the table names
//!   exists;
//! - a module refers (through `crate::name`) only to modules in rows strictly below its own;
//! - the dependencies between top-level modules have no cycle.
//!
//! To move a module, change the table and the code together.
//!
//! The scanner is deliberately small (std only): it blanks comments and string and char
//! literals, then finds every `crate::name` path, including grouped imports
//! (`use crate::{env::Provider, model::{self, ModelId}};` names `env` and `model`).
//! `src/lib.rs` and `src/main.rs` are the crate roots and are exempt.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const DOC: &str = "docs/design/architecture.md";
const HEADING: &str = "## Layers";

// ---------------------------------------------------------------------------------------
// The checks against the real tree
// ---------------------------------------------------------------------------------------

#[test]
fn layer_table_names_exactly_the_modules_in_src() {
    let layers = layers_from_doc();
    let in_src: BTreeSet<String> = top_level_modules(&src_dir());
    let mut problems = Vec::new();

    let mut seen = BTreeMap::new();
    for layer in &layers {
        for module in &layer.modules {
            if let Some(other) = seen.insert(module.clone(), layer.number) {
                problems.push(format!(
                    "`{module}` appears in two rows of the table (layers {other} and {})",
                    layer.number
                ));
            }
        }
    }
    for module in &in_src {
        if !seen.contains_key(module) {
            problems.push(format!(
                "`{module}` is a top-level module in src/ but is missing from the table \
                 under `{HEADING}` in {DOC}"
            ));
        }
    }
    for (module, number) in &seen {
        if !in_src.contains(module) {
            problems.push(format!(
                "the table under `{HEADING}` in {DOC} names `{module}` (layer {number}), \
                 but there is no src/{module}.rs or src/{module}/"
            ));
        }
    }
    for (position, layer) in layers.iter().enumerate() {
        let expected = layers.len() - position;
        if let Some(written) = layer.written_number
            && written != expected
        {
            problems.push(format!(
                "row {} of the table says layer {written}, but rows run from the top \
                 layer down to layer 1, so it is layer {expected}",
                position + 1
            ));
        }
    }
    assert!(problems.is_empty(), "{}", bullet_list(&problems));
}

#[test]
fn no_module_uses_its_own_layer_or_a_layer_above_it() {
    let layers = layers_from_doc();
    let layer_of = layer_index(&layers);
    let src = src_dir();
    let modules = top_level_modules(&src);

    let mut violations = Vec::new();
    for reference in references_in_tree(&src, &modules) {
        let (Some(&from), Some(&to)) = (layer_of.get(&reference.from), layer_of.get(&reference.to))
        else {
            continue; // modules missing from the table fail the table test
        };
        if to >= from {
            violations.push(format!(
                "{}:{}: `{}` uses `crate::{}` (layer {to} ≥ layer {from})",
                reference.file, reference.line, reference.from, reference.to
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "{} reference(s) break the layers in {DOC}: a module may use only modules in rows \
         below its own (each line gives the used module's layer, then the user's):\n{}",
        violations.len(),
        bullet_list(&violations)
    );
}

#[test]
fn module_dependencies_have_no_cycle() {
    let src = src_dir();
    let modules = top_level_modules(&src);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for reference in references_in_tree(&src, &modules) {
        graph
            .entry(reference.from.clone())
            .or_default()
            .entry(reference.to.clone())
            .or_insert_with(|| format!("{}:{}", reference.file, reference.line));
    }
    let cycles = find_cycles(&graph);
    let mut message = String::new();
    for cycle in &cycles {
        let _ = writeln!(message, "  - {}", cycle.join(" → "));
        for pair in cycle.windows(2) {
            let _ = writeln!(
                message,
                "      `{}` uses `crate::{}` first at {}",
                pair[0], pair[1], graph[&pair[0]][&pair[1]]
            );
        }
    }
    assert!(
        cycles.is_empty(),
        "the top-level modules depend on each other in a cycle:\n{message}"
    );
}

// ---------------------------------------------------------------------------------------
// Reading the doc
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Layer {
    /// 1 for the bottom row, counting up.
    number: usize,
    /// What the first column says, if it is a number.
    written_number: Option<usize>,
    modules: Vec<String>,
}

fn layers_from_doc() -> Vec<Layer> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    parse_layers(&text).unwrap_or_else(|error| panic!("{DOC}: {error}"))
}

/// The table after the `## Layers` heading (before the next heading of level one or two):
/// rows from the top layer to the bottom one; every backticked name in the `modules`
/// column is a top-level module.
fn parse_layers(markdown: &str) -> Result<Vec<Layer>, String> {
    let mut lines = markdown.lines().skip_while(|line| line.trim() != HEADING);
    if lines.next().is_none() {
        return Err(format!("no `{HEADING}` heading"));
    }
    let table: Vec<&str> = lines
        .take_while(|line| !(line.starts_with("# ") || line.starts_with("## ")))
        .map(str::trim)
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .collect();
    let Some((header, rest)) = table.split_first() else {
        return Err(format!("no table under `{HEADING}`"));
    };
    let header = cells(header);
    let column = header
        .iter()
        .position(|cell| cell.eq_ignore_ascii_case("modules"))
        .ok_or_else(|| format!("the table under `{HEADING}` has no `modules` column"))?;
    let rows: Vec<Vec<String>> = rest
        .iter()
        .map(|line| cells(line))
        .filter(|row| {
            !row.iter()
                .all(|cell| cell.chars().all(|c| "-: ".contains(c)))
        })
        .collect();
    if rows.is_empty() {
        return Err(format!("the table under `{HEADING}` has no rows"));
    }
    let count = rows.len();
    let mut layers = Vec::new();
    for (position, row) in rows.iter().enumerate() {
        let modules = backticked(row.get(column).map_or("", String::as_str));
        if modules.is_empty() {
            return Err(format!(
                "row {} of the table under `{HEADING}` names no module in backticks",
                position + 1
            ));
        }
        layers.push(Layer {
            number: count - position,
            written_number: row.first().and_then(|cell| cell.parse().ok()),
            modules,
        });
    }
    Ok(layers)
}

fn cells(line: &str) -> Vec<String> {
    let line = line.trim();
    let line = line.strip_prefix('|').unwrap_or(line);
    let line = line.strip_suffix('|').unwrap_or(line);
    line.split('|')
        .map(|cell| cell.trim().to_string())
        .collect()
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

fn layer_index(layers: &[Layer]) -> BTreeMap<String, usize> {
    layers
        .iter()
        .flat_map(|layer| {
            layer
                .modules
                .iter()
                .map(|module| (module.clone(), layer.number))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Walking src/
// ---------------------------------------------------------------------------------------

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `src/foo.rs` and `src/foo/` (holding Rust files) are the module `foo`; the crate roots
/// (`lib.rs`, `main.rs`) and `src/bin/` are not modules.
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(src).expect("read src/").flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            if name != "bin" && !rust_files(&path).is_empty() {
                modules.insert(name.to_string());
            }
        } else if let Some(stem) = name.strip_suffix(".rs")
            && stem != "lib"
            && stem != "main"
        {
            modules.insert(stem.to_string());
        }
    }
    modules
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("read a directory under src/")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level module a file belongs to, or `None` for the crate roots.
fn module_of(relative: &Path) -> Option<String> {
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = parts.next()?;
    match parts.next() {
        Some(_) if first == "bin" => None,
        Some(_) => Some(first),
        None => match first.strip_suffix(".rs")? {
            "lib" | "main" => None,
            stem => Some(stem.to_string()),
        },
    }
}

#[derive(Debug)]
struct Reference {
    /// `src/…` with forward slashes.
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// Every reference from one top-level module to another (a module's paths to itself are
/// fine and left out; `crate::name` where `name` is not a module, such as a re-export at
/// the crate root, is left out too).
fn references_in_tree(src: &Path, modules: &BTreeSet<String>) -> Vec<Reference> {
    let mut references = Vec::new();
    for path in rust_files(src) {
        let relative = path.strip_prefix(src).unwrap();
        let Some(from) = module_of(relative) else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        let file = format!(
            "src/{}",
            relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        );
        let mut seen = BTreeSet::new();
        for (line, to) in crate_paths(&text) {
            if to != from && modules.contains(&to) && seen.insert((line, to.clone())) {
                references.push(Reference {
                    file: file.clone(),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    references
}

// ---------------------------------------------------------------------------------------
// The scanner
// ---------------------------------------------------------------------------------------

/// The source with comments, string literals and char literals replaced by spaces
/// (newlines kept, so line numbers still hold).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == '"' {
            match raw_string_hashes(&chars, i) {
                Some(hashes) => {
                    // r"…", r#"…"#, br##"…"##: ends at a quote followed by as many hashes.
                    out.push(' ');
                    i += 1;
                    while i < chars.len() {
                        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                            out.push(' ');
                            i += 1;
                            break;
                        }
                        out.push(blank(chars[i]));
                        i += 1;
                    }
                }
                None => {
                    out.push(' ');
                    i += 1;
                    while i < chars.len() {
                        match chars[i] {
                            '\\' => {
                                out.push(' ');
                                if let Some(&escaped) = chars.get(i + 1) {
                                    out.push(blank(escaped));
                                }
                                i += 2;
                            }
                            '"' => {
                                out.push(' ');
                                i += 1;
                                break;
                            }
                            other => {
                                out.push(blank(other));
                                i += 1;
                            }
                        }
                    }
                }
            }
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{1F600}'.
            out.push_str("  ");
            i += 2;
            if i < chars.len() {
                out.push(blank(chars[i]));
                i += 1;
            }
            while i < chars.len() && chars[i] != '\'' && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
            if i < chars.len() && chars[i] == '\'' {
                out.push(' ');
                i += 1;
            }
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') && next != Some('\n') {
            // A plain char literal: 'x', '"'. (Otherwise a lifetime or a label.)
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// If the `"` at `quote` opens a raw string (`r"`, `r#"`, `br"`, `cr"`, …), how many `#`s.
fn raw_string_hashes(chars: &[char], quote: usize) -> Option<usize> {
    let mut start = quote;
    while start > 0 && chars[start - 1] == '#' {
        start -= 1;
    }
    let hashes = quote - start;
    if start == 0 || chars[start - 1] != 'r' {
        return None;
    }
    let mut prefix = start - 1;
    if prefix > 0 && matches!(chars[prefix - 1], 'b' | 'c') {
        prefix -= 1;
    }
    if prefix > 0 && is_ident_char(chars[prefix - 1]) {
        return None;
    }
    Some(hashes)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `(line, name)` for every top-level name reached through `crate::` in the code
/// (comments and literals ignored). `crate::env::x` gives `env`; `crate::{env::P,
/// model::{self, M}}` gives `env` and `model`. `self`, `super` and globs are not names.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let code: Vec<char> = code_only(source).chars().collect();
    let line_at = |index: usize| 1 + code[..index].iter().filter(|&&c| c == '\n').count();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = find_word(&code, "crate", i) {
        i = at + "crate".len();
        let mut j = skip_space(&code, i);
        if !(code.get(j) == Some(&':') && code.get(j + 1) == Some(&':')) {
            continue;
        }
        j = skip_space(&code, j + 2);
        if code.get(j) == Some(&'{') {
            // A group: only the first segment of each item at the first level counts.
            let mut depth = 1;
            let mut expecting = true;
            j += 1;
            while j < code.len() && depth > 0 {
                let c = code[j];
                if c == '{' {
                    depth += 1;
                    j += 1;
                } else if c == '}' {
                    depth -= 1;
                    j += 1;
                } else if c == ',' {
                    if depth == 1 {
                        expecting = true;
                    }
                    j += 1;
                } else if is_ident_char(c) {
                    let (name, end) = ident_at(&code, j);
                    if depth == 1 && expecting {
                        if is_module_name(&name) {
                            found.push((line_at(j), name));
                        }
                        expecting = false;
                    }
                    j = end;
                } else {
                    if !c.is_whitespace() && depth == 1 {
                        expecting = false; // `*`, `::`, …
                    }
                    j += 1;
                }
            }
            i = j;
        } else if code.get(j).is_some_and(|&c| is_ident_char(c)) {
            let (name, end) = ident_at(&code, j);
            if is_module_name(&name) {
                found.push((line_at(j), name));
            }
            i = end;
        }
    }
    found
}

fn is_module_name(name: &str) -> bool {
    !matches!(name, "self" | "super" | "crate" | "Self")
}

/// The next occurrence of `word` at or after `from` that is a whole identifier.
fn find_word(code: &[char], word: &str, from: usize) -> Option<usize> {
    let word: Vec<char> = word.chars().collect();
    let mut i = from;
    while i + word.len() <= code.len() {
        if code[i..i + word.len()] == word[..]
            && (i == 0 || !is_ident_char(code[i - 1]))
            && code.get(i + word.len()).is_none_or(|&c| !is_ident_char(c))
        {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn skip_space(code: &[char], mut i: usize) -> usize {
    while code.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// The identifier starting at `i` (a raw `r#name` gives `name`) and where it ends.
fn ident_at(code: &[char], i: usize) -> (String, usize) {
    let mut start = i;
    if code.get(i) == Some(&'r') && code.get(i + 1) == Some(&'#') {
        start = i + 2;
    }
    let mut end = start;
    while code.get(end).is_some_and(|&c| is_ident_char(c)) {
        end += 1;
    }
    (code[start..end].iter().collect(), end)
}

/// Cycles between modules, each written `a → b → … → a` (the shortest one back to `a`);
/// a module already on a reported cycle does not start another search.
fn find_cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    let mut cycles = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if done.contains(start) {
            continue;
        }
        // Shortest path from `start` back to itself, breadth first.
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        let mut closed = None;
        'search: while let Some(node) = queue.pop_front() {
            for next in graph.get(&node).into_iter().flat_map(|edges| edges.keys()) {
                if next == start {
                    closed = Some(node.clone());
                    break 'search;
                }
                if !previous.contains_key(next) {
                    previous.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        if let Some(last) = closed {
            let mut path = vec![start.clone()];
            let mut node = last;
            while &node != start {
                path.push(node.clone());
                node = previous[&node].clone();
            }
            path[1..].reverse();
            path.push(start.clone());
            // path is now start → … → last → start; report each cycle once.
            done.extend(path.iter().cloned());
            cycles.push(path);
        }
    }
    cycles
}

fn bullet_list(items: &[String]) -> String {
    items.iter().map(|item| format!("  - {item}\n")).collect()
}

// ---------------------------------------------------------------------------------------
// Tests of the scanner and the table reader
// ---------------------------------------------------------------------------------------

fn names(source: &str) -> Vec<String> {
    crate_paths(source)
        .into_iter()
        .map(|(_, name)| name)
        .collect()
}

#[test]
fn plain_use_and_inline_paths_are_found() {
    let source = "use crate::env::Provider;\n\
                  fn f() { crate::env::shell_quote(\"x\"); let _ = crate::retry::Policy::default(); }\n\
                  pub(crate) fn g() {}\n";
    assert_eq!(names(source), ["env", "env", "retry"]);
}

#[test]
fn grouped_imports_are_parsed() {
    let source = "use crate::{env::Provider, model::{self, ModelId}, self, retry as r};";
    assert_eq!(names(source), ["env", "model", "retry"]);
    let nested =
        "use crate::{\n    agent::{kind::{AgentKind, AgentLimits}, terminal},\n    events::*,\n};";
    assert_eq!(
        crate_paths(nested),
        [(2, "agent".to_string()), (3, "events".to_string())]
    );
}

#[test]
fn comments_are_ignored() {
    let source = "//! Uses crate::manifest in prose.\n\
                  /// See [`crate::runner::Trial`].\n\
                  // crate::view\n\
                  /* crate::report /* nested crate::api */ still crate::cli */\n\
                  fn f() { crate::plan::x(); }\n";
    assert_eq!(crate_paths(source), [(5, "plan".to_string())]);
}

#[test]
fn string_and_char_literals_are_ignored() {
    let source = r####"
        let a = "crate::view \" crate::report";
        let b = r#"crate::runner "quoted" "#;
        let c = b"crate::store";
        let d = '"'; let e = '\''; fn f<'a>(x: &'a str) {}
        let g = crate::verify::run();
    "####;
    assert_eq!(crate_paths(source), [(6, "verify".to_string())]);
}

#[test]
fn paths_split_over_whitespace_and_macros_are_found() {
    let source = "let x = crate ::\n    model::ModelId::new();\nmacro_rules! m { () => { $crate::env::x() } }";
    assert_eq!(
        crate_paths(source),
        [(2, "model".to_string()), (3, "env".to_string())]
    );
}

#[test]
fn files_map_to_their_top_level_module() {
    assert_eq!(module_of(Path::new("retry.rs")).as_deref(), Some("retry"));
    assert_eq!(
        module_of(Path::new("env/daytona/api.rs")).as_deref(),
        Some("env")
    );
    assert_eq!(module_of(Path::new("env/mod.rs")).as_deref(), Some("env"));
    assert_eq!(module_of(Path::new("lib.rs")), None);
    assert_eq!(module_of(Path::new("main.rs")), None);
}

#[test]
fn layer_table_is_read_top_to_bottom() {
    let doc = "# Architecture\n\n## Layers\n\nSome words.\n\n\
               | # | layer | modules | owns |\n\
               |---|---|---|---|\n\
               | 3 | face | `api` | the `RunConfig` |\n\
               | 2 | middle | `runner` | the `x` |\n\
               | 1 | base | `retry`, `diagnostic` | backoff |\n\n\
               | not | this | `table` | |\n\
               ## Next\n";
    let layers = parse_layers(doc).unwrap();
    assert_eq!(
        layers,
        [
            Layer {
                number: 3,
                written_number: Some(3),
                modules: vec!["api".into()]
            },
            Layer {
                number: 2,
                written_number: Some(2),
                modules: vec!["runner".into()]
            },
            Layer {
                number: 1,
                written_number: Some(1),
                modules: vec!["retry".into(), "diagnostic".into()]
            },
        ]
    );
    assert!(parse_layers("## Modules\n| a |\n").is_err());
    assert!(parse_layers("## Layers\n| # | layer |\n|---|---|\n| 1 | x |\n").is_err());
}

#[test]
fn cycles_are_found_and_named() {
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut edge = |a: &str, b: &str| {
        graph
            .entry(a.into())
            .or_default()
            .insert(b.into(), "src/x.rs:1".into());
    };
    edge("agent", "runner");
    edge("runner", "env");
    edge("env", "agent");
    edge("env", "retry");
    edge("model", "retry");
    assert_eq!(
        find_cycles(&graph),
        [vec!["agent", "runner", "env", "agent"]]
    );
}
