"""Fixtures of the Python suite: every test runs from the repository root (the reference
examples name `tasks/...` from there), writes its results under its own temporary
directory, and labels its containers so it can check that none are left behind."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASK = "tasks/create-hello-file"
HELLO_SCRIPT = "pipelines/scripts/hello-file.yaml"


@pytest.fixture(autouse=True)
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def containers(label: str, all_states: bool = False) -> list[str]:
    """The ids of the containers that carry `label` (running ones unless `all_states`)."""
    args = ["docker", "ps", "-q", "--filter", f"label={label}"]
    if all_states:
        args.insert(2, "-a")
    # The local engine, whatever DOCKER_HOST a test points elsewhere.
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
    return out.split()


class Scratch:
    """A test's own label and output directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.key = "helios-test"
        self.value = f"py-{uuid.uuid4().hex[:12]}"
        self.labels = {self.key: self.value}
        self.label = f"{self.key}={self.value}"
        self.out = tmp_path / "out"
        self.dir = tmp_path

    def script(self, name: str, replies: str) -> str:
        path = self.dir / name
        path.write_text(replies)
        return str(path)

    def containers(self) -> list[str]:
        return containers(self.label, all_states=True)

    def assert_clean(self) -> None:
        assert self.containers() == [], "containers left behind"


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    s = Scratch(tmp_path)
    yield s
    s.assert_clean()


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "DAYTONA_API_KEY"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HELIOS_SCRIPTED_MODELS", raising=False)


SLOW = "replies:\n  - text: 'Waiting.'\n    tool_calls: [{ name: bash, input: { command: 'sleep 300' } }]\n  - text: done\n"
