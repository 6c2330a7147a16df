"""In a study sweep: each epoch's objective goes to the run's Optuna trial, and when the study's pruner
stops the trial the run ends after that epoch, raising optuna.TrialPruned (after its files are written and
its tracker is closed), so the sweeper records the trial as PRUNED."""

from __future__ import annotations

import optuna

from qa_lab.training.context import EpochEnd, Run, Stop
from qa_lab.training.hooks import Hook


class TrialReport(Hook):
    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        number = epoch.record["epoch"]
        if run.trial is None or not run.trial.should_stop(number, epoch.record[run.objective]):
            return
        best = run.state.best[run.objective]
        message = f"pruned after epoch {number} of {run.trainer.epochs}, {run.objective} {best:.2f}"
        run.stop = Stop("pruned", number, optuna.TrialPruned(message))
