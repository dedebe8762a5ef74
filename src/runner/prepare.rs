//! Everything a trial needs, resolved before any trial starts, so that a problem (an unset
//! host variable, an unsupported setting) stops the run up front rather than halfway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Problem, ProblemKind, Problems};
use crate::agent::AgentKind;
use crate::agent::installed::{Recipe, RunContext};
use crate::agent::mcp::{McpServer, Transport};
use crate::env::{AllowedHost, EnvSpec};
use crate::env::{Builds, Capabilities, Provider};
use crate::manifest::env_expand;
use crate::manifest::pipeline::VerifyStep;
use crate::manifest::task::{
    ArtifactSpec, CollectHook, Healthcheck, NetworkMode, RewardStrategy, TaskManifest,
};
use crate::manifest::{Pipeline, TaskDir};
use crate::plan::{ImageSource, Plan};
use crate::store::RunStore;
use crate::verify::Isolation;

/// What every trial of one task shares.
#[derive(Debug)]
pub struct TaskRuntime {
    pub name: String,
    pub dir: PathBuf,
    pub instruction: String,
    pub image: String,
    /// The plan's build that makes the image, if it is built.
    pub build: Option<usize>,
    /// How to start the task's environment (its labels are set per trial).
    pub container: EnvSpec,
    pub workdir: Option<String>,
    pub agent_timeout: Option<Duration>,
    pub verifier_timeout: Duration,
    pub build_timeout: Duration,
    pub verifier_env: BTreeMap<String, String>,
    pub solution_env: BTreeMap<String, String>,
    /// The virtual desktop the task asks for.
    pub desktop: Option<crate::env::desktop::DesktopConfig>,
    /// Where its tests run.
    pub isolation: Isolation,
    /// Who the agent and the tests run as (`[agent] user`, `[verifier] user`).
    pub agent_user: Option<String>,
    pub verifier_user: Option<String>,
    /// Checked before the agent starts.
    pub healthcheck: Option<Healthcheck>,
    /// Copied out after the agent (and its collect hooks), before the tests.
    pub artifacts: Vec<ArtifactSpec>,
    pub collect: Vec<CollectHook>,
    /// A multi-step task's steps, in order; empty for a task of one step.
    pub steps: Vec<StepRuntime>,
    /// Its separate verifier environments (Harbor's `environment_mode = "separate"`):
    /// the task's, or its steps'.
    pub verifiers: Vec<VerifierRuntime>,
    pub reward_strategy: RewardStrategy,
    /// A Compose task's services besides `main`.
    pub compose: Option<super::services::ComposeRuntime>,
    /// The network of the agent's and of the (shared) verifier's phase; the environment's
    /// (`container.no_network`) during setup. They differ only with
    /// `container.switches_network`.
    pub agent_network: NetworkMode,
    pub verifier_network: NetworkMode,
    /// What each phase under `allowlist` may reach, by the phase's name in results
    /// (`agent`, `<step>/verifier`, …); empty when no phase is under one.
    pub allowlists: BTreeMap<String, Vec<AllowedHost>>,
    /// The MCP servers the task gives its agent (`[[environment.mcp_servers]]`).
    pub mcp_servers: Vec<McpServer>,
}

/// A separate verifier environment, ready to start.
#[derive(Debug)]
pub struct VerifierRuntime {
    /// The step it verifies; `None` for the task's.
    pub step: Option<String>,
    pub container: EnvSpec,
}

impl TaskRuntime {
    /// Whether an agent of the task that calls the model gateway reaches it on the run's
    /// isolated network: some agent phase of the task has no network.
    pub fn gateway_isolated(&self) -> bool {
        self.container.no_network
            || self.agent_network == NetworkMode::NoNetwork
            || self
                .steps
                .iter()
                .any(|s| s.agent_network == NetworkMode::NoNetwork)
    }

    /// What a trial of the task takes from the run's budget: the agent's container and
    /// the sidecars' declared CPUs and memory.
    pub fn demand(&self) -> super::resources::Demand {
        let mut demand =
            super::resources::Demand::of_task(self.container.cpus, self.container.memory_mb);
        if let Some(compose) = &self.compose {
            demand.cpus += compose.sidecar_cpus;
            demand.memory_mb += compose.sidecar_memory_mb;
        }
        demand
    }

    /// The separate verifier of `step` (`None`: the task's), if it has one.
    pub fn verifier(&self, step: Option<&str>) -> Option<&VerifierRuntime> {
        self.verifiers.iter().find(|v| v.step.as_deref() == step)
    }
}

/// One step of a multi-step task, its settings resolved against the task's.
#[derive(Debug)]
pub struct StepRuntime {
    pub name: String,
    /// `steps/<name>/` of the task.
    pub dir: PathBuf,
    pub instruction: String,
    pub agent_timeout: Option<Duration>,
    pub verifier_timeout: Duration,
    /// `[verifier] env` with the step's over it.
    pub verifier_env: BTreeMap<String, String>,
    pub agent_user: Option<String>,
    pub verifier_user: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    /// The task's artifacts, then the step's.
    pub artifacts: Vec<ArtifactSpec>,
    /// The task's collect hooks, then the step's.
    pub collect: Vec<CollectHook>,
    /// The rewards, key by key, that the next steps need.
    pub min_reward: Option<BTreeMap<String, f64>>,
    /// The network of the step's agent and (shared) verifier phases.
    pub agent_network: NetworkMode,
    pub verifier_network: NetworkMode,
}

/// One trial, ready to run.
#[derive(Debug, Clone)]
pub struct TrialSetup {
    pub index: usize,
    /// `stage/task/agent[@model]#attempt`, for people.
    pub label: String,
    pub trial_id: String,
    pub full_id: String,
    pub stage: String,
    pub agent: String,
    pub kind: AgentKind,
    pub command: Option<String>,
    pub agent_env: BTreeMap<String, String>,
    pub model: Option<String>,
    pub params: BTreeMap<String, Value>,
    pub attempt: u32,
    /// Where the trial runs.
    pub provider: Provider,
    pub task: Arc<TaskRuntime>,
    /// For model-driven agents (`terminal`, `computer-use`): the model and the rendered
    /// prompts.
    pub model_plan: Option<Arc<crate::agent::ModelPlan>>,
    /// For `command` agents with a model, and installed agents: where the model gateway
    /// sends its calls.
    pub gateway_route: Option<Arc<crate::gateway::Route>>,
    /// For installed agents: the volume the agent is installed in, mounted read-only.
    pub mount: Option<crate::env::Mount>,
    /// The trial's results directory.
    pub dir: PathBuf,
    pub steps: Arc<Vec<VerifyStep>>,
    /// What of the task the agent does without (MCP servers it cannot take), for
    /// `result.json`'s `warnings`.
    pub warnings: Vec<String>,
}

/// Resolves every trial of `plan`; all problems are returned together.
pub fn prepare(
    pipeline: &Pipeline,
    plan: &Plan,
    host: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<TrialSetup>, Problems> {
    let mut problems = Vec::new();
    for provider in Provider::all().filter(|p| plan.uses(*p)) {
        problems.extend(
            (provider.entry().missing_credentials)(host)
                .map(|message| Problem::new(ProblemKind::MissingCredentials, message)),
        );
    }
    let tasks = task_runtimes(pipeline, plan, host, &mut problems);
    let uses_models = plan.trials.iter().any(|t| t.model.is_some());
    let models = if uses_models {
        crate::model::runtime::build(&pipeline.manifest.models, &pipeline.base_dir, host)
            .unwrap_or_else(|found| {
                problems.extend(found.into_iter().map(|p| {
                    let kind = match p.missing_key {
                        Some(_) => ProblemKind::MissingModelKey,
                        None => ProblemKind::Model,
                    };
                    Problem::new(kind, p.message)
                }));
                Default::default()
            })
    } else {
        Default::default()
    };
    let templates = read_templates(pipeline, &mut problems);
    let agent_envs = agent_envs(plan, host, &mut problems);
    if !problems.is_empty() {
        return Err(Problems::of(problems));
    }
    let tasks: Vec<Arc<TaskRuntime>> = tasks.into_iter().flatten().collect();
    let mut model_plans = Vec::with_capacity(plan.trials.len());
    let mut routes = Vec::with_capacity(plan.trials.len());
    let mut commands = Vec::with_capacity(plan.trials.len());
    let mut warnings = Vec::with_capacity(plan.trials.len());
    for trial in &plan.trials {
        let agent = &plan.agents[trial.agent as usize];
        let route = gateway_route(pipeline, plan, trial, &models);
        let provider = plan.provider(trial);
        let can = provider.capabilities();
        if agent.kind == AgentKind::Installed && !(can.installed_agents && can.reaches_gateway) {
            problems.push(
                Problem::new(
                    ProblemKind::UnsupportedByProvider,
                    format!(
                        "agent `{}` is an installed agent, which {} cannot run (its install is \
                         a volume on this machine, and it calls its model through helios's \
                         gateway)",
                        agent.name,
                        provider.title(),
                    ),
                )
                .agent(&agent.name)
                .fix(format!(
                    "run its trials with {}",
                    Provider::able(|c| c.installed_agents && c.reaches_gateway)
                )),
            );
        } else if route.is_some() && !can.reaches_gateway {
            problems.push(
                Problem::new(
                    ProblemKind::UnsupportedByProvider,
                    format!(
                        "agent `{}` runs a command that calls its model through helios's model \
                         gateway, which {} {}s cannot reach",
                        agent.name,
                        provider.title(),
                        provider.instance_noun(),
                    ),
                )
                .agent(&agent.name)
                .fix(format!(
                    "run its trials with {}, or remove its `model` and pass a key in its `env`",
                    Provider::able(|c| c.reaches_gateway)
                )),
            );
        }
        routes.push(route);
        let task = &tasks[trial.task as usize];
        if let Some(recipe) = &agent.recipe {
            match installed_command(plan, trial, recipe, task, &models) {
                Ok((command, mcp_warnings)) => {
                    commands.push(Some(command));
                    warnings.push(mcp_warnings);
                }
                Err(problem) => {
                    problems.push(problem.task(&task.name).agent(&agent.name));
                    commands.push(None);
                    warnings.push(Vec::new());
                }
            }
        } else {
            commands.push(agent.command.clone());
            warnings.push(without_mcp(&agent.name, agent.kind.as_str(), task));
        }
        if !matches!(agent.kind, AgentKind::Terminal | AgentKind::ComputerUse) {
            model_plans.push(None);
            continue;
        }
        match model_plan(pipeline, plan, trial, task, &models, &templates) {
            Ok(model_plan) => model_plans.push(Some(Arc::new(model_plan))),
            Err(problem) => {
                problems.push(problem.task(&task.name).agent(&agent.name));
                model_plans.push(None);
            }
        }
    }
    if !problems.is_empty() {
        return Err(Problems::of(problems));
    }
    let steps = Arc::new(pipeline.manifest.verify.clone());
    let store = RunStore::new(&plan.run_dir);
    Ok(plan
        .trials
        .iter()
        .zip(model_plans)
        .zip(routes)
        .zip(commands)
        .zip(warnings)
        .enumerate()
        .map(
            |(index, ((((trial, model_plan), gateway_route), command), warnings))| {
                let agent = &plan.agents[trial.agent as usize];
                let task = tasks[trial.task as usize].clone();
                let stage = plan.stages[trial.stage as usize].name.clone();
                let model = plan.model_name(trial).map(str::to_string);
                let label = format!(
                    "{stage}/{}/{}{}#{}",
                    task.name,
                    agent.name,
                    model
                        .as_deref()
                        .map(|m| format!("@{m}"))
                        .unwrap_or_default(),
                    trial.attempt
                );
                TrialSetup {
                    index,
                    label,
                    trial_id: trial.id.short(),
                    full_id: trial.id.0.hex(),
                    stage,
                    agent: agent.name.clone(),
                    kind: agent.kind,
                    command,
                    agent_env: {
                        // The catalog's variables, under the pipeline's own.
                        let mut env = agent
                            .recipe
                            .as_ref()
                            .map(|r| r.env.clone())
                            .unwrap_or_default();
                        env.extend(agent_envs[trial.agent as usize].clone());
                        env
                    },
                    model,
                    params: plan.params[trial.params as usize].clone(),
                    attempt: trial.attempt,
                    provider: plan.provider(trial),
                    task,
                    model_plan,
                    gateway_route,
                    mount: agent.recipe.as_ref().map(installed_mount),
                    dir: store.trial_dir(&plan.trial_dir(trial)),
                    steps: steps.clone(),
                    warnings,
                }
            },
        )
        .collect())
}

/// What every trial of each task shares; `None` for a task with problems (recorded).
fn task_runtimes(
    pipeline: &Pipeline,
    plan: &Plan,
    host: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Vec<Option<Arc<TaskRuntime>>> {
    let mut runners = vec![Runners::default(); plan.tasks.len()];
    for trial in &plan.trials {
        runners[trial.task as usize].0.insert(plan.provider(trial));
    }
    plan.tasks
        .iter()
        .zip(&pipeline.tasks)
        .enumerate()
        .map(|(index, (planned, task))| {
            let image = match &planned.image {
                ImageSource::Build(b) => (plan.builds[*b].tag.clone(), Some(*b)),
                // A pull not yet resolved (see `Run::open`) is checked as the prebuilt
                // image it will most likely be.
                ImageSource::Prebuilt(image) | ImageSource::Pull { image, .. } => {
                    (image.clone(), None)
                }
            };
            let runners = &runners[index];
            let verifiers = verifier_runtimes(plan, planned, task, runners, host, problems);
            let compose = compose_runtime(plan, planned, task, runners, host, problems);
            match task_runtime(pipeline, task, image, runners, host) {
                Ok(mut runtime) => {
                    runtime.verifiers = verifiers;
                    runtime.compose = compose;
                    Some(Arc::new(runtime))
                }
                Err(mut found) => {
                    problems.append(&mut found);
                    None
                }
            }
        })
        .collect()
}

/// A Compose task's services, checked; a provider without Compose cannot run them.
fn compose_runtime(
    plan: &Plan,
    planned: &crate::plan::PlannedTask,
    task: &TaskDir,
    runners: &Runners,
    host: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<super::services::ComposeRuntime> {
    let file = match crate::manifest::compose::ComposeFile::read(&task.dir) {
        Ok(file) => file?,
        Err(problem) => {
            problems.push(
                Problem::new(
                    ProblemKind::UnsupportedTask,
                    format!("task `{}`: {problem}", task.name),
                )
                .task(&task.name),
            );
            return None;
        }
    };
    if let Some(provider) = runners.lacking(|c| c.compose) {
        problems.push(
            Problem::new(
                ProblemKind::UnsupportedByProvider,
                format!(
                    "task `{}` has a Compose environment (`{}`), which {} cannot run: its {}s \
                     are single containers",
                    task.name,
                    file.path.display(),
                    provider.title(),
                    provider.instance_noun(),
                ),
            )
            .task(&task.name)
            .fix(format!("run it with {}", Provider::able(|c| c.compose))),
        );
        return None;
    }
    let built = planned
        .sidecars
        .iter()
        .map(|s| (s.service.clone(), s.image.name(&plan.builds).to_string()))
        .collect();
    super::services::ComposeRuntime::new(file, built, host)
        .map_err(|found| {
            problems.extend(found.into_iter().map(|p| {
                Problem::new(
                    ProblemKind::UnsupportedTask,
                    format!("task `{}` cannot run: {p}", task.name),
                )
                .task(&task.name)
            }))
        })
        .ok()
}

/// The agents' prompt templates, by the path the pipeline gives.
fn read_templates(pipeline: &Pipeline, problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
    let mut templates = BTreeMap::new();
    for (name, spec) in &pipeline.manifest.agents {
        let (system_prompt, user_prompt) = spec.prompts();
        for path in [system_prompt, user_prompt].into_iter().flatten() {
            match std::fs::read_to_string(pipeline.base_dir.join(path)) {
                Ok(text) => {
                    templates.insert(path.clone(), text);
                }
                Err(e) => problems.push(
                    Problem::new(
                        ProblemKind::UnreadableFile,
                        format!("cannot read template `{path}`: {e}"),
                    )
                    .agent(name)
                    .fix(format!(
                        "template paths are relative to `{}`",
                        pipeline.base_dir.display()
                    )),
                ),
            }
        }
    }
    templates
}

/// Each agent's environment with the host's variables expanded, by agent index.
fn agent_envs(
    plan: &Plan,
    host: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Vec<BTreeMap<String, String>> {
    plan.agents
        .iter()
        .map(
            |agent| match expand_all(&agent.env, host, &format!("agent `{}`", agent.name)) {
                Ok(env) => env,
                Err(found) => {
                    problems.extend(found.into_iter().map(|p| p.agent(&agent.name)));
                    BTreeMap::new()
                }
            },
        )
        .collect()
}

/// Where a `command` agent's model calls go through the gateway: the trial's model, held to
/// the limits the pipeline gives the agent (those it leaves out are not enforced).
fn gateway_route(
    pipeline: &Pipeline,
    plan: &Plan,
    trial: &crate::plan::Trial,
    models: &BTreeMap<String, crate::model::runtime::ModelRuntime>,
) -> Option<Arc<crate::gateway::Route>> {
    let agent = &plan.agents[trial.agent as usize];
    if !matches!(agent.kind, AgentKind::Command | AgentKind::Installed) {
        return None;
    }
    let model = models.get(plan.model_name(trial)?)?;
    let limits = pipeline
        .manifest
        .agents
        .get(&agent.name)
        .map(|spec| spec.limits().clone())
        .unwrap_or_default();
    Some(Arc::new(crate::gateway::Route {
        model: model.clone(),
        limits,
    }))
}

/// The read-only mount of an installed agent's volume.
fn installed_mount(recipe: &Recipe) -> crate::env::Mount {
    crate::env::Mount {
        volume: recipe.volume().expect("checked when the plan was made"),
        target: recipe.prefix.clone(),
        read_only: true,
    }
}

/// The command an installed agent's trial runs, its `run` template rendered now so that a
/// template error stops the run before it starts.
fn installed_command(
    plan: &Plan,
    trial: &crate::plan::Trial,
    recipe: &Recipe,
    task: &TaskRuntime,
    models: &BTreeMap<String, crate::model::runtime::ModelRuntime>,
) -> Result<(String, Vec<String>), Problem> {
    let agent = &plan.agents[trial.agent as usize];
    let model = plan
        .model_name(trial)
        .and_then(|name| models.get(name))
        .ok_or_else(|| no_model(&agent.name))?;
    let mut context = RunContext {
        instruction: task.instruction.clone(),
        instruction_file: crate::agent::INSTRUCTION_PATH.into(),
        model: model
            .id
            .split_once('/')
            .map_or(model.id.as_str(), |(_, name)| name)
            .to_string(),
        model_id: model.id.clone(),
        workdir: task.workdir.clone().unwrap_or_else(|| "/".into()),
        log_dir: "/logs/agent".into(),
        prefix: recipe.prefix.clone(),
        version: recipe.version.clone(),
        mcp_servers: task.mcp_servers.clone(),
        mcp_config: String::new(),
    };
    let mut warnings = Vec::new();
    if !task.mcp_servers.is_empty() {
        match recipe.mcp_config(&task.mcp_servers) {
            Some(rendered) => {
                context.mcp_config = rendered.text;
                warnings = rendered.warnings;
            }
            None => warnings = without_mcp(&agent.name, &recipe.agent, task),
        }
    }
    let command = recipe.command(&context).map_err(|e| {
        Problem::new(
            ProblemKind::TemplateDoesNotRender,
            format!("agent `{}`: {e}", agent.name),
        )
    })?;
    Ok((command, warnings))
}

/// The problem of a trial whose agent needs a model it was not given (`validate` refuses
/// such a pipeline; a library caller may still make one).
fn no_model(agent: &str) -> Problem {
    Problem::new(ProblemKind::Model, format!("agent `{agent}` has no model")).fix(format!(
        "give agent `{agent}` a `model`, or its stage `models = [...]`"
    ))
}

/// The warning of an agent (named `name`, of kind or catalog agent `what`) that cannot take
/// MCP servers, on a task that declares some: it runs without them, and its result says so.
fn without_mcp(name: &str, what: &str, task: &TaskRuntime) -> Vec<String> {
    if task.mcp_servers.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = task
        .mcp_servers
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect();
    vec![format!(
        "agent `{name}` ({what}) does not take MCP servers: it ran without the task's {}",
        names.join(", ")
    )]
}

/// The agent layer's description of one of the task's `[[environment.mcp_servers]]`.
fn mcp_server(server: &crate::manifest::task::McpServer) -> McpServer {
    use crate::manifest::task::McpTransport;
    McpServer {
        name: server.name.clone(),
        transport: match server.transport {
            McpTransport::Sse => Transport::Sse,
            McpTransport::StreamableHttp | McpTransport::Http => Transport::StreamableHttp,
            McpTransport::Stdio => Transport::Stdio,
        },
        url: server.url.clone(),
        command: server.command.clone(),
        args: server.args.clone(),
    }
}

/// The model and the prompts of a model-driven trial, rendered now so that a template error
/// stops the run before it starts.
fn model_plan(
    pipeline: &Pipeline,
    plan: &Plan,
    trial: &crate::plan::Trial,
    task: &TaskRuntime,
    models: &BTreeMap<String, crate::model::runtime::ModelRuntime>,
    templates: &BTreeMap<String, String>,
) -> Result<crate::agent::ModelPlan, Problem> {
    let agent = &plan.agents[trial.agent as usize];
    let spec = &pipeline.manifest.agents[&agent.name];
    let model_name = plan
        .model_name(trial)
        .ok_or_else(|| no_model(&agent.name))?;
    let model = models.get(model_name).ok_or_else(|| {
        Problem::new(
            ProblemKind::Model,
            format!("model `{model_name}` is not available"),
        )
    })?;
    let metadata = pipeline
        .tasks
        .iter()
        .find(|t| t.name == task.name)
        .map(|t| t.manifest.metadata.clone())
        .unwrap_or_default();
    let limits = &agent.limits;
    let context = crate::template::PromptContext {
        instruction: task.instruction.clone(),
        task: crate::template::TaskContext {
            name: task.name.clone(),
            metadata,
        },
        vars: pipeline.manifest.vars.clone(),
        params: plan.params[trial.params as usize].clone(),
        limits: crate::template::LimitsContext {
            max_turns: limits.max_turns,
            max_time: limits.max_time,
            timeout_per_turn: limits.timeout_per_turn,
            stop_on_tool_error: limits.stop_on_tool_error,
            max_tokens: limits.max_tokens,
            max_cost_usd: limits.max_cost_usd,
        },
        agent: crate::template::AgentContext {
            name: agent.name.clone(),
            kind: agent.kind.as_str().to_string(),
        },
        model: crate::template::ModelContext {
            name: model.name.clone(),
            id: model.id.clone(),
        },
        stage: plan.stages[trial.stage as usize].name.clone(),
    };
    let computer = if agent.kind == AgentKind::ComputerUse {
        Some(computer_plan(spec, &agent.name, task, model)?)
    } else {
        None
    };
    let (system_prompt, user_prompt) = spec.prompts();
    let render = |path: Option<&String>, default: &str, what: &str| {
        let (name, source) = match path {
            Some(path) => (
                path.clone(),
                templates.get(path).cloned().unwrap_or_default(),
            ),
            None => (format!("built-in {what} prompt"), default.to_string()),
        };
        crate::template::render(&name, &source, &context).map_err(|e| {
            Problem::new(
                ProblemKind::TemplateDoesNotRender,
                format!("agent `{}`: {e}", agent.name),
            )
        })
    };
    Ok(crate::agent::ModelPlan {
        system_prompt: render(
            system_prompt,
            if computer.is_some() {
                crate::agent::prompt::DEFAULT_COMPUTER_SYSTEM_PROMPT
            } else {
                crate::agent::prompt::DEFAULT_SYSTEM_PROMPT
            },
            "system",
        )?,
        user_prompt: render(
            user_prompt,
            crate::agent::prompt::DEFAULT_USER_PROMPT,
            "user",
        )?,
        model: model.clone(),
        limits: agent.limits.clone(),
        computer,
    })
}

/// The desktop and the computer tool of a `computer-use` trial.
fn computer_plan(
    spec: &crate::manifest::pipeline::AgentSpec,
    agent: &str,
    task: &TaskRuntime,
    model: &crate::model::runtime::ModelRuntime,
) -> Result<crate::agent::ComputerPlan, Problem> {
    let desktop = task.desktop.as_ref().ok_or_else(|| {
        Problem::new(
            ProblemKind::AgentUnfit,
            format!(
                "agent `{agent}` is a computer-use agent, but task `{}` has no desktop",
                task.name
            ),
        )
        .fix(
            "add `[environment.desktop]` to its task.toml (see docs/computer-use.md), or run \
             the task with another agent",
        )
    })?;
    let protocol = model.computer_protocol().ok_or_else(|| {
        Problem::new(
            ProblemKind::AgentUnfit,
            format!(
                "agent `{agent}`: model `{}` has no computer tool",
                model.name
            ),
        )
        .fix(
            "computer use needs an anthropic/, openai/ or gemini/ model, or a scripted model \
             whose script gives `format`",
        )
    })?;
    Ok(crate::agent::ComputerPlan {
        screen: (desktop.width, desktop.height),
        protocol,
        safety: spec.safety_checks().unwrap_or_default(),
    })
}

/// What every trial of `task` shares, checked against what the providers that run its
/// trials can do. A provider that builds the image itself from the Dockerfile's text
/// (Daytona) gets the text, read and checked here.
fn task_runtime(
    pipeline: &Pipeline,
    task: &TaskDir,
    (image, build): (String, Option<usize>),
    runners: &Runners,
    host: &dyn Fn(&str) -> Option<String>,
) -> Result<TaskRuntime, Vec<Problem>> {
    let m = &task.manifest;
    let defaults = &pipeline.manifest.environment;
    let mut problems = Vec::new();
    let mode = m
        .environment
        .network_mode
        .or(m.environment.allow_internet.map(|allowed| {
            if allowed {
                NetworkMode::Public
            } else {
                NetworkMode::NoNetwork
            }
        }));
    let mode = mode
        .or(defaults.network_mode)
        .unwrap_or(NetworkMode::Public);
    let what = |section: &str| format!("task `{}` [{section}] env", task.name);
    let mut env =
        expand_all(&defaults.env, host, "pipeline [environment] env").unwrap_or_else(|mut p| {
            problems.append(&mut p);
            BTreeMap::new()
        });
    let mut expand = |vars: &BTreeMap<String, String>, section: &str| {
        expand_all(vars, host, &what(section)).unwrap_or_else(|p| {
            problems.extend(p.into_iter().map(|p| p.task(&task.name)));
            BTreeMap::new()
        })
    };
    env.extend(expand(&m.environment.env, "environment"));
    let verifier_env = expand(&m.verifier.env, "verifier");
    let solution_env = expand(&m.solution.env, "solution");
    // A multi-step task's instructions are its steps'.
    let instruction = if m.steps.is_empty() {
        std::fs::read_to_string(task.dir.join("instruction.md"))
            .map_err(|e| {
                problems.push(
                    Problem::new(
                        ProblemKind::UnreadableFile,
                        format!(
                            "cannot read `{}`: {e}",
                            task.dir.join("instruction.md").display()
                        ),
                    )
                    .task(&task.name),
                )
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    let dockerfile = match build {
        Some(_) => runners.building_from_text().and_then(|p| {
            remote_dockerfile(task, p)
                .map_err(|e| problems.push(e))
                .ok()
        }),
        _ => None,
    };
    let isolation = m
        .verifier
        .isolation
        .or(pipeline.manifest.verifier.isolation)
        .unwrap_or_default();
    if isolation == Isolation::Separate
        && let Some(provider) = runners.lacking(|c| c.freezes)
    {
        problems.push(
            Problem::new(
                ProblemKind::UnsupportedByProvider,
                format!(
                    "task `{}` asks for `isolation = \"separate\"`, which needs a provider that \
                     can freeze a sandbox into an image ({}); {} cannot",
                    task.name,
                    Provider::able(|c| c.freezes),
                    provider.title()
                ),
            )
            .task(&task.name)
            .fix(format!("use \"shared\" on {}", provider.title())),
        );
    }
    for unsupported in crate::manifest::task_support::unsupported(&task.dir, m) {
        if unsupported.refused {
            problems.push(
                Problem::new(
                    ProblemKind::UnsupportedTask,
                    format!("task `{}` cannot run: {}", task.name, unsupported.message),
                )
                .task(&task.name),
            );
        }
    }
    let agent_user = user(&m.agent.user);
    let verifier_user = user(&m.verifier.user);
    let hooks_users = m
        .verifier
        .collect
        .iter()
        .chain(m.steps.iter().flat_map(|s| &s.verifier.collect))
        .any(|h| h.user.is_some());
    let uses_users = agent_user.is_some()
        || verifier_user.is_some()
        || hooks_users
        || m.steps
            .iter()
            .any(|s| s.agent.user.is_some() || s.verifier.user.is_some());
    // Each phase's network: its own `network_mode`, else the environment's.
    let agent_network = m.agent.network_mode.unwrap_or(mode);
    let verifier_network = m.verifier.network_mode.unwrap_or(mode);
    let phases = std::iter::once(agent_network)
        .chain((m.verifier.harbor_mode() != Some(Isolation::Separate)).then_some(verifier_network))
        .chain(m.steps.iter().flat_map(|s| {
            [
                s.agent.network_mode.unwrap_or(agent_network),
                s.verifier.network_mode.unwrap_or(verifier_network),
            ]
        }))
        .collect::<Vec<_>>();
    let allowlists = allowed_hosts(m, mode);
    if !allowlists.is_empty()
        && let Some(provider) = runners.lacking(|c| c.allowlist)
    {
        problems.push(
            Problem::new(
                ProblemKind::UnsupportedByProvider,
                format!(
                    "task `{}` asks for `network_mode = \"allowlist\"`, which helios cannot \
                     enforce on {}",
                    task.name,
                    provider.title(),
                ),
            )
            .task(&task.name)
            .fix(format!("run it with {}", Provider::able(|c| c.allowlist))),
        );
    }
    // An allowlist is put in force phase by phase (agent installs and setup are not under
    // the agent's), like a change of network.
    let switches_network = phases.iter().any(|p| *p != mode) || !allowlists.is_empty();
    if switches_network && let Some(provider) = runners.lacking(|c| c.switches_network) {
        problems.push(
            Problem::new(
                ProblemKind::UnsupportedByProvider,
                format!(
                    "task `{}` changes its network between phases (`[agent]` or `[verifier]` \
                     `network_mode` unlike `[environment]`'s), which helios cannot do on {}",
                    task.name,
                    provider.title(),
                ),
            )
            .task(&task.name)
            .fix(format!(
                "run it with {}",
                Provider::able(|c| c.switches_network)
            )),
        );
    }
    if uses_users && let Some(provider) = runners.lacking(|c| c.users) {
        problems.push(
            Problem::new(
                ProblemKind::UnsupportedByProvider,
                format!(
                    "task `{}` runs its agent or tests as another user (`user`), which helios \
                     cannot do on {}",
                    task.name,
                    provider.title(),
                ),
            )
            .task(&task.name)
            .fix(format!("run it with {}", Provider::able(|c| c.users))),
        );
    }
    let steps = step_runtimes(
        task,
        m,
        &verifier_env,
        (agent_network, verifier_network),
        host,
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(TaskRuntime {
        name: task.name.clone(),
        dir: task.dir.clone(),
        instruction,
        image: image.clone(),
        build,
        container: EnvSpec {
            image,
            dockerfile,
            workdir: m.environment.workdir.clone(),
            env,
            labels: BTreeMap::new(),
            cpus: m.environment.cpus.or(defaults.cpus),
            memory_mb: m.environment.memory_megabytes().or(defaults.memory_mb),
            storage_mb: m.environment.storage_megabytes(),
            gpus: m.environment.gpus,
            no_network: mode == NetworkMode::NoNetwork,
            switches_network,
            isolated_network: None,
            allowlist: None,
            ready_timeout: Duration::from_secs_f64(m.environment.build_timeout_sec),
            mounts: Vec::new(),
            services: None,
        },
        workdir: m.environment.workdir.clone(),
        agent_timeout: m.agent.timeout_sec.map(Duration::from_secs_f64),
        verifier_timeout: Duration::from_secs_f64(m.verifier.timeout_sec),
        build_timeout: Duration::from_secs_f64(m.environment.build_timeout_sec),
        verifier_env,
        solution_env,
        desktop: m.environment.desktop.clone(),
        isolation,
        agent_user,
        verifier_user,
        healthcheck: m.environment.healthcheck.clone(),
        artifacts: super::artifacts::declared(&m.artifacts, &[]),
        collect: m.verifier.collect.clone(),
        steps,
        verifiers: Vec::new(),
        reward_strategy: m.multi_step_reward_strategy.unwrap_or_default(),
        compose: None,
        agent_network,
        verifier_network,
        allowlists,
        mcp_servers: m.environment.mcp_servers.iter().map(mcp_server).collect(),
    })
}

/// The hosts each phase of a task may reach under `allowlist`, by the phase's name in
/// results (`environment`, `agent`, `verifier`, `<step>/agent`, `<step>/verifier`): the
/// phase's own `allowed_hosts`, else its section's, else the environment's. Entries are
/// checked by `validate`; one that does not parse here is left out (never widened).
fn allowed_hosts(m: &TaskManifest, baseline: NetworkMode) -> BTreeMap<String, Vec<AllowedHost>> {
    let parse = |hosts: &[String]| {
        hosts
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect::<Vec<AllowedHost>>()
    };
    let environment = &m.environment.allowed_hosts;
    let agent = m.agent.allowed_hosts.as_ref().unwrap_or(environment);
    let verifier = m.verifier.allowed_hosts.as_ref().unwrap_or(environment);
    let agent_mode = m.agent.network_mode.unwrap_or(baseline);
    let verifier_mode = m.verifier.network_mode.unwrap_or(baseline);
    let mut out = BTreeMap::new();
    let mut add = |phase: String, mode: NetworkMode, hosts: &Vec<String>| {
        if mode == NetworkMode::Allowlist {
            out.insert(phase, parse(hosts));
        }
    };
    add("environment".into(), baseline, environment);
    add("agent".into(), agent_mode, agent);
    add("verifier".into(), verifier_mode, verifier);
    for step in &m.steps {
        add(
            format!("{}/agent", step.name),
            step.agent.network_mode.unwrap_or(agent_mode),
            step.agent.allowed_hosts.as_ref().unwrap_or(agent),
        );
        add(
            format!("{}/verifier", step.name),
            step.verifier.network_mode.unwrap_or(verifier_mode),
            step.verifier.allowed_hosts.as_ref().unwrap_or(verifier),
        );
    }
    out
}

/// The separate verifier environments of a task, each as its `[verifier.environment]`
/// says: its image (built from `tests/`, or `docker_image`), limits, network and
/// variables.
fn verifier_runtimes(
    plan: &Plan,
    planned: &crate::plan::PlannedTask,
    task: &TaskDir,
    runners: &Runners,
    host: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Vec<VerifierRuntime> {
    let resolved = task.manifest.separate_verifiers(&task.dir);
    if !resolved.is_empty()
        && let Some(provider) = runners.lacking(|c| c.separate_environments)
    {
        problems.push(
            Problem::new(
                ProblemKind::UnsupportedByProvider,
                format!(
                    "task `{}` verifies in an environment of its own (`environment_mode = \
                     \"separate\"`), which helios cannot do on {}",
                    task.name,
                    provider.title(),
                ),
            )
            .task(&task.name)
            .fix(format!(
                "run it with {}",
                Provider::able(|c| c.separate_environments)
            )),
        );
    }
    resolved
        .into_iter()
        .zip(&planned.verifiers)
        .map(|(verifier, planned)| {
            let image = planned.image.name(&plan.builds).to_string();
            let container = verifier_container(&task.name, &verifier, image, host).unwrap_or_else(
                |mut found| {
                    problems.append(&mut found);
                    EnvSpec::default()
                },
            );
            VerifierRuntime {
                step: verifier.step,
                container,
            }
        })
        .collect()
}

/// How to start a separate verifier's environment from its `[verifier.environment]`.
pub(crate) fn verifier_container(
    task: &str,
    verifier: &crate::manifest::task::SeparateVerifier,
    image: String,
    host: &dyn Fn(&str) -> Option<String>,
) -> Result<EnvSpec, Vec<Problem>> {
    let section = &verifier.environment;
    let what = match &verifier.step {
        Some(step) => format!("task `{task}` step `{step}` [verifier.environment] env"),
        None => format!("task `{task}` [verifier.environment] env"),
    };
    let mut problems = Vec::new();
    let env = expand_all(&section.env, host, &what).unwrap_or_else(|p| {
        problems.extend(p.into_iter().map(|p| p.task(task)));
        BTreeMap::new()
    });
    let mode = verifier
        .network_mode
        .unwrap_or_else(|| section.resolved_network_mode());
    let allowlist = (mode == NetworkMode::Allowlist).then(|| {
        let hosts = verifier
            .allowed_hosts
            .as_ref()
            .unwrap_or(&section.allowed_hosts);
        crate::env::Allowlist {
            // Checked by `validate`; an entry that does not parse is left out (never
            // widened).
            hosts: hosts.iter().filter_map(|h| h.parse().ok()).collect(),
            ..Default::default()
        }
    });
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(EnvSpec {
        image,
        dockerfile: None,
        workdir: section.workdir.clone(),
        env,
        labels: BTreeMap::new(),
        cpus: section.cpus,
        memory_mb: section.memory_megabytes(),
        storage_mb: section.storage_megabytes(),
        gpus: section.gpus,
        no_network: mode == NetworkMode::NoNetwork,
        switches_network: false,
        isolated_network: None,
        allowlist,
        ready_timeout: Duration::from_secs_f64(section.build_timeout_sec),
        mounts: Vec::new(),
        services: None,
    })
}

/// The steps of a multi-step task, each setting resolved: the step's, else the task's.
fn step_runtimes(
    task: &TaskDir,
    m: &TaskManifest,
    verifier_env: &BTreeMap<String, String>,
    (agent_network, verifier_network): (NetworkMode, NetworkMode),
    host: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Vec<StepRuntime> {
    m.steps
        .iter()
        .map(|step| {
            let dir = task.dir.join("steps").join(&step.name);
            let instruction = std::fs::read_to_string(dir.join("instruction.md"))
                .map_err(|e| {
                    problems.push(
                        Problem::new(
                            ProblemKind::UnreadableFile,
                            format!(
                                "cannot read `{}`: {e}",
                                dir.join("instruction.md").display()
                            ),
                        )
                        .task(&task.name),
                    )
                })
                .unwrap_or_default();
            let mut env = verifier_env.clone();
            let what = format!(
                "task `{}` step `{}` [steps.verifier] env",
                task.name, step.name
            );
            match expand_all(&step.verifier.env, host, &what) {
                Ok(vars) => env.extend(vars),
                Err(found) => problems.extend(found.into_iter().map(|p| p.task(&task.name))),
            }
            StepRuntime {
                name: step.name.clone(),
                instruction,
                agent_timeout: step
                    .agent
                    .timeout_sec
                    .or(m.agent.timeout_sec)
                    .map(Duration::from_secs_f64),
                verifier_timeout: Duration::from_secs_f64(step.verifier.timeout_sec),
                verifier_env: env,
                agent_user: user(&step.agent.user).or(user(&m.agent.user)),
                verifier_user: user(&step.verifier.user).or(user(&m.verifier.user)),
                healthcheck: step.healthcheck.clone(),
                artifacts: super::artifacts::declared(&m.artifacts, &step.artifacts),
                collect: m
                    .verifier
                    .collect
                    .iter()
                    .chain(&step.verifier.collect)
                    .cloned()
                    .collect(),
                min_reward: step.min_reward.as_ref().map(|r| r.thresholds()),
                agent_network: step.agent.network_mode.unwrap_or(agent_network),
                verifier_network: step.verifier.network_mode.unwrap_or(verifier_network),
                dir,
            }
        })
        .collect()
}

/// The text of the task's Dockerfile, for `provider`, which builds it without a build
/// context; a Dockerfile that needs one is refused with its line.
fn remote_dockerfile(task: &TaskDir, provider: Provider) -> Result<String, Problem> {
    let path = task.dir.join("environment").join("Dockerfile");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Problem::new(
            ProblemKind::UnreadableFile,
            format!("cannot read `{}`: {e}", path.display()),
        )
        .task(&task.name)
    })?;
    match (provider.entry().needs_context)(&text) {
        None => Ok(text),
        Some((line, instruction)) => Err(Problem::new(
            ProblemKind::UnsupportedByProvider,
            format!(
                "task `{}` cannot run on {title}: `{}:{line}` (`{instruction}`) needs files from \
                 the build context, and {title} builds from the Dockerfile's text alone",
                task.name,
                path.display(),
                title = provider.title(),
            ),
        )
        .task(&task.name)
        .fix(format!(
            "build and push the image, then set `docker_image` in task.toml; or run this stage \
             with {}",
            Provider::able(|c| c.builds == Builds::Here),
        ))),
    }
}

/// The providers that run a task's trials, asked what they can do.
#[derive(Debug, Clone, Default)]
struct Runners(std::collections::BTreeSet<Provider>);

impl Runners {
    /// One of them that cannot do what `can` asks.
    fn lacking(&self, can: impl Fn(&Capabilities) -> bool) -> Option<Provider> {
        self.0.iter().copied().find(|p| !can(&p.capabilities()))
    }

    /// One of them that builds images from the Dockerfile's text.
    fn building_from_text(&self) -> Option<Provider> {
        self.lacking(|c| c.builds == Builds::Here)
    }
}

/// A `user` of task.toml as the engine takes it (a name or a numeric id).
fn user(user: &Option<crate::manifest::task::User>) -> Option<String> {
    user.as_ref().map(ToString::to_string)
}

pub(crate) fn expand_all(
    vars: &BTreeMap<String, String>,
    host: &dyn Fn(&str) -> Option<String>,
    what: &str,
) -> Result<BTreeMap<String, String>, Vec<Problem>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, value) in vars {
        match env_expand::expand(value, host) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => problems.push(
                Problem::new(
                    ProblemKind::UnsetVariable,
                    format!("{what} `{name}`: {}", e.message),
                )
                .fix("set it, or write `${NAME:-default}`"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
