"""Crash recovery and determinism through `python run.py`: a run killed with SIGKILL mid-epoch and resumed
ends exactly where an uninterrupted run with the same seed ends, and two runs of one config agree."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from tests.helpers import TINY_RUN, mlflow_f1, mlflow_in, mlflow_runs, offline_env, run_py, start

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("resume")]

# TINY_RUN with smaller batches (34 optimiser steps per epoch), so a kill lands well inside an epoch,
# and a checkpoint every 3 steps
RESUMABLE = [*TINY_RUN, "trainer.batch_size=8", "trainer.checkpoint.every_n_steps=3", "trainer.checkpoint.keep_last=2"]
TIMINGS = ("train_seconds", "train_samples_per_second", "train_tokens_per_second", "eval_seconds")  # wall-clock: the only fields allowed to differ
MID_EPOCH_2 = re.compile(r"checkpoint \S+ \(epoch 2, ([1-9]\d*) batches done\)")


def metrics(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in record.items() if key not in TIMINGS} for record in records]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("resume") / "uninterrupted"
    done = run_py(run_dir, *RESUMABLE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run_dir


def test_same_config_and_seed_give_identical_metrics(uninterrupted, tmp_path):
    again = tmp_path / "again"
    done = run_py(again, *RESUMABLE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(metrics(again)) == 2
    assert metrics(again) == metrics(uninterrupted)
    assert (again / "predictions.json").read_text() == (uninterrupted / "predictions.json").read_text()


def test_killed_mid_epoch_and_resumed_ends_like_the_uninterrupted_run(uninterrupted, tmp_path):
    run_dir = tmp_path / "killed"
    env = offline_env(QA_LAB_CACHE_DIR=str(uninterrupted.parent / "cache"))
    tracked = [*RESUMABLE, "logger=[wandb,mlflow]", *mlflow_in(run_dir)]  # the trackers are no training setting
    process = start(["run.py", f"hydra.run.dir={run_dir}", *tracked], env=env, merge=True)
    output = []
    for line in process.lines():
        output.append(line)
        if MID_EPOCH_2.search(line):
            process.kill(signal.SIGKILL)  # no chance to clean up: as a crash or an OOM kill
            break
    assert process.wait(timeout=60) == -signal.SIGKILL, "\n".join(output[-30:])
    assert not (run_dir / "summary.json").exists()
    assert len(metrics(run_dir)) == 1  # epoch 1 only: killed inside epoch 2

    resumed = run_py(run_dir, *tracked, "trainer.resume=auto")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    where = re.search(r"resumed from \S+: epoch (\d+) with (\d+) of its batches done", resumed.stdout + resumed.stderr)
    assert where and where.group(1) == "2" and int(where.group(2)) > 0  # from inside epoch 2
    assert metrics(run_dir) == metrics(uninterrupted)
    assert (run_dir / "predictions.json").read_text() == (uninterrupted / "predictions.json").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_from"].startswith(str(run_dir / "checkpoints"))
    # the resumed process continues the same W&B run and the same MLflow run
    wandb_runs = {path.name.rsplit("-", 1)[1] for path in (run_dir / "wandb").glob("offline-run-*")}
    assert len(wandb_runs) == 1
    [mlflow_run] = mlflow_runs(run_dir / "mlflow.db")
    assert mlflow_run.info.status == "FINISHED" and summary["trackers"]["mlflow"]["run_id"] == mlflow_run.info.run_id
    assert mlflow_f1(run_dir / "mlflow.db", mlflow_run.info.run_id) == [(epoch["epoch"], epoch["f1"]) for epoch in metrics(run_dir)]


def test_checkpoints_keep_the_newest_plus_the_best(uninterrupted):
    kept = sorted(path.name for path in (uninterrupted / "checkpoints").iterdir())
    best_epoch = json.loads((uninterrupted / "summary.json").read_text())["best_epoch"]
    loops = {name: json.loads((uninterrupted / "checkpoints" / name / "loop.json").read_text()) for name in kept}
    newest = [name for name in kept if loops[name]["epoch"] == 3]  # after the last epoch
    assert len(newest) == 1 and not [name for name in kept if name.startswith(".")]
    after_best = [name for name, loop in loops.items() if loop["batches_done"] == 0 and loop["epoch"] == best_epoch + 1]
    assert after_best and len(kept) <= 3  # keep_last=2, plus the best epoch's when it is older
    for name, loop in loops.items():
        assert (uninterrupted / "checkpoints" / name / "model.safetensors").is_file()
        assert [record["epoch"] for record in loop["history"]] == list(range(1, loop["epoch"]))


def test_resuming_with_a_different_config_is_refused(uninterrupted, tmp_path):
    done = run_py(tmp_path / "other", *RESUMABLE, "trainer.lr=2e-3", f"trainer.resume={uninterrupted}")
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "trainer.lr was 0.001, now 0.002" in output and "Traceback" not in output


def test_resume_path_without_checkpoints_is_a_clear_error(tmp_path):
    done = run_py(tmp_path / "run", *RESUMABLE, f"trainer.resume={tmp_path}")
    assert done.returncode == 2
    assert f"trainer.resume: no checkpoint at {tmp_path}" in done.stdout + done.stderr


@pytest.mark.unit
def test_a_full_disk_while_checkpointing_keeps_the_earlier_checkpoints(tmp_path, monkeypatch):
    """Unit level (a full disk cannot be made without root): save_state hits ENOSPC half-way."""
    import errno

    import torch
    from accelerate import Accelerator

    from qa_lab.core.errors import StorageError
    from qa_lab.training import checkpoint
    from qa_lab.training.state import LoopState

    training = {key: {} for key in checkpoint.TRAINING_KEYS}
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(4, 2)
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters()))
    state = LoopState(step=3)
    checkpoint.save(accelerator, tmp_path, state, training, keep_last=1, after_best=True)
    first = tmp_path / "checkpoints" / "step-00000003"
    saved = (first / "model.safetensors").read_bytes()

    def half_written(folder: str) -> None:
        (Path(folder) / "model.safetensors").parent.mkdir(parents=True, exist_ok=True)
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(accelerator, "save_state", half_written)
    state.step = 6
    with pytest.raises(StorageError, match="could not write step-00000006: the disk is full"):
        checkpoint.save(accelerator, tmp_path, state, training, keep_last=1, after_best=False)
    assert [path.name for path in (tmp_path / "checkpoints").iterdir()] == ["step-00000003"]  # nothing partial left
    assert (first / "model.safetensors").read_bytes() == saved
    assert checkpoint.find("auto", tmp_path) == first
