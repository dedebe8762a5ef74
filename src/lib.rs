//! helios: a declarative engine for evaluating AI agents.
//!
//! The library reads task directories (Harbor / Terminal-Bench 2.0 format) and pipeline
//! manifests, checks them completely ([`manifest`]), and reports problems as
//! [`diagnostic::Diagnostic`]s that point at the place in the file.

pub mod agent;
pub mod api;
pub mod atomic;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dataset;
pub mod diagnostic;
pub mod env;
pub mod events;
pub mod gateway;
pub mod manifest;
pub mod model;
pub mod plan;
#[cfg(feature = "cli")]
pub mod report;
pub mod retry;
pub mod runner;
pub(crate) mod serve;
pub mod stats;
pub mod store;
pub mod template;
pub mod verify;
#[cfg(feature = "viewer")]
pub mod view;

pub use api::{
    Agent, AgentRunner, Message, Role, RunConfig, RunContext, RunResult, RunStatus, RunStream,
    Runner, RunnerError,
};
pub use diagnostic::{Diagnostic, Report};
pub use events::RunEvent;
pub use manifest::{
    ManifestError, Pipeline, TaskDir, load_pipeline, load_pipeline_with, load_task, validate_paths,
};
pub use plan::{Plan, PlanError};
