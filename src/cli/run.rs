//! `helios run TARGET --agent NAME [--model ID]`: one task with a built-in agent, events
//! printed as they happen, then the result (the same path as [`crate::AgentRunner`]); or
//! anything else (a glob, a dataset, a git repository, a catalog agent, attempts,
//! `--save`) as the pipeline it stands for, run by `apply`.

use std::path::{Path, PathBuf};

use super::{ExitStatus, apply, failure};
use crate::api::{AdHoc, AdHocSource, AgentRunner, RunConfig, RunStatus, task_dir};
use crate::env::Provider;
use crate::events::Reporter;
use crate::report::progress::Transcript;

/// What makes a run a pipeline.
pub(super) struct PipelineArgs {
    pub attempts: Option<u32>,
    pub concurrency: Option<u32>,
    pub save: Option<PathBuf>,
    pub dry_run: bool,
    pub name: String,
    pub registries: Vec<String>,
    pub rev: Option<String>,
    pub path: Option<String>,
}

pub(super) struct RunArgs {
    pub task: PathBuf,
    pub agent: Option<String>,
    pub model: Option<String>,
    pub pipeline: PipelineArgs,
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
    let target = args.task.display().to_string();
    let source = AdHocSource::parse(&target);
    let p = &args.pipeline;
    let built_in = args
        .agent
        .as_deref()
        .is_none_or(|a| ["oracle", "nop", "terminal", "computer-use", "command"].contains(&a));
    let ad_hoc = !source.is_one_task()
        || !built_in
        || p.attempts.is_some()
        || p.concurrency.is_some()
        || p.save.is_some();
    if ad_hoc {
        return run_pipeline(args, source).await;
    }
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
                    Some(event) => Transcript.event(&event),
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
                println!("status:   {}", result.status);
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

/// The run as a pipeline: written (to `--save`'s file, else a scratch one), then applied.
async fn run_pipeline(args: RunArgs, source: AdHocSource) -> ExitStatus {
    let Some(provider) = Provider::from_name(&args.provider) else {
        eprintln!(
            "error: unknown provider `{}` (one of {})",
            args.provider,
            Provider::ALL.join(", ")
        );
        return ExitStatus::Invalid;
    };
    let agent = args.agent.clone().unwrap_or_else(|| {
        if args.model.is_some() {
            "terminal"
        } else {
            "oracle"
        }
        .to_string()
    });
    let p = args.pipeline;
    let adhoc = AdHoc {
        name: p.name,
        source,
        registries: p.registries,
        rev: p.rev,
        path: p.path,
        agent,
        model: args.model,
        script: args.script,
        base_url: args.base_url,
        command: args.command,
        attempts: p.attempts.unwrap_or(1),
        concurrency: p.concurrency,
        provider,
        output_dir: args.output_dir,
    };
    let scratch = match &p.save {
        Some(_) => None,
        None => match tempfile::tempdir() {
            Ok(dir) => Some(dir),
            Err(error) => {
                eprintln!("error: cannot make a scratch directory for the pipeline: {error}");
                return ExitStatus::Infrastructure;
            }
        },
    };
    let file = match (&p.save, &scratch) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => dir.path().join("run.toml"),
        (None, None) => unreachable!("a scratch directory without --save"),
    };
    let base = std::path::absolute(&file)
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let text = match adhoc.to_toml(&base) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: {error}; nothing was run");
            return ExitStatus::Invalid;
        }
    };
    if let Err(error) = crate::atomic::write_atomic(&file, text.as_bytes()) {
        eprintln!("error: cannot write `{}`: {error}", file.display());
        return ExitStatus::Infrastructure;
    }
    if p.save.is_some() {
        eprintln!(
            "wrote {} (`helios apply {}` runs it again)",
            file.display(),
            file.display()
        );
    }
    if p.dry_run {
        return super::plan::run(&file, super::Format::Human, false, None, None, args.styled).await;
    }
    apply::run(apply::ApplyArgs {
        pipeline: &file,
        rebuild: false,
        labels: args.labels.into_iter().collect(),
        concurrency: None,
        cpus: None,
        resources: None,
        memory_mb: None,
        build_concurrency: None,
        retries: 2,
        styled: args.styled,
        watch: args.watch.then_some(crate::view::ViewOptions {
            root: PathBuf::new(),
            host: std::net::IpAddr::from([127, 0, 0, 1]),
            port: None,
        }),
        output_dir: None,
        fail_under: None,
        locked: false,
        shard: None,
    })
    .await
}
