"""data_report.json at the run's start: what the data layer repaired, dropped and skipped, per split, the
windows' statistics and the data fingerprints."""

from __future__ import annotations

from qa_lab.core.artifacts import write_json
from qa_lab.training.context import Run
from qa_lab.training.hooks import Hook


class DataReport(Hook):
    def on_run_start(self, run: Run) -> None:
        write_json(run.folder / "data_report.json", run.data.report())
