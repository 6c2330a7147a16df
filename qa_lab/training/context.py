"""What a training run is made of while it runs, as the loop and its hooks see it: the run itself, and the
events the loop reports (an optimiser step, an epoch's end) and a hook's request to stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from omegaconf import DictConfig
from transformers import PreTrainedTokenizerBase

from qa_lab.evaluation.scoring import Evaluation, SpanSearch
from qa_lab.features.windows import WindowSpec
from qa_lab.studies.trial import StudyTrial
from qa_lab.training.setup import RunData, Trainable
from qa_lab.training.state import LoopState


@dataclass
class Stop:
    """A hook's request to end the run after this epoch: the status it ends with and what the run raises
    (a pruned trial raises optuna.TrialPruned, so the study sweeper records it as PRUNED)."""

    status: str
    epoch: int
    error: BaseException


@dataclass
class Run:
    """One training run: where it writes, what it trains on and with, how it is scored, and how far it got."""

    folder: Path
    accelerator: Accelerator
    tokenizer: PreTrainedTokenizerBase
    data: RunData
    parts: Trainable
    trainer: DictConfig  # the `trainer` settings
    windows: WindowSpec
    search: SpanSearch
    objective: str  # the per-epoch score that picks the best epoch (and a sweep optimises)
    name: str  # `run_name`
    config: dict[str, Any]  # the resolved config as recorded (secrets masked)
    trial: StudyTrial | None  # the Optuna trial this run is, in a study sweep
    state: LoopState
    started: float  # time.perf_counter() at the start
    facts: dict[str, Any] = field(default_factory=dict)  # what hooks add to summary.json (e.g. trackers)
    stop: Stop | None = None

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process


@dataclass
class Step:
    """An optimiser step that just ended."""

    number: int  # optimiser steps so far
    epoch: int  # the epoch it belongs to
    samples: int  # training samples of this epoch so far (all processes)
    # the mean training loss since it was last read: reading it waits for the device, so a hook calls it
    # only where it uses the value (a logging step, a progress line, a checkpoint), never at every step
    read_loss: Callable[[], float]
    learning_rate: float
    log: bool  # a logging step (every trainer.log_every_n_steps)
    ends_epoch: bool  # the epoch's (or the run's) last step: the epoch's end follows


@dataclass
class EpochEnd:
    """An epoch that was trained (or, with trainer.epochs=0, the loaded model) and evaluated."""

    record: dict[str, Any]  # its line of metrics.jsonl
    evaluation: Evaluation | None  # answers and scores; None on processes other than the main one
    improved: bool  # better than every epoch before: the new best
    trained: bool  # False for the evaluation-only epoch 0
