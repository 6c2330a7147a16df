"""Weights & Biases as a tracker hook (`logger=wandb`, conf/logger/wandb.yaml): the resolved config (secrets
masked) as the run's config, train/loss and learning_rate per logging step, every eval/* per epoch against
the epoch, the best epoch in the summary, and the run closed as failed when it failed.

W&B runs online when an API key is configured and the server answers, offline otherwise (files under the
run directory, uploaded later with `wandb sync`). A W&B failure never stops training: one warning, and
summary.json records `wandb_mode: failed`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from qa_lab.core.records import THRESHOLD_KEY, V2_KEYS
from qa_lab.core.secrets import mask_text
from qa_lab.training.context import EpochEnd, Run, Step
from qa_lab.training.hooks import Hook

log = logging.getLogger(__name__)

# per-epoch keys logged under eval/ (with the SQuAD v2 scores), the rest under epoch/
EVAL_KEYS = ("exact_match", "f1", "eval_seconds", *V2_KEYS, THRESHOLD_KEY)
BEST_OF_EPOCHS = ("eval/f1", "eval/exact_match", "eval/HasAns_f1", "eval/NoAns_f1")  # the summary keeps their maximum


class WandbTracker(Hook):
    def __init__(
        self,
        name: str,
        mode: str,
        project: str,
        entity: str | None,
        group: str | None,
        job_type: str,
        tags: list[str],
        probe_timeout: float,
        **other: Any,
    ) -> None:
        """The keys of conf/logger/wandb.yaml (`name` is the logger option's own). Keys added on the command
        line (`+logger.key=...`) are part of the recorded config, not arguments of W&B: `other` is not used."""
        self.mode, self.probe_timeout = mode, probe_timeout
        self.init = {"project": project, "entity": entity, "group": group, "job_type": job_type, "tags": list(tags)}
        self.run = None

    def on_run_start(self, run: Run) -> None:
        """Start (or, resumed, continue) the W&B run; its id goes into the loop state, so a checkpoint keeps it."""
        mode = self.mode if self.mode != "auto" else ("online" if _wandb_online(self.probe_timeout) else "offline")
        run.facts["wandb_mode"] = self._start(run, mode)
        run.state.wandb_id = self.run.id if self.run is not None else None

    def _start(self, run: Run, mode: str) -> str:
        """online | offline, or failed when W&B did not start."""
        try:
            import wandb

            with _masked_command_line():  # W&B saves the command line (its `args`) with the run
                self.run = wandb.init(
                    **self.init,
                    name=f"{run.name}-{run.folder.name}",
                    config=run.config | ({"trial": run.trial.describe()} if run.trial is not None else {}),
                    dir=str(run.folder),
                    mode=mode,
                    id=run.state.wandb_id,
                    resume="allow" if run.state.wandb_id else None,
                    settings=wandb.Settings(quiet=True, console="off"),
                )
            self._define_metrics()
        except Exception as error:  # noqa: BLE001 - tracking must never cost the run
            log.warning(
                "W&B did not start (%s: %s); the run goes on without it, metrics are in %s "
                "(logger.mode=offline keeps W&B's files in the run folder, logger=none turns W&B off)",
                type(error).__name__, error, run.folder / "metrics.jsonl",
            )
            self.run = None
            return "failed"
        log.info("W&B run %s (%s mode) in %s", self.run.id, mode, self.run.dir)
        return mode

    def _define_metrics(self) -> None:
        self.run.define_metric("epoch")
        self.run.define_metric("eval/*", step_metric="epoch")
        self.run.define_metric("epoch/*", step_metric="epoch")
        for key in BEST_OF_EPOCHS:
            self.run.define_metric(key, step_metric="epoch", summary="max")
        self.run.define_metric("train/step")
        self.run.define_metric("train/*", step_metric="train/step")

    def on_step_end(self, run: Run, step: Step) -> None:
        if self.run is not None and step.log:
            self.run.log({"train/step": step.number, "train/loss": step.loss, "train/learning_rate": step.learning_rate})

    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        if self.run is None:
            return
        record = epoch.record
        scores = {f"eval/{key}": record[key] for key in EVAL_KEYS if key in record}
        training = {f"epoch/{key}": value for key, value in record.items() if key not in EVAL_KEYS and key != "epoch"}
        self.run.log({"epoch": record["epoch"], **scores, **training})

    def on_run_end(self, run: Run, status: str) -> None:
        if self.run is None:
            return
        try:
            best = run.state.best
            if best:
                self.run.summary.update({f"best/{k}": v for k, v in best.items() if isinstance(v, (int, float, str))})
            if status == "pruned":
                self.run.summary["pruned_at_epoch"] = run.stop.epoch
            self.run.finish(exit_code=1 if status == "failed" else 0)
        except Exception as error:  # noqa: BLE001
            log.warning("W&B did not close cleanly (%s); run files may be incomplete", error)
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
