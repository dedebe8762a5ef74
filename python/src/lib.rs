//! `helios._native`: the Rust side of the Python package. It starts runs of
//! [`helios::AgentRunner`], [`helios::Runner`] and pipelines (a library [`Session`] with a
//! [`PythonStream`] as its reporter) on one shared tokio runtime and hands Python their
//! events as they happen, results and errors (classed by [`ErrorClass`]) as JSON text, which `helios/_runner.py` turns
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
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

use helios::RunnerError;
use helios::api::{Agent, AgentRunner, Message, Role, RunConfig, RunResult, RunStatus, Runner};
use helios::api::{Classify, ErrorClass, LockProblem, PlanOptions, Session, SessionError, Verdict};
use helios::events::{Reporter, RunEvent};
use helios::runner::{ApplyOptions, RunOutcome};

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

/// A Python exception to raise: a class of `helios.errors` and its message.
#[derive(Debug, Clone)]
struct Failure {
    class: ErrorClass,
    message: String,
    /// The pre-flight problems behind it (JSON objects), for the exception's `problems`.
    problems: Vec<Value>,
}

/// The class of `helios.errors` that stands for each class of the library's errors.
fn exception_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Task => "TaskError",
        ErrorClass::Environment => "EnvironmentError",
        ErrorClass::Agent => "AgentError",
        ErrorClass::Helios => "HeliosError",
    }
}

impl Failure {
    fn new(class: ErrorClass, message: impl Into<String>) -> Failure {
        let message: String = message.into();
        Failure {
            class,
            message: message.trim_end().to_string(),
            problems: Vec::new(),
        }
    }

    /// With the typed problems behind `error`, if any.
    fn with_problems_of<E: Classify + ?Sized>(mut self, error: &E) -> Failure {
        self.problems = error
            .problems()
            .iter()
            .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
            .collect();
        self
    }

    /// An error of the library, as its class says, with the message the command line
    /// prints (its causes included).
    fn of<E: Classify + std::error::Error + 'static>(error: &E) -> Failure {
        Failure::new(error.class(), helios::api::error_chain(error)).with_problems_of(error)
    }

    fn into_py(self) -> PyErr {
        Python::attach(|py| {
            let made = py
                .import("helios.errors")
                .and_then(|errors| errors.getattr(exception_name(self.class)))
                .and_then(|class| class.call1((self.message.clone(),)))
                .and_then(|instance| {
                    let problems = serde_json::to_string(&self.problems).unwrap_or_default();
                    let problems = py.import("json")?.call_method1("loads", (problems,))?;
                    instance.setattr("problems", problems)?;
                    Ok(instance)
                });
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
    Failure::new(error.class(), error.message()).with_problems_of(error)
}

fn parse_error(error: serde_json::Error) -> Failure {
    Failure::new(
        ErrorClass::Helios,
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
                        ErrorClass::Agent,
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

impl NativeRun {
    /// The run that `driver` carries out, telling its events to `receiver`'s sender.
    fn new(
        driver: tokio::task::JoinHandle<Result<String, Failure>>,
        receiver: UnboundedReceiver<String>,
        cancel: CancellationToken,
        viewer_url: Option<String>,
        run_id: String,
    ) -> NativeRun {
        let outcome = async move {
            driver
                .await
                .unwrap_or_else(|_| Err(Failure::of(&RunnerError::NoResult)))
        }
        .boxed()
        .shared();
        NativeRun {
            events: Arc::new(Mutex::new(receiver)),
            outcome,
            cancel,
            viewer_url,
            run_id,
        }
    }
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
    Ok(NativeRun::new(driver, receiver, cancel, viewer_url, run_id))
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

    /// The next event as JSON, or `None` when the run has no more, waiting without the
    /// GIL (Ctrl-C cancels the run).
    fn next_event_blocking(&self, py: Python<'_>) -> PyResult<Option<String>> {
        block_until(py, &self.outcome, &self.cancel, || {
            let events = self.events.clone();
            // Receiving is cancel-safe: a wait that timed out loses no event.
            async move { events.lock().await.recv().await }
        })
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

/// Waits for `outcome` with the GIL released (Ctrl-C cancels the run).
fn block(py: Python<'_>, outcome: Outcome, cancel: &CancellationToken) -> PyResult<String> {
    block_until(py, &outcome, cancel, || outcome.clone())?.map_err(Failure::into_py)
}

/// Waits for what `wait` makes with the GIL released, looking for signals (Ctrl-C) a few
/// times a second: on one, the run is cancelled and its cleanup (`outcome`) awaited
/// before the signal's exception is raised. `wait`'s future must be safe to drop and make
/// again.
fn block_until<T, F>(
    py: Python<'_>,
    outcome: &Outcome,
    cancel: &CancellationToken,
    mut wait: impl FnMut() -> F,
) -> PyResult<T>
where
    T: Send,
    F: Future<Output = T> + Send,
{
    let runtime = runtime();
    loop {
        let waiting = wait();
        let done = py.detach(|| {
            runtime
                .block_on(async { tokio::time::timeout(Duration::from_millis(200), waiting).await })
        });
        match done {
            Ok(value) => return Ok(value),
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

/// Waits for a run to open (its pipeline loaded, engines reached, dead runs reaped,
/// prebuilt images pulled) with the GIL released, looking for signals (Ctrl-C) a few times
/// a second: on one, the opening is abandoned (what it made so far carries the run's
/// labels, for the next run to reap) and the signal's exception raised.
fn open_interruptibly(
    py: Python<'_>,
    opening: impl Future<Output = Result<NativeRun, Failure>> + Send + 'static,
) -> PyResult<NativeRun> {
    let runtime = runtime();
    let mut handle = runtime.spawn(opening);
    loop {
        let done = py.detach(|| {
            runtime.block_on(async {
                tokio::time::timeout(Duration::from_millis(200), &mut handle).await
            })
        });
        match done {
            Ok(joined) => {
                return joined
                    .unwrap_or_else(|_| Err(Failure::of(&RunnerError::NoResult)))
                    .map_err(Failure::into_py);
            }
            Err(_elapsed) => {
                if let Err(signal) = py.check_signals() {
                    handle.abort();
                    let _ = py.detach(|| runtime.block_on(&mut handle));
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
    let run = open_interruptibly(py, start_run(spec))?;
    block(py, run.outcome.clone(), &run.cancel)
}

/// Loads and plans a pipeline, as every front end does; an invalid one is a `TaskError`
/// with the diagnostics.
fn session(path: &Path, options: &PlanOptions) -> Result<(Session, Vec<String>), Failure> {
    let error = match Session::load(path, &Default::default(), options) {
        Ok((session, warnings)) => {
            // Each warning as `helios apply` prints it (file, line, caret and help), apart.
            let rendered = warnings
                .diagnostics
                .iter()
                .map(|diagnostic| {
                    let one = helios::diagnostic::Report {
                        diagnostics: vec![diagnostic.clone()],
                        sources: warnings.sources.clone(),
                    };
                    helios::diagnostic::render::human(&one, false)
                        .trim_end()
                        .to_string()
                })
                .collect();
            return Ok((session, rendered));
        }
        Err(error) => error,
    };
    let message = match &error {
        SessionError::Invalid(e) => format!(
            "{}`{}` is not valid; nothing was run",
            helios::diagnostic::render::human(&e.report, false),
            path.display()
        ),
        SessionError::Plan(e) => format!(
            "cannot plan `{}`: {}",
            path.display(),
            helios::api::error_chain(e)
        ),
    };
    Err(Failure::new(error.class(), message))
}

/// Why `locked=True` ran nothing, as `helios apply --locked` says it.
fn lock_failure(problem: &LockProblem) -> Failure {
    let mut message = String::new();
    if let LockProblem::Differs(mismatches) = problem {
        for mismatch in mismatches {
            message.push_str(mismatch);
            message.push('\n');
        }
    }
    message.push_str(&format!("`locked=True`: {problem}; nothing was run"));
    if let LockProblem::Missing(_) = problem {
        message.push_str(" (hint: `helios plan --write-lock` writes one)");
    }
    Failure::new(problem.class(), message)
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

/// `helios plan PIPELINE --format json`: the same document, in the same shape.
#[pyfunction]
#[pyo3(signature = (path, output_dir=None))]
fn plan(py: Python<'_>, path: PathBuf, output_dir: Option<String>) -> PyResult<String> {
    let options = PlanOptions {
        output_dir: output_dir.map(PathBuf::from),
        ..PlanOptions::default()
    };
    let (session, _warnings) = session(&path, &options).map_err(Failure::into_py)?;
    Ok(py.detach(|| runtime().block_on(helios::api::plan_doc::plan_json(&session))))
}

/// What `helios.apply` asks for: `helios apply`'s pipeline and options.
struct ApplyRequest {
    pipeline: PathBuf,
    planning: PlanOptions,
    locked: bool,
    labels: BTreeMap<String, String>,
    /// Whether Python reads the events as they happen (else only the result's list).
    live: bool,
}

impl ApplyRequest {
    fn parse(spec: &str) -> Result<ApplyRequest, Failure> {
        let spec: Value = serde_json::from_str(spec).map_err(parse_error)?;
        Ok(ApplyRequest {
            pipeline: PathBuf::from(text(&spec, "pipeline").unwrap_or_default()),
            planning: PlanOptions {
                output_dir: text(&spec, "output_dir").map(PathBuf::from),
                fail_under: spec.get("fail_under").and_then(Value::as_f64),
                shard: None,
            },
            locked: spec["locked"].as_bool().unwrap_or(false),
            labels: labels(&spec),
            live: spec["live"].as_bool().unwrap_or(true),
        })
    }
}

/// A Python stream is a reporter: each event, as JSON, goes to Python as it happens, and
/// is kept for the result's `events`.
struct PythonStream {
    /// `None` when Python reads only the result: nothing is kept twice.
    live: Option<UnboundedSender<String>>,
    kept: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Reporter for PythonStream {
    fn event(&mut self, event: &RunEvent) {
        let value = serde_json::to_value(event).unwrap_or(Value::Null);
        // Python may have stopped reading: the result still has every event.
        if let Some(live) = &self.live {
            let _ = live.send(value.to_string());
        }
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(value);
    }
}

/// Loads, plans, checks (the lock file too, when asked) and opens the pipeline as
/// `helios apply` does, then runs it with a [`PythonStream`] as its reporter.
async fn start_apply(spec: String) -> Result<NativeRun, Failure> {
    let request = ApplyRequest::parse(&spec)?;
    let (session, warnings) = session(&request.pipeline, &request.planning)?;
    if request.locked {
        session.check_lock().map_err(|p| lock_failure(&p))?;
    }
    let options = ApplyOptions {
        labels: request.labels,
        ..ApplyOptions::default()
    };
    let open = session.open(options).await.map_err(|e| Failure::of(&e))?;
    let run_id = open
        .run_dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (live, receiver) = unbounded_channel();
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stream = PythonStream {
        live: request.live.then_some(live),
        kept: kept.clone(),
    };
    let cancel = CancellationToken::new();
    // A cancelled run says so in its events, as `helios apply` does on Ctrl-C; the handle
    // is weak, so that the stream still ends with the run.
    let say = open.events();
    let cancelled = cancel.clone();
    tokio::spawn(async move {
        cancelled.cancelled().await;
        if let Some(events) = say.upgrade() {
            let _ = events.send(RunEvent::Cancelling);
        }
    });
    let token = cancel.clone();
    let driver = tokio::spawn(async move {
        let outcome = open
            .execute(vec![Box::new(stream)], token)
            .await
            .map_err(|e| Failure::of(&e))?;
        let events = std::mem::take(&mut *kept.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(apply_json(&outcome, events, warnings))
    });
    Ok(NativeRun::new(driver, receiver, cancel, None, run_id))
}

/// A finished `apply` as JSON: its trials, summary (with the expectations checked), verdict
/// and every event.
fn apply_json(outcome: &RunOutcome, events: Vec<Value>, warnings: Vec<String>) -> String {
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
    json!({
        "run_dir": outcome.run_dir,
        "trials": trials,
        "summary": outcome.summary,
        "ran": outcome.ran,
        "already_done": outcome.already_done,
        "not_started": outcome.not_started,
        "spent_usd": outcome.spent_usd,
        "cancelled": outcome.cancelled,
        "expectations_met": outcome.summary.expectations_met(),
        "verdict": Verdict::of_run(outcome).as_str(),
        "events": events,
        "warnings": warnings,
    })
    .to_string()
}

/// Starts `helios apply`; it comes to a [`NativeRun`] once the run is open.
#[pyfunction]
fn start_apply_async(spec: String, notify: RawFd) -> Pending {
    Pending::spawn(
        async move { start_apply(spec).await.map(Ready::Run) },
        notify,
    )
}

/// Starts `helios apply`, waiting without the GIL until the run is open.
#[pyfunction]
fn start_apply_blocking(py: Python<'_>, spec: String) -> PyResult<NativeRun> {
    open_interruptibly(py, start_apply(spec))
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NativeRun>()?;
    module.add_class::<Pending>()?;
    module.add_function(wrap_pyfunction!(start, module)?)?;
    module.add_function(wrap_pyfunction!(run_blocking, module)?)?;
    module.add_function(wrap_pyfunction!(validate, module)?)?;
    module.add_function(wrap_pyfunction!(plan, module)?)?;
    module.add_function(wrap_pyfunction!(start_apply_async, module)?)?;
    module.add_function(wrap_pyfunction!(start_apply_blocking, module)?)?;
    module.add("DEFAULT_AGENT_MODEL", helios::api::DEFAULT_AGENT_MODEL)?;
    module.add("EVENT_KINDS", RunEvent::KINDS.to_vec())?;
    Ok(())
}
