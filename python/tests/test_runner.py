"""The second reference's runner module: Agent, Runner, StreamingRunner, RunConfig,
RunContext, RunStatus, history, parallel runs and errors, against real Docker. The agent's
model is the scripted one: `PROMPT_SCRIPT` replies with text, a bash call, then an answer."""

from __future__ import annotations

import asyncio
import json

import pytest

import helios
from helios import Agent, Runner, RunStatus
from helios.runner import RunConfig, StreamingRunner

from conftest import SLOW, Scratch

PROMPT_SCRIPT = """\
replies:
  - text: "Let me check where I am. "
    tool_calls: [{ name: bash, input: { command: "echo sandbox-$((6*7))" } }]
  - text: "Hello! I am here to help."
    tool_calls: [{ name: finish, input: { summary: "greeted" } }]
"""


@pytest.fixture
def agent(scratch: Scratch) -> Agent:
    return Agent(
        name="Assistant",
        instructions="You are helpful.",
        model="scripted",
        script=scratch.script("prompt.yaml", PROMPT_SCRIPT),
    )


def test_run_sync_answers_in_a_default_sandbox(agent: Agent, scratch: Scratch) -> None:
    result = Runner.run_sync(agent, "Hello!", output_dir=scratch.out, labels=scratch.labels)
    assert result.status is RunStatus.COMPLETED
    assert result.final_output == "Hello! I am here to help."
    assert [c.tool_name for c in result.tool_calls] == ["bash", "finish"]
    assert "sandbox-42" in result.tool_calls[0].tool_output, "bash ran in the sandbox"
    assert result.turn_count == 2
    assert result.elapsed_time == result.duration > 0
    assert result.run_id.startswith("assistant-")


async def test_run_async_with_a_run_config(agent: Agent, scratch: Scratch) -> None:
    config = RunConfig(
        max_turns=10, max_time=300.0, timeout_per_turn=60.0, stop_on_tool_error=False,
        verbose=True, trace_enabled=True, run_id="custom-id",
        metadata={"user_id": "123", "session": "abc"},
    )
    result = await Runner.run_async(agent, "Hello", config=config, output_dir=scratch.out, labels=scratch.labels)
    assert result.run_id == "custom-id"
    assert result.metadata == {"user_id": "123", "session": "abc"}
    assert result.status is RunStatus.COMPLETED


async def test_streaming_runner_yields_text_tool_call_and_tool_result(agent: Agent, scratch: Scratch) -> None:
    runner = StreamingRunner(agent, output_dir=scratch.out, labels=scratch.labels)
    seen = []
    async for event in runner.run("Write a poem"):
        if event.type == "text":
            seen.append(("text", event.content))
        elif event.type == "tool_call":
            seen.append(("tool_call", event.tool_name))
        elif event.type == "tool_result":
            seen.append(("tool_result", event.result.splitlines()[-1] if event.result else ""))
    assert seen[:3] == [
        ("text", "Let me check where I am. "),
        ("tool_call", "bash"),
        ("tool_result", "sandbox-42"),
    ]
    assert seen[3] == ("text", "Hello! I am here to help.")
    assert runner.last_stream is not None
    assert (await runner.last_stream.result()).final_output == "Hello! I am here to help."


async def test_run_stream_yields_the_text_chunks(agent: Agent, scratch: Scratch) -> None:
    chunks = [c async for c in Runner.run_stream(agent, "Tell me a story", output_dir=scratch.out, labels=scratch.labels)]
    assert "".join(chunks) == "Let me check where I am. Hello! I am here to help."


async def test_history_comes_before_the_input(agent: Agent, scratch: Scratch) -> None:
    history = [
        {"role": "user", "content": "I am Alice."},
        {"role": "assistant", "content": "Hello Alice!"},
        {"role": "user", "content": "What is my name?"},
    ]
    result = await Runner.run_async(agent, "What is my name?", history=history, output_dir=scratch.out, labels=scratch.labels)
    steps = json.loads((result.output_dir / "agent" / "trajectory.json").read_text())["steps"]
    first = next(s for s in steps if s["source"] == "user")["message"]
    assert first.startswith("The conversation so far:\n\nuser: I am Alice.\n\nassistant: Hello Alice!")
    assert first.endswith("Now the user says:\n\nWhat is my name?")
    with pytest.raises(helios.AgentError, match="role `system`"):
        await Runner.run_async(agent, "x", history=[{"role": "system", "content": "x"}], output_dir=scratch.out)


async def test_agents_gathered_run_side_by_side(scratch: Scratch) -> None:
    napping = scratch.script(
        "nap.yaml",
        "replies:\n  - tool_calls: [{ name: bash, input: { command: 'sleep 6' } }]\n"
        "  - text: done\n    tool_calls: [{ name: finish, input: { summary: done } }]\n",
    )
    agents = [Agent(name=f"Agent{i}", instructions="...", model="scripted", script=napping) for i in (1, 2, 3)]
    results = await asyncio.gather(
        *[Runner.run_async(a, "Process this", output_dir=scratch.out, labels=scratch.labels) for a in agents]
    )
    assert [r.final_output for r in results] == ["done"] * 3
    assert len({r.run_id for r in results}) == 3


async def test_a_time_limit_raises_timeout_error(scratch: Scratch) -> None:
    slow = Agent(name="Slow", instructions="...", model="scripted", script=scratch.script("slow.yaml", SLOW))
    with pytest.raises(helios.TimeoutError) as raised:
        await Runner.run_async(slow, "Hello", config=RunConfig(max_time=2.0), output_dir=scratch.out, labels=scratch.labels)
    assert raised.value.result.status is RunStatus.TIMED_OUT


def test_a_missing_key_raises_agent_error(scratch: Scratch, no_keys: None) -> None:
    with pytest.raises(helios.AgentError, match="ANTHROPIC_API_KEY"):
        Runner.run_sync(Agent(name="Assistant", instructions="Be helpful"), "Hello", output_dir=scratch.out)
    assert not scratch.out.exists()


def test_a_failed_run_returns_its_status(scratch: Scratch) -> None:
    broken = Agent(name="Broken", instructions="...", model="scripted", script=scratch.script("one.yaml", "replies:\n  - tool_calls: [{ name: bash, input: { command: 'true' } }]\n"))
    result = Runner.run_sync(broken, "Hello", output_dir=scratch.out, labels=scratch.labels)
    assert result.status is RunStatus.FAILED
    assert result.error
