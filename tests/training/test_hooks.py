"""The training recipe in-process on the tiny model, seen through its hooks: a hook added with one config
entry sees every event in order, a hook's stop request ends the run after that epoch with its status and
error, and a run that raises still reaches every hook's run end."""

from __future__ import annotations

import json

import pytest

from qa_lab.training import hooks as hooks_package
from qa_lab.training.context import EpochEnd, Run, Step, Stop
from qa_lab.training.hooks import Hook
from qa_lab.training.recipe import train
from tests.helpers import composed

pytestmark = pytest.mark.unit

EVENTS: list[tuple] = []  # what the Spy hook saw, in order
TINY = [
    "model=tiny", "logger=none", "data.max_length=128", "data.stride=32", "data.synthetic.num_train=48",
    "data.synthetic.num_validation=16", "trainer.batch_size=16", "trainer.epochs=2", "trainer.log_every_n_steps=2",
    "trainer.checkpoint.keep_last=0",
]


class Spy(Hook):
    def __init__(self, stop_after: int | None = None, fail_after: int | None = None) -> None:
        self.stop_after, self.fail_after = stop_after, fail_after

    def on_run_start(self, run: Run) -> None:
        EVENTS.append(("run_start", run.state.epoch))

    def on_step_end(self, run: Run, step: Step) -> None:
        EVENTS.append(("step_end", step.number, step.log, step.ends_epoch))

    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        EVENTS.append(("epoch_end", epoch.record["epoch"], epoch.improved, "f1" in epoch.record))
        if epoch.record["epoch"] == self.fail_after:
            raise RuntimeError("a hook that fails")
        if epoch.record["epoch"] == self.stop_after:
            run.stop = Stop("stopped", epoch.record["epoch"], KeyboardInterrupt("stopped by the spy"))

    def on_run_end(self, run: Run, status: str) -> None:
        EVENTS.append(("run_end", status))


@pytest.fixture
def spy_run(tmp_path, monkeypatch):
    """train() on a composed config with the Spy hook added as one more `hooks` entry; returns the function
    and the run folder."""
    monkeypatch.setattr(hooks_package, "HOOK_MODULES", (*hooks_package.HOOK_MODULES, "tests.training.test_hooks.*"))
    EVENTS.clear()
    folder = tmp_path / "run"

    def run(*overrides: str) -> float:
        cfg = composed(*TINY, f"paths.output_dir={folder}", f"paths.cache_dir={tmp_path / 'cache'}",
                       "+hooks.spy._target_=tests.training.test_hooks.Spy", *overrides, hydra=False)
        return train(cfg)

    return run, folder


def test_a_hook_added_in_the_config_sees_every_event_in_order(spy_run):
    run, folder = spy_run
    objective = run()
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    per_epoch = records[0]["step"]  # optimiser steps of one epoch (windows / batch size)
    assert per_epoch >= 3 and records[1]["step"] == 2 * per_epoch
    names = [event[0] for event in EVENTS]
    assert names == ["run_start", *["step_end"] * per_epoch, "epoch_end", *["step_end"] * per_epoch, "epoch_end", "run_end"]
    steps = [event for event in EVENTS if event[0] == "step_end"]
    assert [step[1] for step in steps] == list(range(1, 2 * per_epoch + 1))
    assert [step[2] for step in steps] == [number % 2 == 0 for number in range(1, 2 * per_epoch + 1)]  # log_every_n_steps=2
    assert [step[3] for step in steps] == ([False] * (per_epoch - 1) + [True]) * 2  # each epoch's last step ends it
    assert EVENTS[-1] == ("run_end", "complete")
    assert EVENTS[per_epoch + 1][1:] == (1, True, True)  # the first epoch is the best so far, and it was scored
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["best"][summary["objective"]] == objective


def test_a_stop_request_ends_the_run_after_its_epoch_with_its_status_and_error(spy_run):
    run, folder = spy_run
    with pytest.raises(KeyboardInterrupt, match="stopped by the spy"):
        run("+hooks.spy.stop_after=1")
    assert [event[0] for event in EVENTS].count("epoch_end") == 1 and EVENTS[-1] == ("run_end", "stopped")
    assert json.loads((folder / "summary.json").read_text())["status"] == "stopped"
    assert (folder / "metrics.jsonl").read_text().count("\n") == 1


def test_a_run_that_raises_still_reaches_every_hooks_run_end(spy_run):
    run, folder = spy_run
    with pytest.raises(RuntimeError, match="a hook that fails"):
        run("+hooks.spy.fail_after=1")
    assert EVENTS[-1] == ("run_end", "failed")
    assert json.loads((folder / "summary.json").read_text())["status"] == "failed"  # the summary hook ran too
