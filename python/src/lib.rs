//! `helios._native`: the Rust side of the Python package. It starts runs of
//! [`helios::AgentRunner`] and [`helios::Runner`] on one shared tokio runtime and hands
//! Python their events, results and errors as JSON text, which `helios/_runner.py` turns
//! into dataclasses. Nothing here holds the GIL while a run works, and the engine's
//! threads never call into Python: an awaitable is a [`Pending`] whose work runs on the
//! tokio runtime and which, when done, writes a byte to a pipe the asyncio loop watches
//! (so no thread of ours touches the interpreter, even while it shuts down); the
//! blocking calls release the GIL.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use pyo3::prelude::*;
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_util::sync::CancellationToken;

use helios::RunnerError;
use helios::api::{Agent, AgentRunner, Message, Role, RunConfig, RunResult, RunStatus, Runner};
use helios::api::{PlanOptions, Session, SessionError};
use helios::events::RunEvent;
use helios::runner::{ApplyOptions, RunError};

/// The one runtime every run of this process works on.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("helios")
            .build()
            .expect("a tokio runtime")
    })
}

/// What a [`Pending`] comes to.
enum Ready {
    Text(Option<String>),
    Run(NativeRun),
}

type Slot = Arc<std::sync::Mutex<Option<Result<Ready, Failure>>>>;

/// Work going on in the runtime, for Python to await: `helios._runner` watches the
/// pipe whose write end it gave, and calls [`Pending::take`] once a byte arrives.
#[pyclass(module = "helios._native", frozen)]
struct Pending {
    slot: Slot,
}

impl Pending {
    /// Runs `work` on the runtime; when it is done, writes to `notify` and closes it.
    fn spawn<F>(work: F, notify: RawFd) -> Pending
    where
        F: Future<Output = Result<Ready, Failure>> + Send + 'static,
    {
        // SAFETY: Python hands over the write end of a pipe it made for this and never
        // uses or closes it afterwards; this `File` is its only owner.
        let mut pipe = unsafe { std::fs::File::from_raw_fd(notify) };
        let slot: Slot = Arc::default();
        let filled = slot.clone();
        runtime().spawn(async move {
            let outcome = work.await;
            *filled.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
            // A reader gone (its await was cancelled) is no one's problem.
            let _ = pipe.write_all(b"!");
        });
        Pending { slot }
    }
}

#[pymethods]
impl Pending {
    /// The value once the pipe said it is ready (`None` before), or its exception.
    fn take(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let taken = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            None => Ok(py.None()),
            Some(Err(failure)) => Err(failure.into_py()),
            Some(Ok(Ready::Text(text))) => Ok(text.into_pyobject(py)?.into_any().unbind()),
            Some(Ok(Ready::Run(run))) => Ok(Py::new(py, run)?.into_any()),
        }
    }
}

/// A Python exception to raise: the name of a class of `helios.errors` and its message.
#[derive(Debug, Clone)]
struct Failure {
    class: &'static str,
    message: String,
}

impl Failure {
    fn new(class: &'static str, message: impl Into<String>) -> Failure {
        let message: String = message.into();
        Failure {
            class,
            message: message.trim_end().to_string(),
        }
    }

    fn into_py(self) -> PyErr {
        Python::attach(|py| {
            let made = py
                .import("helios.errors")
                .and_then(|errors| errors.getattr(self.class))
                .and_then(|class| class.call1((self.message.clone(),)));
            match made {
                Ok(instance) => PyErr::from_value(instance),
                Err(error) => error,
            }
        })
    }
}

/// The exception for an error that stopped a run from starting or finishing, with the
/// message the command line prints.
fn failure(error: &RunnerError) -> Failure {
    let class = match error {
        RunnerError::InvalidTask(_) | RunnerError::Plan(_) | RunnerError::Sandbox(_) => "TaskError",
        RunnerError::UnknownProvider(_) => "EnvironmentError",
        RunnerError::UnknownAgent(_) | RunnerError::NeedsModel(_) => "AgentError",
        RunnerError::Run(run) => run_error_class(run),
        _ => "HeliosError",
    };
    Failure::new(class, error.message())
}

/// The exception class of a run's error, by its kind: a provider's problems (its engine,
/// its credentials) are the environment's; the other checks before a run are the agent's
/// (a missing model key, a prompt that does not render).
fn run_error_class(error: &RunError) -> &'static str {
    match error {
        RunError::Env(_) | RunError::Credentials(_) => "EnvironmentError",
        RunError::Write { .. } => "HeliosError",
        RunError::Preflight(_) => "AgentError",
    }
}

fn parse_error(error: serde_json::Error) -> Failure {
    Failure::new(
        "HeliosError",
        format!("a malformed request from Python: {error}"),
    )
}

/// `RunConfig` as Python's dataclass sends it.
fn config(spec: &Value) -> RunConfig {
    let mut config = RunConfig::default();
    let Some(given) = spec.get("config") else {
        return config;
    };
    if let Some(n) = given.get("max_turns").and_then(Value::as_u64) {
        config.max_turns = n as u32;
    }
    if let Some(n) = given.get("max_time").and_then(Value::as_f64) {
        config.max_time = n;
    }
    if let Some(n) = given.get("timeout_per_turn").and_then(Value::as_f64) {
        config.timeout_per_turn = n;
    }
    if let Some(b) = given.get("stop_on_tool_error").and_then(Value::as_bool) {
        config.stop_on_tool_error = b;
    }
    if let Some(b) = given.get("verbose").and_then(Value::as_bool) {
        config.verbose = b;
    }
    if let Some(b) = given.get("trace_enabled").and_then(Value::as_bool) {
        config.trace_enabled = b;
    }
    config.run_id = given
        .get("run_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(Value::Object(map)) = given.get("metadata") {
        config.metadata = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    config
}

fn text(spec: &Value, key: &str) -> Option<String> {
    spec.get(key).and_then(Value::as_str).map(str::to_string)
}

fn labels(spec: &Value) -> BTreeMap<String, String> {
    spec.get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A run Python asked for: a task (`AgentRunner`) or a prompt (`Runner`).
enum Request {
    Task(Box<AgentRunner>),
    Prompt(Box<PromptRequest>),
}

/// The arguments of [`Runner::stream`].
struct PromptRequest {
    runner: Runner,
    agent: Agent,
    input: String,
    config: RunConfig,
    history: Vec<Message>,
}

impl Request {
    fn parse(spec: &str) -> Result<Request, Failure> {
        let spec: Value = serde_json::from_str(spec).map_err(parse_error)?;
        let provider_name = text(&spec, "provider").unwrap_or_else(|| "docker".into());
        let output_dir = text(&spec, "output_dir").unwrap_or_else(|| "output".into());
        if let Some(prompt) = spec.get("prompt") {
            let agent_spec = &prompt["agent"];
            let mut agent = Agent::new(
                text(agent_spec, "name").unwrap_or_default(),
                text(agent_spec, "instructions").unwrap_or_default(),
            );
            if let Some(model) = text(agent_spec, "model") {
                agent = agent.model(model);
            }
            if let Some(script) = text(agent_spec, "script") {
                agent = agent.script(script);
            }
            if let Some(url) = text(agent_spec, "base_url") {
                agent = agent.base_url(url);
            }
            let mut history = Vec::new();
            for message in prompt["history"].as_array().into_iter().flatten() {
                let role = text(message, "role").unwrap_or_default();
                let role = Role::parse(&role).ok_or_else(|| {
                    Failure::new(
                        "AgentError",
                        format!(
                            "a history message has the role `{role}` (hint: use `user` or `assistant`)"
                        ),
                    )
                })?;
                let content = text(message, "content").unwrap_or_default();
                history.push(Message { role, content });
            }
            let mut runner = Runner::new().output_dir(output_dir).provider(provider_name);
            for (key, value) in labels(&spec) {
                runner = runner.label(key, value);
            }
            let request = Request::Prompt(Box::new(PromptRequest {
                runner,
                agent,
                input: text(prompt, "input").unwrap_or_default(),
                config: config(&spec),
                history,
            }));
            return Ok(request);
        }
        let task = text(&spec, "task_path").unwrap_or_default();
        let mut runner = AgentRunner::new(helios::api::task_dir(Path::new(&task)))
            .provider(provider_name)
            .output_dir(output_dir)
            .watch(spec["watch"].as_bool().unwrap_or(false))
            .config(config(&spec));
        if let Some(agent) = text(&spec, "agent") {
            runner = runner.agent(agent);
        }
        if let Some(model) = text(&spec, "model") {
            runner = runner.model(model);
        }
        if let Some(script) = text(&spec, "script") {
            runner = runner.script(script);
        }
        if let Some(command) = text(&spec, "command") {
            runner = runner.command(command);
        }
        if let Some(url) = text(&spec, "base_url") {
            runner = runner.base_url(url);
        }
        if let Some(path) = text(&spec, "system_prompt") {
            runner = runner.system_prompt(path);
        }
        if let Some(path) = text(&spec, "user_prompt") {
            runner = runner.user_prompt(path);
        }
        if let Some(Value::Object(vars)) = spec.get("variables") {
            for (name, value) in vars {
                runner = runner.variable(name.clone(), value.clone());
            }
        }
        for (key, value) in labels(&spec) {
            runner = runner.label(key, value);
        }
        Ok(Request::Task(Box::new(runner)))
    }

    async fn stream(&self) -> Result<helios::RunStream, RunnerError> {
        match self {
            Request::Task(runner) => runner.stream().await,
            Request::Prompt(p) => {
                p.runner
                    .stream(&p.agent, &p.input, &p.config, &p.history)
                    .await
            }
        }
    }
}

fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "QUEUED",
        RunStatus::Running => "RUNNING",
        RunStatus::Completed => "COMPLETED",
        RunStatus::Failed => "FAILED",
        RunStatus::TimedOut => "TIMED_OUT",
        RunStatus::Cancelled => "CANCELLED",
    }
}

fn result_json(result: &RunResult) -> String {
    let steps: Vec<Value> = result
        .trajectory
        .iter()
        .map(|s| {
            json!({
                "tool_name": s.tool_name,
                "tool_input": s.tool_input,
                "tool_output": s.tool_output,
            })
        })
        .collect();
    json!({
        "run_id": result.run_id,
        "status": status_name(result.status),
        "success": result.success,
        "reward": result.reward,
        "rewards": result.rewards,
        "duration": result.duration.as_secs_f64(),
        "trajectory": steps,
        "turn_count": result.turn_count,
        "error": result.error.as_ref().map(|e| e.message.clone()),
        "error_kind": result.error.as_ref().map(|e| e.kind),
        "output_dir": result.output_dir,
        "usage": result.usage,
        "cost_usd": result.cost_usd,
        "metadata": result.metadata,
        "final_output": result.final_output,
        "steps": result.steps,
    })
    .to_string()
}

type Outcome = Shared<BoxFuture<'static, Result<String, Failure>>>;

/// A run in progress, as Python holds it: its events one by one, its result (which may be
/// awaited any number of times) and a way to cancel it. Dropping it cancels the run.
#[pyclass(module = "helios._native", frozen)]
struct NativeRun {
    events: Arc<Mutex<UnboundedReceiver<String>>>,
    outcome: Outcome,
    cancel: CancellationToken,
    #[pyo3(get)]
    viewer_url: Option<String>,
    #[pyo3(get)]
    run_id: String,
}

impl Drop for NativeRun {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts the run and a task that passes its events on and waits for its result.
async fn start_run(spec: String) -> Result<NativeRun, Failure> {
    let request = Request::parse(&spec)?;
    let mut stream = request.stream().await.map_err(|e| failure(&e))?;
    let (sender, receiver) = unbounded_channel();
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let viewer_url = stream.viewer_url().map(str::to_string);
    let run_id = stream.context().run_id.clone();
    let driver = tokio::spawn(async move {
        let mut cancelled = false;
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(event) => {
                        let _ = sender.send(event_json(&event));
                    }
                    None => break,
                },
                () = token.cancelled(), if !cancelled => {
                    stream.cancel();
                    cancelled = true;
                }
            }
        }
        drop(sender);
        stream
            .result()
            .await
            .map(|r| result_json(&r))
            .map_err(|e| failure(&e))
    });
    let outcome = async move {
        driver.await.unwrap_or_else(|_| {
            Err(Failure::new(
                "HeliosError",
                "the run ended without a result",
            ))
        })
    }
    .boxed()
    .shared();
    Ok(NativeRun {
        events: Arc::new(Mutex::new(receiver)),
        outcome,
        cancel,
        viewer_url,
        run_id,
    })
}

fn event_json(event: &RunEvent) -> String {
    serde_json::to_string(event).unwrap_or_else(|_| "{\"event\": \"unknown\"}".into())
}

#[pymethods]
impl NativeRun {
    /// The next event as JSON, or `None` when the run has no more.
    fn next_event(&self, notify: RawFd) -> Pending {
        let events = self.events.clone();
        Pending::spawn(
            async move { Ok(Ready::Text(events.lock().await.recv().await)) },
            notify,
        )
    }

    /// The result as JSON, once the run is over (its container removed).
    fn result(&self, notify: RawFd) -> Pending {
        let outcome = self.outcome.clone();
        Pending::spawn(
            async move { outcome.await.map(|text| Ready::Text(Some(text))) },
            notify,
        )
    }

    /// The result as JSON, waiting without the GIL (Ctrl-C cancels the run).
    fn result_blocking(&self, py: Python<'_>) -> PyResult<String> {
        block(py, self.outcome.clone(), &self.cancel)
    }

    /// Stops the run: the agent is interrupted, its container removed, the result says
    /// `CANCELLED`.
    fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// Waits for `outcome` with the GIL released, looking for signals (Ctrl-C) a few times a
/// second: on one, the run is cancelled and its cleanup awaited before the signal's
/// exception is raised.
fn block(py: Python<'_>, outcome: Outcome, cancel: &CancellationToken) -> PyResult<String> {
    let runtime = runtime();
    loop {
        let waiting = outcome.clone();
        let done = py.detach(|| {
            runtime
                .block_on(async { tokio::time::timeout(Duration::from_millis(200), waiting).await })
        });
        match done {
            Ok(result) => return result.map_err(Failure::into_py),
            Err(_elapsed) => {
                if let Err(signal) = py.check_signals() {
                    cancel.cancel();
                    let cleanup = outcome.clone();
                    let _ = py.detach(|| runtime.block_on(cleanup));
                    return Err(signal);
                }
            }
        }
    }
}

/// Starts a run described by `spec` (JSON); it comes to a [`NativeRun`].
#[pyfunction]
fn start(spec: String, notify: RawFd) -> Pending {
    Pending::spawn(async move { start_run(spec).await.map(Ready::Run) }, notify)
}

/// Starts a run and waits for it without the GIL; returns the result as JSON.
#[pyfunction]
fn run_blocking(py: Python<'_>, spec: String) -> PyResult<String> {
    let runtime = runtime();
    let run = py
        .detach(|| runtime.block_on(start_run(spec)))
        .map_err(Failure::into_py)?;
    block(py, run.outcome.clone(), &run.cancel)
}

/// Loads and plans a pipeline, as every front end does; an invalid one is a `TaskError`
/// with the diagnostics.
fn session(path: &Path, output_dir: Option<&str>) -> Result<Session, Failure> {
    let options = PlanOptions {
        output_dir: output_dir.map(PathBuf::from),
        ..PlanOptions::default()
    };
    match Session::load(path, &Default::default(), &options) {
        Ok((session, _warnings)) => Ok(session),
        Err(SessionError::Invalid(e)) => Err(Failure::new(
            "TaskError",
            format!(
                "{}`{}` is not valid; nothing was run",
                helios::diagnostic::render::human(&e.report, false),
                path.display()
            ),
        )),
        Err(SessionError::Plan(e)) => Err(Failure::new(
            "TaskError",
            format!(
                "cannot plan `{}`: {}",
                path.display(),
                helios::api::error_chain(&e)
            ),
        )),
    }
}

/// `helios validate PATH`: every diagnostic, as JSON (what `--format json` prints).
#[pyfunction]
fn validate(paths: Vec<PathBuf>) -> String {
    let validation = helios::validate_paths(&paths);
    let report = &validation.report;
    json!({
        "valid": !report.has_errors(),
        "errors": report.diagnostics.iter().filter(|d| d.severity == helios::diagnostic::Severity::Error).count(),
        "warnings": report.warning_count(),
        "files_checked": validation.files_checked,
        "text": helios::diagnostic::render::human(report, false),
        "report": serde_json::from_str::<Value>(&helios::diagnostic::render::json(report, validation.files_checked)).unwrap_or(Value::Null),
    })
    .to_string()
}

/// `helios plan PIPELINE`: the trials and builds, with each trial's state, as JSON.
#[pyfunction]
#[pyo3(signature = (path, output_dir=None))]
fn plan(path: PathBuf, output_dir: Option<String>) -> PyResult<String> {
    let session = session(&path, output_dir.as_deref()).map_err(Failure::into_py)?;
    let plan = session.plan();
    let assessment = helios::plan::status::Assessment::of(plan);
    let trials: Vec<Value> = plan
        .trials
        .iter()
        .zip(&assessment.states)
        .map(|(t, state)| {
            json!({
                "id": t.id.short(),
                "stage": plan.stages[t.stage as usize].name,
                "task": plan.tasks[t.task as usize].name,
                "agent": plan.agents[t.agent as usize].name,
                "model": plan.model_name(t),
                "attempt": t.attempt,
                "state": state,
                "dir": plan.trial_dir(t),
            })
        })
        .collect();
    let totals = assessment.total();
    Ok(json!({
        "pipeline": plan.pipeline,
        "run_dir": plan.run_dir,
        "stages": plan.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "builds": plan.builds.iter().map(|b| b.tag.clone()).collect::<Vec<_>>(),
        "trials": trials,
        "to_run": totals.to_run(),
    })
    .to_string())
}

/// Runs a pipeline as `helios apply` does; the outcome as JSON.
async fn apply_run(
    path: PathBuf,
    output_dir: Option<String>,
    labels: BTreeMap<String, String>,
    cancel: CancellationToken,
) -> Result<String, Failure> {
    let session = session(&path, output_dir.as_deref())?;
    let options = ApplyOptions {
        labels,
        ..ApplyOptions::default()
    };
    let error = |e: RunError| Failure::new(run_error_class(&e), helios::api::error_chain(&e));
    let open = session.open(options).await.map_err(error)?;
    // Every event of the run, in order, for the result's `events`.
    let (events, mut receiver) = unbounded_channel();
    let outcome = open
        .execute(vec![Box::new(events)], cancel)
        .await
        .map_err(error)?;
    let mut said = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        said.push(serde_json::to_value(&event).unwrap_or(Value::Null));
    }
    let trials: Vec<Value> = outcome
        .trials
        .iter()
        .map(|t| {
            let mut result = serde_json::to_value(&t.result).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut result {
                map.insert("dir".into(), json!(t.dir));
                map.insert("ran_now".into(), json!(t.ran_now));
            }
            result
        })
        .collect();
    Ok(json!({
        "run_dir": outcome.run_dir,
        "trials": trials,
        "summary": outcome.summary,
        "ran": outcome.ran,
        "already_done": outcome.already_done,
        "not_started": outcome.not_started,
        "spent_usd": outcome.spent_usd,
        "cancelled": outcome.cancelled,
        "events": said,
    })
    .to_string())
}

/// `helios apply PIPELINE`, waiting without the GIL (Ctrl-C cancels the run).
#[pyfunction]
#[pyo3(signature = (path, output_dir=None, labels=BTreeMap::new()))]
fn apply(
    py: Python<'_>,
    path: PathBuf,
    output_dir: Option<String>,
    labels: BTreeMap<String, String>,
) -> PyResult<String> {
    let cancel = CancellationToken::new();
    let runtime = runtime();
    let outcome = apply_run(path, output_dir, labels, cancel.clone()).boxed();
    let handle = runtime.spawn(outcome);
    let outcome = async move {
        handle.await.unwrap_or_else(|_| {
            Err(Failure::new(
                "HeliosError",
                "the run ended without a result",
            ))
        })
    }
    .boxed()
    .shared();
    block(py, outcome, &cancel)
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NativeRun>()?;
    module.add_class::<Pending>()?;
    module.add_function(wrap_pyfunction!(start, module)?)?;
    module.add_function(wrap_pyfunction!(run_blocking, module)?)?;
    module.add_function(wrap_pyfunction!(validate, module)?)?;
    module.add_function(wrap_pyfunction!(plan, module)?)?;
    module.add_function(wrap_pyfunction!(apply, module)?)?;
    module.add("DEFAULT_AGENT_MODEL", helios::api::DEFAULT_AGENT_MODEL)?;
    Ok(())
}
