//! The `helios` command line: argument parsing and dispatch to one file per subcommand.
//! Errors become the exit codes documented in `docs/cli.md`.

mod apply;
mod datasets;
mod exit;
mod failure;
mod gc;
mod merge;
mod plan;
mod regrade;
mod report;
mod run;
mod schema;
mod validate;
mod view;

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::env::Provider;
use crate::plan::shard::Shard;

pub use exit::ExitStatus;

#[derive(Debug, Parser)]
#[command(
    name = "helios",
    version,
    about = "Evaluate AI agents on Harbor / Terminal-Bench tasks, declaratively"
)]
pub struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files and task directories; report every problem found.
    Validate {
        /// Pipeline files (.toml, .yaml, .yml) and task directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Same as `--format json`.
        #[arg(long)]
        json: bool,
        /// Treat warnings as errors (an unknown key of a newer task format among them).
        #[arg(long, visible_alias = "strict")]
        deny_warnings: bool,
    },
    /// Show what `apply` would run: trials per stage, already done, changed, new.
    Plan {
        /// The pipeline file (.toml, .yaml, .yml).
        #[arg(value_name = "PIPELINE")]
        pipeline: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Same as `--format json`.
        #[arg(long)]
        json: bool,
        /// Write the resolved plan to `<run dir>/helios.lock.json`.
        #[arg(long)]
        write_lock: bool,
        /// Put the run in `<DIR>/<name>` instead of the pipeline's `output_dir`.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Only part I of N of the trials, as `apply --shard I/N` runs them (its run
        /// directory is `<run dir>-shard-I-of-N`).
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<Shard>,
    },
    /// Run the pipeline's trials in containers; re-running does only what is missing or
    /// changed.
    Apply {
        /// The pipeline file (.toml, .yaml, .yml).
        #[arg(value_name = "PIPELINE")]
        pipeline: PathBuf,
        /// Build images even when an image with the same environment digest exists.
        #[arg(long)]
        rebuild: bool,
        /// Add a label to every container and image this run creates (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Trials at once (default: the pipeline's `concurrency`).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        concurrency: Option<u32>,
        /// CPUs the run's trials and builds may use at once, a hard bound (default: this
        /// machine's cores, and under `adaptive` more while CPU pressure is low).
        #[arg(long, value_name = "N", value_parser = parse_cpus)]
        cpus: Option<f64>,
        /// How trials are admitted: `adaptive` (by measured CPU pressure), `reserve` (each
        /// task's declared cpus reserved) or `none` (concurrency alone); default: the
        /// pipeline's `resources`, else `adaptive`.
        #[arg(long, value_name = "POLICY", value_parser = parse_resources)]
        resources: Option<crate::runner::ResourcePolicy>,
        /// Memory the run's trials may use at once, as "8G" or "512M" (default: all of it).
        #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
        memory: Option<u64>,
        /// Image builds at once (default: the pipeline's `build_concurrency`, else half the
        /// cores).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        build_concurrency: Option<u32>,
        /// Times an infrastructure failure (Docker error, failed build) is retried.
        #[arg(long, value_name = "N", default_value_t = 2)]
        retries: u32,
        /// Serve the web viewer while the run goes on, with live updates; it keeps serving
        /// after the run until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// With `--watch`: the address to listen on.
        #[arg(long, requires = "watch", default_value = "127.0.0.1")]
        host: IpAddr,
        /// With `--watch`: the port (default 8080, or the next free one; 0 for any free one).
        #[arg(long, requires = "watch")]
        port: Option<u16>,
        /// Put the run in `<DIR>/<name>` instead of the pipeline's `output_dir`.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Exit 6 unless every group's mean reward reaches X (with the pipeline's `[[expect]]`).
        #[arg(long, value_name = "X")]
        fail_under: Option<f64>,
        /// Run exactly what the run's lock file says: fail, running nothing, when a source
        /// resolves differently (a moved tag or branch) or the trials differ.
        #[arg(long)]
        locked: bool,
        /// Run only part I of N of the trials (split by a stable key, the same on every
        /// machine), into `<run dir>-shard-I-of-N`; `helios merge` combines the parts.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<Shard>,
    },
    /// Combine runs of one plan (the shards of `apply --shard I/N`) into one run, after
    /// checking that their lock files describe the same plan.
    Merge {
        /// The runs to merge (shard run directories).
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        /// Where the merged run goes (default: beside the first run, named as the
        /// pipeline's run directory is). A run merged into before is added to.
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
    },
    /// Task sources: list a registry's datasets, fetch one into the cache, check the cache.
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
    },
    /// A run's statistics (mean reward with 95% intervals, pass rate, pass@k) as a table,
    /// Markdown, JSON, CSV or JUnit XML; or a comparison of two runs or two groups.
    Report {
        /// The run directory (`<output_dir>/<name>`).
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = report::ReportFormat::Terminal)]
        format: report::ReportFormat,
        /// Compare with another run: differences are COMPARE − RUN_DIR, per group.
        #[arg(long, value_name = "RUN_B", conflicts_with = "groups")]
        compare: Option<PathBuf>,
        /// Compare two groups of the run, each picked by `agent=…,model=…,stage=…`.
        #[arg(long, num_args = 2, value_names = ["GROUP_A", "GROUP_B"])]
        groups: Option<Vec<String>>,
        /// Exit 6 unless every group's mean reward reaches X (with the run's `[[expect]]`).
        #[arg(long, value_name = "X")]
        fail_under: Option<f64>,
    },
    /// Grade a finished run again (a fixed test, a new `tests/`): the verifier runs on the
    /// artifacts each trial kept, and the results are written as a new run beside the old.
    /// Tasks verified in an environment of their own (`environment_mode = "separate"`).
    Regrade {
        /// The finished run (`<output_dir>/<name>`).
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
        /// A directory of tasks to grade with, by name; the others as the run found them.
        #[arg(long, value_name = "DIR")]
        tasks: Option<PathBuf>,
        /// Where the new run goes (default: `RUN_DIR-regraded`).
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Verifications at once.
        #[arg(long, value_name = "N", default_value_t = 4)]
        concurrency: usize,
        /// Add a label to every container and image (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Run an agent on tasks: one task directory (printing what the agent does as it
    /// happens), or a glob, a registry dataset or a git repository, with any agent, as the
    /// pipeline `--save` writes (run through `apply`).
    Run {
        /// A task directory, a directory or glob of tasks, `NAME@VERSION` of a registry, or
        /// a git repository URL.
        #[arg(value_name = "TASK_DIR|GLOB|NAME@VERSION|GIT_URL")]
        task: PathBuf,
        /// `oracle`, `nop`, `terminal`, `computer-use`, `command`, or a catalog agent
        /// (`claude-code`, `codex`, ...) (default: `terminal` with `--model`, `oracle`
        /// without).
        #[arg(long, short = 'a')]
        agent: Option<String>,
        /// The model: `provider/model`, `claude-*`, `gpt-*`, `gemini-*`, or `scripted`.
        #[arg(long, short = 'm')]
        model: Option<String>,
        /// Trials per task (runs as a pipeline).
        #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        attempts: Option<u32>,
        /// Trials at once (runs as a pipeline).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        concurrency: Option<u32>,
        /// Write the pipeline this run is to FILE, and run it: `helios apply FILE` runs it
        /// again, finding done what is done.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        /// With `--save`: write the pipeline and print its plan, running nothing.
        #[arg(long, requires = "save")]
        dry_run: bool,
        /// The pipeline's name (results in `<output-dir>/<name>`; default `run`).
        #[arg(long, default_value = "run")]
        name: String,
        /// For `NAME@VERSION`: a registry URL or file in Harbor's format (repeatable).
        #[arg(long, value_name = "URL|PATH")]
        registry: Vec<String>,
        /// For a git repository: a commit, tag or branch.
        #[arg(long)]
        rev: Option<String>,
        /// For a git repository: the glob of task directories inside it.
        #[arg(long, value_name = "GLOB")]
        path: Option<String>,
        /// For `--model scripted`: the file of replies.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// For `--agent command`: the command to run.
        #[arg(long)]
        command: Option<String>,
        /// An OpenAI-compatible endpoint for `openai/...` models.
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        /// Where the task runs: `docker`, or `daytona` (needs `DAYTONA_API_KEY`).
        #[arg(long, default_value = "docker")]
        provider: String,
        /// Where results go.
        #[arg(long, value_name = "DIR", default_value = "output")]
        output_dir: PathBuf,
        #[arg(long, default_value_t = 10)]
        max_turns: u32,
        /// Seconds for the whole run.
        #[arg(long, default_value_t = 300.0)]
        max_time: f64,
        /// Seconds for one model turn.
        #[arg(long, default_value_t = 60.0)]
        timeout_per_turn: f64,
        #[arg(long)]
        stop_on_tool_error: bool,
        /// Add a label to the run's container and image (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Serve the web viewer while the run goes on (127.0.0.1, port 8080 or the next
        /// free one); it stops with the run.
        #[arg(long)]
        watch: bool,
    },
    /// Browse results in a web browser: runs, each run's matrix, trials and trajectories.
    View {
        /// A run directory or a directory of runs (a pipeline's `output_dir`).
        #[arg(value_name = "RESULTS_DIR", default_value = "runs")]
        results: PathBuf,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// The port (default 8080, or the next free one; 0 for any free one).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Remove every container and image helios created (all runs, or those with a label);
    /// with `--provider daytona` or `all`, its Daytona sandboxes too.
    Gc {
        /// Only what carries this label (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Where to clean up: a provider (`docker`, `daytona` with `DAYTONA_API_KEY`) or
        /// `all`.
        #[arg(long, default_value = "docker", value_parser = parse_gc_providers)]
        provider: GcProviders,
    },
    /// Print the JSON Schema of a manifest kind.
    Schema {
        #[arg(value_enum)]
        kind: SchemaArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// The datasets of the registries (default: Harbor's registry).
    List {
        /// A registry URL or file in Harbor's format (repeatable).
        #[arg(long, value_name = "URL|PATH")]
        registry: Vec<String>,
    },
    /// Fetch a source into the cache (`$HELIOS_CACHE`): `NAME@VERSION` of a registry, or a
    /// git repository (URL or path) with `--rev` and `--path`.
    Pull {
        #[arg(value_name = "SPEC")]
        spec: String,
        /// A registry URL or file in Harbor's format (repeatable).
        #[arg(long, value_name = "URL|PATH")]
        registry: Vec<String>,
        /// For a git repository: a commit, tag or branch (default `HEAD`).
        #[arg(long)]
        rev: Option<String>,
        /// For a git repository: the glob of task directories inside it (default: all).
        #[arg(long, value_name = "GLOB")]
        path: Option<String>,
    },
    /// Check every cache entry (task files against their tree ids, mirrors with `git
    /// fsck`); remove damaged ones so they are fetched again.
    Verify,
}

/// The providers `helios gc` cleans up: one by name, or `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcProviders(Vec<Provider>);

fn parse_gc_providers(text: &str) -> Result<GcProviders, String> {
    if text == "all" {
        return Ok(GcProviders(Provider::all().collect()));
    }
    Provider::from_name(text)
        .map(|provider| GcProviders(vec![provider]))
        .ok_or_else(|| {
            format!(
                "no provider `{text}`: one of {}, or `all`",
                Provider::ALL.map(|p| format!("`{p}`")).join(", ")
            )
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.starts_with("helios.") => {
            Ok((key.to_string(), value.to_string()))
        }
        Some((key, _)) if key.starts_with("helios.") => {
            Err("labels starting with `helios.` are reserved".into())
        }
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    text.parse::<Shard>().map_err(|e| e.to_string())
}

fn parse_resources(text: &str) -> Result<crate::runner::ResourcePolicy, String> {
    use crate::runner::ResourcePolicy;
    match text {
        "adaptive" => Ok(ResourcePolicy::Adaptive),
        "reserve" => Ok(ResourcePolicy::Reserve),
        "none" => Ok(ResourcePolicy::None),
        _ => Err(format!(
            "`{text}` is not a policy: adaptive, reserve or none"
        )),
    }
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(cpus) if cpus.is_finite() && cpus > 0.0 => Ok(cpus),
        _ => Err(format!(
            "`{text}` is not a number of CPUs above 0 (such as 2 or 1.5)"
        )),
    }
}

fn parse_memory(text: &str) -> Result<u64, String> {
    crate::manifest::size::parse_size(text)
        .map(|size| size.megabytes())
        .filter(|&mb| mb > 0)
        .ok_or_else(|| format!("`{text}` is not a size (such as 512M, 8G)"))
}

impl Format {
    fn or_json(self, json: bool) -> Format {
        if json { Format::Json } else { self }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    fn enabled(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaArg {
    /// `task.toml`
    Task,
    /// pipeline files
    Pipeline,
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitStatus {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Success
            };
        }
    };
    run(cli)
}

/// Runs a parsed command line on the process's one tokio runtime.
pub fn run(cli: Cli) -> ExitStatus {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            failure::print(&error);
            return ExitStatus::Infrastructure;
        }
    };
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitStatus {
    let styled = cli.color.enabled();
    match cli.command {
        Command::Validate {
            paths,
            format,
            json,
            deny_warnings,
        } => validate::run(&paths, format.or_json(json), deny_warnings, styled),
        Command::Plan {
            pipeline,
            format,
            json,
            write_lock,
            output_dir,
            shard,
        } => {
            plan::run(
                &pipeline,
                format.or_json(json),
                write_lock,
                output_dir.as_deref(),
                shard,
                styled,
            )
            .await
        }
        Command::Apply {
            pipeline,
            rebuild,
            labels,
            concurrency,
            cpus,
            resources,
            memory,
            build_concurrency,
            retries,
            watch,
            host,
            port,
            output_dir,
            fail_under,
            locked,
            shard,
        } => {
            apply::run(apply::ApplyArgs {
                locked,
                shard,
                pipeline: &pipeline,
                rebuild,
                labels: labels.into_iter().collect(),
                concurrency: concurrency.map(|c| c as usize),
                cpus,
                resources,
                memory_mb: memory,
                build_concurrency: build_concurrency.map(|b| b as usize),
                retries,
                styled,
                watch: watch.then_some(crate::view::ViewOptions {
                    root: PathBuf::new(),
                    host,
                    port,
                }),
                output_dir: output_dir.as_deref(),
                fail_under,
            })
            .await
        }
        Command::Merge { runs, into } => merge::run(&runs, into.as_deref()),
        Command::Report {
            run_dir,
            format,
            compare,
            groups,
            fail_under,
        } => report::run(report::ReportArgs {
            run_dir,
            format,
            compare,
            groups,
            fail_under,
        }),
        Command::Regrade {
            run_dir,
            tasks,
            output,
            concurrency,
            labels,
        } => {
            regrade::run(regrade::RegradeArgs {
                run_dir,
                tasks,
                output,
                concurrency,
                labels: labels.into_iter().collect(),
            })
            .await
        }
        Command::Run {
            task,
            agent,
            model,
            attempts,
            concurrency,
            save,
            dry_run,
            name,
            registry,
            rev,
            path,
            script,
            command,
            base_url,
            provider,
            output_dir,
            max_turns,
            max_time,
            timeout_per_turn,
            stop_on_tool_error,
            labels,
            watch,
        } => {
            run::run(run::RunArgs {
                task,
                agent,
                model,
                pipeline: run::PipelineArgs {
                    attempts,
                    concurrency,
                    save,
                    dry_run,
                    name,
                    registries: registry,
                    rev,
                    path,
                },
                script,
                command,
                base_url,
                provider,
                output_dir,
                config: crate::api::RunConfig {
                    max_turns,
                    max_time,
                    timeout_per_turn,
                    stop_on_tool_error,
                    ..Default::default()
                },
                labels,
                watch,
                styled,
            })
            .await
        }
        Command::View {
            results,
            host,
            port,
        } => {
            view::run(view::ViewArgs {
                root: results,
                host,
                port,
            })
            .await
        }
        Command::Gc { labels, provider } => {
            let filters: Vec<String> = labels
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            gc::run(&filters, &provider.0).await
        }
        Command::Schema { kind } => schema::run(kind),
        Command::Datasets { command } => match command {
            DatasetsCommand::List { registry } => datasets::list(registry),
            DatasetsCommand::Pull {
                spec,
                registry,
                rev,
                path,
            } => datasets::pull(&spec, registry, rev, path),
            DatasetsCommand::Verify => datasets::verify(),
        },
    }
}
