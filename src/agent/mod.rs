//! Agents: `oracle` (the task's reference solution), `nop`, `command` (a shell command),
//! `installed` (a CLI agent installed once per machine, see [`installed`]), `terminal` (a model working through bash) and
//! `computer-use` (a model working a virtual desktop through its provider's computer tool).

pub mod call_log;
pub mod computer;
pub mod computer_use;
pub mod installed;
mod kind;
pub mod mcp;
pub mod model_loop;
pub mod prompt;
pub mod terminal;
pub mod trajectory;

use std::path::Path;
use std::time::Duration;

use crate::env::{EnvError, ExecSpec, Instance, tarball};
pub use kind::{AgentKind, AgentLimits, ResolvedLimits};

use crate::events::{ErrorKind, RunEvent, TrialIndex};

/// Where the agent's instruction is put in the container for `command` agents.
pub const INSTRUCTION_PATH: &str = "/helios/instruction.md";

/// What the agent's run came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentRun {
    pub exit_code: Option<i64>,
    /// The task's agent timeout passed and the agent was killed.
    pub timed_out: bool,
    /// A model-driven agent stopped for a reason other than finishing.
    pub stop: Option<AgentStop>,
    pub usage: Option<crate::model::Usage>,
    pub cost_usd: Option<f64>,
}

/// Why a model-driven agent stopped before finishing; the verifier still runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStop {
    pub timed_out: bool,
    pub kind: ErrorKind,
    pub message: String,
}

/// A model-driven agent's trial (`terminal`, `computer-use`): its model and rendered
/// prompts, and for computer use, the desktop.
#[derive(Debug, Clone)]
pub struct ModelPlan {
    pub model: crate::model::runtime::ModelRuntime,
    pub system_prompt: String,
    pub user_prompt: String,
    pub limits: ResolvedLimits,
    pub computer: Option<ComputerPlan>,
}

/// What a `computer-use` agent's trial knows of its desktop and its model's tool.
#[derive(Debug, Clone)]
pub struct ComputerPlan {
    /// The task's screen size.
    pub screen: (u32, u32),
    pub protocol: crate::model::computer::Protocol,
    pub safety: crate::model::computer::SafetyPolicy,
}

/// Why an agent could not run at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("the task has no `solution/solve.sh` for the oracle to run")]
    NoSolution,
}

impl AgentError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AgentError::Env(e) => ErrorKind::from(e),
            AgentError::NoSolution => ErrorKind::NoSolution,
        }
    }
}

/// What an agent needs to know about its trial.
pub struct AgentContext<'a> {
    pub kind: AgentKind,
    /// The oracle's `solution/` directory (a step's, in a multi-step task).
    pub solution_dir: &'a Path,
    /// The user the agent runs as; the image's user when `None`.
    pub user: Option<String>,
    pub instruction: &'a str,
    pub workdir: Option<String>,
    pub solution_env: std::collections::BTreeMap<String, String>,
    pub agent_env: std::collections::BTreeMap<String, String>,
    pub command: Option<&'a str>,
    pub timeout: Option<Duration>,
    pub model_plan: Option<&'a ModelPlan>,
    /// Where a model-driven agent writes its trajectory.
    pub trajectory_path: std::path::PathBuf,
    pub session_id: &'a str,
    /// Where to report the agent's steps as they happen, and the trial's index.
    pub events: Option<(tokio::sync::mpsc::UnboundedSender<RunEvent>, TrialIndex)>,
}

/// Runs the agent in the trial's environment.
pub async fn run(instance: &Instance, cx: &AgentContext<'_>) -> Result<AgentRun, AgentError> {
    match cx.kind {
        AgentKind::Nop => Ok(AgentRun {
            exit_code: Some(0),
            ..AgentRun::default()
        }),
        AgentKind::Oracle => {
            let solution = cx.solution_dir;
            if !solution.join("solve.sh").is_file() {
                return Err(AgentError::NoSolution);
            }
            instance.upload_dir(solution, "solution").await?;
            let spec = ExecSpec {
                command: "bash /solution/solve.sh > /logs/agent/oracle.txt 2>&1".to_string(),
                workdir: cx.workdir.clone(),
                env: cx.solution_env.clone(),
                deadline: cx.timeout,
                user: cx.user.clone(),
            };
            finish(instance.exec(&spec).await?)
        }
        AgentKind::Command | AgentKind::Installed => {
            let archive = tarball::pack_file(
                INSTRUCTION_PATH.trim_start_matches('/'),
                cx.instruction.as_bytes(),
                0o644,
            )
            .map_err(|e| EnvError::io("packing the instruction", e))?;
            instance.upload_archive(archive).await?;
            let mut env = cx.agent_env.clone();
            env.insert("HELIOS_INSTRUCTION_FILE".into(), INSTRUCTION_PATH.into());
            let command = cx.command.unwrap_or("true");
            let spec = ExecSpec {
                // An installed agent's command sends its output to its own logs.
                command: if cx.kind == AgentKind::Installed {
                    command.to_string()
                } else {
                    format!("{{ {command}\n}} > /logs/agent/command.txt 2>&1")
                },
                workdir: cx.workdir.clone(),
                env,
                deadline: cx.timeout,
                user: cx.user.clone(),
            };
            finish(instance.exec(&spec).await?)
        }
        AgentKind::Terminal => {
            let plan = cx
                .model_plan
                .ok_or_else(|| EnvError::Unsupported("the terminal agent has no model".into()))?;
            let mut bash = terminal::Bash {
                instance,
                workdir: cx.workdir.clone(),
                env: cx.agent_env.clone(),
                user: cx.user.clone(),
            };
            let outcome = model_loop(plan, cx, "helios-terminal")
                .run(&mut bash)
                .await?;
            Ok(model_run(outcome))
        }
        AgentKind::ComputerUse => {
            let plan = cx.model_plan.ok_or_else(|| {
                EnvError::Unsupported("the computer-use agent has no model".into())
            })?;
            let computer = plan.computer.as_ref().ok_or_else(|| {
                EnvError::Unsupported("the computer-use agent needs a desktop".into())
            })?;
            let desktop = crate::agent::computer::ContainerDesktop {
                instance,
                screen: computer.screen,
            };
            let screenshots = cx.trajectory_path.parent().map_or_else(
                || std::path::PathBuf::from("screenshots"),
                |dir| dir.join(computer_use::SCREENSHOT_DIR),
            );
            let mut toolbox = computer_use::Computer::new(
                &desktop,
                computer.protocol,
                computer.safety,
                screenshots,
            );
            let outcome = model_loop(plan, cx, "helios-computer-use")
                .run(&mut toolbox)
                .await?;
            Ok(model_run(outcome))
        }
    }
}

/// The loop of a model-driven agent, from its plan and its trial.
fn model_loop(plan: &ModelPlan, cx: &AgentContext<'_>, name: &str) -> model_loop::ModelLoop {
    model_loop::ModelLoop {
        agent_name: name.to_string(),
        model: plan.model.client(),
        model_id: plan.model.id.clone(),
        rates: plan.model.rates,
        system_prompt: plan.system_prompt.clone(),
        user_prompt: plan.user_prompt.clone(),
        limits: plan.limits.clone(),
        task_timeout: cx.timeout,
        trajectory_path: cx.trajectory_path.clone(),
        session_id: cx.session_id.to_string(),
        events: cx.events.clone(),
    }
}

fn model_run(outcome: model_loop::LoopOutcome) -> AgentRun {
    AgentRun {
        exit_code: None,
        timed_out: false,
        stop: outcome.ending.error().map(|(kind, message)| AgentStop {
            timed_out: outcome.ending.is_timeout(),
            kind,
            message,
        }),
        usage: Some(outcome.usage),
        cost_usd: outcome.cost_usd,
    }
}

fn finish(output: crate::env::ExecOutput) -> Result<AgentRun, AgentError> {
    Ok(AgentRun {
        exit_code: output.exit_code,
        timed_out: output.timed_out,
        ..AgentRun::default()
    })
}
