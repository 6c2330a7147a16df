"""Crash recovery: the full training state, saved with Accelerate's save_state, and where the loop stood.

A checkpoint is `<run dir>/checkpoints/step-<optimiser step>/`: what `accelerator.save_state` writes
(model, optimizer, scheduler, every process's RNG states) plus `loop.json` (the epoch in progress, how
many of its batches are done, the running loss, the epoch records so far, the best record, the W&B run
id and the training config). It is filled under a hidden temporary name and renamed when complete, so a
crash while saving leaves the earlier checkpoints as they were. The newest `keep_last` checkpoints stay,
plus the one taken right after the best epoch.

Resuming loads that state into the prepared objects and skips the epoch's batches already trained on
(the batch order is a function of seed and epoch), so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from qa_lab.core.artifacts import reported, write_text
from qa_lab.core.errors import ConfigError
from qa_lab.core.records import flatten
from qa_lab.training.state import LoopState

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LOOP_FILE = "loop.json"
PREFIX = "step-"
# what must match between a checkpoint and the run resuming it: everything that shapes training
TRAINING_KEYS = ("model", "data", "trainer", "postprocess", "objective")
# trainer keys that may change on resume: they do not change what is computed
FREE_TRAINER_KEYS = ("resume", "checkpoint", "log_every_n_steps", "progress_every_seconds", "eval_batch_size")


def training_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's recorded config (resolved, secrets masked) a checkpoint must agree with."""
    chosen = {key: copy.deepcopy(config[key]) for key in TRAINING_KEYS}
    for key in FREE_TRAINER_KEYS:
        chosen["trainer"].pop(key, None)
    return chosen


def save(accelerator: Accelerator, run_dir: Path, state: LoopState, training: dict[str, Any], keep_last: int, after_best: bool) -> None:
    """Every process writes its part (save_state is collective), the main process completes and renames it.

    `training`: training_config() of the run, kept in loop.json for the check on resume."""
    folder = run_dir / CHECKPOINTS
    name = f"{PREFIX}{state.step:08d}"
    staging = folder / f".{name}.partial"
    final = folder / name
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)  # left by a crash while saving
    accelerator.wait_for_everyone()
    try:
        with reported(final):  # a full disk: a clear error, the earlier checkpoints untouched
            accelerator.save_state(str(staging))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                loop = {key: value for key, value in asdict(state).items() if key != "resumed_from"}
                loop["best_checkpoint"] = name if after_best else state.best_checkpoint
                write_text(staging / LOOP_FILE, json.dumps(loop | {"config": training}, indent=1))
                if final.exists():  # the same step saved again (an epoch of a resumed run that ended there)
                    shutil.rmtree(final)
                os.replace(staging, final)
    finally:
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)  # only there when saving failed
    if accelerator.is_main_process:
        state.best_checkpoint = loop["best_checkpoint"]
        _prune(folder, keep_last, state.best_checkpoint)
        if state.batches_done:  # within an epoch
            log.info("checkpoint %s (epoch %d, %d batches done)", final, state.epoch, state.batches_done)
        else:  # at an epoch's end the state already points at the next epoch, which may never run
            log.info("checkpoint %s (after epoch %d, optimiser step %d)", final, state.epoch - 1, state.step)
    accelerator.wait_for_everyone()


def _prune(folder: Path, keep_last: int, best: str | None) -> None:
    for old in complete(folder)[:-keep_last]:
        if old.name != best:
            shutil.rmtree(old)


def complete(folder: Path) -> list[Path]:
    """Finished checkpoints in `folder`, oldest first (hidden partial ones are never listed)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.name.startswith(PREFIX) and (path / LOOP_FILE).is_file())


def find(resume: str | None, run_dir: Path) -> Path | None:
    """The checkpoint `trainer.resume` names: None, `auto` (this run's newest, if any), a checkpoint or a run folder."""
    if resume is None:
        return None
    if resume == "auto":
        found = complete(run_dir / CHECKPOINTS)
        if not found:
            log.info("trainer.resume=auto: no checkpoint in %s, starting from scratch", run_dir / CHECKPOINTS)
        return found[-1] if found else None
    path = Path(resume)
    if (path / LOOP_FILE).is_file():
        return path
    found = complete(path / CHECKPOINTS)
    if found:
        return found[-1]
    raise ConfigError(
        f"no checkpoint at {path}",
        where="trainer.resume",
        fix=f"give a run folder with {CHECKPOINTS}/, one of its {CHECKPOINTS}/{PREFIX}* folders, or trainer.resume=auto "
        "with hydra.run.dir=<the run folder>",
    )


def check(path: Path, training: dict[str, Any]) -> None:
    """Refuse, before any work, a checkpoint trained with other settings (`training`: training_config() of
    this run): resuming it would measure something else."""
    saved = json.loads((path / LOOP_FILE).read_text(encoding="utf-8"))["config"]
    differences = _differences(saved, training)
    if differences:
        raise ConfigError(
            f"the checkpoint was trained with a different config: {'; '.join(differences[:10])}",
            where=f"trainer.resume ({path})",
            fix="resume with the same settings (only trainer.resume, trainer.checkpoint.*, trainer.log_every_n_steps "
            "and trainer.eval_batch_size may change), or start a new run",
        )


def load(accelerator: Accelerator, path: Path) -> LoopState:
    """Restore the prepared model, optimizer, scheduler and RNG states, and return where the loop stood."""
    saved = json.loads((path / LOOP_FILE).read_text(encoding="utf-8"))
    saved.pop("config")
    accelerator.load_state(str(path))
    state = LoopState(**saved)
    state.resumed_from = str(path)
    log.info("resumed from %s: epoch %d with %d of its batches done, optimiser step %d", path, state.epoch, state.batches_done, state.step)
    return state


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    saved, now = flatten(saved), flatten(now)
    return [f"{key} was {saved.get(key)!r}, now {now.get(key)!r}" for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]
