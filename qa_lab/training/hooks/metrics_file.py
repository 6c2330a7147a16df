"""metrics.jsonl: one JSON object per epoch, the whole file rewritten atomically at each epoch's end (a
resumed run starts from the epoch records its checkpoint holds)."""

from __future__ import annotations

from qa_lab.core.artifacts import write_jsonl
from qa_lab.training.context import EpochEnd, Run
from qa_lab.training.hooks import Hook

METRICS_FILE = "metrics.jsonl"


class MetricsFile(Hook):
    def on_run_start(self, run: Run) -> None:
        write_jsonl(run.folder / METRICS_FILE, run.state.history)

    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        write_jsonl(run.folder / METRICS_FILE, run.state.history)
