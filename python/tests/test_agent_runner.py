"""The reference `AgentRunner` API against the real Docker engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import helios
from helios import AgentRunner, RunConfig, RunStatus

from conftest import HELLO_SCRIPT, SLOW, TASK, Scratch, containers


def test_the_reference_defaults() -> None:
    runner = AgentRunner(task_path=TASK)
    assert runner.model == "gemini/gemini-2.5-computer-use-preview-10-2025"
    assert runner.provider == "docker"
    assert runner.output_dir == Path("output")
    assert runner.watch is False
    config = RunConfig()
    assert (config.max_turns, config.max_time, config.timeout_per_turn) == (10, 300.0, 60.0)
    assert (config.stop_on_tool_error, config.verbose, config.trace_enabled) == (False, False, True)
    assert config.run_id is None and config.metadata == {}
    assert {s.name for s in RunStatus} >= {"QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


async def test_the_oracle_solves_the_task(scratch: Scratch) -> None:
    result = await AgentRunner(TASK, agent="oracle", output_dir=scratch.out, labels=scratch.labels).run()
    assert result.status is RunStatus.COMPLETED
    assert result.success and result.reward == 1.0
    assert isinstance(result.duration, float) and result.duration > 0
    assert isinstance(result.output_dir, Path)
    assert (result.output_dir / "result.json").is_file()
    assert result.output_dir.is_relative_to(scratch.out)
    assert result.error is None
    assert result.trajectory == []


async def test_the_scripted_model_solves_the_task_and_the_trajectory_reads_as_in_the_reference(
    scratch: Scratch,
) -> None:
    runner = AgentRunner(
        task_path=TASK,
        model="scripted",
        script=HELLO_SCRIPT,
        output_dir=scratch.out,
        labels=scratch.labels,
        config=RunConfig(metadata={"user_id": "123"}, run_id="py-scripted"),
    )
    result = await runner.run()
    assert result.success, result
    assert result.turn_count == 3
    assert result.run_id == "py-scripted"
    assert result.metadata == {"user_id": "123"}
    assert [step.tool_name for step in result.trajectory] == ["bash", "bash", "finish"]
    assert result.trajectory[0].tool_input == {"command": "pwd && ls -la"}
    assert "Hello, world!" in result.trajectory[1].tool_output
    assert result.tool_calls == result.trajectory
    assert result.final_output == "The file holds exactly the requested line."
    assert result.usage is not None and result.usage["input_tokens"] > 0


async def test_streaming_yields_text_tool_call_and_tool_result_in_order(scratch: Scratch) -> None:
    stream = AgentRunner(
        TASK, model="scripted", script=HELLO_SCRIPT, output_dir=scratch.out, labels=scratch.labels
    ).stream()
    kinds = []
    async for event in stream:
        if event.type in ("text", "tool_call", "tool_result"):
            kinds.append(event.type)
        if event.type == "text":
            assert event.content
        if event.type == "tool_call":
            assert event.tool_name in ("bash", "finish")
        if event.type == "tool_result":
            assert event.result is not None
    assert kinds == ["text", "tool_call", "tool_result"] * 3
    assert stream.context.turn_count == 3
    assert stream.context.run_id and stream.context.history
    result = await stream.result()
    assert result.success


# The kinds of event (`helios.EVENT_KINDS`, read from the engine's event type) that one
# installed-agent trial run by `AgentRunner` on a healthy machine cannot emit, and why.
# Every other kind must appear in its stream.
NOT_FROM_ONE_INSTALLED_AGENT_TRIAL = {
    "waiting_for_resources": "one trial waits only on a machine short of memory or CPUs",
    "runs_alone": "only a trial that asks for more than the machine's whole budget",
    "pull_failed": "only a task with a prebuilt `docker_image` (this one has a Dockerfile)",
    "reaped": "only when dead runs left containers on this machine",
    "reap_failed": "only when removing what dead runs left fails",
    "engine_stalled": "only when the engine stops answering",
    "engine_answered": "only after `engine_stalled`",
    "build_started": "only when the image is not built yet (a warm machine has it cached)",
    "build_retry": "only after a failed build",
    "stage_gated": "only a stage with a gate; `AgentRunner` runs one stage without one",
    "trial_step": "only a multi-step task",
    "trial_retry": "only after an infrastructure failure",
    "teardown_failed": "only when the container cannot be removed",
    "create_abandoned": "only when a run is cancelled while the engine creates a container",
    "cancelling": "only when a run is cancelled",
    "trial_skipped": "only a trial done before, gated out, cancelled or over budget",
}


async def test_a_catalog_agent_runs_with_scripted_replies_and_streams_every_event_kind(
    scratch: Scratch,
) -> None:
    # The catalog's codex, installed once per machine (cached in a volume), calling the
    # scripted model through the gateway.
    stream = AgentRunner(
        TASK,
        agent="codex",
        model="scripted",
        script="pipelines/scripts/installed/codex.yaml",
        output_dir=scratch.out,
        labels=scratch.labels,
    ).stream()
    kinds = [event.data["event"] async for event in stream]
    result = await stream.result()
    assert result.success and result.reward == 1.0, (result, kinds)
    assert kinds and len(stream.context.history) == len(kinds)
    assert "codex" in str(result.output_dir)
    # Every kind the trial can emit came through the stream, and nothing else did.
    every = set(helios.EVENT_KINDS)
    assert set(NOT_FROM_ONE_INSTALLED_AGENT_TRIAL) <= every, "an excluded kind is gone"
    assert set(kinds) <= every, kinds
    missing = every - set(NOT_FROM_ONE_INSTALLED_AGENT_TRIAL) - set(kinds)
    assert not missing, (sorted(missing), kinds)
    assert kinds[0] == "started" and kinds[-1] == "finished", kinds
    phases = [e.data["phase"] for e in stream.context.history if e.type == "trial_phase"]
    assert phases == ["environment", "agent", "verifier", "collect", "teardown"], phases


async def test_max_turns_and_max_time_end_runs_with_their_status(scratch: Scratch) -> None:
    chatty = scratch.script(
        "chatty.yaml",
        "replies:\n  - tool_calls: [{ name: bash, input: { command: 'true' } }]\n"
        "  - tool_calls: [{ name: bash, input: { command: 'true' } }]\n",
    )
    result = await AgentRunner(
        TASK, model="scripted", script=chatty, output_dir=scratch.out, labels=scratch.labels,
        config=RunConfig(max_turns=1),
    ).run()
    assert result.status is RunStatus.FAILED
    assert result.error_kind == "max_turns" and result.error
    slow = scratch.script("slow.yaml", SLOW)
    result = await AgentRunner(
        TASK, model="scripted", script=slow, output_dir=scratch.out, labels=scratch.labels,
        config=RunConfig(max_time=2.0),
    ).run()
    assert result.status is RunStatus.TIMED_OUT, result
    assert result.error_kind == "agent_timeout"
    assert not result.success


async def test_a_cancelled_asyncio_task_leaves_no_container(scratch: Scratch) -> None:
    slow = scratch.script("slow.yaml", SLOW)
    stream = AgentRunner(
        TASK, model="scripted", script=slow, output_dir=scratch.out, labels=scratch.labels
    ).stream()
    sleeping = asyncio.Event()

    async def consume() -> None:
        async for event in stream:
            if event.type == "tool_call":
                sleeping.set()

    task = asyncio.create_task(consume())
    await sleeping.wait()
    assert len(containers(scratch.label)) == 1, "the agent's container runs"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scratch.containers() == []
    result = await stream.result()
    assert result.status is RunStatus.CANCELLED


async def test_a_cancelled_run_coroutine_leaves_no_container(scratch: Scratch) -> None:
    slow = scratch.script("slow.yaml", SLOW)
    runner = AgentRunner(TASK, model="scripted", script=slow, output_dir=scratch.out, labels=scratch.labels)
    # Docker says when the run's container has started; then the run is cancelled.
    events = await asyncio.create_subprocess_exec(
        "docker", "events", "--filter", f"label={scratch.label}", "--filter", "event=start",
        "--format", "{{.ID}}", stdout=asyncio.subprocess.PIPE,
    )
    try:
        task = asyncio.create_task(runner.run())
        assert events.stdout is not None
        started = await events.stdout.readline()
        assert started.strip()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        events.kill()
        await events.wait()
    assert scratch.containers() == []


async def test_three_gathered_runs_go_on_at_the_same_time(scratch: Scratch) -> None:
    """Each run's agent sleeps in its container; when each one starts sleeping, the test
    counts the containers up. All three are seen at once: the runs overlap (timings are in
    benches/python_parallel.py)."""
    napping = scratch.script(
        "nap.yaml",
        "replies:\n  - tool_calls: [{ name: bash, input: { command: 'sleep 6' } }]\n"
        "  - tool_calls: [{ name: finish, input: { summary: done } }]\n",
    )
    seen: list[int] = []

    async def one(i: int) -> helios.RunResult:
        stream = AgentRunner(
            TASK, model="scripted", script=napping, output_dir=scratch.out / str(i), labels=scratch.labels
        ).stream()
        async for event in stream:
            if event.type == "tool_call" and event.tool_name == "bash":
                seen.append(len(containers(scratch.label)))
        return await stream.result()

    results = await asyncio.gather(one(0), one(1), one(2))
    assert all(r.status is RunStatus.COMPLETED for r in results)
    assert max(seen) == 3, seen


def test_run_sync_needs_no_event_loop(scratch: Scratch) -> None:
    result = AgentRunner(TASK, agent="oracle", output_dir=scratch.out, labels=scratch.labels).run_sync()
    assert result.success


async def test_context_variables_reach_the_prompts(scratch: Scratch) -> None:
    prompt = scratch.dir / "system.j2"
    prompt.write_text("You help {{ vars.user }}.")
    context = helios.RunContext(variables={"user": "Alice"})
    assert context.get_variable("user") == "Alice"
    context.set_variable("key", "value")
    assert context.get_variable("key") == "value" and context.elapsed_time() >= 0
    runner = AgentRunner(
        TASK, model="scripted", script=HELLO_SCRIPT, output_dir=scratch.out, labels=scratch.labels,
        context=context, system_prompt=prompt,
    )
    result = await runner.run()
    trajectory = json.loads((result.output_dir / "agent" / "trajectory.json").read_text())
    assert trajectory["steps"][0]["message"] == "You help Alice."
    assert result.success


async def test_a_missing_task_directory_is_a_task_error(scratch: Scratch) -> None:
    with pytest.raises(helios.TaskError, match="task directory `tasks/my-task` does not exist"):
        await AgentRunner("tasks/my-task", output_dir=scratch.out).run()
    assert not scratch.out.exists()


async def test_an_unknown_provider_is_an_environment_error(scratch: Scratch) -> None:
    with pytest.raises(helios.EnvironmentError, match="unknown provider `kubernetes`"):
        await AgentRunner(TASK, agent="oracle", provider="kubernetes", output_dir=scratch.out).run()
    assert not scratch.out.exists()


async def test_docker_unreachable_is_an_environment_error(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(helios.EnvironmentError, match="cannot reach the Docker engine"):
        await AgentRunner(TASK, agent="oracle", output_dir=scratch.out, labels=scratch.labels).run()
    assert not scratch.out.exists()


async def test_a_missing_api_key_is_an_agent_error(scratch: Scratch, no_keys: None) -> None:
    with pytest.raises(helios.AgentError, match="ANTHROPIC_API_KEY") as raised:
        await AgentRunner(TASK, model="claude-sonnet-4-20250514", output_dir=scratch.out).run()
    assert str(raised.value).startswith("the run cannot start")
    # The typed problem behind it, as the library found it.
    [problem] = raised.value.problems
    assert problem["kind"] == "missing_model_key", problem
    assert "ANTHROPIC_API_KEY" in problem["message"] + problem.get("fix", ""), problem
    assert not scratch.out.exists()


async def test_a_missing_daytona_key_is_an_environment_error(scratch: Scratch, no_keys: None) -> None:
    with pytest.raises(helios.EnvironmentError, match="DAYTONA_API_KEY") as raised:
        await AgentRunner(TASK, agent="oracle", provider="daytona", output_dir=scratch.out).run()
    assert [p["kind"] for p in raised.value.problems] == ["missing_credentials"]
    assert not scratch.out.exists()


def test_every_helios_error_is_a_helios_error() -> None:
    for error in (helios.TaskError, helios.EnvironmentError, helios.AgentError, helios.TimeoutError):
        assert issubclass(error, helios.HeliosError)
    assert issubclass(helios.TimeoutError, TimeoutError)
    assert helios.TaskError("raised by a program").problems == []


async def test_a_multi_step_task_reports_each_step(scratch: Scratch) -> None:
    runner = AgentRunner(
        "tests/fixtures/harbor/multi-step-gated",
        agent="oracle",
        output_dir=scratch.out,
        labels=scratch.labels,
    )
    result = await runner.run()
    assert result.success, result
    assert [step.name for step in result.steps] == ["scaffold", "implement", "document"]
    assert all(step.reward == 1.0 for step in result.steps)
    assert [step.gate_passed for step in result.steps] == [True, True, None]
    assert all(step.seconds > 0 for step in result.steps)
    assert (result.output_dir / "steps" / "implement" / "instruction.md").is_file()
    assert containers(scratch.label) == []
