"""``helios.apply``, ``helios.plan`` and ``helios.validate``: the commands that work on
pipelines, with their outcomes as Python objects instead of printed text. ``apply``
streams the run's events as they happen (``on_event``, or ``async for`` over
:func:`apply_stream`)."""

from __future__ import annotations

import json
import os
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import _native
from .errors import HeliosWarning
from ._runner import Event, RunContext, RunStream, StepResult

__all__ = [
    "EVENT_KINDS",
    "ApplyResult",
    "ApplyStream",
    "PlanResult",
    "PlannedTrial",
    "TrialOutcome",
    "Validation",
    "apply",
    "apply_async",
    "apply_stream",
    "plan",
    "validate",
]


EVENT_KINDS: tuple[str, ...] = tuple(_native.EVENT_KINDS)
"""The name of every kind of event a run can emit, as the ``event`` key of its JSON (and
``Event.data["event"]``) says it; read from the engine's event type."""


@dataclass(frozen=True)
class TrialOutcome:
    """One trial's result, as its ``result.json`` records it (all of it in ``data``)."""

    trial_id: str
    task: str
    stage: str
    agent: str
    model: str | None
    attempt: int
    status: str
    """``completed``, ``failed``, ``timed_out``, ``infra_error`` or ``cancelled``."""
    reward: float | None
    error: str | None
    error_kind: str | None
    dir: Path
    ran_now: bool
    data: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def success(self) -> bool:
        return self.reward is not None and self.reward >= 1.0

    @property
    def steps(self) -> list[StepResult]:
        """A multi-step task's steps as they ran (empty for a task of one step)."""
        return [StepResult._from_dict(s) for s in self.data.get("steps", [])]


@dataclass(frozen=True)
class ApplyResult:
    """What ``helios apply`` did: every trial's outcome and the run's summary (the content
    of ``summary.json``: counts, and mean reward, pass rate and cost per stage × agent ×
    model in ``summary["rows"]``)."""

    run_dir: Path
    trials: list[TrialOutcome]
    summary: dict[str, Any]
    ran: int
    already_done: int
    not_started: int
    spent_usd: float
    cancelled: bool
    expectations_met: bool = True
    """Whether every ``[[expect]]`` of the pipeline (and ``fail_under``) was met (true
    without any); each check is in :attr:`expectations`."""
    verdict: str = "passed"
    """What the run comes to, as ``helios apply``'s exit code says it: ``passed`` (0),
    ``trials_failed`` (4), ``infrastructure`` (5), ``expectations_not_met`` (6),
    ``budget_reached`` (7) or ``cancelled`` (130). Expectations, when the pipeline has
    some, decide over the agents' failures."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every event of the run, in order, as JSON objects (``{"event": "trial_finished", ...}``)."""
    warnings: list[str] = field(default_factory=list)
    """What loading the pipeline warned of, each as ``helios apply`` prints it (file, line,
    caret and help); each was also issued as a :class:`helios.HeliosWarning`."""

    @property
    def passed(self) -> int:
        return int(self.summary.get("passed", 0))

    @property
    def expectations(self) -> list[dict[str, Any]]:
        """Every check of every expectation, met or not (``selects``, ``group``,
        ``metric``, ``threshold``, ``actual``, ``met``, ``shortfall``), as
        ``summary.json`` records them."""
        return list(self.summary.get("expectations", []))


def _apply_result(text: str) -> ApplyResult:
    data = json.loads(text)
    for warning in data.get("warnings", []):
        _warnings.warn(warning, HeliosWarning, stacklevel=3)
    trials = []
    for t in data["trials"]:
        error = t.get("error") or {}
        trials.append(
            TrialOutcome(
                trial_id=t["trial_id"],
                task=t["task"],
                stage=t["stage"],
                agent=t["agent"],
                model=t.get("model"),
                attempt=t["attempt"],
                status=t["status"],
                reward=t.get("reward"),
                error=error.get("message"),
                error_kind=error.get("kind"),
                dir=Path(t["dir"]),
                ran_now=t["ran_now"],
                data=t,
            )
        )
    return ApplyResult(
        run_dir=Path(data["run_dir"]),
        trials=trials,
        summary=data["summary"],
        ran=data["ran"],
        already_done=data["already_done"],
        not_started=data["not_started"],
        spent_usd=data["spent_usd"],
        cancelled=data["cancelled"],
        expectations_met=data["expectations_met"],
        verdict=data["verdict"],
        events=data.get("events", []),
        warnings=data.get("warnings", []),
    )


def _apply_spec(
    pipeline: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None,
    labels: Mapping[str, str] | None,
    locked: bool,
    fail_under: float | None,
    live: bool = True,
) -> dict[str, Any]:
    return {
        "live": live,
        "pipeline": str(pipeline),
        "output_dir": None if output_dir is None else str(output_dir),
        "labels": {str(k): str(v) for k, v in (labels or {}).items()},
        "locked": bool(locked),
        "fail_under": None if fail_under is None else float(fail_under),
    }


class ApplyStream(RunStream):
    """``helios apply`` in progress: ``async for event in stream`` gives every event of
    the run as it happens, then ``await stream.result()`` its :class:`ApplyResult`. The
    run starts with the first event (or the result) asked for; the pipeline is loaded,
    checked and its lock file (``locked=True``) compared then, so an invalid one raises
    there. Cancelling the task that iterates (or :meth:`cancel`) stops the run and
    removes its containers; the stream then says ``cancelling``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec, RunContext())

    def _begin(self, spec: str, fd: int) -> Any:
        return _native.start_apply_async(spec, fd)

    def _finish(self, text: str) -> ApplyResult:
        return _apply_result(text)

    async def result(self) -> ApplyResult:  # type: ignore[override]
        """Waits for the end of the run (every container removed) and returns what
        ``helios apply`` did."""
        return await super().result()


def apply(
    pipeline: str | os.PathLike[str],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str] | None = None,
    locked: bool = False,
    fail_under: float | None = None,
    on_event: Callable[[Event], object] | None = None,
) -> ApplyResult:
    """Runs a pipeline as ``helios apply`` does, blocking without the GIL (Ctrl-C cancels
    it). ``output_dir`` replaces the pipeline's own; ``locked=True`` runs only what the
    run's lock file says (``--locked``); ``fail_under`` adds a bar every group's mean
    reward must reach (``--fail-under``). ``on_event`` is called with each
    :class:`~helios.Event` of the run as it happens, in this thread; an exception it raises
    cancels the run and propagates once the run is cleaned up.

    An invalid pipeline, or one that is not what its lock file says, raises
    :class:`helios.TaskError`; Docker unreachable, :class:`helios.EnvironmentError`.
    Unmet expectations are not an exception: see ``ApplyResult.expectations_met`` and
    ``verdict``."""
    native = _native.start_apply_blocking(
        json.dumps(
            _apply_spec(
                pipeline, output_dir, labels, locked, fail_under, live=on_event is not None
            )
        )
    )
    if on_event is not None:
        try:
            while (text := native.next_event_blocking()) is not None:
                on_event(Event._from_json(text))
        except BaseException:
            native.cancel()
            try:
                native.result_blocking()
            except Exception:  # noqa: BLE001 - the callback's error is the one to raise
                pass
            raise
    return _apply_result(native.result_blocking())


def apply_stream(
    pipeline: str | os.PathLike[str],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str] | None = None,
    locked: bool = False,
    fail_under: float | None = None,
) -> ApplyStream:
    """:func:`apply` for asyncio code, as a stream: ``async for event in
    helios.apply_stream(...)``, then ``await stream.result()``."""
    return ApplyStream(_apply_spec(pipeline, output_dir, labels, locked, fail_under))


async def apply_async(
    pipeline: str | os.PathLike[str],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str] | None = None,
    locked: bool = False,
    fail_under: float | None = None,
    on_event: Callable[[Event], object] | None = None,
) -> ApplyResult:
    """:func:`apply` for asyncio code: no thread is blocked while the run goes on, and
    ``on_event`` is called in the event loop's thread. Cancelling the awaiting task stops
    the run and removes its containers."""
    stream = apply_stream(
        pipeline, output_dir=output_dir, labels=labels, locked=locked, fail_under=fail_under
    )
    try:
        async for event in stream:
            if on_event is not None:
                on_event(event)
        return await stream.result()
    finally:
        await stream.aclose()


@dataclass(frozen=True)
class PlannedTrial:
    id: str
    stage: str
    task: str
    agent: str
    model: str | None
    attempt: int
    state: str
    """``done``, ``changed`` or ``new``."""
    dir: Path
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanResult:
    """What ``helios apply`` would do."""

    pipeline: str
    run_dir: Path
    stages: list[str]
    builds: list[str]
    trials: list[PlannedTrial]
    to_run: int
    data: dict[str, Any] = field(default_factory=dict)
    """The whole document, as ``helios plan --format json`` prints it (stage counts,
    installs, budget, worst-case cost, sources)."""


def plan(
    pipeline: str | os.PathLike[str], *, output_dir: str | os.PathLike[str] | None = None
) -> PlanResult:
    """The plan of a pipeline, as ``helios plan`` shows it: each trial and its state."""
    out = None if output_dir is None else str(output_dir)
    data = json.loads(_native.plan(str(pipeline), out))
    return PlanResult(
        pipeline=data["pipeline"],
        run_dir=Path(data["run_dir"]),
        stages=[s["name"] for s in data["stages"]],
        builds=[b["tag"] for b in data["builds"]],
        trials=[
            PlannedTrial(**{**t, "dir": Path(t["dir"])}) for t in data["trials"]
        ],
        to_run=data["to_run"],
        data=data,
    )


@dataclass(frozen=True)
class Validation:
    """What ``helios validate`` found."""

    valid: bool
    errors: int
    warnings: int
    files_checked: int
    text: str
    """The diagnostics as the command line prints them."""
    diagnostics: list[dict[str, Any]]
    """Each diagnostic (file, line, column, severity, message, hint), as
    ``helios validate --format json`` gives them."""

    def __bool__(self) -> bool:
        return self.valid


def validate(*paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Validation:
    """Checks task directories and pipelines, as ``helios validate`` does."""
    flat: list[str] = []
    for p in paths:
        if isinstance(p, (str, os.PathLike)):
            flat.append(str(p))
        else:
            flat.extend(str(q) for q in p)
    data = json.loads(_native.validate(flat))
    report = data.get("report") or {}
    return Validation(
        valid=data["valid"],
        errors=data["errors"],
        warnings=data["warnings"],
        files_checked=data["files_checked"],
        text=data["text"],
        diagnostics=list(report.get("diagnostics", [])),
    )
