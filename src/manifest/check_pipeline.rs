//! Checks of a pipeline beyond its schema: references, stage cycles, gates, prompt templates.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;

use super::check_task::env_syntax;
use super::discover::{compile_filters, report_unmatched};
use super::document::{Document, pointer_push};
use super::pipeline::{AgentKind, PipelineManifest};
use crate::diagnostic::{Code, Diagnostic, Report, suggestion_hint};
use crate::model::scripted::Script;
use crate::model::{ModelId, ModelIdError, ModelProvider};

/// Agents every pipeline has without declaring them.
pub const BUILTIN_AGENTS: [&str; 2] = ["oracle", "nop"];

/// The names a prompt template may use at its top level.
pub const TEMPLATE_CONTEXT: [&str; 8] = [
    "instruction",
    "task",
    "vars",
    "params",
    "limits",
    "agent",
    "model",
    "stage",
];

pub(crate) struct PipelineCheck<'a> {
    pub file: &'a Path,
    pub base: &'a Path,
    pub doc: &'a Document,
    pub manifest: &'a PipelineManifest,
    pub task_names: &'a [String],
}

impl PipelineCheck<'_> {
    pub fn run(&self, report: &mut Report) {
        let mut out = Vec::new();
        self.models(&mut out);
        self.agents(&mut out, report);
        self.stages(&mut out);
        self.verify_steps(&mut out);
        self.unused(&mut out);
        out.extend(env_syntax(
            self.file,
            self.doc,
            "/environment/env",
            &self.manifest.environment.env,
        ));
        for (name, agent) in &self.manifest.agents {
            let base = format!("{}/env", pointer_push("/agents", name));
            out.extend(env_syntax(self.file, self.doc, &base, &agent.env));
        }
        report.diagnostics.extend(out);
    }

    fn error(&self, code: Code, pointer: &str, message: String) -> Diagnostic {
        Diagnostic::error(code, self.file, message).at(self.doc.value_span(pointer))
    }

    fn models(&self, out: &mut Vec<Diagnostic>) {
        for (name, model) in &self.manifest.models {
            let at = |field: &str| format!("{}/{field}", pointer_push("/models", name));
            let id = match ModelId::parse(&model.id) {
                Ok(id) => id,
                Err(error) => {
                    let hint = match &error {
                        ModelIdError::UnknownProvider(p) => suggestion_hint(p, ModelProvider::NAMES),
                        ModelIdError::EmptyModel => Some("write `provider/model`, such as `openai/gpt-4.1`".to_string()),
                        ModelIdError::CannotInfer(_) => Some(
                            "write `provider/model`; for an OpenAI-compatible server use `openai/NAME` with `base_url`"
                                .to_string(),
                        ),
                    };
                    out.push(
                        self.error(
                            Code::InvalidValue,
                            &at("id"),
                            format!("model `{name}`: {error}"),
                        )
                        .label("unknown provider")
                        .maybe_hint(hint),
                    );
                    continue;
                }
            };
            match (id.provider == ModelProvider::Scripted, &model.script) {
                (true, None) => out.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        self.file,
                        format!("scripted model `{name}` has no `script`"),
                    )
                    .at(self.doc.key_span(&pointer_push("/models", name)))
                    .label("`script` is missing here")
                    .hint("add `script = \"scripts/NAME.yaml\"`, the file of replies to play"),
                ),
                (true, Some(script)) => {
                    if let Err(error) = Script::load(&self.base.join(script)) {
                        out.push(
                            self.error(Code::InvalidValue, &at("script"), error.to_string())
                                .label("not a usable script")
                                .hint("a script is a YAML, JSON or TOML file with a `replies` list (see docs/models.md)"),
                        );
                    }
                }
                (false, Some(_)) => out.push(
                    self.error(
                        Code::Conflict,
                        &at("script"),
                        format!("model `{name}` is not scripted but has a `script`"),
                    )
                    .label("ignored")
                    .hint("use `id = \"scripted\"`, or remove `script`"),
                ),
                (false, None) => {}
            }
        }
    }

    fn agents(&self, out: &mut Vec<Diagnostic>, report: &mut Report) {
        for (name, agent) in &self.manifest.agents {
            let at = |field: &str| format!("{}/{field}", pointer_push("/agents", name));
            let kind = agent.kind.as_str();
            if BUILTIN_AGENTS.contains(&name.as_str()) && agent.kind.as_str() != name {
                out.push(
                    Diagnostic::error(
                        Code::Conflict,
                        self.file,
                        format!(
                            "agent `{name}` shadows the built-in `{name}` agent with kind `{kind}`"
                        ),
                    )
                    .at(self.doc.key_span(&pointer_push("/agents", name)))
                    .label("reserved name")
                    .hint("give this agent another name"),
                );
            }
            if let Some(model) = &agent.model {
                if !agent.kind.needs_model() && agent.kind != AgentKind::Command {
                    out.push(
                        self.error(
                            Code::Conflict,
                            &at("model"),
                            format!("the `{kind}` agent `{name}` uses no model"),
                        )
                        .label("ignored")
                        .hint("remove `model`, or use a model-driven kind such as `terminal`"),
                    );
                } else if !self.manifest.models.contains_key(model) {
                    out.push(self.undefined(
                        "model",
                        model,
                        &at("model"),
                        self.manifest.models.keys().map(String::as_str),
                    ));
                }
            }
            match (agent.kind, &agent.command) {
                (AgentKind::Command, None) => out.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        self.file,
                        format!("agent `{name}` of kind `command` has no `command`"),
                    )
                    .at(self.doc.key_span(&pointer_push("/agents", name)))
                    .label("`command` is missing here")
                    .hint("add `command = \"...\"`, the shell command that runs the agent"),
                ),
                (kind, Some(_)) if kind != AgentKind::Command => out.push(
                    self.error(
                        Code::Conflict,
                        &at("command"),
                        format!(
                            "agent `{name}` of kind `{}` takes no `command`",
                            kind.as_str()
                        ),
                    )
                    .label("ignored")
                    .hint("use `kind = \"command\"`, or remove `command`"),
                ),
                _ => {}
            }
            for field in ["system_prompt", "user_prompt"] {
                let path = if field == "system_prompt" {
                    &agent.system_prompt
                } else {
                    &agent.user_prompt
                };
                let Some(path) = path else { continue };
                if !agent.kind.needs_model() {
                    out.push(
                        self.error(
                            Code::Conflict,
                            &at(field),
                            format!("the `{kind}` agent `{name}` uses no prompt"),
                        )
                        .label("ignored")
                        .hint(format!("remove `{field}`")),
                    );
                    continue;
                }
                self.template(path, &at(field), out, report);
            }
        }
    }

    /// A prompt template must exist, parse, and use only names the prompt context has.
    fn template(
        &self,
        relative: &str,
        pointer: &str,
        out: &mut Vec<Diagnostic>,
        report: &mut Report,
    ) {
        let path = super::paths::clean(&self.base.join(relative));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                out.push(
                    self.error(
                        Code::MissingFile,
                        pointer,
                        format!("cannot read template `{}`: {e}", path.display()),
                    )
                    .label("no such file")
                    .hint(format!(
                        "template paths are relative to `{}`",
                        self.base.display()
                    )),
                );
                return;
            }
        };
        let text: Arc<str> = text.into();
        report.sources.insert(path.clone(), text.clone());
        let env = minijinja::Environment::new();
        let name = path.display().to_string();
        let template = match env.template_from_named_str(&name, &text) {
            Ok(t) => t,
            Err(e) => {
                out.push(template_error(&path, &text, &e));
                return;
            }
        };
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !TEMPLATE_CONTEXT.contains(&v.as_str()))
            .collect();
        unknown.sort();
        for variable in unknown {
            let span = text
                .find(&variable)
                .map_or(0..0, |start| start..start + variable.len());
            out.push(
                Diagnostic::error(
                    Code::Template,
                    path.clone(),
                    format!("template uses `{variable}`, which prompts do not have"),
                )
                .at(span)
                .label("undefined")
                .maybe_hint(suggestion_hint(&variable, TEMPLATE_CONTEXT)),
            );
        }
    }

    fn stages(&self, out: &mut Vec<Diagnostic>) {
        let stages = &self.manifest.stages;
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, stage) in stages.iter().enumerate() {
            if index.insert(stage.name.as_str(), i).is_some() {
                out.push(
                    self.error(
                        Code::Duplicate,
                        &format!("/stages/{i}/name"),
                        format!("two stages are named `{}`", stage.name),
                    )
                    .label("defined again here")
                    .hint("stage names must be unique"),
                );
            }
        }
        let mut graph = DiGraph::<usize, usize>::new();
        let nodes: Vec<_> = (0..stages.len()).map(|i| graph.add_node(i)).collect();
        for (i, stage) in stages.iter().enumerate() {
            for (j, need) in stage.needs.iter().enumerate() {
                match index.get(need.as_str()) {
                    Some(&k) => {
                        graph.add_edge(nodes[k], nodes[i], j);
                    }
                    None => out.push(self.undefined(
                        "stage",
                        need,
                        &format!("/stages/{i}/needs/{j}"),
                        stages.iter().map(|s| s.name.as_str()),
                    )),
                }
            }
        }
        out.extend(self.cycles(&graph));
        let ancestors = ancestors(stages.len(), &graph);
        for (i, stage) in stages.iter().enumerate() {
            self.stage_members(i, out);
            if let Some(gate) = &stage.gate {
                let pointer = format!("/stages/{i}/gate/stage");
                match index.get(gate.stage.as_str()) {
                    None => out.push(self.undefined(
                        "stage",
                        &gate.stage,
                        &pointer,
                        stages.iter().map(|s| s.name.as_str()),
                    )),
                    Some(&k) if !ancestors[i].contains(&k) => out.push(
                        self.error(
                            Code::InvalidValue,
                            &pointer,
                            format!(
                                "stage `{}` is gated on `{}`, which it does not need",
                                stage.name, gate.stage
                            ),
                        )
                        .label("not in `needs`")
                        .hint(format!("add `\"{}\"` to this stage's `needs`", gate.stage)),
                    ),
                    Some(&k) if !stages[k].agents.contains(&gate.agent) => out.push(
                        self.error(
                            Code::InvalidValue,
                            &format!("/stages/{i}/gate"),
                            format!(
                                "the gate reads agent `{}`, which stage `{}` does not run",
                                gate.agent, gate.stage
                            ),
                        )
                        .label("no such results")
                        .hint(format!(
                            "set `agent` to one of the agents of `{}`: {}",
                            gate.stage,
                            stages[k].agents.join(", ")
                        )),
                    ),
                    Some(_) => {}
                }
            }
        }
    }

    /// The agents, models, matrix and task filters of stage `i`.
    fn stage_members(&self, i: usize, out: &mut Vec<Diagnostic>) {
        let stage = &self.manifest.stages[i];
        let mut seen = BTreeSet::new();
        for (j, name) in stage.agents.iter().enumerate() {
            let pointer = format!("/stages/{i}/agents/{j}");
            if !seen.insert(name) {
                out.push(
                    self.error(
                        Code::Duplicate,
                        &pointer,
                        format!("agent `{name}` is listed twice"),
                    )
                    .label("again"),
                );
                continue;
            }
            let kind = match self.manifest.agents.get(name) {
                Some(agent) => Some(agent.kind),
                None if BUILTIN_AGENTS.contains(&name.as_str()) => None,
                None => {
                    let known = self
                        .manifest
                        .agents
                        .keys()
                        .map(String::as_str)
                        .chain(BUILTIN_AGENTS);
                    out.push(self.undefined("agent", name, &pointer, known));
                    continue;
                }
            };
            let has_model = self
                .manifest
                .agents
                .get(name)
                .is_some_and(|a| a.model.is_some());
            if kind.is_some_and(AgentKind::needs_model) && !has_model && stage.models.is_empty() {
                out.push(
                    self.error(
                        Code::MissingKey,
                        &pointer,
                        format!("agent `{name}` needs a model in stage `{}`", stage.name),
                    )
                    .label("no model")
                    .hint(format!(
                        "give agent `{name}` a `model`, or this stage `models = [...]`"
                    )),
                );
            }
        }
        let mut seen = BTreeSet::new();
        for (j, name) in stage.models.iter().enumerate() {
            let pointer = format!("/stages/{i}/models/{j}");
            if !seen.insert(name) {
                out.push(
                    self.error(
                        Code::Duplicate,
                        &pointer,
                        format!("model `{name}` is listed twice"),
                    )
                    .label("again"),
                );
            } else if !self.manifest.models.contains_key(name) {
                out.push(self.undefined(
                    "model",
                    name,
                    &pointer,
                    self.manifest.models.keys().map(String::as_str),
                ));
            }
        }
        if !stage.models.is_empty() && !stage.agents.iter().any(|a| self.is_model_driven(a)) {
            out.push(
                Diagnostic::warning(
                    Code::Conflict,
                    self.file,
                    format!(
                        "stage `{}` lists models but runs no model-driven agent",
                        stage.name
                    ),
                )
                .at(self.doc.key_span(&format!("/stages/{i}/models")))
                .label("unused")
                .hint("models apply to `terminal` and `computer-use` agents"),
            );
        }
        for (key, values) in &stage.matrix {
            if values.is_empty() {
                let pointer = pointer_push(&format!("/stages/{i}/matrix"), key);
                out.push(
                    self.error(
                        Code::InvalidValue,
                        &pointer,
                        format!("matrix parameter `{key}` has no values"),
                    )
                    .label("empty")
                    .hint("list at least one value, or remove the parameter"),
                );
            }
        }
        let filters = compile_filters(
            self.file,
            self.doc,
            &format!("/stages/{i}/tasks"),
            &stage.tasks,
            out,
        );
        report_unmatched(
            self.file,
            self.doc,
            &format!("/stages/{i}/tasks"),
            &filters,
            self.task_names,
            true,
            out,
        );
    }

    fn is_model_driven(&self, agent: &str) -> bool {
        self.manifest
            .agents
            .get(agent)
            .is_some_and(|a| a.kind.needs_model())
    }

    /// One diagnostic per cycle among stages, naming every stage on it.
    fn cycles(&self, graph: &DiGraph<usize, usize>) -> Vec<Diagnostic> {
        let stages = &self.manifest.stages;
        let mut out = Vec::new();
        for component in tarjan_scc(graph) {
            let first = *component
                .iter()
                .map(|n| &graph[*n])
                .min()
                .expect("components are not empty");
            let self_loop = graph.contains_edge(component[0], component[0]);
            if component.len() < 2 && !self_loop {
                continue;
            }
            let members: BTreeSet<usize> = component.iter().map(|n| graph[*n]).collect();
            let mut path = vec![first];
            let mut current = first;
            // Walk the `needs` of each stage inside the cycle until we are back at the start.
            loop {
                let next = stages[current]
                    .needs
                    .iter()
                    .filter_map(|n| stages.iter().position(|s| &s.name == n))
                    .find(|k| members.contains(k) && (*k == first || !path.contains(k)));
                match next {
                    Some(k) if k == first => break,
                    Some(k) => {
                        path.push(k);
                        current = k;
                    }
                    None => break,
                }
            }
            let mut names: Vec<&str> = path.iter().map(|&k| stages[k].name.as_str()).collect();
            names.push(&stages[first].name);
            let second = path.get(1).copied().unwrap_or(first);
            let j = stages[first]
                .needs
                .iter()
                .position(|n| n == &stages[second].name)
                .unwrap_or(0);
            out.push(
                self.error(
                    Code::Cycle,
                    &format!("/stages/{first}/needs/{j}"),
                    format!(
                        "stages depend on each other in a cycle: {}",
                        names.join(" → ")
                    ),
                )
                .label("this need closes the cycle")
                .hint("remove one of these `needs` so the stages can run in order"),
            );
        }
        out
    }

    fn verify_steps(&self, out: &mut Vec<Diagnostic>) {
        let mut seen = BTreeSet::new();
        for (i, step) in self.manifest.verify.iter().enumerate() {
            if !seen.insert(step.name.as_str()) {
                out.push(
                    self.error(
                        Code::Duplicate,
                        &format!("/verify/{i}/name"),
                        format!("two verification steps are named `{}`", step.name),
                    )
                    .label("defined again here"),
                );
            }
            match (step.name.as_str(), &step.command) {
                ("tests", Some(_)) => out.push(
                    self.error(
                        Code::Conflict,
                        &format!("/verify/{i}/command"),
                        "the `tests` step is the task's own `tests/test.sh` and takes no command"
                            .to_string(),
                    )
                    .label("not allowed for `tests`")
                    .hint("give your step another name, or remove `command`"),
                ),
                (name, None) if name != "tests" => out.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        self.file,
                        format!("verification step `{name}` has no `command`"),
                    )
                    .at(self.doc.key_span(&format!("/verify/{i}")))
                    .label("`command` is missing here")
                    .hint(
                        "add `command = \"...\"`; only the built-in `tests` step goes without one",
                    ),
                ),
                _ => {}
            }
        }
    }

    fn unused(&self, out: &mut Vec<Diagnostic>) {
        let used_agents: BTreeSet<&String> = self
            .manifest
            .stages
            .iter()
            .flat_map(|s| &s.agents)
            .collect();
        for name in self
            .manifest
            .agents
            .keys()
            .filter(|n| !used_agents.contains(n))
        {
            out.push(
                Diagnostic::warning(
                    Code::UndefinedReference,
                    self.file,
                    format!("agent `{name}` is not run by any stage"),
                )
                .at(self.doc.key_span(&pointer_push("/agents", name)))
                .label("unused")
                .hint("add it to a stage's `agents`, or remove it"),
            );
        }
        let used_models: BTreeSet<&String> = self
            .manifest
            .stages
            .iter()
            .flat_map(|s| &s.models)
            .chain(
                self.manifest
                    .agents
                    .values()
                    .filter_map(|a| a.model.as_ref()),
            )
            .collect();
        for name in self
            .manifest
            .models
            .keys()
            .filter(|n| !used_models.contains(n))
        {
            out.push(
                Diagnostic::warning(
                    Code::UndefinedReference,
                    self.file,
                    format!("model `{name}` is not used"),
                )
                .at(self.doc.key_span(&pointer_push("/models", name)))
                .label("unused")
                .hint("name it in an agent's `model` or a stage's `models`, or remove it"),
            );
        }
    }

    fn undefined<'n>(
        &self,
        what: &str,
        name: &str,
        pointer: &str,
        known: impl IntoIterator<Item = &'n str>,
    ) -> Diagnostic {
        let known: Vec<&str> = known.into_iter().collect();
        let hint = suggestion_hint(name, known.iter().copied()).or_else(|| {
            Some(match what {
                "model" => format!("define it under `[models.{name}]`"),
                "agent" => format!("define it under `[agents.{name}]`, or use `oracle` or `nop`"),
                _ => format!("define a stage named `{name}`"),
            })
        });
        self.error(
            Code::UndefinedReference,
            pointer,
            format!("unknown {what} `{name}`"),
        )
        .label(format!("no {what} of this name"))
        .maybe_hint(hint)
    }
}

/// For every stage, the set of stages it needs directly or through others.
fn ancestors(count: usize, graph: &DiGraph<usize, usize>) -> Vec<BTreeSet<usize>> {
    (0..count)
        .map(|i| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![petgraph::graph::NodeIndex::new(i)];
            while let Some(node) = stack.pop() {
                for parent in graph.neighbors_directed(node, petgraph::Direction::Incoming) {
                    if seen.insert(graph[parent]) {
                        stack.push(parent);
                    }
                }
            }
            seen
        })
        .collect()
}

fn template_error(path: &Path, text: &str, error: &minijinja::Error) -> Diagnostic {
    let span = error.range().or_else(|| {
        let line = error.line()?;
        let start: usize = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let len = text[start..].find('\n').unwrap_or(text.len() - start);
        Some(start..start + len)
    });
    let detail = error
        .detail()
        .map_or_else(|| error.kind().to_string(), str::to_string);
    let d = Diagnostic::error(
        Code::Template,
        PathBuf::from(path),
        format!("template does not parse: {detail}"),
    )
    .label("here");
    match span {
        Some(span) => d.at(span),
        None => d,
    }
}
