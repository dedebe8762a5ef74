"""AgentRunner (one task), Runner and StreamingRunner (an agent on a prompt), and the
values they return. The work is done by the Rust engine (``helios._native``) on its own
threads: nothing here holds the GIL while a run goes on, so runs gathered with
``asyncio.gather`` run side by side.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Mapping

from . import _native
from .errors import TimeoutError

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_AGENT_MODEL",
    "SCRIPTED_MODELS_VARIABLE",
    "Agent",
    "AgentRunner",
    "Event",
    "RunConfig",
    "RunContext",
    "RunResult",
    "RunStatus",
    "RunStream",
    "Runner",
    "Step",
    "StreamingRunner",
    "ToolCall",
]

DEFAULT_MODEL = "gemini/gemini-2.5-computer-use-preview-10-2025"
"""The model of :class:`AgentRunner` when none is given (the reference's default)."""

DEFAULT_AGENT_MODEL: str = _native.DEFAULT_AGENT_MODEL
"""The model of :class:`Agent` when none is given."""

SCRIPTED_MODELS_VARIABLE = "HELIOS_SCRIPTED_MODELS"
"""The environment variable that replaces model ids by the scripted model.

Its value is a comma-separated list of ``MODEL=SCRIPT``; ``*`` stands for any model, and
``{task}`` in SCRIPT for the task directory's name (``prompt`` for a run on a prompt). A
run whose model is listed uses ``scripted`` with that script instead: the examples run
as written, with no network and no key.
"""


def _scripted(model: str | None, task: str) -> tuple[str | None, str | None]:
    """The model and script to use once ``HELIOS_SCRIPTED_MODELS`` is applied."""
    mapping = os.environ.get(SCRIPTED_MODELS_VARIABLE, "").strip()
    if not mapping or model is None or model == "scripted":
        return model, None
    scripts: dict[str, str] = {}
    for entry in mapping.split(","):
        name, sep, script = entry.strip().partition("=")
        if sep and name.strip() and script.strip():
            scripts[name.strip()] = script.strip()
    script = scripts.get(model, scripts.get("*"))
    if script is None:
        return model, None
    return "scripted", script.replace("{task}", task)


class RunStatus(str, enum.Enum):
    """Where a run stands."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    """A time limit ended the run (``max_time``, ``timeout_per_turn``, the task's own)."""

    def __str__(self) -> str:
        return self.value


@dataclass
class RunConfig:
    """How a run behaves; the defaults are the reference's."""

    max_turns: int = 10
    """Most model turns."""
    max_time: float = 300.0
    """Most seconds for the whole run."""
    timeout_per_turn: float = 60.0
    """Most seconds for one model turn."""
    stop_on_tool_error: bool = False
    """End the run at the first failing tool call."""
    verbose: bool = False
    """Print each event to standard error as it happens."""
    trace_enabled: bool = True
    """Keep the trajectory (``RunResult.trajectory`` is read from it)."""
    run_id: str | None = None
    """The run's id; generated from the task (or agent) and the time when ``None``."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Free data kept with the result (JSON values)."""

    def _spec(self) -> dict[str, Any]:
        return {
            "max_turns": self.max_turns,
            "max_time": float(self.max_time),
            "timeout_per_turn": float(self.timeout_per_turn),
            "stop_on_tool_error": self.stop_on_tool_error,
            "verbose": self.verbose,
            "trace_enabled": self.trace_enabled,
            "run_id": self.run_id,
            "metadata": self.metadata,
        }


@dataclass
class RunContext:
    """What a run knows about itself as it goes on. Give one to a runner to set the
    variables the prompts see as ``{{ vars.NAME }}``; a stream keeps its ``turn_count``
    and ``history`` (every event so far) current."""

    run_id: str | None = None
    turn_count: int = 0
    variables: dict[str, Any] = field(default_factory=dict)
    history: list[Any] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic, repr=False)

    def elapsed_time(self) -> float:
        """Seconds since the context was made (or its run started)."""
        return time.monotonic() - self.started_at

    def get_variable(self, key: str, default: Any = None) -> Any:
        return self.variables.get(key, default)

    def set_variable(self, key: str, value: Any) -> None:
        self.variables[key] = value


@dataclass(frozen=True)
class Step:
    """One tool call of a trajectory: the tool, what it was given, what it answered."""

    tool_name: str
    tool_input: Any
    tool_output: str


ToolCall = Step
"""A tool invocation of ``RunResult.tool_calls`` (the same as a trajectory step)."""


@dataclass(frozen=True)
class StepResult:
    """One step of a multi-step task, as ``result.json`` records it."""

    name: str
    reward: float | None
    rewards: dict[str, float]
    error: str | None
    error_kind: str | None
    gate_passed: bool | None
    """Whether the step reached its ``min_reward`` (``None`` without one)."""
    seconds: float
    """The step's time: its setup, agent, verifier and collection."""

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> StepResult:
        error = data.get("error") or {}
        return cls(
            name=data["name"],
            reward=data.get("reward"),
            rewards=data.get("rewards", {}),
            error=error.get("message"),
            error_kind=error.get("kind"),
            gate_passed=data.get("gate_passed"),
            seconds=sum(t["seconds"] for t in data.get("timings", [])),
        )


@dataclass(frozen=True)
class RunResult:
    """What a run came to."""

    success: bool
    """The reward reached 1.0."""
    reward: float | None
    """The verifier's reward (``None`` when it gave none)."""
    duration: float
    """Wall time of the whole run, in seconds."""
    trajectory: list[Step]
    """Every tool call in order, with its output."""
    error: str | None
    """Why the run failed, when it did."""
    output_dir: Path
    """The trial's directory: ``result.json``, ``agent/``, ``verifier/``, ``artifacts/``."""
    status: RunStatus
    run_id: str
    turn_count: int
    metadata: dict[str, Any]
    final_output: str | None = None
    """The agent's last message (or the summary it gave ``finish``)."""
    error_kind: str | None = None
    """The error's stable kind (``agent_timeout``, ``model_auth``, ...)."""
    rewards: dict[str, float] = field(default_factory=dict)
    usage: dict[str, int] | None = None
    cost_usd: float | None = None
    steps: list[StepResult] = field(default_factory=list)
    """A multi-step task's steps as they ran (empty for a task of one step); the files of
    each are under ``output_dir / "steps" / name``."""

    @property
    def elapsed_time(self) -> float:
        """The same as ``duration``."""
        return self.duration

    @property
    def tool_calls(self) -> list[Step]:
        """The same as ``trajectory``."""
        return self.trajectory

    @classmethod
    def _from_json(cls, text: str) -> RunResult:
        data = json.loads(text)
        return cls(
            success=data["success"],
            reward=data["reward"],
            duration=data["duration"],
            trajectory=[Step(**s) for s in data["trajectory"]],
            error=data["error"],
            output_dir=Path(data["output_dir"]),
            status=RunStatus(data["status"]),
            run_id=data["run_id"],
            turn_count=data["turn_count"],
            metadata=data["metadata"],
            final_output=data["final_output"],
            error_kind=data["error_kind"],
            rewards=data["rewards"],
            usage=data["usage"],
            cost_usd=data["cost_usd"],
            steps=[StepResult._from_dict(s) for s in data.get("steps", [])],
        )


async def _wait(start: Callable[[int], Any]) -> Any:
    """Awaits work of the engine: ``start(fd)`` begins it and hands the engine the write
    end of a pipe, which gets a byte when the work is done; the loop watches the read end.
    The engine's threads never call into Python."""
    loop = asyncio.get_running_loop()
    read, write = os.pipe()
    done = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    try:
        pending = start(write)
    except BaseException:
        os.close(read)
        os.close(write)
        raise
    loop.add_reader(read, ready)
    try:
        await done
    finally:
        loop.remove_reader(read)
        os.close(read)
    return pending.take()


_EVENT_TYPES = {"agent_text": "text", "agent_turn": "turn"}


@dataclass(frozen=True)
class Event:
    """Something that happened during a run.

    ``type`` is ``"text"`` (the agent said ``content``), ``"tool_call"`` (it called
    ``tool_name`` with ``tool_input``), ``"tool_result"`` (``result`` came back), and
    helios's other events: ``"turn"``, ``"trial_phase"``, ``"trial_started"``,
    ``"trial_finished"``, ``"build_started"``, ... with their fields in ``data``.
    """

    type: str
    content: str | None = None
    tool_name: str | None = None
    tool_input: Any = None
    result: str | None = None
    is_error: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _from_json(cls, text: str) -> Event:
        data = json.loads(text)
        tag = data.get("event", "unknown")
        return cls(
            type=_EVENT_TYPES.get(tag, tag),
            content=data.get("text"),
            tool_name=data.get("name"),
            tool_input=data.get("input"),
            result=data.get("output"),
            is_error=bool(data.get("is_error", False)),
            data=data,
        )

    def __str__(self) -> str:
        if self.type == "text":
            return self.content or ""
        if self.type == "tool_call":
            return f"[{self.tool_name}] {json.dumps(self.tool_input)}"
        if self.type == "tool_result":
            return self.result or ""
        return self.type


class RunStream:
    """A run in progress: ``async for event in stream`` gives its events, then
    ``await stream.result()`` its result. The run starts with the first event asked for.
    Cancelling the task that iterates (or calling :meth:`cancel`) stops the run and
    removes its container."""

    def __init__(self, spec: dict[str, Any], context: RunContext) -> None:
        self._spec = spec
        self._native: Any = None
        self._done = False
        self.context = context
        """The run's :class:`RunContext`, kept current as events arrive."""

    def _begin(self, spec: str, fd: int) -> Any:
        """Starts the run in the engine (``fd`` is told when it is started)."""
        return _native.start(spec, fd)

    def _finish(self, text: str) -> Any:
        """The run's result, from its JSON."""
        return RunResult._from_json(text)

    async def _start(self) -> Any:
        if self._native is None:
            spec = json.dumps(self._spec)
            self._native = await _wait(lambda fd: self._begin(spec, fd))
            self.context.run_id = self._native.run_id
            self.context.started_at = time.monotonic()
        return self._native

    @property
    def viewer_url(self) -> str | None:
        """The viewer's page of this run, when the runner was made with ``watch=True``."""
        return None if self._native is None else self._native.viewer_url

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        native = await self._start()
        try:
            text = await _wait(native.next_event)
        except asyncio.CancelledError:
            await self._cancel_and_wait()
            raise
        if text is None:
            self._done = True
            raise StopAsyncIteration
        event = Event._from_json(text)
        if event.type == "turn":
            self.context.turn_count = int(event.data.get("turn", self.context.turn_count))
        self.context.history.append(event)
        return event

    async def result(self) -> RunResult:
        """Waits for the end of the run (its container removed) and returns its result."""
        native = await self._start()
        try:
            return self._finish(await _wait(native.result))
        except asyncio.CancelledError:
            await self._cancel_and_wait()
            raise

    def cancel(self) -> None:
        """Stops the run; :meth:`result` then says ``CANCELLED``."""
        if self._native is not None:
            self._native.cancel()

    async def aclose(self) -> None:
        """Cancels the run if it is still going, and waits until it is cleaned up."""
        if self._native is not None and not self._done:
            await self._cancel_and_wait()

    async def _cancel_and_wait(self) -> None:
        self._native.cancel()
        try:
            await asyncio.shield(_wait(self._native.result))
        except Exception:  # noqa: BLE001 - the run is being abandoned; its error is moot
            pass


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (labels or {}).items()}


class AgentRunner:
    """Runs one task with one agent, as ``helios run`` does.

    The agent follows the task: a task with a desktop gets the ``computer-use`` agent, any
    other the ``terminal`` agent, both driven by ``model``; ``agent=`` chooses explicitly
    (``"oracle"``, ``"nop"``, ``"terminal"``, ``"computer-use"``, ``"command"``).

    Beyond the reference: ``config`` (a :class:`RunConfig`), ``context`` (a
    :class:`RunContext` whose ``variables`` the prompts see as ``{{ vars.NAME }}``),
    ``script`` (the replies of the ``scripted`` model), ``command`` (for the ``command``
    agent), ``base_url`` (an OpenAI-compatible endpoint), ``system_prompt`` and
    ``user_prompt`` (template files), ``labels`` (put on the run's container).
    """

    def __init__(
        self,
        task_path: str | os.PathLike[str],
        model: str = DEFAULT_MODEL,
        provider: str = "docker",
        output_dir: str | os.PathLike[str] = "output",
        watch: bool = False,
        *,
        agent: str | None = None,
        config: RunConfig | None = None,
        context: RunContext | None = None,
        script: str | os.PathLike[str] | None = None,
        command: str | None = None,
        base_url: str | None = None,
        system_prompt: str | os.PathLike[str] | None = None,
        user_prompt: str | os.PathLike[str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.task_path = Path(task_path)
        self.model = model
        self.provider = provider
        self.output_dir = Path(output_dir)
        self.watch = watch
        self.agent = agent
        self.config = config if config is not None else RunConfig()
        self.context = context if context is not None else RunContext()
        self.script = None if script is None else Path(script)
        self.command = command
        self.base_url = base_url
        self.system_prompt = None if system_prompt is None else Path(system_prompt)
        self.user_prompt = None if user_prompt is None else Path(user_prompt)
        self.labels = _labels(labels)

    def _spec(self) -> dict[str, Any]:
        task = self.task_path.name if self.task_path.name != "task.toml" else self.task_path.parent.name
        model, script = _scripted(self.model, task)
        config = self.config._spec()
        if config["run_id"] is None:
            config["run_id"] = self.context.run_id
        return {
            "task_path": str(self.task_path),
            "model": model,
            "script": str(self.script) if self.script is not None else script,
            "agent": self.agent,
            "provider": self.provider,
            "output_dir": str(self.output_dir),
            "watch": self.watch,
            "command": self.command,
            "base_url": self.base_url,
            "system_prompt": None if self.system_prompt is None else str(self.system_prompt),
            "user_prompt": None if self.user_prompt is None else str(self.user_prompt),
            "variables": self.context.variables,
            "labels": self.labels,
            "config": config,
        }

    async def run(self) -> RunResult:
        """Runs the task to the end. Cancelling the awaiting task stops the run and
        removes its container before the cancellation goes on."""
        return await self.stream().result()

    def stream(self) -> RunStream:
        """The run's events as they happen (``async for event in runner.stream()``)."""
        return RunStream(self._spec(), self.context)

    def run_sync(self) -> RunResult:
        """:meth:`run` for code without asyncio: blocks (without the GIL) until the end;
        Ctrl-C cancels the run and removes its container."""
        return RunResult._from_json(_native.run_blocking(json.dumps(self._spec())))


@dataclass
class Agent:
    """An agent that answers prompts: a name, instructions (its system prompt) and a
    model. It works in a default sandbox, a Debian container, through a bash tool."""

    name: str
    instructions: str = ""
    model: str = DEFAULT_AGENT_MODEL
    script: str | None = None
    """For the ``scripted`` model: the file of replies."""
    base_url: str | None = None
    """An OpenAI-compatible endpoint for ``openai/...`` models."""

    def _spec(self) -> dict[str, Any]:
        model, script = _scripted(self.model, "prompt")
        return {
            "name": self.name,
            "instructions": self.instructions,
            "model": model,
            "script": self.script if self.script is not None else script,
            "base_url": self.base_url,
        }


def _history(history: Iterable[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    return [
        {"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
        for m in (history or [])
    ]


def _prompt_spec(
    agent: Agent,
    input: str,
    config: RunConfig | None,
    history: Iterable[Mapping[str, Any]] | None,
    output_dir: str | os.PathLike[str],
    provider: str,
    labels: Mapping[str, str] | None,
) -> dict[str, Any]:
    return {
        "prompt": {"agent": agent._spec(), "input": input, "history": _history(history)},
        "output_dir": str(output_dir),
        "provider": provider,
        "labels": _labels(labels),
        "config": (config or RunConfig())._spec(),
    }


def _finished(result: RunResult) -> RunResult:
    if result.status == RunStatus.TIMED_OUT:
        raise TimeoutError(result.error or "the run timed out", result)
    return result


class Runner:
    """Runs an :class:`Agent` on a prompt. ``history`` (a list of ``{"role": "user" |
    "assistant", "content": ...}``) gives the earlier turns of a conversation; they come
    before the input in the agent's first message.

    A run that a time limit ended raises :class:`helios.TimeoutError` (holding the
    result); one that failed otherwise returns a result whose ``status`` is ``FAILED``.
    """

    @staticmethod
    def run_sync(
        agent: Agent,
        input: str,
        config: RunConfig | None = None,
        history: Iterable[Mapping[str, Any]] | None = None,
        *,
        output_dir: str | os.PathLike[str] = "output",
        provider: str = "docker",
        labels: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Runs to the end, blocking without the GIL."""
        spec = _prompt_spec(agent, input, config, history, output_dir, provider, labels)
        return _finished(RunResult._from_json(_native.run_blocking(json.dumps(spec))))

    @staticmethod
    async def run_async(
        agent: Agent,
        input: str,
        config: RunConfig | None = None,
        history: Iterable[Mapping[str, Any]] | None = None,
        *,
        output_dir: str | os.PathLike[str] = "output",
        provider: str = "docker",
        labels: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Runs to the end; cancelling the awaiting task stops the run."""
        spec = _prompt_spec(agent, input, config, history, output_dir, provider, labels)
        return _finished(await RunStream(spec, RunContext()).result())

    @staticmethod
    async def run_stream(
        agent: Agent,
        input: str,
        config: RunConfig | None = None,
        history: Iterable[Mapping[str, Any]] | None = None,
        *,
        output_dir: str | os.PathLike[str] = "output",
        provider: str = "docker",
        labels: Mapping[str, str] | None = None,
    ) -> AsyncIterator[str]:
        """The agent's text as it comes, chunk by chunk (``print(chunk, end="")``)."""
        spec = _prompt_spec(agent, input, config, history, output_dir, provider, labels)
        stream = RunStream(spec, RunContext())
        try:
            async for event in stream:
                if event.type == "text" and event.content:
                    yield event.content
        finally:
            await stream.aclose()


class StreamingRunner:
    """Runs an agent and yields every :class:`Event` (``async for event in
    StreamingRunner(agent).run("...")``)."""

    def __init__(
        self,
        agent: Agent,
        config: RunConfig | None = None,
        *,
        output_dir: str | os.PathLike[str] = "output",
        provider: str = "docker",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.agent = agent
        self.config = config
        self.output_dir = output_dir
        self.provider = provider
        self.labels = labels
        self.last_stream: RunStream | None = None
        """The stream of the latest :meth:`run`, for its ``result()`` and ``context``."""

    def run(
        self, input: str, history: Iterable[Mapping[str, Any]] | None = None
    ) -> RunStream:
        spec = _prompt_spec(
            self.agent, input, self.config, history, self.output_dir, self.provider, self.labels
        )
        self.last_stream = RunStream(spec, RunContext())
        return self.last_stream
