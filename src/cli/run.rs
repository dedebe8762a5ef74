//! `helios run TASK_DIR --agent NAME [--model ID]`: one task, events printed as they
//! happen, then the result. The same path as [`crate::AgentRunner`].

use std::path::PathBuf;

use super::{ExitStatus, failure};
use crate::api::{AgentRunner, RunConfig, RunStatus, describe, task_dir};

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

pub(super) async fn run(args: RunArgs) -> ExitStatus {
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
    {
        let mut stream = match runner.stream().await {
            Ok(stream) => stream,
            Err(error) => return failure::runner_error(&error, args.styled),
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
                    RunStatus::Cancelled => ExitStatus::Interrupted,
                    status => failure::status_of_trial(
                        status != RunStatus::Completed,
                        result.error.as_ref().map(|e| e.kind),
                    ),
                }
            }
            Err(error) => failure::runner_error(&error, args.styled),
        }
    }
}
