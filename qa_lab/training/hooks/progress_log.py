"""A progress line every `every_seconds` when no terminal shows the progress bar (a log file, a batch
job's output): epoch, step / total, loss, samples/s and the training time left, so a long epoch is never
silent. On a terminal the loop's tqdm bar does this job and the hook stays quiet."""

from __future__ import annotations

import logging
import sys
import time

from qa_lab.core.formatting import duration
from qa_lab.training.context import EpochEnd, Run, Step
from qa_lab.training.hooks import Hook

log = logging.getLogger(__name__)


class ProgressLog(Hook):
    def __init__(self, every_seconds: float | None, epochs: int) -> None:
        """every_seconds null or 0: no progress lines; `epochs`: the run's total, for "epoch 2/3"."""
        self.every_seconds, self.epochs = every_seconds, epochs
        self.quiet = not every_seconds or sys.stderr.isatty()
        self._since: float | None = None  # when the current interval began (None: at the next step)
        self._steps = 0
        self._samples = 0  # the epoch's samples at the interval's start

    def on_step_end(self, run: Run, step: Step) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if self._since is None:  # the first step of an epoch: the interval starts here, not at the evaluation before it
            self._since, self._samples = now, step.samples
            return
        self._steps += 1
        seconds = now - self._since
        if seconds < self.every_seconds:
            return
        left = (run.parts.total_steps - step.number) * seconds / self._steps
        log.info(
            # the loss since its last read (this hook's line or another hook's): a read waits for the device
            "epoch %d/%d | step %d/%d | loss %.4f | %.1f samples/s | training time left %s",
            step.epoch, self.epochs, step.number, run.parts.total_steps, step.read_loss(),
            (step.samples - self._samples) / seconds, duration(left),
        )
        self._since, self._samples, self._steps = now, step.samples, 0

    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        self._since, self._steps = None, 0

