//! Expansion of a pipeline into trials, and the DAG that orders them.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::DiGraph;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::digest::{self, Digest, DigestError};
use super::{
    AgentInstall, ImageBuild, ImageSource, Inputs, Node, Plan, PlannedStage, PlannedTask,
    PlannedVerifier, ResolvedAgent, ResolvedLimits, ResolvedModel, Trial, TrialId,
};
use crate::agent::AgentKind;
use crate::agent::installed::{self, Recipe};
use crate::env::Provider;
use crate::manifest::pipeline::ImagePolicy;
use crate::manifest::pipeline::{EnvironmentDefaults, VerifyStep};
use crate::manifest::stage_graph::StageGraph;
use crate::manifest::trials::{count_trials, total_trials};
use crate::manifest::{BUILTIN_AGENTS, Pipeline};
use crate::model::ModelId;

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Stages that need each other; validation reports this first, with its place.
    #[error("stages depend on each other in a cycle through `{0}`")]
    Cycle(String),
    /// A name the pipeline refers to but does not define; validation reports this first.
    #[error("unknown {kind} `{name}`")]
    Unknown { kind: &'static str, name: String },
    /// More trials than `[pipeline] max_trials`; validation reports this first, with its
    /// place.
    #[error("the pipeline would make {trials} trials, more than `max_trials` ({max})")]
    TooManyTrials { trials: u128, max: u64 },
    /// An installed agent without a usable recipe; validation reports this first.
    #[error("agent `{agent}`: {message}")]
    Recipe { agent: String, message: String },
}

/// The tag of the trial-id format; changing what goes into ids changes it.
const TRIAL_ID_FORMAT: &str = "helios-trial/1";

impl Inputs {
    /// Reads every file the plan's ids depend on.
    pub fn gather(pipeline: &Pipeline) -> Result<Inputs, DigestError> {
        let mut task_digests = Vec::with_capacity(pipeline.tasks.len());
        let mut environment_digests = Vec::with_capacity(pipeline.tasks.len());
        for task in &pipeline.tasks {
            let everything = |_: &str| true;
            let environment_files = |p: &str| p.starts_with("environment/");
            let digests = digest::trees(&task.dir, &[&everything, &environment_files])?;
            task_digests.push(digests[0]);
            let environment = digests[1];
            let image = task
                .manifest
                .environment
                .docker_image
                .as_deref()
                .unwrap_or("");
            environment_digests.push(Digest::of_bytes(
                format!("{environment}\0{image}").as_bytes(),
            ));
        }
        let mut verifiers = Vec::with_capacity(pipeline.tasks.len());
        for task in &pipeline.tasks {
            let mut found = Vec::new();
            for verifier in task.manifest.separate_verifiers(&task.dir) {
                let digest = match verifier.environment.docker_image {
                    Some(_) => None,
                    None => Some(digest::trees(&verifier.context, &[&|_: &str| true])?[0]),
                };
                found.push((verifier, digest));
            }
            verifiers.push(found);
        }
        let mut sidecars = Vec::with_capacity(pipeline.tasks.len());
        for task in &pipeline.tasks {
            sidecars.push(sidecar_builds(&task.dir)?);
        }
        let mut template_digests = BTreeMap::new();
        for agent in pipeline.manifest.agents.values() {
            let (system_prompt, user_prompt) = agent.prompts();
            for path in [system_prompt, user_prompt].into_iter().flatten() {
                let digest = digest::file(&pipeline.base_dir.join(path))?;
                template_digests.insert(path.clone(), digest);
            }
        }
        Ok(Inputs {
            task_digests,
            environment_digests,
            verifiers,
            sidecars,
            template_digests,
        })
    }
}

/// The Compose sidecars of a task that are built, each with its context's digest. A file
/// that does not resolve is left to validation, which reports it.
fn sidecar_builds(task_dir: &std::path::Path) -> Result<Vec<super::SidecarBuild>, DigestError> {
    let Ok(Some(file)) = crate::manifest::compose::ComposeFile::read(task_dir) else {
        return Ok(Vec::new());
    };
    let vars = crate::manifest::compose::Variables::default();
    let host = |name: &str| std::env::var(name).ok();
    let Ok(services) = file.resolve(&|name| vars.lookup(name, &host)) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for service in services {
        let Some(build) = service.build else {
            continue;
        };
        let tree = digest::trees(&build.context, &[&|_: &str| true])?[0];
        let digest = Digest::of_bytes(format!("{tree}\0{}", build.dockerfile).as_bytes());
        out.push(super::SidecarBuild {
            service: service.name,
            context: build.context,
            dockerfile: build.dockerfile,
            digest,
        });
    }
    Ok(out)
}

/// What a trial's id is made of besides the task, parameters and attempt (see
/// `docs/plan.md`). Serialized as JSON in field order, then hashed.
#[derive(Serialize)]
struct TrialConfig<'a> {
    stage: &'a str,
    agent: &'a ResolvedAgent,
    model: Option<&'a ResolvedModel>,
    /// Pipeline variables reach prompts, so they count for model-driven agents only.
    vars: Option<&'a BTreeMap<String, Value>>,
    environment: EnvironmentIdentity<'a>,
    verify: &'a [VerifyStep],
    /// The pipeline's `[verifier]` defaults; left out when empty, so that ids made before
    /// they existed stay the same (a task's own setting is in its digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    verifier: Option<&'a crate::manifest::pipeline::VerifierDefaults>,
}

/// The `[environment]` defaults as they count for a trial: the stage's provider, and not
/// the provider's own settings (`[environment.daytona]`), which never change a result.
/// Serialized like [`EnvironmentDefaults`] without those settings, so ids made before they
/// existed stay the same.
#[derive(Serialize)]
struct EnvironmentIdentity<'a> {
    provider: Provider,
    network_mode: &'a Option<crate::manifest::task::NetworkMode>,
    cpus: Option<f64>,
    memory_mb: Option<u64>,
    env: &'a BTreeMap<String, String>,
}

impl<'a> EnvironmentIdentity<'a> {
    fn of(defaults: &'a EnvironmentDefaults, provider: Provider) -> Self {
        EnvironmentIdentity {
            provider,
            network_mode: &defaults.network_mode,
            cpus: defaults.cpus,
            memory_mb: defaults.memory_mb,
            env: &defaults.env,
        }
    }
}

use super::lock::LockedSource;

impl Plan {
    /// Expands `pipeline` into a plan. Pure: everything read from disk is in `inputs`.
    pub fn build(pipeline: &Pipeline, inputs: &Inputs) -> Result<Plan, PlanError> {
        let manifest = &pipeline.manifest;
        // Counted before anything is allocated: a typo in `attempts` must not exhaust memory.
        let names: Vec<String> = pipeline.tasks.iter().map(|t| t.name.clone()).collect();
        let trials = total_trials(&count_trials(manifest, &names));
        if trials > u128::from(manifest.pipeline.max_trials) {
            return Err(PlanError::TooManyTrials {
                trials,
                max: manifest.pipeline.max_trials,
            });
        }
        let (tasks, builds) = plan_tasks(pipeline, inputs);
        let agents = resolve_agents(pipeline, inputs)?;
        let models = resolve_models(pipeline);
        let agent_index: HashMap<&str, usize> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.as_str(), i))
            .collect();
        let model_index: HashMap<&str, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.as_str(), i))
            .collect();
        let order = stage_order(pipeline)?;

        let mut params: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
        let mut param_index: HashMap<String, usize> = HashMap::from([(String::from("{}"), 0)]);
        let mut stages = Vec::with_capacity(order.len());
        let mut trials = Vec::new();
        for (position, &s) in order.iter().enumerate() {
            let stage = &manifest.stages[s];
            let provider = stage.provider.unwrap_or(manifest.environment.provider);
            let start = trials.len();
            let selected: Vec<usize> = select_tasks(pipeline, &stage.tasks);
            let stage_params: Vec<usize> = cross(&stage.matrix)
                .into_iter()
                .map(|set| {
                    let key = serde_json::to_string(&set).unwrap_or_default();
                    *param_index.entry(key).or_insert_with(|| {
                        params.push(set);
                        params.len() - 1
                    })
                })
                .collect();
            for agent_name in &stage.agents {
                let agent =
                    *agent_index
                        .get(agent_name.as_str())
                        .ok_or_else(|| PlanError::Unknown {
                            kind: "agent",
                            name: agent_name.clone(),
                        })?;
                for model in stage_models(pipeline, &agents[agent], &stage.models, &model_index)? {
                    let config = TrialConfig {
                        stage: &stage.name,
                        agent: &agents[agent],
                        model: model.map(|m| &models[m]),
                        vars: agents[agent].kind.uses_prompts().then_some(&manifest.vars),
                        environment: EnvironmentIdentity::of(&manifest.environment, provider),
                        verify: &manifest.verify,
                        verifier: Some(&manifest.verifier).filter(|v| **v != Default::default()),
                    };
                    let config_digest =
                        Digest::of_bytes(&serde_json::to_vec(&config).expect("configs serialize"));
                    for &p in &stage_params {
                        let params_digest =
                            Digest::of_bytes(&serde_json::to_vec(&params[p]).unwrap_or_default());
                        for attempt in 1..=stage.attempts {
                            for &task in &selected {
                                trials.push(Trial {
                                    id: trial_id(
                                        &config_digest,
                                        &tasks[task].digest,
                                        &params_digest,
                                        attempt,
                                    ),
                                    stage: position as u32,
                                    task: task as u32,
                                    agent: agent as u32,
                                    model: model.map(|m| m as u32),
                                    params: p as u32,
                                    attempt,
                                });
                            }
                        }
                    }
                }
            }
            stages.push(PlannedStage {
                name: stage.name.clone(),
                needs: stage.needs.clone(),
                gate: stage.gate.clone(),
                provider,
                trials: start..trials.len(),
            });
        }
        let (graph, trial_nodes) = graph(&stages, &tasks, &trials);
        Ok(Plan {
            pipeline: manifest.pipeline.name.clone(),
            run_dir: crate::manifest::paths::clean(
                &pipeline
                    .base_dir
                    .join(&manifest.pipeline.output_dir)
                    .join(&manifest.pipeline.name),
            ),
            stages,
            tasks,
            builds,
            installs: installs(&agents, &trials),
            agents,
            models,
            params,
            trials,
            graph,
            trial_nodes,
            expect: manifest.expect.clone(),
            max_cost_usd: manifest.pipeline.max_cost_usd,
            sources: pipeline.sources.iter().map(LockedSource::of).collect(),
            skipped: pipeline.skipped.clone(),
            shard: None,
        })
    }
}

/// `SHA-256("helios-trial/1" NUL config NUL task NUL params NUL attempt-as-u32-LE)`.
fn trial_id(config: &Digest, task: &Digest, params: &Digest, attempt: u32) -> TrialId {
    let mut hasher = Sha256::new();
    hasher.update(TRIAL_ID_FORMAT.as_bytes());
    for part in [config, task, params] {
        hasher.update([0]);
        hasher.update(part.0);
    }
    hasher.update([0]);
    hasher.update(attempt.to_le_bytes());
    TrialId(Digest(hasher.finalize().into()))
}

fn plan_tasks(pipeline: &Pipeline, inputs: &Inputs) -> (Vec<PlannedTask>, Vec<ImageBuild>) {
    let policy = pipeline.manifest.environment.images;
    let mut builds: Vec<ImageBuild> = Vec::new();
    let mut by_digest: HashMap<Digest, usize> = HashMap::new();
    let tasks = pipeline
        .tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let has_dockerfile = task.dir.join("environment/Dockerfile").is_file();
            let image = match &task.manifest.environment.docker_image {
                Some(image) if !has_dockerfile => ImageSource::Prebuilt(image.clone()),
                _ => {
                    let digest = inputs.environment_digests[i];
                    let build = *by_digest.entry(digest).or_insert_with(|| {
                        builds.push(ImageBuild {
                            digest,
                            tag: format!(
                                "helios/{}:{}",
                                crate::store::path_component(&task.name).to_lowercase(),
                                digest.short(12)
                            ),
                            context: task.dir.join("environment"),
                            dockerfile: "Dockerfile".into(),
                            tasks: Vec::new(),
                        });
                        builds.len() - 1
                    });
                    builds[build].tasks.push(i);
                    match &task.manifest.environment.docker_image {
                        Some(image) if policy == ImagePolicy::Prebuilt => ImageSource::Pull {
                            image: image.clone(),
                            fallback: build,
                        },
                        _ => ImageSource::Build(build),
                    }
                }
            };
            let verifiers = inputs.verifiers[i]
                .iter()
                .map(|(verifier, digest)| {
                    let image = match (&verifier.environment.docker_image, digest) {
                        (Some(image), _) => ImageSource::Prebuilt(image.clone()),
                        (None, digest) => {
                            let digest = digest.expect("a built verifier has a digest");
                            let build = *by_digest.entry(digest).or_insert_with(|| {
                                builds.push(ImageBuild {
                                    digest,
                                    tag: format!(
                                        "helios/{}-verifier:{}",
                                        crate::store::path_component(&task.name).to_lowercase(),
                                        digest.short(12)
                                    ),
                                    context: verifier.context.clone(),
                                    dockerfile: "Dockerfile".into(),
                                    tasks: Vec::new(),
                                });
                                builds.len() - 1
                            });
                            if !builds[build].tasks.contains(&i) {
                                builds[build].tasks.push(i);
                            }
                            ImageSource::Build(build)
                        }
                    };
                    PlannedVerifier {
                        step: verifier.step.clone(),
                        image,
                    }
                })
                .collect();
            let sidecars = inputs.sidecars[i]
                .iter()
                .map(|sidecar| {
                    let build = *by_digest.entry(sidecar.digest).or_insert_with(|| {
                        builds.push(ImageBuild {
                            digest: sidecar.digest,
                            tag: format!(
                                "helios/{}-{}:{}",
                                crate::store::path_component(&task.name).to_lowercase(),
                                crate::store::path_component(&sidecar.service).to_lowercase(),
                                sidecar.digest.short(12)
                            ),
                            context: sidecar.context.clone(),
                            dockerfile: sidecar.dockerfile.clone(),
                            tasks: Vec::new(),
                        });
                        builds.len() - 1
                    });
                    if !builds[build].tasks.contains(&i) {
                        builds[build].tasks.push(i);
                    }
                    super::PlannedSidecar {
                        service: sidecar.service.clone(),
                        image: ImageSource::Build(build),
                    }
                })
                .collect();
            PlannedTask {
                name: task.name.clone(),
                dir: task.dir.clone(),
                digest: inputs.task_digests[i],
                image,
                verifiers,
                sidecars,
            }
        })
        .collect();
    (tasks, builds)
}

fn resolve_agents(pipeline: &Pipeline, inputs: &Inputs) -> Result<Vec<ResolvedAgent>, PlanError> {
    let template = |path: Option<&String>| -> Result<Option<Digest>, PlanError> {
        match path {
            None => Ok(None),
            Some(p) => inputs
                .template_digests
                .get(p)
                .copied()
                .map(Some)
                .ok_or_else(|| PlanError::Unknown {
                    kind: "template",
                    name: p.clone(),
                }),
        }
    };
    let mut agents = Vec::new();
    for (name, spec) in &pipeline.manifest.agents {
        let recipe = match spec.installed() {
            Some(installed) => Some(recipe(name, installed)?),
            None => None,
        };
        let (system_prompt, user_prompt) = spec.prompts();
        agents.push(ResolvedAgent {
            name: name.clone(),
            kind: spec.kind(),
            recipe,
            command: spec.command().cloned(),
            env: spec.env().clone(),
            limits: ResolvedLimits::from(spec.limits()),
            system_prompt: template(system_prompt)?,
            user_prompt: template(user_prompt)?,
        });
    }
    for builtin in BUILTIN_AGENTS {
        if !pipeline.manifest.agents.contains_key(builtin) {
            agents.push(ResolvedAgent {
                name: builtin.to_string(),
                kind: if builtin == "oracle" {
                    AgentKind::Oracle
                } else {
                    AgentKind::Nop
                },
                recipe: None,
                command: None,
                env: BTreeMap::new(),
                limits: ResolvedLimits::from(&Default::default()),
                system_prompt: None,
                user_prompt: None,
            });
        }
    }
    Ok(agents)
}

/// The recipe of an installed agent, checked to render.
fn recipe(
    name: &str,
    spec: &crate::manifest::pipeline::InstalledAgent,
) -> Result<Recipe, PlanError> {
    let problem = |message: String| PlanError::Recipe {
        agent: name.to_string(),
        message,
    };
    let recipe =
        installed::resolve(name, spec.recipe_fields()).map_err(|e| problem(e.to_string()))?;
    recipe.volume().map_err(|e| problem(e.to_string()))?;
    Ok(recipe)
}

/// The installs the plan's trials need, one per volume, in the order agents are defined.
fn installs(agents: &[ResolvedAgent], trials: &[Trial]) -> Vec<AgentInstall> {
    let mut installs: Vec<AgentInstall> = Vec::new();
    for (index, agent) in agents.iter().enumerate() {
        let Some(recipe) = &agent.recipe else {
            continue;
        };
        if !trials.iter().any(|t| t.agent as usize == index) {
            continue;
        }
        let volume = recipe
            .volume()
            .expect("checked when the agent was resolved");
        match installs.iter_mut().find(|i| i.volume == volume) {
            Some(install) => install.agents.push(agent.name.clone()),
            None => installs.push(AgentInstall {
                volume,
                recipe: recipe.clone(),
                agents: vec![agent.name.clone()],
            }),
        }
    }
    installs
}

fn resolve_models(pipeline: &Pipeline) -> Vec<ResolvedModel> {
    pipeline
        .manifest
        .models
        .iter()
        .map(|(name, spec)| ResolvedModel {
            name: name.clone(),
            id: ModelId::parse(&spec.id).map_or_else(|_| spec.id.clone(), |id| id.to_string()),
            base_url: spec.base_url.clone(),
            params: serde_json::to_value(&spec.params).unwrap_or(Value::Null),
        })
        .collect()
}

/// The models an agent runs with in a stage: the stage's list, else the agent's own model;
/// `None` alone for agents that use no model.
fn stage_models(
    pipeline: &Pipeline,
    agent: &ResolvedAgent,
    stage_models: &[String],
    index: &HashMap<&str, usize>,
) -> Result<Vec<Option<usize>>, PlanError> {
    let lookup = |name: &String| {
        index
            .get(name.as_str())
            .copied()
            .ok_or_else(|| PlanError::Unknown {
                kind: "model",
                name: name.clone(),
            })
    };
    let own = pipeline
        .manifest
        .agents
        .get(&agent.name)
        .and_then(|a| a.model());
    match agent.kind {
        AgentKind::Terminal | AgentKind::ComputerUse | AgentKind::Installed
            if !stage_models.is_empty() =>
        {
            stage_models.iter().map(|m| lookup(m).map(Some)).collect()
        }
        AgentKind::Oracle | AgentKind::Nop => Ok(vec![None]),
        _ => Ok(vec![own.map(lookup).transpose()?]),
    }
}

fn select_tasks(pipeline: &Pipeline, filters: &[String]) -> Vec<usize> {
    let patterns: Vec<glob::Pattern> = filters
        .iter()
        .filter_map(|f| glob::Pattern::new(f).ok())
        .collect();
    (0..pipeline.tasks.len())
        .filter(|&i| {
            patterns.is_empty() || patterns.iter().any(|p| p.matches(&pipeline.tasks[i].name))
        })
        .collect()
}

/// Every combination of the matrix's values, keys in sorted order; one empty set when the
/// matrix is empty.
fn cross(matrix: &BTreeMap<String, Vec<Value>>) -> Vec<BTreeMap<String, Value>> {
    let mut sets = vec![BTreeMap::new()];
    for (key, values) in matrix {
        sets = sets
            .into_iter()
            .flat_map(|set| {
                values.iter().map(move |v| {
                    let mut next = set.clone();
                    next.insert(key.clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    sets
}

/// Stages in run order (see [`StageGraph::order`]).
fn stage_order(pipeline: &Pipeline) -> Result<Vec<usize>, PlanError> {
    let stages = &pipeline.manifest.stages;
    let graph = StageGraph::of(stages);
    if let Some(&(i, j)) = graph.unknown.first() {
        return Err(PlanError::Unknown {
            kind: "stage",
            name: stages[i].needs[j].clone(),
        });
    }
    graph
        .order()
        .map_err(|stuck| PlanError::Cycle(stages[stuck].name.clone()))
}

/// Builds → trials; trials of needed stages → the stage's gate → its trials; all → report.
pub(super) fn graph(
    stages: &[PlannedStage],
    tasks: &[PlannedTask],
    trials: &[Trial],
) -> (DiGraph<Node, ()>, Vec<petgraph::graph::NodeIndex>) {
    let build_count = tasks
        .iter()
        .flat_map(PlannedTask::builds)
        .map(|b| b + 1)
        .max()
        .unwrap_or(0);
    let mut graph = DiGraph::with_capacity(
        build_count + stages.len() + trials.len() + 1,
        trials.len() * 3,
    );
    let builds: Vec<_> = (0..build_count)
        .map(|b| graph.add_node(Node::Build(b)))
        .collect();
    let gates: Vec<Option<_>> = stages
        .iter()
        .enumerate()
        .map(|(s, stage)| {
            (!stage.needs.is_empty() || stage.gate.is_some()).then(|| graph.add_node(Node::Gate(s)))
        })
        .collect();
    let trial_nodes: Vec<_> = (0..trials.len())
        .map(|t| graph.add_node(Node::Trial(t)))
        .collect();
    let report = graph.add_node(Node::Report);
    let position: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    for (s, stage) in stages.iter().enumerate() {
        if let Some(gate) = gates[s] {
            for need in &stage.needs {
                for t in stages[position[need.as_str()]].trials.clone() {
                    graph.add_edge(trial_nodes[t], gate, ());
                }
            }
        }
        for t in stage.trials.clone() {
            for b in tasks[trials[t].task as usize].builds() {
                graph.add_edge(builds[b], trial_nodes[t], ());
            }
            if let Some(gate) = gates[s] {
                graph.add_edge(gate, trial_nodes[t], ());
            }
            graph.add_edge(trial_nodes[t], report, ());
        }
    }
    (graph, trial_nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids made before providers had settings must not change: with none, the identity
    /// serializes exactly as the defaults did.
    #[test]
    fn the_identity_serializes_as_the_defaults_did() {
        let defaults = EnvironmentDefaults {
            cpus: Some(2.0),
            env: BTreeMap::from([("A".to_string(), "b".to_string())]),
            ..EnvironmentDefaults::default()
        };
        assert_eq!(
            serde_json::to_string(&EnvironmentIdentity::of(&defaults, defaults.provider)).unwrap(),
            serde_json::to_string(&defaults).unwrap()
        );
    }
}
