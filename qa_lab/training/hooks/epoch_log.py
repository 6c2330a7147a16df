"""One readable line per epoch in run.log: loss, EM/F1 (HasAns/NoAns and the best threshold for SQuAD v2),
timings."""

from __future__ import annotations

import logging
from typing import Any

from qa_lab.core.records import THRESHOLD_KEY
from qa_lab.model.compiling import compiled_graphs
from qa_lab.training.context import EpochEnd, Run
from qa_lab.training.hooks import Hook

log = logging.getLogger(__name__)


class EpochLog(Hook):
    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        log.info("epoch %d | %s", epoch.record["epoch"], epoch_line(epoch.record))
        if run.trainer.compile:  # a count far above 2 x the width buckets: shapes escape them, each compiling anew
            log.info("torch.compile: %d graphs so far", compiled_graphs())


def score_parts(record: dict[str, Any]) -> list[str]:
    """An epoch's EM and F1 (and HasAns/NoAns F1 for SQuAD v2) as a line shows them."""
    parts = [f"EM {record['exact_match']:.2f}", f"F1 {record['f1']:.2f}"]
    return parts + [f"{name} F1 {record[key]:.2f}" for name, key in (("HasAns", "HasAns_f1"), ("NoAns", "NoAns_f1")) if key in record]


def epoch_line(record: dict[str, Any]) -> str:
    parts = [f"loss {record['train_loss']:.4f}"] if "train_loss" in record else []
    parts += score_parts(record)
    if THRESHOLD_KEY in record:
        parts.append(f"best F1 {record['best_f1']:.2f} at null threshold {record['best_f1_thresh']:.3f}")
    if "train_seconds" in record:
        parts.append(f"train {record['train_seconds']:.0f}s ({record['train_samples_per_second']:.1f} samples/s)")
    parts.append(f"eval {record['eval_seconds']:.0f}s")
    return " | ".join(parts)
