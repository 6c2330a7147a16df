"""The training loop: epochs of optimiser steps, an evaluation after each epoch, and the hooks called at
every event. Everything else a run does (files, tracking, checkpoints, pruning) is a hook's job.

With trainer.epochs=0 the loaded model is evaluated once (epoch 0) without training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import torch
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from qa_lab.core.errors import QALabError
from qa_lab.core.records import EPOCH_SCORES
from qa_lab.evaluation.logits import predict_logits
from qa_lab.evaluation.scoring import Evaluation, score
from qa_lab.training.context import EpochEnd, Run, Step
from qa_lab.training.hooks import Hooks
from qa_lab.training.state import LoopState


class NonFiniteLossError(QALabError):
    """Training diverged: continuing would only burn compute."""


def fit(run: Run, hooks: Hooks) -> float:
    """Train and evaluate epoch by epoch; the objective at the best epoch (NaN on processes other than the main
    one). A hook's stop request ends the run after its epoch, and the run then raises the stop's error."""
    status = "failed"
    try:
        hooks.run_start(run)
        _train_epochs(run, hooks)
        status = run.stop.status if run.stop is not None else "complete"
    finally:
        hooks.run_end(run, status)
    if run.stop is not None:
        raise run.stop.error
    best = run.state.best
    return float(best[run.objective]) if best is not None else float("nan")


def _train_epochs(run: Run, hooks: Hooks) -> None:
    state, total_steps = run.state, run.parts.total_steps
    if run.trainer.epochs == 0:
        _end_epoch(run, hooks, {"epoch": 0, "step": 0}, trained=False)
    for epoch in range(state.epoch, run.trainer.epochs + 1):
        if state.step >= total_steps:  # trainer.max_steps reached before a resumed run's checkpoint
            break
        _end_epoch(run, hooks, _train_epoch(run, hooks, epoch), trained=True)
        if run.stop is not None or state.step >= total_steps:
            break


def _train_epoch(run: Run, hooks: Hooks, epoch: int) -> dict[str, Any]:
    """Train on the epoch's (remaining) batches; the epoch's record, before its evaluation."""
    state, loader = run.state, run.parts.train_loader
    loader.set_epoch(epoch)
    # a resumed epoch skips the batches its checkpoint had trained on (same seeded order)
    batches = run.accelerator.skip_first_batches(loader, state.batches_done) if state.batches_done else loader
    started = time.perf_counter()
    samples, tokens = _train_batches(run, hooks, batches)
    seconds = time.perf_counter() - started
    return {
        "epoch": epoch,
        "step": state.step,
        "train_loss": state.loss_sum / max(state.loss_count, 1),
        "learning_rate": run.parts.scheduler.get_last_lr()[0],
        "train_samples_per_second": samples / seconds,
        "train_tokens_per_second": tokens / seconds,  # non-padding tokens
        "train_seconds": seconds,
    }


def _train_batches(run: Run, hooks: Hooks, batches: Iterable[dict[str, torch.Tensor]]) -> tuple[int, int]:
    """Optimiser steps over `batches`, keeping the loop state current; the samples and non-padding tokens
    seen (all processes).

    The host never waits for the device inside a step: the loss is summed on the device and read only
    when a hook asks for it (step.read_loss: a tracker's logging step, a progress line, a mid-epoch
    checkpoint) and at the epoch's end; the counts come from the host-side window lengths."""
    state, accelerator, lengths = run.state, run.accelerator, run.data.train_windows.lengths
    samples = tokens = 0
    loss = RunningLoss(accelerator.device)
    run.parts.model.train()
    # disable=None: a bar on a terminal only, not in log files
    progress = tqdm(batches, desc=f"epoch {state.epoch}", leave=False, disable=None if run.is_main else True)
    for batch in progress:
        index = batch.pop("window_index").numpy()  # the loader leaves batches on the host (setup.py)
        loss.add(_step(run, {key: value.to(accelerator.device, non_blocking=True) for key, value in batch.items()}))
        state.batches_done += 1
        samples += len(index) * accelerator.num_processes
        tokens += int(lengths[index].sum()) * accelerator.num_processes
        if accelerator.sync_gradients:
            state.step += 1
            last = state.step >= run.parts.total_steps
            hooks.step_end(run, Step(
                number=state.step,
                epoch=state.epoch,
                samples=samples,
                read_loss=lambda: loss.read_into(state),
                learning_rate=run.parts.scheduler.get_last_lr()[0],
                log=state.step % run.trainer.log_every_n_steps == 0,
                ends_epoch=last or accelerator.gradient_state.end_of_dataloader,
            ))
            if last:
                break
    loss.read_into(state)  # the epoch's running loss complete for its record
    return samples, tokens


class RunningLoss:
    """The training loss summed on the device since it was last read, so that reading it (a host sync)
    happens at the logging cadence, not at every step. Summed in float64 where the device has it, which
    gives the same sums as adding the steps' losses as Python floats."""

    def __init__(self, device: torch.device) -> None:
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sum = torch.zeros((), dtype=self.dtype, device=device)
        self.count = 0
        self.last = math.nan  # the mean at the last read, for a second reader at the same step

    def add(self, loss: torch.Tensor) -> None:
        self.sum += loss.detach().to(self.dtype)
        self.count += 1

    def read_into(self, state: LoopState) -> float:
        """The mean loss since the last read, added to the epoch's running loss (the last read's mean when
        nothing is unread). A non-finite loss in the interval is caught here, naming where it lies."""
        if not self.count:
            return self.last
        total, count = self.sum.item(), self.count
        if not math.isfinite(total):
            raise NonFiniteLossError(
                f"the training loss became {total} at optimiser step {state.step} or in the {count - 1} batch(es) "
                f"before it (epoch {state.epoch}; it is checked where it is read: logging steps and epoch ends)",
                where="trainer",
                fix="lower trainer.lr, keep trainer.max_grad_norm set, or use trainer.mixed_precision=no",
            )
        state.loss_sum += total
        state.loss_count += count
        self.sum.zero_()
        self.count, self.last = 0, total / count
        return self.last


def _step(run: Run, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Forward and backward on one batch; the optimiser steps when the accumulated gradients are complete."""
    parts, accelerator, max_grad_norm = run.parts, run.accelerator, run.trainer.max_grad_norm
    with accelerator.accumulate(parts.model):
        loss = parts.model(**batch).loss
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm is not None:
            accelerator.clip_grad_norm_(parts.model.parameters(), max_grad_norm)
        parts.optimizer.step()
        parts.scheduler.step()
        parts.optimizer.zero_grad()
    return loss


def _end_epoch(run: Run, hooks: Hooks, record: dict[str, Any], trained: bool) -> None:
    """Evaluate into the epoch's record, keep it when best, move the state on, tell the hooks; then every
    process learns whether a hook (on the main process) stopped the run."""
    state = run.state
    evaluation = _evaluate(run, record)
    improved = evaluation is not None and (state.best is None or record[run.objective] > state.best[run.objective])
    if improved:
        state.best = record
    state.history.append(record)
    if trained:
        state.start_epoch(record["epoch"] + 1)
    hooks.epoch_end(run, EpochEnd(record, evaluation, improved, trained))
    run.stop = broadcast_object_list([run.stop])[0]


def _evaluate(run: Run, record: dict[str, Any]) -> Evaluation | None:
    """Every process predicts its share of the windows; the main process scores them all into `record`."""
    started = time.perf_counter()
    data, parts = run.data, run.parts
    start, end = predict_logits(parts.model, parts.eval_loader, run.accelerator, data.eval_windows, parts.pad_left)
    if not run.is_main:
        return None
    evaluation = score(start, end, data.eval_windows, data.splits.validation, run.search, data.version_2)
    record |= {key: value for key, value in evaluation.metrics.items() if key in EPOCH_SCORES}
    record["eval_seconds"] = time.perf_counter() - started
    return evaluation
