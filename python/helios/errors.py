"""The exceptions helios raises. Each carries the message ``helios`` prints on the command
line for the same problem.

A run that starts and then fails (the agent gave up, the verifier gave 0, a time limit
ended it) is not an exception: its :class:`~helios.RunResult` says so through ``status``
and ``error``. Exceptions are for runs that cannot start or finish.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "HeliosError",
    "TaskError",
    "EnvironmentError",
    "AgentError",
    "TimeoutError",
    "HeliosWarning",
]


class HeliosError(Exception):
    """The base of every helios exception.

    ``problems`` lists what stopped a run before any trial started, each a dict with its
    ``kind`` (``"missing_model_key"``, ``"missing_credentials"``,
    ``"unsupported_by_provider"``, ...), the ``task`` and ``agent`` it concerns when one,
    its ``message`` and, when there is a known one, its ``fix``; it is empty for other
    errors."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.problems: list[dict[str, Any]] = []

    @property
    def message(self) -> str:
        """The message, as the command line prints it after ``error:``."""
        return str(self.args[0]) if self.args else ""


class TaskError(HeliosError):
    """The task or pipeline is invalid: a missing directory, a bad ``task.toml``, a
    pipeline that does not check. The message holds the diagnostics with their places."""


class EnvironmentError(HeliosError):  # noqa: A001 - the reference's name
    """The environment cannot be used: Docker unreachable, an unknown provider, a missing
    or refused Daytona key, an image that does not build."""


class AgentError(HeliosError):
    """The agent cannot run: an unknown agent, a model that needs a key which is not set,
    a prompt that does not render."""


class TimeoutError(HeliosError, builtins.TimeoutError):  # noqa: A001 - the reference's name
    """A time limit ended a :class:`~helios.Runner` run (``max_time``,
    ``timeout_per_turn``). Its ``result`` attribute holds the run's result."""

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result


class HeliosWarning(UserWarning):
    """What ``helios apply`` warns of while loading a pipeline (an allowlist with no
    hosts, tasks left out by ``on_invalid = "skip"``, ...), with its file, line and help:
    :func:`helios.apply` issues each through :mod:`warnings`, and
    ``ApplyResult.warnings`` keeps them."""
