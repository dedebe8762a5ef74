//! Prompt templates: the one minijinja environment, the typed context a prompt sees, and the
//! checking (`helios validate`) and the rendering (before a trial starts) that both use them.
//!
//! Validation and rendering share this module so that they cannot disagree: a template that
//! passes `helios validate` renders with the same settings, the same filters and the same
//! variables when its trial is prepared.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;

/// The names a prompt template may use at its top level: the fields of [`PromptContext`].
pub const VARIABLES: [&str; 8] = [
    "instruction",
    "task",
    "vars",
    "params",
    "limits",
    "agent",
    "model",
    "stage",
];

/// Parts of the context whose keys come from user data (the pipeline's `[vars]`, a stage's
/// matrix, a task's `[metadata]`) and so differ between pipelines, stages and tasks: the
/// static check stops at them and leaves them to the render of the sample contexts.
const OPEN_TABLES: [&str; 3] = ["vars", "params", "task.metadata"];

/// What a prompt template sees. The field names are the variable names of users' templates
/// (documented in docs/manifests.md and docs/models.md): renaming one breaks their prompts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PromptContext {
    /// The task's `instruction.md`.
    pub instruction: String,
    pub task: TaskContext,
    /// The pipeline's `[vars]`.
    pub vars: BTreeMap<String, Value>,
    /// The stage's matrix values for this trial.
    pub params: BTreeMap<String, Value>,
    pub limits: LimitsContext,
    pub agent: AgentContext,
    pub model: ModelContext,
    /// The stage's name.
    pub stage: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TaskContext {
    pub name: String,
    /// The task's `[metadata]`.
    pub metadata: BTreeMap<String, Value>,
}

/// The agent's limits with their defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LimitsContext {
    pub max_turns: u32,
    pub max_time: f64,
    pub timeout_per_turn: f64,
    pub stop_on_tool_error: bool,
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AgentContext {
    pub name: String,
    /// `terminal`, `computer-use`, ...
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ModelContext {
    /// The name under `[models]`.
    pub name: String,
    /// `provider/model`.
    pub id: String,
}

/// What is wrong with a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Problem {
    /// The template does not parse.
    Syntax,
    /// The template uses `variable` (a dotted path such as `task.instructoin`), which the
    /// context does not have; `candidates` are the paths that exist at that place.
    Undefined {
        variable: String,
        candidates: Vec<String>,
    },
    /// The template parses but does not render: an unknown filter, test or function, a bad
    /// operand, ...
    Render,
}

/// A template that does not check or render, with where the problem is in its source.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) struct TemplateError {
    // Boxed strings keep `Result<_, TemplateError>` small.
    pub template: Box<str>,
    pub problem: Problem,
    /// 1-based line in the template's source.
    pub line: Option<usize>,
    /// Byte range in the template's source.
    pub span: Option<Range<usize>>,
    pub message: Box<str>,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template `{}`", self.template)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The one environment configuration of prompt templates.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A misspelt variable must be an error, not an empty string in a prompt.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Prompts are plain text: a template named `*.html` must not HTML-escape the instruction.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env
}

/// A parsed template, ready to be checked or rendered.
pub(crate) struct Template {
    env: Environment<'static>,
    name: String,
    source: String,
}

/// Parses `source`, named `name` in errors (a path, or `built-in system prompt`).
pub(crate) fn compile(name: &str, source: &str) -> Result<Template, TemplateError> {
    let mut env = environment();
    env.add_template_owned(name.to_string(), source.to_string())
        .map_err(|e| error(name, source, &e))?;
    Ok(Template {
        env,
        name: name.to_string(),
        source: source.to_string(),
    })
}

/// Parses and renders `source` with `context`.
pub(crate) fn render(
    name: &str,
    source: &str,
    context: &PromptContext,
) -> Result<String, TemplateError> {
    compile(name, source)?.render(context)
}

/// Whether `source` (a template) refers to the top-level variable `name`; `false` when it
/// does not parse (rendering it reports that).
pub(crate) fn uses_variable(source: &str, name: &str) -> bool {
    let Ok(template) = compile("template", source) else {
        return false;
    };
    template
        .env
        .get_template(&template.name)
        .is_ok_and(|t| t.undeclared_variables(false).contains(name))
}

/// Parses and renders `source` with any serializable context (an installed agent's
/// `install` and `run` scripts), in the same strict environment as prompts: a name the
/// context lacks is an error naming the names it has.
pub(crate) fn render_with(
    name: &str,
    source: &str,
    context: &impl Serialize,
) -> Result<String, TemplateError> {
    let template = compile(name, source)?;
    let shape = serde_json::to_value(context).unwrap_or(Value::Null);
    let error = |e: minijinja::Error| {
        let mut e = error(&template.name, &template.source, &e);
        if let Problem::Undefined {
            variable,
            candidates,
        } = &mut e.problem
        {
            *candidates = missing(&shape, variable, false).unwrap_or_default();
        }
        e
    };
    template
        .env
        .get_template(&template.name)
        .map_err(error)?
        .render(minijinja::value::Serde(context))
        .map_err(error)
}

impl Template {
    /// Renders the template with `context`.
    pub(crate) fn render(&self, context: &PromptContext) -> Result<String, TemplateError> {
        let error = |e: minijinja::Error| {
            let mut e = error(&self.name, &self.source, &e);
            if let Problem::Undefined {
                variable,
                candidates,
            } = &mut e.problem
            {
                let shape = serde_json::to_value(context).unwrap_or(Value::Null);
                *candidates = missing(&shape, variable, false).unwrap_or_default();
            }
            e
        };
        let template = self.env.get_template(&self.name).map_err(error)?;
        template
            .render(minijinja::value::Serde(context))
            .map_err(error)
    }

    /// The problems a trial with a context like `sample` would hit. Two passes, because
    /// neither is enough alone: every variable path the template names, in every branch, must
    /// exist in the context's shape (a render only visits the branches the sample takes); and
    /// the template must render with `sample` (which finds unknown filters and tests, and
    /// missing keys of `vars`, `params` and `task.metadata`, whose keys depend on the data).
    pub(crate) fn check(&self, sample: &PromptContext) -> Vec<TemplateError> {
        let errors = self.check_names(sample);
        if !errors.is_empty() {
            return errors;
        }
        self.render(sample).err().into_iter().collect()
    }

    /// The first pass of [`Template::check`] alone, for when no trial will render the
    /// template (its agent is in no stage): only `sample`'s shape matters, not its values.
    pub(crate) fn check_names(&self, sample: &PromptContext) -> Vec<TemplateError> {
        let shape = serde_json::to_value(sample).unwrap_or(Value::Null);
        let Ok(template) = self.env.get_template(&self.name) else {
            return Vec::new();
        };
        let mut paths: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        paths.sort();
        let globals: Vec<&str> = self.env.globals().map(|(name, _)| name).collect();
        paths
            .iter()
            .filter(|path| !globals.contains(&path.split('.').next().unwrap_or_default()))
            .filter_map(|path| {
                let candidates = missing(&shape, path, true)?;
                let span = find_reference(&self.source, path, 0);
                Some(TemplateError {
                    template: self.name.as_str().into(),
                    line: span.as_ref().map(|s| line_of(&self.source, s.start)),
                    span,
                    message: format!("`{path}` is undefined").into(),
                    problem: Problem::Undefined {
                        variable: path.clone(),
                        candidates,
                    },
                })
            })
            .collect()
    }
}

/// `None` if `path` exists in `shape` (or leads into an open table, if `stop_at_open`);
/// otherwise the paths that exist where it goes wrong, sorted, for a "did you mean".
fn missing(shape: &Value, path: &str, stop_at_open: bool) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split('.').collect();
    let mut node = shape;
    for (i, segment) in segments.iter().enumerate() {
        let here = segments[..i].join(".");
        if stop_at_open && OPEN_TABLES.contains(&here.as_str()) {
            return None;
        }
        match node {
            Value::Object(map) => match map.get(*segment) {
                Some(value) => node = value,
                None => {
                    let mut candidates: Vec<String> = map
                        .keys()
                        .map(|k| {
                            if here.is_empty() {
                                k.clone()
                            } else {
                                format!("{here}.{k}")
                            }
                        })
                        .collect();
                    candidates.sort();
                    return Some(candidates);
                }
            },
            // Lists are indexed by position, which the static check does not follow.
            Value::Array(_) => return None,
            // Strings, numbers and `none` have no attributes.
            _ => return Some(Vec::new()),
        }
    }
    None
}

/// The error of minijinja `e` in template `name` with `source`.
fn error(name: &str, source: &str, e: &minijinja::Error) -> TemplateError {
    let message = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    let (problem, span) = match e.kind() {
        ErrorKind::SyntaxError | ErrorKind::BadEscape => (Problem::Syntax, e.range()),
        ErrorKind::UndefinedError => match undefined_expression(&message) {
            // The error's own range is that of the instruction that failed, which for
            // `{{ vars.x | upper }}` is the filter; point at the expression instead.
            Some(variable) => {
                let from = e.line().map_or(0, |line| line_start(source, line));
                let span = find_reference(source, &variable, from).or_else(|| e.range());
                let problem = Problem::Undefined {
                    variable,
                    candidates: Vec::new(),
                };
                (problem, span)
            }
            None => (Problem::Render, e.range()),
        },
        _ => (Problem::Render, e.range()),
    };
    let span = span.or_else(|| {
        let start = line_start(source, e.line()?);
        let len = source[start..].find('\n').unwrap_or(source.len() - start);
        Some(start..start + len)
    });
    TemplateError {
        template: name.into(),
        problem,
        line: e
            .line()
            .or_else(|| span.as_ref().map(|s| line_of(source, s.start))),
        span,
        message: message.into(),
    }
}

/// The expression minijinja names in an undefined error's detail: "`task.x` is undefined".
fn undefined_expression(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix('`')?;
    let (expression, tail) = rest.split_once('`')?;
    tail.starts_with(" is undefined")
        .then(|| expression.to_string())
}

/// The byte offset where 1-based `line` starts.
fn line_start(source: &str, line: usize) -> usize {
    source
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum()
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// Where `path` is used in a `{{ }}` or `{% %}` tag of `source` at or after `from` (else
/// before it), as a whole name: `task` is not found in `subtask` nor in the text around tags.
fn find_reference(source: &str, path: &str, from: usize) -> Option<Range<usize>> {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = source[at..].find(['{']).map(|i| at + i) {
        let close = match source.get(open..open + 2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            _ => {
                at = open + 1;
                continue;
            }
        };
        let end = source[open..]
            .find(close)
            .map_or(source.len(), |i| open + i);
        let tag = &source[open..end];
        for (i, _) in tag.match_indices(path) {
            let start = open + i;
            let before = source[..start].chars().next_back();
            let after = source[start + path.len()..].chars().next();
            if !before.is_some_and(|c| is_name(c) || c == '.') && !after.is_some_and(is_name) {
                found.push(start..start + path.len());
            }
        }
        at = end.max(open + 2);
    }
    found
        .iter()
        .find(|r| r.start >= from)
        .or_else(|| found.first())
        .cloned()
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// A context with a value in every variable, as a trial of `t` in stage `s` would see.
    pub(crate) fn sample() -> PromptContext {
        PromptContext {
            instruction: "Fix the bug".to_string(),
            task: TaskContext {
                name: "hello".to_string(),
                metadata: BTreeMap::from([("difficulty".to_string(), json!("easy"))]),
            },
            vars: BTreeMap::from([("language".to_string(), json!("en"))]),
            params: BTreeMap::from([("temperature".to_string(), json!(0.5))]),
            limits: LimitsContext {
                max_turns: 10,
                max_time: 300.0,
                timeout_per_turn: 60.0,
                stop_on_tool_error: false,
                max_tokens: Some(1000),
                max_cost_usd: None,
            },
            agent: AgentContext {
                name: "t".to_string(),
                kind: "terminal".to_string(),
            },
            model: ModelContext {
                name: "m".to_string(),
                id: "anthropic/claude-sonnet-4-20250514".to_string(),
            },
            stage: "s".to_string(),
        }
    }

    fn check(source: &str) -> Vec<TemplateError> {
        compile("t.j2", source).unwrap().check(&sample())
    }

    fn undefined(error: &TemplateError) -> &str {
        match &error.problem {
            Problem::Undefined { variable, .. } => variable,
            other => panic!("not an undefined variable: {other:?}"),
        }
    }

    #[test]
    fn the_variables_are_the_fields_of_the_context() {
        let shape = serde_json::to_value(sample()).unwrap();
        let mut fields: Vec<&str> = shape.as_object().unwrap().keys().map(|k| &**k).collect();
        fields.sort_unstable();
        let mut variables = VARIABLES.to_vec();
        variables.sort_unstable();
        assert_eq!(fields, variables);
    }

    #[test]
    fn a_template_that_validates_renders_with_the_same_variables() {
        let source = "{{ instruction }} {{ task.name }} {{ task.metadata.difficulty }} \
                      {{ vars.language }} {{ params.temperature }} {{ limits.max_turns }} \
                      {{ agent.name }} {{ agent.kind }} {{ model.name }} {{ model.id }} \
                      {{ stage }}{% if vars.missing is defined %}{{ vars.missing }}{% endif %}";
        assert_eq!(check(source), vec![]);
        assert_eq!(
            render("t.j2", source, &sample()).unwrap(),
            "Fix the bug hello easy en 0.5 10 t terminal m \
             anthropic/claude-sonnet-4-20250514 s"
        );
    }

    #[test]
    fn an_undefined_variable_fails_validation_and_rendering_the_same_way() {
        let source = "line one\n{{ task.instructoin }}";
        let checked = check(source);
        let rendered = render("t.j2", source, &sample()).unwrap_err();
        assert_eq!(checked, vec![rendered.clone()]);
        assert_eq!(undefined(&rendered), "task.instructoin");
        assert_eq!(rendered.line, Some(2));
        assert_eq!(&source[rendered.span.clone().unwrap()], "task.instructoin");
        assert_eq!(
            rendered.to_string(),
            "template `t.j2`, line 2: `task.instructoin` is undefined"
        );
    }

    #[test]
    fn an_undefined_variable_in_a_branch_the_sample_does_not_take_fails_validation() {
        let errors = check("{% if false %}{{ model.nmae }}{% endif %}");
        assert_eq!(errors.len(), 1);
        assert_eq!(undefined(&errors[0]), "model.nmae");
        assert!(matches!(&errors[0].problem,
            Problem::Undefined { candidates, .. } if candidates == &["model.id", "model.name"]));
    }

    #[test]
    fn an_undefined_top_level_variable_fails_validation() {
        let errors = check("Task:\n{{ instrucion }}");
        assert_eq!(undefined(&errors[0]), "instrucion");
        assert_eq!(errors[0].span, Some(9..19));
        assert_eq!(errors[0].line, Some(2));
    }

    #[test]
    fn a_missing_var_fails_validation_at_the_expression_not_the_filter() {
        let source = "{{ vars.langauge | upper }}";
        let errors = check(source);
        assert_eq!(undefined(&errors[0]), "vars.langauge");
        assert_eq!(&source[errors[0].span.clone().unwrap()], "vars.langauge");
        assert!(matches!(&errors[0].problem,
            Problem::Undefined { candidates, .. } if candidates == &["vars.language"]));
        assert_eq!(errors, vec![render("t.j2", source, &sample()).unwrap_err()]);
    }

    #[test]
    fn an_unknown_filter_fails_validation() {
        let source = "{{ instruction | shout }}";
        let errors = check(source);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].problem, Problem::Render);
        assert_eq!(&source[errors[0].span.clone().unwrap()], "shout");
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let e = compile("t.j2", "Hello\n{% if instruction %}\nno end")
            .err()
            .unwrap();
        assert_eq!(e.problem, Problem::Syntax);
        assert!(e.message.contains("expected end of block"), "{e}");
    }

    #[test]
    fn global_functions_are_not_variables() {
        assert_eq!(
            check("{% for i in range(2) %}{{ loop.index }}{% endfor %}"),
            vec![]
        );
    }

    #[test]
    fn html_named_templates_are_not_escaped() {
        let mut context = sample();
        context.instruction = "a < b & c".to_string();
        assert_eq!(
            render("p.html", "{{ instruction }}", &context).unwrap(),
            "a < b & c"
        );
    }

    fn renders(source: &str) -> String {
        assert_eq!(check(source), vec![], "{source}");
        render("t.j2", source, &sample()).unwrap()
    }

    #[test]
    fn instruction_is_the_task_instruction() {
        assert_eq!(renders("{{ instruction }}"), "Fix the bug");
    }

    #[test]
    fn task_has_the_name_and_the_metadata() {
        assert_eq!(
            renders("{{ task.name }} {{ task.metadata.difficulty }}"),
            "hello easy"
        );
        assert_eq!(
            undefined(&check("{{ task.metadata.author }}")[0]),
            "task.metadata.author"
        );
    }

    #[test]
    fn vars_are_the_pipeline_vars() {
        assert_eq!(renders("{{ vars.language }}"), "en");
    }

    #[test]
    fn params_are_the_matrix_values() {
        assert_eq!(renders("{{ params.temperature }}"), "0.5");
    }

    #[test]
    fn limits_have_every_limit() {
        assert_eq!(
            renders(
                "{{ limits.max_turns }} {{ limits.max_time }} {{ limits.timeout_per_turn }} \
                 {{ limits.stop_on_tool_error }} {{ limits.max_tokens }} {{ limits.max_cost_usd }}"
            ),
            "10 300.0 60.0 False 1000 None"
        );
    }

    #[test]
    fn agent_has_the_name_and_the_kind() {
        assert_eq!(renders("{{ agent.name }} {{ agent.kind }}"), "t terminal");
    }

    #[test]
    fn model_has_the_name_and_the_id() {
        assert_eq!(
            renders("{{ model.name }} {{ model.id }}"),
            "m anthropic/claude-sonnet-4-20250514"
        );
    }

    #[test]
    fn stage_is_the_stage_name() {
        assert_eq!(renders("{{ stage }}"), "s");
    }
}
