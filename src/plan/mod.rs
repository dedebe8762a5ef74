//! The plan: a pipeline expanded into trials, image builds, stage gates and the final
//! report, as a petgraph DAG, with a content-addressed id for every trial.
//!
//! Reading the files that ids depend on is done once, up front, by [`Inputs::gather`];
//! building the plan from them ([`Plan::build`]) is pure and synchronous.

pub mod cost;
pub mod digest;
mod expand;
pub mod lock;
pub mod merge;
pub mod shard;
pub mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use serde_json::Value;

pub use digest::{Digest, DigestError};
pub use expand::PlanError;

use crate::agent::installed::Recipe;
use crate::agent::{AgentKind, ResolvedLimits};
use crate::env::Provider;
use crate::manifest::Pipeline;
use crate::manifest::pipeline::{Expect, Gate};
use crate::store::{RunStore, path_component};

/// What was read from disk for a pipeline: task and environment digests, template digests.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Per task of the pipeline, in its order: the digest of every file of the directory.
    pub task_digests: Vec<Digest>,
    /// Per task: the digest of `environment/` plus `docker_image`, which decides the image.
    pub environment_digests: Vec<Digest>,
    /// Per task: its separate verifiers (see `TaskManifest::separate_verifiers`) and, for
    /// each built from a directory, that directory's digest.
    pub verifiers: Vec<Vec<(crate::manifest::task::SeparateVerifier, Option<Digest>)>>,
    /// Per task: its Compose sidecars built from a directory (service, context, Dockerfile,
    /// and the context's digest with the Dockerfile's name).
    pub sidecars: Vec<Vec<SidecarBuild>>,
    /// Per template path (as written in the manifest): the digest of its bytes.
    pub template_digests: BTreeMap<String, Digest>,
}

/// Where a task's container image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// Built from `environment/` by the build node with this index.
    Build(usize),
    /// A prebuilt image named by `docker_image`.
    Prebuilt(String),
    /// A prebuilt image named by `docker_image` of a task that also has a Dockerfile:
    /// pulled, and built by build `fallback` only when the pull fails (or with
    /// `--rebuild`). Resolved to one of the others when a run opens.
    Pull { image: String, fallback: usize },
}

impl ImageSource {
    /// The image's name or tag, as planned (a pull's prebuilt name).
    pub fn name<'a>(&'a self, builds: &'a [ImageBuild]) -> &'a str {
        match self {
            ImageSource::Build(b) => &builds[*b].tag,
            ImageSource::Prebuilt(image) | ImageSource::Pull { image, .. } => image,
        }
    }
}

/// A task as planned.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedTask {
    pub name: String,
    pub dir: PathBuf,
    pub digest: Digest,
    pub image: ImageSource,
    /// The images of its separate verifiers (Harbor's `environment_mode = "separate"`):
    /// the task's, or its steps'.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verifiers: Vec<PlannedVerifier>,
    /// The images its Compose sidecars are built into (sidecars with `image:` are not
    /// planned: they are used as they are).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<PlannedSidecar>,
}

/// A Compose sidecar that is built, as the plan reads it.
#[derive(Debug, Clone)]
pub struct SidecarBuild {
    pub service: String,
    pub context: PathBuf,
    pub dockerfile: String,
    pub digest: Digest,
}

/// A Compose sidecar's built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedSidecar {
    pub service: String,
    pub image: ImageSource,
}

/// A separate verifier's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedVerifier {
    /// The step it verifies; `None` for the task's.
    pub step: Option<String>,
    pub image: ImageSource,
}

impl PlannedTask {
    /// Every build the task's trials need: its image's and its verifiers'.
    pub fn builds(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(&self.image)
            .chain(self.verifiers.iter().map(|v| &v.image))
            .chain(self.sidecars.iter().map(|s| &s.image))
            .filter_map(|image| match image {
                ImageSource::Build(b) | ImageSource::Pull { fallback: b, .. } => Some(*b),
                ImageSource::Prebuilt(_) => None,
            })
    }
}

/// One image build, shared by every task whose environment has the same digest.
#[derive(Debug, Clone, Serialize)]
pub struct ImageBuild {
    pub digest: Digest,
    /// `helios/<first task>:<digest12>`.
    pub tag: String,
    /// The build context: the first such task's `environment/`.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Indexes of the tasks that use this image.
    pub tasks: Vec<usize>,
}

/// An agent with every default filled in, as it goes into trial ids.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedAgent {
    pub name: String,
    pub kind: AgentKind,
    /// For an installed agent: how it is installed and run (left out otherwise, so that
    /// ids made before installed agents existed stay the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Recipe>,
    pub command: Option<String>,
    pub env: BTreeMap<String, String>,
    pub limits: ResolvedLimits,
    pub system_prompt: Option<Digest>,
    pub user_prompt: Option<Digest>,
}

/// An installed agent's install, shared by every agent with the same recipe: a Docker
/// volume named by the recipe's content address, made once per machine.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInstall {
    pub volume: String,
    pub recipe: Recipe,
    /// The pipeline's agents that run from it.
    pub agents: Vec<String>,
}

/// A model as it goes into trial ids: its name, normalised id, endpoint and parameters.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedModel {
    pub name: String,
    pub id: String,
    pub base_url: Option<String>,
    pub params: Value,
}

/// A stage in run order.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStage {
    pub name: String,
    pub needs: Vec<String>,
    pub gate: Option<Gate>,
    /// Where the stage's trials run: its own `provider`, or `[environment] provider`.
    pub provider: Provider,
    /// Indexes into [`Plan::trials`] of this stage's trials.
    pub trials: std::ops::Range<usize>,
}

/// A trial's content address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TrialId(pub Digest);

impl TrialId {
    /// The 16 hex characters that name the trial in results.
    pub fn short(&self) -> String {
        self.0.short(16)
    }
}

/// One trial: a task, run by an agent (with a model), with parameters, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trial {
    pub id: TrialId,
    pub stage: u32,
    pub task: u32,
    pub agent: u32,
    pub model: Option<u32>,
    pub params: u32,
    pub attempt: u32,
}

/// A node of the plan's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// Build the image [`Plan::builds`]`[i]`.
    Build(usize),
    /// Wait for the stages stage `i` needs, then let in the tasks its gate admits.
    Gate(usize),
    /// Run [`Plan::trials`]`[i]`.
    Trial(usize),
    /// Write the run's summary when everything else is done.
    Report,
}

/// The whole plan of a pipeline.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pipeline: String,
    /// `<pipeline dir>/<output_dir>/<name>`: where results and the lock file go.
    pub run_dir: PathBuf,
    pub stages: Vec<PlannedStage>,
    pub tasks: Vec<PlannedTask>,
    pub builds: Vec<ImageBuild>,
    /// The installed agents' installs that trials use.
    pub installs: Vec<AgentInstall>,
    pub agents: Vec<ResolvedAgent>,
    pub models: Vec<ResolvedModel>,
    /// Distinct parameter sets of the matrices; index 0 is the empty set.
    pub params: Vec<BTreeMap<String, Value>>,
    pub trials: Vec<Trial>,
    pub graph: DiGraph<Node, ()>,
    /// The graph node of each trial, by trial index.
    pub trial_nodes: Vec<NodeIndex>,
    /// The bars the results must clear (`[[expect]]`, and `--fail-under`), checked when
    /// the summary is written; they do not change any trial.
    pub expect: Vec<Expect>,
    /// `[pipeline] max_cost_usd`: no trial starts once the run has spent this much.
    pub max_cost_usd: Option<f64>,
    /// The git and dataset sources as resolved: commits and each task's tree id.
    pub sources: Vec<lock::LockedSource>,
    /// Invalid tasks left out (`on_invalid = "skip"`), with their problems.
    pub skipped: Vec<crate::manifest::SkippedTask>,
    /// For one shard of a plan (`--shard I/N`, [`Plan::shard`]): which, and the whole plan.
    pub shard: Option<shard::Sharded>,
}

impl Plan {
    /// Reads the inputs and builds the plan of a loaded pipeline.
    pub fn of(pipeline: &Pipeline) -> Result<Plan, PlanError> {
        let inputs = Inputs::gather(pipeline)?;
        Plan::build(pipeline, &inputs)
    }

    /// The directory of a trial's results, relative to [`Plan::run_dir`]:
    /// `<stage>/<task>__<agent>[__<model>][__p-<params8>]__a<attempt>__<id16>`.
    pub fn trial_dir(&self, trial: &Trial) -> PathBuf {
        RunStore::trial_path(
            &self.stages[trial.stage as usize].name,
            &self.slot_name(trial),
            &trial.id.short(),
        )
    }

    /// The trial's directory name without its id: the same for a trial whose inputs changed.
    pub fn slot_name(&self, trial: &Trial) -> String {
        let mut name = format!(
            "{}__{}",
            path_component(&self.tasks[trial.task as usize].name),
            path_component(&self.agents[trial.agent as usize].name)
        );
        if let Some(model) = trial.model {
            name.push_str("__");
            name.push_str(&path_component(&self.models[model as usize].name));
        }
        if trial.params != 0 {
            let params =
                serde_json::to_vec(&self.params[trial.params as usize]).unwrap_or_default();
            name.push_str("__p-");
            name.push_str(&Digest::of_bytes(&params).short(8));
        }
        name.push_str(&format!("__a{}", trial.attempt));
        name
    }

    /// Where a trial runs.
    pub fn provider(&self, trial: &Trial) -> Provider {
        self.stages[trial.stage as usize].provider
    }

    /// Whether any trial runs with `provider`.
    pub fn uses(&self, provider: Provider) -> bool {
        self.stages
            .iter()
            .any(|s| s.provider == provider && !s.trials.is_empty())
    }

    /// The model's name of a trial, if it has one.
    pub fn model_name(&self, trial: &Trial) -> Option<&str> {
        trial.model.map(|m| self.models[m as usize].name.as_str())
    }
}

#[cfg(test)]
mod tests;
