"""helios.validate, helios.plan and helios.apply from Python."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path

import pytest

import helios

from conftest import ROOT, Scratch


def test_validate_gives_the_diagnostics() -> None:
    validation = helios.validate("pipelines/scripted.toml", "tasks/create-hello-file")
    assert validation.valid and validation.errors == 0 and validation.files_checked >= 2


def test_validate_points_at_a_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pipeline]\nname = "p"\nconcurency = 2\n')
    validation = helios.validate(bad)
    assert not validation.valid and validation.errors >= 1
    assert "concurency" in validation.text
    assert any(d.get("line") == 3 for d in validation.diagnostics), validation.diagnostics


def test_plan_lists_the_trials(tmp_path: Path) -> None:
    plan = helios.plan("pipelines/quickstart.toml", output_dir=tmp_path)
    assert plan.pipeline == "quickstart"
    assert plan.trials and all(t.state == "new" for t in plan.trials)
    assert {"create-hello-file"} <= {t.task for t in plan.trials}
    assert plan.to_run == len(plan.trials)


def test_the_plan_is_the_document_the_command_line_prints(tmp_path: Path) -> None:
    # One shape: `helios plan --format json`'s (the same Rust function makes both).
    plan = helios.plan("pipelines/quickstart.toml", output_dir=tmp_path)
    for key in ("helios_version", "totals", "worst_case_cost", "budget", "installs", "trials"):
        assert key in plan.data, key
    assert plan.stages == [s["name"] for s in plan.data["stages"]]
    assert plan.data["stages"][0]["provider"] == "docker"
    assert plan.data["totals"]["new"] == len(plan.trials)
    assert all(t.params == {} for t in plan.trials)


def test_an_invalid_pipeline_is_a_task_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pipeline]\nname = "p"\nconcurency = 2\n')
    with pytest.raises(helios.TaskError, match="is not valid; nothing was run"):
        helios.plan(bad)


def test_apply_streams_every_event_live_checks_expectations_and_honours_the_lock(
    scratch: Scratch,
) -> None:
    pipeline = scratch.dir / "p.toml"
    pipeline.write_text(
        f'[pipeline]\nname = "py-apply"\noutput_dir = "runs"\n'
        f'[[tasks]]\npath = "{ROOT / "tasks" / "*"}"\ninclude = ["create-hello-file"]\n'
        '[[stages]]\nname = "sanity"\nagents = ["oracle", "nop"]\n'
        '[[expect]]\nagent = "oracle"\nmin_mean_reward = 1.0\n'
    )
    run_dir = scratch.dir / "runs" / "py-apply"
    # `locked=True` with no lock file yet runs nothing, as `helios apply --locked` does.
    with pytest.raises(helios.TaskError, match="has no lock file; nothing was run"):
        helios.apply(pipeline, labels=scratch.labels, locked=True)
    assert not run_dir.exists()

    seen: list[helios.Event] = []
    summary_written_at_start: list[bool] = []

    def on_event(event: helios.Event) -> None:
        seen.append(event)
        if event.type == "trial_started":
            # The run's summary is written at its end: an event delivered live comes
            # before it, one collected and handed over at the end would come after.
            summary_written_at_start.append((run_dir / "summary.json").exists())

    outcome = helios.apply(pipeline, labels=scratch.labels, on_event=on_event)
    assert summary_written_at_start == [False, False]
    # Every event came to the callback, in the order of the result's complete list.
    assert [e.data for e in seen] == outcome.events
    kinds = [e["event"] for e in outcome.events]
    assert kinds[0] == "started" and kinds[-1] == "finished", kinds
    assert kinds.count("trial_started") == 2 and kinds.count("trial_finished") == 2, kinds
    assert outcome.ran == 2 and not outcome.cancelled
    assert outcome.run_dir == run_dir and (run_dir / "summary.json").is_file()
    by_agent = {t.agent: t for t in outcome.trials}
    assert by_agent["oracle"].reward == 1.0 and by_agent["oracle"].success
    assert by_agent["nop"].reward == 0.0 and by_agent["nop"].status == "completed"
    assert outcome.summary["trials"] == 2 and outcome.summary["passed"] == 1
    # The pipeline's expectation is checked, as `helios apply` checks it (exit 0).
    assert outcome.expectations_met and outcome.verdict == "passed"
    assert [c["met"] for c in outcome.expectations] == [True], outcome.expectations

    # The first apply wrote the lock file; `fail_under` adds a bar the nop group misses
    # (`helios apply --locked --fail-under 0.5` exits 6).
    again = helios.apply(pipeline, labels=scratch.labels, locked=True, fail_under=0.5)
    assert again.ran == 0 and again.already_done == 2
    assert not again.expectations_met and again.verdict == "expectations_not_met"
    missed = [c for c in again.expectations if not c["met"]]
    assert len(missed) == 1 and "nop" in missed[0]["group"], again.expectations

    # The asyncio form streams the same way (here, a run with everything done).
    async def streamed() -> tuple[list[str], helios.ApplyResult]:
        stream = helios.apply_stream(pipeline, labels=scratch.labels)
        kinds = [event.type async for event in stream]
        return kinds, await stream.result()

    kinds, third = asyncio.run(streamed())
    assert third.already_done == 2 and kinds == [e["event"] for e in third.events]
    assert kinds.count("trial_skipped") == 2, kinds
    called: list[str] = []
    fourth = asyncio.run(
        helios.apply_async(pipeline, labels=scratch.labels, on_event=lambda e: called.append(e.type))
    )
    assert called == [e["event"] for e in fourth.events] and fourth.verdict == "passed"


def test_a_pipelines_warnings_are_issued_and_kept_in_the_result(scratch: Scratch) -> None:
    pipeline = scratch.dir / "p.toml"
    pipeline.write_text(
        '[pipeline]\nname = "py-apply-warn"\noutput_dir = "runs"\n'
        f'[[tasks]]\npath = "{ROOT / "tasks" / "*"}"\ninclude = ["create-hello-file"]\n'
        '[agents.spare]\nkind = "oracle"\n'
        '[[stages]]\nname = "sanity"\nagents = ["nop"]\n'
    )
    with pytest.warns(helios.HeliosWarning, match="agent `spare` is not run by any stage"):
        outcome = helios.apply(pipeline, labels=scratch.labels)
    assert outcome.ran == 1
    [warning] = outcome.warnings
    # As `helios apply` prints it: the place in the file and the help.
    assert "p.toml:7:9" in warning and "add it to a stage's `agents`" in warning, warning


def test_an_exception_in_on_event_cancels_the_run_and_propagates(scratch: Scratch) -> None:
    pipeline = scratch.dir / "p.toml"
    pipeline.write_text(
        '[pipeline]\nname = "py-apply-stop"\noutput_dir = "runs"\n'
        f'[[tasks]]\npath = "{ROOT / "tasks" / "*"}"\ninclude = ["create-hello-file"]\n'
        '[[stages]]\nname = "sanity"\nagents = ["nop"]\n'
    )

    def stop(event: helios.Event) -> None:
        if event.type == "trial_started":
            raise KeyError("enough")

    with pytest.raises(KeyError, match="enough"):
        helios.apply(pipeline, labels=scratch.labels, on_event=stop)
    # The run was cancelled and cleaned up (the fixture checks no container is left):
    # its trial is still to run.
    assert helios.plan(pipeline).to_run == 1

    # A stream cancelled mid-run says so, as `helios apply` does on Ctrl-C.
    async def cancelled() -> tuple[list[str], helios.ApplyResult]:
        stream = helios.apply_stream(pipeline, labels=scratch.labels)
        kinds = []
        async for event in stream:
            kinds.append(event.type)
            if event.type == "trial_started":
                stream.cancel()
        return kinds, await stream.result()

    kinds, outcome = asyncio.run(cancelled())
    assert "cancelling" in kinds and kinds == [e["event"] for e in outcome.events], kinds
    assert outcome.cancelled and outcome.verdict == "cancelled"
    assert helios.plan(pipeline).to_run == 1


def test_ctrl_c_while_the_run_opens_raises_at_once(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "Docker engine" that takes the connection and never answers: opening the run waits
    # on it, for up to the engine call's deadline (two minutes). Once helios is connected,
    # the server sends this process a Ctrl-C, then watches for the interrupt to come
    # through; a minute later it says it never did (a hang detector, not a timing: the
    # interrupt is looked for every 200 ms).
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = Path(tempfile.mkdtemp(dir="/tmp")) / "silent.sock"
    server.bind(str(path))
    server.listen()
    interrupted = threading.Event()
    came_through: list[bool] = []

    def interrupt_once_connected() -> None:
        connection, _ = server.accept()
        os.kill(os.getpid(), signal.SIGINT)
        came_through.append(interrupted.wait(timeout=60))
        connection.close()

    watcher = threading.Thread(target=interrupt_once_connected, daemon=True)
    watcher.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    pipeline = scratch.dir / "p.toml"
    pipeline.write_text(
        '[pipeline]\nname = "py-apply-interrupted"\noutput_dir = "runs"\n'
        f'[[tasks]]\npath = "{ROOT / "tasks" / "*"}"\ninclude = ["create-hello-file"]\n'
        '[[stages]]\nname = "sanity"\nagents = ["nop"]\n'
    )
    with pytest.raises(KeyboardInterrupt):
        helios.apply(pipeline, labels=scratch.labels)
    interrupted.set()
    watcher.join()
    server.close()
    assert came_through == [True], "Ctrl-C waited for the engine's call to give up"
