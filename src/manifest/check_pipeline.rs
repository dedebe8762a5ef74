//! Checks of a pipeline beyond its schema: references, stage cycles, gates, prompt templates.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::check_task::env_syntax;
use super::discover::{compile_filters, report_unmatched};
use super::document::{Document, pointer_push};
use super::pipeline::{AgentSpec, DEFAULT_MAX_TRIALS, InstalledAgent, PipelineManifest};
use super::stage_graph::StageGraph;
use super::task::NetworkMode;
use super::trials::{count_trials, total_trials};
use crate::agent::AgentKind;
use crate::agent::installed::{self, RecipeError};
use crate::diagnostic::{Code, Diagnostic, Report, suggestion_hint};
use crate::model::scripted::Script;
use crate::model::{ModelId, ModelIdError, ModelProvider};
use crate::template::{
    self, AgentContext, LimitsContext, ModelContext, Problem, PromptContext, TaskContext,
    TemplateError,
};

/// Agents every pipeline has without declaring them.
pub const BUILTIN_AGENTS: [&str; 2] = ["oracle", "nop"];

pub(crate) struct PipelineCheck<'a> {
    pub file: &'a Path,
    pub base: &'a Path,
    pub doc: &'a Document,
    pub manifest: &'a PipelineManifest,
    pub task_names: &'a [String],
    /// The tasks that loaded, whose metadata the sample contexts of prompt templates use.
    pub tasks: &'a [Option<super::TaskDir>],
}

impl PipelineCheck<'_> {
    pub(super) fn run(&self, report: &mut Report) {
        let mut out = Vec::new();
        self.models(&mut out);
        self.agents(&mut out, report);
        self.stages(&mut out);
        self.verify_steps(&mut out);
        self.expectations(&mut out);
        self.unused(&mut out);
        self.network(&mut out);
        self.trial_bound(&mut out);
        out.extend(env_syntax(
            self.file,
            self.doc,
            "/environment/env",
            &self.manifest.environment.env,
        ));
        for (name, agent) in &self.manifest.agents {
            let base = format!("{}/env", pointer_push("/agents", name));
            out.extend(env_syntax(self.file, self.doc, &base, agent.env()));
        }
        report.diagnostics.extend(out);
    }

    /// `allowlist` needs hosts, which only a task can list: `apply` would refuse every
    /// trial, so `validate` refuses the pipeline.
    fn network(&self, out: &mut Vec<Diagnostic>) {
        if self.manifest.environment.network_mode == Some(NetworkMode::Allowlist) {
            out.push(
                self.error(
                    Code::InvalidValue,
                    "/environment/network_mode",
                    "`environment.network_mode = \"allowlist\"` is not supported".to_string(),
                )
                .label("a pipeline cannot list the hosts an allowlist lets through")
                .hint("write \"public\" or \"no-network\" here, and `network_mode = \"allowlist\"` with `allowed_hosts` in the tasks that need one"),
            );
        }
    }

    /// The bound on trials, checked on counts before the plan makes them.
    fn trial_bound(&self, out: &mut Vec<Diagnostic>) {
        let max = self.manifest.pipeline.max_trials;
        let stages = count_trials(self.manifest, self.task_names);
        let total = total_trials(&stages);
        if total <= u128::from(max) {
            return;
        }
        let Some(worst) = stages.iter().max_by_key(|s| s.trials) else {
            return;
        };
        let stage = &self.manifest.stages[worst.stage];
        let at = |field: &str| format!("/stages/{}/{field}", worst.stage);
        let (span, label) = if worst.combinations > u128::from(worst.attempts) {
            let key = format!("/stages/{}/matrix", worst.stage);
            (
                self.doc.key_span(&key),
                format!("{} combinations", worst.combinations),
            )
        } else if worst.attempts > 1 {
            (
                self.doc.value_span(&at("attempts")),
                format!("{} attempts", worst.attempts),
            )
        } else {
            (
                self.doc.value_span(&at("name")),
                format!("{} trials", worst.trials),
            )
        };
        out.push(
            Diagnostic::error(
                Code::InvalidValue,
                self.file,
                format!(
                    "the pipeline would make {total} trials, more than `max_trials` ({max}); stage `{}` makes {}",
                    stage.name, worst.trials
                ),
            )
            .at(span)
            .label(label)
            .hint(format!(
                "lower `attempts` or the matrix, or raise `[pipeline] max_trials` (default {DEFAULT_MAX_TRIALS}) if you mean it"
            )),
        );
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

    /// What the schema cannot say of an agent: that the names it uses exist, that it does
    /// not shadow a built-in, that its templates render. (Which fields a kind takes is the
    /// schema's: a field of another kind is an unknown key there.)
    fn agents(&self, out: &mut Vec<Diagnostic>, report: &mut Report) {
        for (name, agent) in &self.manifest.agents {
            let at = |field: &str| format!("{}/{field}", pointer_push("/agents", name));
            let kind = agent.kind().as_str();
            if BUILTIN_AGENTS.contains(&name.as_str()) && kind != name {
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
            if let Some(model) = agent.model()
                && !self.manifest.models.contains_key(model)
            {
                out.push(self.undefined(
                    "model",
                    model,
                    &at("model"),
                    self.manifest.models.keys().map(String::as_str),
                ));
            }
            if let Some(installed) = agent.installed() {
                self.installed(name, installed, out);
            }
            let (system_prompt, user_prompt) = agent.prompts();
            for (field, path) in [
                ("system_prompt", system_prompt),
                ("user_prompt", user_prompt),
            ] {
                let Some(path) = path else { continue };
                let (stand_in, samples) = self.samples(name, agent);
                self.template(path, &at(field), &stand_in, &samples, out, report);
            }
        }
    }

    /// An installed agent names a catalog agent or gives its own `install` and `run`, whose
    /// templates render.
    fn installed(&self, name: &str, agent: &InstalledAgent, out: &mut Vec<Diagnostic>) {
        let at = |field: &str| format!("{}/{field}", pointer_push("/agents", name));
        let recipe = installed::resolve(name, agent.recipe_fields());
        let recipe =
            match recipe {
                Ok(recipe) => recipe,
                Err(RecipeError::UnknownAgent(wanted)) => {
                    out.push(
                        self.error(
                            Code::UndefinedReference,
                            &at("agent"),
                            format!("unknown installed agent `{wanted}`"),
                        )
                        .label("not in helios's catalog")
                        .maybe_hint(suggestion_hint(&wanted, installed::names()).map(|hint| {
                            format!(
                                "{hint} (or give your own `install` and `run`, see docs/agents.md)"
                            )
                        })),
                    );
                    return;
                }
                Err(RecipeError::UnknownRuntime(wanted)) => {
                    out.push(
                        self.error(
                            Code::UndefinedReference,
                            &at("runtime"),
                            format!("unknown runtime `{wanted}`"),
                        )
                        .label("no such runtime")
                        .maybe_hint(suggestion_hint(
                            &wanted,
                            installed::catalog().runtimes.keys().map(String::as_str),
                        )),
                    );
                    return;
                }
                Err(RecipeError::Incomplete) => {
                    let missing: Vec<&str> = [("install", &agent.install), ("run", &agent.run)]
                        .into_iter()
                        .filter(|(_, v)| v.is_none())
                        .map(|(f, _)| f)
                        .collect();
                    out.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        self.file,
                        format!(
                            "installed agent `{name}` names no catalog agent and has no `{}`",
                            missing.join("` or `")
                        ),
                    )
                    .at(self.doc.key_span(&pointer_push("/agents", name)))
                    .label("`agent` is missing here")
                    .hint(format!(
                        "add `agent = \"NAME\"` with one of {}, or your own `install` and `run`",
                        installed::names()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
                    return;
                }
            };
        let own = |field: &str, value: &Option<String>| {
            if value.is_some() {
                at(field)
            } else {
                at("agent")
            }
        };
        let problems = [
            (
                own("install", &agent.install),
                recipe.install_script().err(),
            ),
            (
                own("run", &agent.run),
                recipe
                    .command(&installed::RunContext::sample(&recipe))
                    .err(),
            ),
        ];
        for (pointer, problem) in problems {
            if let Some(problem) = problem {
                out.push(
                    self.error(
                        Code::InvalidValue,
                        &pointer,
                        format!("agent `{name}`: {problem}"),
                    )
                    .label("does not render")
                    .maybe_hint(match &problem.problem {
                        Problem::Undefined { candidates, .. } if !candidates.is_empty() => {
                            Some(format!(
                                "the template can use {}",
                                candidates
                                    .iter()
                                    .map(|c| format!("`{c}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        }
                        _ => None,
                    }),
                );
            }
        }
    }

    /// A prompt template must exist, parse, use only names the prompt context has, and render
    /// with `samples`, with the same environment and the same context as a trial renders it.
    /// With no samples (no stage runs the agent, or no task loaded), only the names are
    /// checked, against the shape of `stand_in`.
    fn template(
        &self,
        relative: &str,
        pointer: &str,
        stand_in: &PromptContext,
        samples: &[PromptContext],
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
        let template = match template::compile(&path.display().to_string(), &text) {
            Ok(t) => t,
            Err(e) => {
                out.push(template_error(&path, &e, None));
                return;
            }
        };
        if samples.is_empty() {
            let errors = template.check_names(stand_in);
            out.extend(errors.iter().map(|e| template_error(&path, e, None)));
        }
        // Every sample, because a trial's data decides some of what a template can use (a
        // task's metadata, a stage's matrix); the first that fails is enough to report.
        for sample in samples {
            let errors = template.check(sample);
            if !errors.is_empty() {
                let which = (samples.len() > 1).then_some(sample);
                out.extend(errors.iter().map(|e| template_error(&path, e, which)));
                return;
            }
        }
    }

    /// A context of the right shape for agent `name`, and contexts like those its trials will
    /// render its prompts with: one per stage that runs it, model and task (of distinct
    /// metadata). Values the manifest does not know (the instruction, a matrix's later values)
    /// are stand-ins of the right type.
    fn samples(&self, name: &str, agent: &AgentSpec) -> (PromptContext, Vec<PromptContext>) {
        let limits = agent.limits();
        let stand_in = PromptContext {
            instruction: "(the task's instruction)".to_string(),
            task: TaskContext {
                name: String::new(),
                metadata: BTreeMap::new(),
            },
            vars: self.manifest.vars.clone(),
            params: BTreeMap::new(),
            // The defaults of `plan::ResolvedLimits`; only their types matter to a template.
            limits: LimitsContext {
                max_turns: limits.max_turns.unwrap_or(10),
                max_time: limits.max_time.unwrap_or(300.0),
                timeout_per_turn: limits.timeout_per_turn.unwrap_or(60.0),
                stop_on_tool_error: limits.stop_on_tool_error.unwrap_or(false),
                max_tokens: limits.max_tokens,
                max_cost_usd: limits.max_cost_usd,
            },
            agent: AgentContext {
                name: name.to_string(),
                kind: agent.kind().as_str().to_string(),
            },
            model: ModelContext {
                name: String::new(),
                id: String::new(),
            },
            stage: String::new(),
        };
        let tasks: Vec<&super::TaskDir> = self.tasks.iter().flatten().collect();
        let mut samples = Vec::new();
        for stage in self
            .manifest
            .stages
            .iter()
            .filter(|s| s.agents.iter().any(|a| a == name))
        {
            let models = if stage.models.is_empty() {
                agent.model().map(std::slice::from_ref).unwrap_or_default()
            } else {
                stage.models.as_slice()
            };
            // Invalid globs are reported with the stage; here they just match nothing.
            let filters: Vec<glob::Pattern> = stage
                .tasks
                .iter()
                .filter_map(|t| glob::Pattern::new(t).ok())
                .collect();
            // Tasks of distinct metadata, found by its JSON text: comparing each task's
            // metadata with every earlier one's was quadratic in the tasks.
            let mut metadata_seen = HashSet::new();
            let stage_tasks: Vec<&super::TaskDir> = tasks
                .iter()
                .copied()
                .filter(|t| filters.is_empty() || filters.iter().any(|f| f.matches(&t.name)))
                .filter(|t| {
                    metadata_seen
                        .insert(serde_json::to_string(&t.manifest.metadata).unwrap_or_default())
                })
                .collect();
            let params: BTreeMap<String, Value> = stage
                .matrix
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.first()?.clone())))
                .collect();
            for (m, model) in models.iter().enumerate() {
                let Some(spec) = self.manifest.models.get(model) else {
                    continue;
                };
                // Every task with the first model and every model with the first task: each
                // value a template sees is tried, without the product of the two (a
                // million renders for 1,000 tasks × 10 models × 10 agents).
                let with = if m == 0 { stage_tasks.len() } else { 1 };
                for task in stage_tasks.iter().take(with) {
                    samples.push(PromptContext {
                        instruction: format!("(the instruction of task `{}`)", task.name),
                        task: TaskContext {
                            name: task.name.clone(),
                            metadata: task.manifest.metadata.clone(),
                        },
                        params: params.clone(),
                        model: ModelContext {
                            name: model.clone(),
                            id: spec.id.clone(),
                        },
                        stage: stage.name.clone(),
                        ..stand_in.clone()
                    });
                }
            }
        }
        (stand_in, samples)
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
        let graph = StageGraph::of(stages);
        for &(i, j) in &graph.unknown {
            out.push(self.undefined(
                "stage",
                &stages[i].needs[j],
                &format!("/stages/{i}/needs/{j}"),
                stages.iter().map(|s| s.name.as_str()),
            ));
        }
        out.extend(self.cycles(&graph));
        let ancestors = graph.ancestors();
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
                Some(agent) => Some(agent.kind()),
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
                .is_some_and(|a| a.model().is_some());
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
            .is_some_and(|a| a.kind().needs_model())
    }

    /// One diagnostic per cycle among stages, naming every stage on it.
    fn cycles(&self, graph: &StageGraph) -> Vec<Diagnostic> {
        let stages = &self.manifest.stages;
        let mut out = Vec::new();
        for path in graph.cycles(stages) {
            let first = path[0];
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
            .chain(self.manifest.agents.values().filter_map(AgentSpec::model))
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

    /// `[[expect]]`: selectors that name a stage, agent and model of the pipeline, and at
    /// least one bar.
    fn expectations(&self, out: &mut Vec<Diagnostic>) {
        let stages = &self.manifest.stages;
        for (i, expect) in self.manifest.expect.iter().enumerate() {
            let at = |field: &str| format!("/expect/{i}/{field}");
            if let Some(stage) = &expect.stage
                && !stages.iter().any(|s| &s.name == stage)
            {
                let known = stages.iter().map(|s| s.name.as_str());
                out.push(self.undefined("stage", stage, &at("stage"), known));
            }
            if let Some(agent) = &expect.agent
                && !stages.iter().any(|s| s.agents.contains(agent))
            {
                let known: BTreeSet<&str> = stages
                    .iter()
                    .flat_map(|s| s.agents.iter().map(String::as_str))
                    .collect();
                out.push(self.undefined("agent", agent, &at("agent"), known));
            }
            // Groups are named by what stages and agents call their models.
            let models: BTreeSet<&str> = self
                .manifest
                .models
                .keys()
                .map(String::as_str)
                .chain(
                    self.manifest
                        .agents
                        .values()
                        .filter_map(|a| a.model().map(String::as_str)),
                )
                .chain(
                    stages
                        .iter()
                        .flat_map(|s| s.models.iter().map(String::as_str)),
                )
                .collect();
            if let Some(model) = &expect.model
                && !models.contains(model.as_str())
            {
                out.push(self.undefined("model", model, &at("model"), models.iter().copied()));
            }
            if expect.min_mean_reward.is_none()
                && expect.min_pass_rate.is_none()
                && expect.max_error_rate.is_none()
            {
                out.push(
                    self.error(
                        Code::MissingKey,
                        &format!("/expect/{i}"),
                        "this expectation sets no bar".to_string(),
                    )
                    .label("nothing to check")
                    .hint("add `min_mean_reward`, `min_pass_rate` or `max_error_rate`"),
                );
            }
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

/// The diagnostic of a template problem; `sample` names the trial it happens to when that
/// depends on the trial's data.
fn template_error(
    path: &Path,
    error: &TemplateError,
    sample: Option<&PromptContext>,
) -> Diagnostic {
    let (message, label, hint) = match &error.problem {
        Problem::Syntax => (
            format!("template does not parse: {}", error.message),
            "here",
            None,
        ),
        Problem::Undefined {
            variable,
            candidates,
        } => (
            format!("template uses `{variable}`, which prompts do not have"),
            "undefined",
            suggestion_hint(variable, candidates.iter().map(String::as_str)),
        ),
        Problem::Render => (
            format!("template does not render: {}", error.message),
            "here",
            None,
        ),
    };
    let hint = hint.or_else(|| {
        let sample = sample?;
        Some(format!(
            "found by rendering it as for task `{}` in stage `{}` with model `{}`",
            sample.task.name, sample.stage, sample.model.name
        ))
    });
    let d = Diagnostic::error(Code::Template, PathBuf::from(path), message)
        .label(label)
        .maybe_hint(hint);
    match &error.span {
        Some(span) => d.at(span.clone()),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::manifest::load_pipeline;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The template diagnostics of `pipeline` with prompt `template`, in a scratch project
    /// whose task `a` has `difficulty` metadata and task `b` has none.
    fn template_errors(pipeline: &str, template: &str) -> Vec<String> {
        let root = tempfile::tempdir().unwrap();
        for (name, metadata) in [("a", "[metadata]\ndifficulty = \"easy\"\n"), ("b", "")] {
            let dir = root.path().join("tasks").join(name);
            write(
                &dir.join("task.toml"),
                &format!("{metadata}[environment]\nworkdir = \"/app\"\n"),
            );
            write(&dir.join("instruction.md"), "Solve it.\n");
            write(
                &dir.join("tests/test.sh"),
                "echo 1 > /logs/verifier/reward.txt\n",
            );
            write(
                &dir.join("environment/Dockerfile"),
                "FROM debian:bookworm-slim\n",
            );
        }
        write(&root.path().join("prompt.j2"), template);
        let path = root.path().join("pipeline.toml");
        write(&path, pipeline);
        match load_pipeline(&path) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .report
                .diagnostics
                .iter()
                .filter(|d| d.code == crate::diagnostic::Code::Template)
                .map(|d| format!("{} / {}", d.message, d.hint.clone().unwrap_or_default()))
                .collect(),
        }
    }

    const PIPELINE: &str = r#"
[pipeline]
name = "p"
[[tasks]]
path = "tasks/*"
[models.m]
id = "anthropic/claude-sonnet-4-20250514"
[agents.t]
kind = "terminal"
model = "m"
user_prompt = "prompt.j2"
"#;

    #[test]
    fn metadata_that_one_task_lacks_fails_validation_naming_the_task() {
        let pipeline = format!("{PIPELINE}[[stages]]\nname = \"s\"\nagents = [\"t\"]\n");
        assert_eq!(
            template_errors(&pipeline, "{{ task.metadata.difficulty }}"),
            [
                "template uses `task.metadata.difficulty`, which prompts do not have / found by \
              rendering it as for task `b` in stage `s` with model `m`"
            ]
        );
        let only_a = format!("{pipeline}tasks = [\"a\"]\n");
        assert_eq!(
            template_errors(&only_a, "{{ task.metadata.difficulty }}"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn params_are_those_of_the_stages_matrix() {
        let pipeline = format!(
            "{PIPELINE}[[stages]]\nname = \"s\"\nagents = [\"t\"]\n[stages.matrix]\n\
             temperature = [0.0, 1.0]\n"
        );
        assert_eq!(
            template_errors(&pipeline, "{{ params.temperature }}"),
            Vec::<String>::new()
        );
        assert_eq!(
            template_errors(&pipeline, "{{ params.temprature }}"),
            [
                "template uses `params.temprature`, which prompts do not have / did you mean \
              `params.temperature`?"
            ]
        );
    }

    #[test]
    fn templates_of_an_agent_no_stage_runs_have_their_names_checked() {
        let pipeline = format!("{PIPELINE}[[stages]]\nname = \"s\"\nagents = [\"nop\"]\n");
        assert_eq!(
            template_errors(&pipeline, "{{ model.nmae }}"),
            [
                "template uses `model.nmae`, which prompts do not have / did you mean \
              `model.name`?"
            ]
        );
    }
}
