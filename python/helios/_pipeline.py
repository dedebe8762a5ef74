"""``helios.apply``, ``helios.plan`` and ``helios.validate``: the commands that work on
pipelines, with their outcomes as Python objects instead of printed text."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import _native
from ._runner import StepResult

__all__ = [
    "ApplyResult",
    "PlanResult",
    "PlannedTrial",
    "TrialOutcome",
    "Validation",
    "apply",
    "apply_async",
    "plan",
    "validate",
]


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
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every event of the run, in order, as JSON objects (``{"event": "trial_finished", ...}``)."""

    @property
    def passed(self) -> int:
        return int(self.summary.get("passed", 0))


def _apply_result(text: str) -> ApplyResult:
    data = json.loads(text)
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
        events=data.get("events", []),
    )


def apply(
    pipeline: str | os.PathLike[str],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> ApplyResult:
    """Runs a pipeline as ``helios apply`` does, blocking without the GIL (Ctrl-C cancels
    it). ``output_dir`` replaces the pipeline's own. An invalid pipeline raises
    :class:`helios.TaskError` with its diagnostics; Docker unreachable,
    :class:`helios.EnvironmentError`."""
    out = None if output_dir is None else str(output_dir)
    text = _native.apply(str(pipeline), out, {str(k): str(v) for k, v in (labels or {}).items()})
    return _apply_result(text)


async def apply_async(
    pipeline: str | os.PathLike[str],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> ApplyResult:
    """:func:`apply` in a worker thread, for asyncio code."""
    return await asyncio.to_thread(apply, pipeline, output_dir=output_dir, labels=labels)


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


@dataclass(frozen=True)
class PlanResult:
    """What ``helios apply`` would do."""

    pipeline: str
    run_dir: Path
    stages: list[str]
    builds: list[str]
    trials: list[PlannedTrial]
    to_run: int


def plan(
    pipeline: str | os.PathLike[str], *, output_dir: str | os.PathLike[str] | None = None
) -> PlanResult:
    """The plan of a pipeline, as ``helios plan`` shows it: each trial and its state."""
    out = None if output_dir is None else str(output_dir)
    data = json.loads(_native.plan(str(pipeline), out))
    return PlanResult(
        pipeline=data["pipeline"],
        run_dir=Path(data["run_dir"]),
        stages=data["stages"],
        builds=data["builds"],
        trials=[
            PlannedTrial(**{**t, "dir": Path(t["dir"])}) for t in data["trials"]
        ],
        to_run=data["to_run"],
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
