"""Where the training loop stands: the one object the loop moves forward and a checkpoint saves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoopState:
    """Where the training loop stands; a fresh run starts at epoch 1 with nothing done."""

    epoch: int = 1  # the epoch in progress
    batches_done: int = 0  # batches of that epoch already trained on
    step: int = 0  # optimiser steps so far
    loss_sum: float = 0.0  # the epoch's running train loss
    loss_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # the epoch records so far (metrics.jsonl)
    best: dict[str, Any] | None = None  # the best epoch's record
    best_checkpoint: str | None = None  # the checkpoint taken right after the best epoch
    tracker_runs: dict[str, str] = field(default_factory=dict)  # each tracker's run id (hooks/tracker.py)
    resumed_from: str | None = None  # not saved: the checkpoint this process started from

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.batches_done, self.loss_sum, self.loss_count = epoch, 0, 0.0, 0
