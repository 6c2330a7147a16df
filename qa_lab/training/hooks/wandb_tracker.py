"""Weights & Biases as a tracker hook (`logger=wandb`, conf/logger/wandb.yaml): the resolved config (secrets
masked) as the run's config, train/loss and learning_rate per logging step, every eval/* per epoch against
the epoch, the best epoch in the summary, and the run closed as failed when it failed.

W&B runs online when an API key is configured and the server answers, offline otherwise (files under the
run directory, uploaded later with `wandb sync`). A W&B failure never stops training: one warning, and
summary.json records its state as failed (tracker.py).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from qa_lab.core.secrets import mask_text
from qa_lab.training.context import Run
from qa_lab.training.hooks.tracker import BEST_KEYS, EPOCH_AXIS, STEP_AXIS, Tracker

log = logging.getLogger(__name__)


class WandbTracker(Tracker):
    name, title = "wandb", "W&B"
    hint = "logger.wandb.mode=offline keeps W&B's files in the run folder, logger=none turns W&B off"

    def __init__(
        self,
        mode: str,
        project: str,
        entity: str | None,
        group: str | None,
        job_type: str,
        tags: list[str],
        probe_timeout: float,
        **other: Any,
    ) -> None:
        """The keys of conf/logger/wandb.yaml. Keys added on the command line (`+logger.wandb.key=...`) are
        part of the recorded config, not arguments of W&B: `other` is not used."""
        super().__init__(group)
        self.mode, self.probe_timeout = mode, probe_timeout
        self.init = {"project": project, "entity": entity, "job_type": job_type, "tags": list(tags)}
        self.run = None

    def open(self, run: Run, group: str | None, resume_id: str | None) -> tuple[str, dict[str, Any]]:
        """online when an API key is configured and the server answers (mode auto), offline otherwise."""
        import wandb

        mode = self.mode if self.mode != "auto" else ("online" if _wandb_online(self.probe_timeout) else "offline")
        with _masked_command_line():  # W&B saves the command line (its `args`) with the run
            self.run = wandb.init(
                **self.init,
                group=group,
                name=f"{run.name}-{run.folder.name}",
                config=run.config | ({"trial": run.trial.describe()} if run.trial is not None else {}),
                dir=str(run.folder),
                mode=mode,
                id=resume_id,
                resume="allow" if resume_id else None,
                settings=wandb.Settings(quiet=True, console="off"),
            )
        self.run.define_metric(EPOCH_AXIS)
        self.run.define_metric("eval/*", step_metric=EPOCH_AXIS)
        self.run.define_metric("epoch/*", step_metric=EPOCH_AXIS)
        for key in BEST_KEYS:  # the run's summary keeps their maximum
            self.run.define_metric(f"eval/{key}", step_metric=EPOCH_AXIS, summary="max")
        self.run.define_metric(STEP_AXIS)
        self.run.define_metric("train/*", step_metric=STEP_AXIS)
        log.info("W&B run %s (%s mode) in %s", self.run.id, mode, self.run.dir)
        # offline: `wandb sync` uploads the run's folder (the parent of its files/) later
        view = f"wandb sync {Path(self.run.dir).parent}" if mode == "offline" else self.run.url
        return self.run.id, {"state": mode, "run_id": self.run.id, "dir": self.run.dir, "view": view}

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        self.run.log({axis: step, **values})

    def close(self, run: Run, status: str, best: dict[str, Any]) -> None:
        self.run.summary.update({f"best/{key}": value for key, value in best.items()})
        if status == "pruned":
            self.run.summary["pruned_at_epoch"] = run.stop.epoch
        self.run.finish(exit_code=1 if status == "failed" else 0)
        self.run = None


@contextmanager
def _masked_command_line() -> Iterator[None]:
    """sys.argv with secrets masked (qa_lab/core/secrets.py) for as long as the block runs."""
    argv = sys.argv
    sys.argv = [argv[0], *(mask_text(argument) for argument in argv[1:])]
    try:
        yield
    finally:
        sys.argv = argv


def _wandb_online(timeout: float) -> bool:
    """Online only with a key and a server that answers; otherwise offline, without waiting on retries."""
    has_key = bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb()
    if not has_key or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return False
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    try:
        httpx.head(base, timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def _netrc_has_wandb() -> bool:
    import netrc

    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)
