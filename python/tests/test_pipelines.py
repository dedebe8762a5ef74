"""helios.validate, helios.plan and helios.apply from Python."""

from __future__ import annotations

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


def test_an_invalid_pipeline_is_a_task_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pipeline]\nname = "p"\nconcurency = 2\n')
    with pytest.raises(helios.TaskError, match="is not valid; nothing was run"):
        helios.plan(bad)


def test_apply_returns_the_results_and_the_summary(scratch: Scratch) -> None:
    pipeline = scratch.dir / "p.toml"
    pipeline.write_text(
        f'[pipeline]\nname = "py-apply"\noutput_dir = "runs"\n'
        f'[[tasks]]\npath = "{ROOT / "tasks" / "*"}"\ninclude = ["create-hello-file"]\n'
        '[[stages]]\nname = "sanity"\nagents = ["oracle", "nop"]\n'
    )
    outcome = helios.apply(pipeline, labels=scratch.labels)
    assert outcome.ran == 2 and not outcome.cancelled
    by_agent = {t.agent: t for t in outcome.trials}
    assert by_agent["oracle"].reward == 1.0 and by_agent["oracle"].success
    assert by_agent["nop"].reward == 0.0 and by_agent["nop"].status == "completed"
    assert outcome.summary["trials"] == 2 and outcome.summary["passed"] == 1
    assert (outcome.run_dir / "summary.json").is_file()
    # Every event of the run comes with it, in order: none is dropped.
    kinds = [e["event"] for e in outcome.events]
    assert "started" in kinds and kinds[-1] == "finished", kinds
    assert kinds.count("trial_started") == 2 and kinds.count("trial_finished") == 2, kinds
    again = helios.apply(pipeline, labels=scratch.labels)
    assert again.ran == 0 and again.already_done == 2
