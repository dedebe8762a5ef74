//! `helios run TASK_DIR --agent NAME [--model ID]`: one task, events printed as they
//! happen, then the result. The same path as [`crate::AgentRunner`].

use std::path::PathBuf;

use super::ExitStatus;
use crate::api::{AgentRunner, RunConfig, RunStatus, RunnerError, describe, task_dir};
use crate::diagnostic::render;

pub(super) struct RunArgs {
    pub task: PathBuf,
    pub agent: Option<String>,
    pub model: Option<String>,
    pub script: Option<PathBuf>,
    pub command: Option<String>,
    pub base_url: Option<String>,
    pub provider: String,
    pub output_dir: PathBuf,
    pub config: RunConfig,
    pub labels: Vec<(String, String)>,
    pub watch: bool,
    pub styled: bool,
}

pub(super) fn run(args: RunArgs) -> ExitStatus {
    let mut runner = AgentRunner::new(task_dir(&args.task))
        .provider(args.provider)
        .output_dir(args.output_dir)
        .config(args.config)
        .watch(args.watch);
    if let Some(agent) = args.agent {
        runner = runner.agent(agent);
    }
    if let Some(model) = args.model {
        runner = runner.model(model);
    }
    if let Some(script) = args.script {
        runner = runner.script(script);
    }
    if let Some(command) = args.command {
        runner = runner.command(command);
    }
    if let Some(url) = args.base_url {
        runner = runner.base_url(url);
    }
    for (key, value) in args.labels {
        runner = runner.label(key, value);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    runtime.block_on(async move {
        let mut stream = match runner.stream().await {
            Ok(stream) => stream,
            Err(error) => return report_error(&error, args.styled),
        };
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(event) => println!("{}", describe(&event)),
                    None => break,
                },
                _ = &mut interrupted => {
                    eprintln!("cancelling: stopping the agent and removing its container or sandbox");
                    stream.cancel();
                }
            }
        }
        match stream.result().await {
            Ok(result) => {
                println!();
                println!("status:   {:?}", result.status);
                println!("success:  {}", result.success);
                println!(
                    "reward:   {}",
                    result
                        .reward
                        .map_or_else(|| "none".into(), |r| r.to_string())
                );
                println!("duration: {:.1}s", result.duration.as_secs_f64());
                if result.turn_count > 0 {
                    println!("turns:    {}", result.turn_count);
                }
                if let Some(cost) = result.cost_usd {
                    println!("cost:     ${cost:.4}");
                }
                if let Some(error) = &result.error {
                    println!("error:    {} ({})", error.message, error.kind);
                }
                println!("results:  {}", result.output_dir.display());
                match result.status {
                    RunStatus::Completed => ExitStatus::Success,
                    RunStatus::Cancelled => ExitStatus::Interrupted,
                    _ if result.error.as_ref().is_some_and(|e| e.kind.is_infrastructure()) => {
                        ExitStatus::Infrastructure
                    }
                    _ => ExitStatus::TrialsFailed,
                }
            }
            Err(error) => report_error(&error, args.styled),
        }
    })
}

fn report_error(error: &RunnerError, styled: bool) -> ExitStatus {
    match error {
        RunnerError::InvalidTask(e) => {
            eprint!("{}", render::human(&e.report, styled));
            ExitStatus::Invalid
        }
        RunnerError::Run(crate::runner::RunError::Env(_)) => {
            eprintln!("error: {error}");
            ExitStatus::Infrastructure
        }
        _ => {
            eprintln!("error: {error}");
            ExitStatus::Invalid
        }
    }
}
