"""What every tracker hook shares (`logger=wandb`, `mlflow`, `tensorboard`, or a list of them: conf/logger/),
so that each dashboard shows the same run the same way:

- run start: the resolved config (secrets masked) as the run's parameters; in a study sweep the run is one of
  its study's group (W&B group, MLflow experiment) with the trial's number and parameters;
- every logging step: train/loss and train/learning_rate against the optimiser step (`train/step`);
- every epoch: eval/* (EM, F1, the SQuAD v2 scores) and epoch/* (train loss, timings) against the epoch;
- run end: the best epoch's scores, and the run closed as complete, pruned or failed.

A tracker never costs the run: one that cannot start, or breaks later (a server gone, a locked database),
logs one warning and is off from then on. summary.json's `trackers` holds each tracker's state, where
its run is and how to view it (`view`: a command or a URL); the checkpoint keeps each run's id, so a
resumed run goes on logging into the same one.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from qa_lab.core.errors import ConfigError
from qa_lab.core.records import THRESHOLD_KEY, V2_KEYS
from qa_lab.training.context import EpochEnd, Run, Step
from qa_lab.training.hooks import Hook

log = logging.getLogger(__name__)

# per-epoch keys logged under eval/ (with the SQuAD v2 scores), the rest of an epoch's record under epoch/
EVAL_KEYS = ("exact_match", "f1", "eval_seconds", *V2_KEYS, THRESHOLD_KEY)
BEST_KEYS = ("f1", "exact_match", "HasAns_f1", "NoAns_f1")  # the best epoch's scores every tracker keeps
STEP_AXIS, EPOCH_AXIS = "train/step", "epoch"  # what the values are logged against


class Tracker(Hook):
    """A tracker hook: a subclass says how to open, log into and close its kind of run."""

    name: ClassVar[str]  # its key under `logger` and in summary.json's `trackers`
    title: ClassVar[str]  # in its warnings
    hint: ClassVar[str]  # what the user can do when it does not start

    def __init__(self, group: str | None = None) -> None:
        self.group = group  # null: the study's name in a sweep, no group outside one
        self.active = False
        self.where: dict[str, Any] = {}

    def library(self, module: str, attribute: str) -> Any:
        """`from module import attribute` for a tracker whose package is an extra (its package is named as the
        tracker): without it, a config error when the hooks are built, before any work."""
        try:
            return getattr(importlib.import_module(module), attribute)
        except ImportError as missing:
            raise ConfigError(
                f"logger={self.name} needs the {self.name} package ({missing})", where="logger", fix="pip install 'qa-lab[trackers]'"
            ) from None

    def open(self, run: Run, group: str | None, resume_id: str | None) -> tuple[str, dict[str, Any]]:
        """Start (or continue, given `resume_id`) the tracker's run: its id, and what summary.json records
        about it (its state first)."""
        raise NotImplementedError

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        raise NotImplementedError

    def close(self, run: Run, status: str, best: dict[str, Any]) -> None:
        raise NotImplementedError

    def on_run_start(self, run: Run) -> None:
        group = self.group or (run.trial.describe()["study"] if run.trial is not None else None)
        opened = self._safely(run, "did not start", self.open, run, group, run.state.tracker_runs.get(self.name))
        if opened is not None:
            run_id, self.where = opened
            run.state.tracker_runs[self.name] = run_id
            self.active = True
        self._report(run)

    def on_step_end(self, run: Run, step: Step) -> None:
        if self.active and step.log:
            values = {"train/loss": step.read_loss(), "train/learning_rate": step.learning_rate}
            self._safely(run, "stopped logging", self.log, values, STEP_AXIS, step.number)

    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        if self.active:
            record = epoch.record
            values = {f"eval/{key}": record[key] for key in EVAL_KEYS if key in record}
            values |= {f"epoch/{key}": value for key, value in record.items() if key not in EVAL_KEYS and key != "epoch"}
            self._safely(run, "stopped logging", self.log, values, EPOCH_AXIS, record["epoch"])

    def on_run_end(self, run: Run, status: str) -> None:
        if self.active:
            best = {key: value for key, value in (run.state.best or {}).items() if isinstance(value, (int, float, str))}
            self._safely(run, "did not close cleanly", self.close, run, status, best)
            self.active = False

    def _safely(self, run: Run, what: str, action: Callable[..., Any], *arguments: Any) -> Any:
        """`action(*arguments)`, or None after one warning and the tracker off when it raises."""
        try:
            return action(*arguments)
        except Exception as error:  # noqa: BLE001 - tracking must never cost the run
            log.warning(
                "%s %s (%s: %s); the run goes on without it, metrics are in %s (%s)",
                self.title, what, type(error).__name__, error, run.folder / "metrics.jsonl", self.hint,
            )
            self.active = False
            self.where = {**self.where, "state": "failed", "error": f"{type(error).__name__}: {error}"}
            self._report(run)
            return None

    def _report(self, run: Run) -> None:
        run.facts.setdefault("trackers", {})[self.name] = self.where or {"state": "failed"}
