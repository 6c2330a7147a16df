"""The experiment: fine-tune with a custom Accelerate loop, evaluate EM/F1 after every epoch, keep the best.

What a run leaves in its directory: metrics.jsonl (one line per epoch), predictions.json and
nbest_predictions.json of the best epoch (and null_odds.json for SQuAD v2), best/ (model + tokenizer),
checkpoints/ (the full training state, see checkpoint.py), summary.json, data_report.json.
With trainer.epochs=0 the loaded model is evaluated once (epoch 0) without training.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import datasets
import optuna
import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from omegaconf import DictConfig
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from qa_lab import batching, checkpoint, provenance, settings
from qa_lab.artifacts import write_directory, write_json
from qa_lab.config import validate_for_model, validate_settings
from qa_lab.data import fingerprint, load_splits
from qa_lab.errors import QALabError
from qa_lab.evaluation import THRESHOLD_KEY, V2_KEYS, Evaluation, predict_logits, score
from qa_lab.features import WindowSpec, cached_windows
from qa_lab.model import load_config, load_model, load_tokenizer
from qa_lab.tracking import Tracker
from qa_lab.trial import open_trial, skip_if_invalid

log = logging.getLogger(__name__)

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
EPOCH_SCORES = ("exact_match", "f1", *V2_KEYS, THRESHOLD_KEY)  # what an epoch's record takes from its evaluation


class NonFiniteLossError(QALabError):
    """Training diverged: continuing would only burn compute."""


def train(cfg: DictConfig) -> float:
    """Run one experiment and return its objective (cfg.objective at the best epoch).

    In a study sweep, the objective goes to the run's trial after every epoch, and `optuna.TrialPruned`
    is raised (after the run's files are written and W&B is closed) when the pruner stops it.
    """
    started = time.perf_counter()
    _library_bars_on_terminals_only()
    trial = open_trial(cfg)  # None outside a study sweep
    with skip_if_invalid(trial):
        validate_settings(cfg)
    trainer = cfg.trainer
    accelerator = Accelerator(
        mixed_precision=trainer.mixed_precision,
        gradient_accumulation_steps=trainer.gradient_accumulation_steps,
        # on a machine without a GPU, cpu=True is what makes `torchrun --nproc_per_node N` a gloo process group
        cpu=trainer.cpu or not torch.accelerator.is_available(),
    )
    if not accelerator.is_main_process:  # one copy of each log line: the other processes report problems only
        logging.getLogger("qa_lab").setLevel(logging.WARNING)
    run_dir = _shared_run_dir(accelerator, Path(cfg.paths.output_dir))
    resume_from = checkpoint.find(trainer.resume, run_dir)
    if resume_from:
        checkpoint.check(resume_from, cfg)
    set_seed(trainer.seed)

    tokenizer = load_tokenizer(cfg.model, cfg.hub_timeout)
    with skip_if_invalid(trial):
        validate_for_model(cfg, tokenizer, load_config(cfg.model, cfg.hub_timeout))
    spec = WindowSpec(cfg.data.max_length, cfg.data.stride, cfg.data.max_question_tokens, cfg.data.preprocessing_batch_size)
    with accelerator.main_process_first():
        splits = load_splits(cfg.data, cfg.hub_timeout)
        train_windows, train_hit = cached_windows(tokenizer, splits.train, spec, False, cfg.paths.cache_dir)
        eval_windows, eval_hit = cached_windows(tokenizer, splits.validation, spec, True, cfg.paths.cache_dir)
    log.info(
        "data: %d train examples -> %d windows%s, %d validation examples -> %d windows%s%s",
        len(splits.train), len(train_windows), " (cached)" if train_hit else "",
        len(splits.validation), len(eval_windows), " (cached)" if eval_hit else "",
        ", SQuAD v2 (unanswerable questions included)" if splits.version_2 else "",
    )
    dropped = sum(report.unanswerable_dropped for report in splits.report.values())
    if dropped:
        log.warning("data.version_2=false: %d unanswerable question(s) left out (see data_report.json)", dropped)
    data_report = {
        "version_2": splits.version_2,
        "splits": {name: asdict(report) for name, report in splits.report.items()},
        "features": {"train": asdict(train_windows.stats), "validation": asdict(eval_windows.stats)},
        "fingerprints": {"train": fingerprint(splits.train), "validation": fingerprint(splits.validation)},
    }

    model = load_model(cfg.model, cfg.hub_timeout, trainer.seed)
    pad_left = tokenizer.padding_side == "left"
    train_loader = batching.train_loader(
        train_windows, trainer.batch_size, trainer.seed, tokenizer.pad_token_id, pad_left,
        trainer.length_group_batches, trainer.group_by_length,
    )
    eval_loader = batching.eval_loader(eval_windows, trainer.eval_batch_size, tokenizer.pad_token_id, pad_left)
    optimizer = torch.optim.AdamW(_parameter_groups(model, trainer.weight_decay), lr=trainer.lr)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)
    steps_per_epoch = math.ceil(len(train_loader) / trainer.gradient_accumulation_steps)
    total_steps = steps_per_epoch * trainer.epochs
    if trainer.max_steps is not None:
        total_steps = min(total_steps, trainer.max_steps)
    warmup = trainer.warmup_steps if trainer.warmup_steps is not None else math.ceil(trainer.warmup_ratio * total_steps)
    # the prepared scheduler steps once per process at every optimiser step
    scheduler = accelerator.prepare(
        get_linear_schedule_with_warmup(
            optimizer, warmup * accelerator.num_processes, max(total_steps, 1) * accelerator.num_processes
        )
    )
    state = checkpoint.load(accelerator, resume_from) if resume_from else checkpoint.LoopState()
    if resume_from:
        log.info("resumed from %s: epoch %d with %d of its batches done, optimiser step %d", resume_from, state.epoch, state.batches_done, state.step)

    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "data_report.json", data_report)
    trial_info = {"trial": trial.describe()} if trial is not None else {}
    tracker = Tracker(cfg, run_dir, enabled=accelerator.is_main_process, extra_config=trial_info, history=state.history, wandb_id=state.wandb_id)
    state.history, state.wandb_id = tracker.history, tracker.wandb_id  # the tracker appends every epoch's record
    keep_checkpoints = trainer.checkpoint.keep_last > 0

    def evaluate(record: dict[str, Any]) -> bool:
        """Score the model into `record`, log it, keep it when best; True when the run's trial is pruned."""
        eval_started = time.perf_counter()
        start_logits, end_logits = predict_logits(model, eval_loader, accelerator, eval_windows, pad_left)
        pruned = False
        if accelerator.is_main_process:
            evaluation = score(
                start_logits, end_logits, eval_windows, splits.validation,
                cfg.postprocess.n_best, cfg.postprocess.max_answer_length,
                splits.version_2, cfg.postprocess.null_score_diff_threshold, cfg.postprocess.apply_best_threshold,
            )
            record |= {key: value for key, value in evaluation.metrics.items() if key in EPOCH_SCORES}
            record["eval_seconds"] = time.perf_counter() - eval_started
            tracker.log_epoch(record)
            log.info("epoch %d | %s", record["epoch"], _epoch_summary(record))
            if state.best is None or record[cfg.objective] > state.best[cfg.objective]:
                state.best = record
                _save_best(run_dir, evaluation, accelerator.unwrap_model(model), tokenizer, cfg, splits.version_2)
            pruned = trial is not None and trial.should_stop(record["epoch"], record[cfg.objective])
        return broadcast_object_list([pruned])[0]  # every process stops at the same epoch

    def save_checkpoint(after_best: bool = False) -> None:
        checkpoint.save(accelerator, run_dir, state, cfg, after_best)

    pruned_at: int | None = None
    failed = True
    try:
        if trainer.epochs == 0:
            evaluate({"epoch": 0, "step": 0})
        for epoch in range(state.epoch, trainer.epochs + 1):
            if state.step >= total_steps:  # trainer.max_steps reached before a resumed run's checkpoint
                break
            train_loader.set_epoch(epoch)
            # a resumed epoch skips the batches its checkpoint had trained on (same seeded order)
            batches = accelerator.skip_first_batches(train_loader, state.batches_done) if state.batches_done else train_loader
            epoch_started = time.perf_counter()
            samples, tokens = _train_epoch(
                model, batches, optimizer, scheduler, accelerator, tracker, trainer, state, total_steps,
                save_checkpoint if keep_checkpoints else None,
            )
            train_seconds = time.perf_counter() - epoch_started
            record: dict[str, Any] = {
                "epoch": epoch,
                "step": state.step,
                "train_loss": state.loss_sum / max(state.loss_count, 1),
                "learning_rate": scheduler.get_last_lr()[0],
                "train_samples_per_second": samples / train_seconds,
                "train_tokens_per_second": tokens / train_seconds,  # non-padding tokens
                "train_seconds": train_seconds,
            }
            if evaluate(record):
                pruned_at = epoch
            state.start_epoch(epoch + 1)
            if keep_checkpoints:
                save_checkpoint(after_best=state.best is record)
            if pruned_at is not None or state.step >= total_steps:
                break
        failed = False
    finally:
        best = state.best
        if accelerator.is_main_process and best is not None:
            summary = _summary(cfg, best, started, data_report, tracker) | trial_info
            summary["status"] = "failed" if failed else ("pruned" if pruned_at is not None else "complete")
            if pruned_at is not None:
                summary["pruned_at_epoch"] = pruned_at
            if state.resumed_from:
                summary["resumed_from"] = state.resumed_from
            write_json(run_dir / "summary.json", summary)
        tracker.finish(best, failed, pruned_at)
    if pruned_at is not None:
        raise optuna.TrialPruned(f"pruned after epoch {pruned_at} of {trainer.epochs}, {cfg.objective} {best[cfg.objective]:.2f}")
    return float(best[cfg.objective]) if best is not None else float("nan")


def _library_bars_on_terminals_only() -> None:
    """Our bars show on terminals only (tqdm disable=None); the libraries' bars follow the same rule."""
    if not sys.stderr.isatty():
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()


def _shared_run_dir(accelerator: Accelerator, run_dir: Path) -> Path:
    """Under torchrun every process makes its own Hydra run folder (the default name holds the start time,
    to the microsecond): all use the main process's, and the others remove theirs (Hydra's files only)."""
    main_dir = Path(broadcast_object_list([str(run_dir)])[0])
    if main_dir != run_dir and not accelerator.is_main_process:
        shutil.rmtree(run_dir, ignore_errors=True)
    return main_dir


def _train_epoch(model, batches, optimizer, scheduler, accelerator, tracker, trainer, state, total_steps, save_checkpoint) -> tuple[int, int]:
    """Train on the epoch's (remaining) batches, keeping `state` current; returns the samples and the
    non-padding tokens seen (all processes)."

    `save_checkpoint` (None: checkpoints off) runs every trainer.checkpoint.every_n_steps optimiser steps,
    except at the epoch's last batch, where the epoch's own checkpoint follows its evaluation.
    """
    model.train()
    samples = tokens = 0
    every = trainer.checkpoint.every_n_steps
    # disable=None: a bar on a terminal only, not in log files
    progress = tqdm(batches, desc=f"epoch {state.epoch}", leave=False, disable=None if accelerator.is_main_process else True)
    for batch in progress:
        batch.pop("window_index")
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"the training loss became {loss.item()} at optimiser step {state.step}, epoch {state.epoch}",
                    where="trainer",
                    fix="lower trainer.lr, keep trainer.max_grad_norm set, or use trainer.mixed_precision=no",
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients and trainer.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), trainer.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        state.loss_sum += loss.item()
        state.loss_count += 1
        state.batches_done += 1
        samples += len(batch["input_ids"]) * accelerator.num_processes
        tokens += int(batch["attention_mask"].sum()) * accelerator.num_processes
        if accelerator.sync_gradients:
            state.step += 1
            progress.set_postfix(loss=f"{loss.item():.3f}")
            if state.step % trainer.log_every_n_steps == 0:
                tracker.log_step(state.step, {"loss": loss.item(), "learning_rate": scheduler.get_last_lr()[0]})
            if state.step >= total_steps:
                break
            if save_checkpoint and every and state.step % every == 0 and not accelerator.gradient_state.end_of_dataloader:
                save_checkpoint()
    return samples, tokens


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: not on biases and normalisation weights."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if name.endswith(NO_DECAY) else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _epoch_summary(record: dict[str, Any]) -> str:
    """The epoch's log line: loss, EM/F1 (HasAns/NoAns and the best threshold for SQuAD v2), timings."""
    parts = [f"loss {record['train_loss']:.4f}"] if "train_loss" in record else []
    parts += [f"EM {record['exact_match']:.2f}", f"F1 {record['f1']:.2f}"]
    if THRESHOLD_KEY in record:
        parts += [f"{name} F1 {record[key]:.2f}" for name, key in (("HasAns", "HasAns_f1"), ("NoAns", "NoAns_f1")) if key in record]
        parts.append(f"best F1 {record['best_f1']:.2f} at null threshold {record['best_f1_thresh']:.3f}")
    if "train_seconds" in record:
        parts.append(f"train {record['train_seconds']:.0f}s ({record['train_samples_per_second']:.1f} samples/s)")
    parts.append(f"eval {record['eval_seconds']:.0f}s")
    return " | ".join(parts)


def _save_best(run_dir: Path, evaluation: Evaluation, model, tokenizer, cfg: DictConfig, version_2: bool) -> None:
    write_json(run_dir / "predictions.json", evaluation.answers)
    write_json(run_dir / "nbest_predictions.json", evaluation.nbest)
    used: dict[str, Any] = {"version_2": version_2}
    if version_2:
        write_json(run_dir / "null_odds.json", evaluation.null_odds)
        used["null_score_diff_threshold"] = evaluation.metrics[THRESHOLD_KEY]

    def fill(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        settings.save(folder, cfg, **used)

    write_directory(run_dir / "best", fill)


def _summary(cfg: DictConfig, best: dict[str, Any], started: float, data_report: dict, tracker: Tracker) -> dict[str, Any]:
    return {
        "best_epoch": best["epoch"],
        "objective": cfg.objective,
        "best": best,
        "wall_seconds": time.perf_counter() - started,
        "seed": cfg.trainer.seed,
        "model": cfg.model.name_or_path,
        "data": cfg.data.short_name,
        "version_2": data_report["version_2"],
        "data_fingerprints": data_report["fingerprints"],
        "wandb_mode": tracker.wandb_mode,
        **provenance.describe(),
    }
