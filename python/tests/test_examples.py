"""Every example of examples/python/ (the reference documents' examples) runs from the
repository root as written. The substitution: HELIOS_SCRIPTED_MODELS maps every model id
to the scripted model with examples/python/scripts/{task}.yaml, so no key or network is
needed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLES = ROOT / "examples" / "python"

# What each example must print (every line listed must appear in its output).
EXPECTED = {
    "basic_usage.py": ["Result: 1.0"],
    "check_result.py": ["Task passed!"],
    "trajectory.py": ["Tool: bash", "Output: exit code: 0", "Tool: finish", "---"],
    "task_execution.py": ["Success: True", "Reward: 1.0", "Duration: "],
    "web_viewer.py": [],
    "error_handling.py": ["Execution error: error: task directory `tasks/my-task` does not exist"],
    "saving_results.py": [],
    "multiple_models.py": [
        "Results by model:",
        "  gemini/gemini-2.5-computer-use-preview-10-2025: 1.0",
        "  claude-sonnet-4-20250514: 1.0",
        "  openai/computer-use-preview: 1.0",
    ],
    "best_practices.py": ["COMPLETED in results/"],
    "runner_basic.py": ["Hello! I am an assistant working in a Linux sandbox."],
    "runner_config.py": ["custom-id COMPLETED {'session': 'abc', 'user_id': '123'}"],
    "runner_context.py": ["value after", "run-123: "],
    "runner_result.py": ["COMPLETED", "TIMED_OUT", "Step(tool_name='bash'"],
    "runner_streaming.py": [
        "Let me look around first. Hello! I am an assistant working in a Linux sandbox.",
        "[Calling: bash]",
        "[Calling: finish]",
    ],
    "runner_multi_turn.py": ["You: Agent: Hello! I am an assistant working in a Linux sandbox."],
    "runner_parallel.py": ["agent1-", "agent2-", "agent3-"],
    "runner_errors.py": ["Hello! I am an assistant working in a Linux sandbox."],
}


def run(name: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "HELIOS_SCRIPTED_MODELS": "*=examples/python/scripts/{task}.yaml", **env}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=ROOT, env=environment, input=stdin, capture_output=True, text=True, timeout=600,
    )


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted([*EXPECTED, "daytona.py"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_example_runs_as_written(name: str) -> None:
    stdin = "Hello\nWhat did I say?\n" if name == "runner_multi_turn.py" else ""
    done = run(name, stdin)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in EXPECTED[name]:
        assert line in done.stdout, done.stdout
    if name == "saving_results.py":
        summaries = list((ROOT / "results" / "experiment-1").rglob("summary.json"))
        assert summaries, "summary.json beside the trial's results"
    if name == "runner_multi_turn.py":
        assert done.stdout.count("Agent: ") == 2


def test_the_daytona_example_says_the_key_is_missing() -> None:
    done = run("daytona.py", DAYTONA_API_KEY="")
    assert done.returncode != 0
    assert "helios.errors.EnvironmentError" in done.stderr, done.stderr
    assert "DAYTONA_API_KEY" in done.stderr
