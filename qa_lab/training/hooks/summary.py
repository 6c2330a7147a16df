"""summary.json at the run's end: its status (complete, pruned or failed), best epoch and its record, wall
time, what it trained, the data fingerprints, what other hooks report (the tracker's state) and provenance."""

from __future__ import annotations

import time
from typing import Any

from qa_lab.core import provenance
from qa_lab.core.artifacts import write_json
from qa_lab.training.context import Run
from qa_lab.training.hooks import Hook


class Summary(Hook):
    def __init__(self, seed: int, model: str, data: str, defaults: dict[str, Any]) -> None:
        """`defaults`: facts the summary always holds, for when the hook that reports them is off."""
        self.seed, self.model, self.data, self.defaults = seed, model, data, defaults

    def on_run_end(self, run: Run, status: str) -> None:
        best = run.state.best
        if best is None:  # failed before its first evaluation: compare reads the error from run.log
            return
        summary = {
            "best_epoch": best["epoch"],
            "objective": run.objective,
            "best": best,
            "wall_seconds": time.perf_counter() - run.started,
            "seed": self.seed,
            "model": self.model,
            "data": self.data,
            "version_2": run.data.version_2,
            "data_fingerprints": run.data.fingerprints,
            **(self.defaults | run.facts),
            **provenance.describe(),
        }
        if run.trial is not None:
            summary["trial"] = run.trial.describe()
        summary["status"] = status
        if status == "pruned":
            summary["pruned_at_epoch"] = run.stop.epoch
        if run.state.resumed_from:
            summary["resumed_from"] = run.state.resumed_from
        write_json(run.folder / "summary.json", summary)
