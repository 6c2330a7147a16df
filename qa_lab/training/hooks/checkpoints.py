"""Crash recovery: the full training state (training/checkpoint.py) after every trained epoch and every
`every_n_steps` optimiser steps within one; the newest `keep_last` are kept, plus the one after the best epoch.

Saving is collective (every process writes its part), so this hook runs on every process.
"""

from __future__ import annotations

from qa_lab.training import checkpoint
from qa_lab.training.context import EpochEnd, Run, Step
from qa_lab.training.hooks import Hook


class Checkpoints(Hook):
    main_process_only = False

    def __init__(self, keep_last: int, every_n_steps: int | None) -> None:
        """keep_last 0: no checkpoints; every_n_steps None: at epoch ends only."""
        self.keep_last, self.every_n_steps = keep_last, every_n_steps

    def on_step_end(self, run: Run, step: Step) -> None:
        # at the epoch's last step the epoch's own checkpoint follows its evaluation
        if self.keep_last and self.every_n_steps and step.number % self.every_n_steps == 0 and not step.ends_epoch:
            step.read_loss()  # the epoch's running loss, complete in the saved state
            self._save(run, after_best=False)

    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        if self.keep_last and epoch.trained:
            self._save(run, after_best=epoch.improved)

    def _save(self, run: Run, after_best: bool) -> None:
        checkpoint.save(run.accelerator, run.folder, run.state, checkpoint.training_config(run.config), self.keep_last, after_best)
