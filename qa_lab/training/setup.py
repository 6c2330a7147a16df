"""The setup phases of a training run: its processes and folder, its data, and what optimises the model.

Each phase takes the config group it needs (`trainer`, `data`), not the whole config.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from qa_lab.core.secrets import redact
from qa_lab.data.examples import fingerprint
from qa_lab.data.splits import Splits, load_splits
from qa_lab.features import batching
from qa_lab.features.cache import cached_windows
from qa_lab.features.windows import Windows, WindowSpec
from qa_lab.model.compiling import dynamo_plugin
from qa_lab.training import optim

log = logging.getLogger(__name__)

def quiet_library_bars() -> None:
    """Our bars show on terminals only (tqdm disable=None); the libraries' bars follow the same rule. datasets
    is imported only for a Hub data set (a second of start-up otherwise): until then, its switch is the
    variable it reads when imported."""
    if not sys.stderr.isatty():
        transformers.utils.logging.disable_progress_bar()
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
        else:
            os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def start_processes(trainer: DictConfig) -> Accelerator:
    accelerator = Accelerator(
        mixed_precision=trainer.mixed_precision,
        gradient_accumulation_steps=trainer.gradient_accumulation_steps,
        # on a machine without a GPU, cpu=True is what makes `torchrun --nproc_per_node N` a gloo process group
        cpu=trainer.cpu or not torch.accelerator.is_available(),
        dynamo_plugin=dynamo_plugin(trainer.compile_recompile_limit, trainer.compile_backend) if trainer.compile else None,
    )
    if not accelerator.is_main_process:  # one copy of each log line: the other processes report problems only
        logging.getLogger("qa_lab").setLevel(logging.WARNING)
    if on_gpu(accelerator):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(trainer.tf32)
    return accelerator


def on_gpu(accelerator: Accelerator) -> bool:
    """A CUDA device: where the trainer's `auto` GPU settings turn on."""
    return accelerator.device.type == "cuda"


def loading(trainer: DictConfig, accelerator: Accelerator) -> batching.Loading:
    """trainer.loader and trainer.pad_to_multiple_of with `auto` resolved for this device; under
    trainer.compile, widths in whole compile_bucket's."""
    gpu = on_gpu(accelerator)

    def resolved(value: Any, on: Any, off: Any) -> Any:
        return (on if gpu else off) if value == "auto" else value

    half = trainer.mixed_precision != "no"  # fp16 or bf16 (training/checks.py)
    pad_multiple = int(resolved(trainer.pad_to_multiple_of, trainer.gpu_pad_multiple if half else 1, 1))
    return batching.Loading(
        # compiled: whole buckets (a multiple of the tensor cores' 8 too), so few shapes get compiled
        pad_multiple=math.lcm(pad_multiple, trainer.compile_bucket) if trainer.compile else pad_multiple,
        num_workers=int(resolved(trainer.loader.num_workers, trainer.loader.gpu_workers, 0)),
        pin_memory=bool(resolved(trainer.loader.pin_memory, True, False)),
    )


def shared_run_dir(accelerator: Accelerator, run_dir: Path) -> Path:
    """Under torchrun every process makes its own Hydra run folder (the default name holds the start time,
    to the microsecond): all use the main process's, and the others remove theirs (Hydra's files only)."""
    main_dir = Path(broadcast_object_list([str(run_dir)])[0])
    if main_dir != run_dir and not accelerator.is_main_process:
        shutil.rmtree(run_dir, ignore_errors=True)
    if accelerator.is_main_process:
        main_dir.mkdir(parents=True, exist_ok=True)
    return main_dir


def recorded_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as a run records it (trackers, checkpoints): plain values, secrets masked."""
    return redact(OmegaConf.to_container(cfg, resolve=True))


def window_spec(data: DictConfig) -> WindowSpec:
    return WindowSpec(data.max_length, data.stride, data.max_question_tokens, data.preprocessing_batch_size)


@dataclass
class RunData:
    """The run's examples and windows, and what became of them on the way in."""

    splits: Splits
    train_windows: Windows
    eval_windows: Windows

    @property
    def version_2(self) -> bool:
        return self.splits.version_2

    @cached_property
    def fingerprints(self) -> dict[str, str]:
        return {"train": fingerprint(self.splits.train), "validation": fingerprint(self.splits.validation)}

    def report(self) -> dict[str, Any]:
        """data_report.json: what cleaning repaired and dropped, the windows' statistics, the fingerprints."""
        return {
            "version_2": self.version_2,
            "splits": {name: asdict(report) for name, report in self.splits.report.items()},
            "features": {"train": asdict(self.train_windows.stats), "validation": asdict(self.eval_windows.stats)},
            "fingerprints": self.fingerprints,
        }


def prepare_data(
    data: DictConfig, tokenizer: PreTrainedTokenizerBase, spec: WindowSpec, cache_dir: str, hub_timeout: float, accelerator: Accelerator
) -> RunData:
    """Clean splits and their windows; the main process builds them (and the feature cache) first."""
    with accelerator.main_process_first():
        splits = load_splits(data, hub_timeout)
        train_windows, train_hit = cached_windows(tokenizer, splits.train, spec, False, cache_dir)
        eval_windows, eval_hit = cached_windows(tokenizer, splits.validation, spec, True, cache_dir)
    log.info(
        "data: %d train examples -> %d windows%s, %d validation examples -> %d windows%s%s",
        len(splits.train), len(train_windows), " (cached)" if train_hit else "",
        len(splits.validation), len(eval_windows), " (cached)" if eval_hit else "",
        ", SQuAD v2 (unanswerable questions included)" if splits.version_2 else "",
    )
    dropped = sum(report.unanswerable_dropped for report in splits.report.values())
    if dropped:
        log.warning("data.version_2=false: %d unanswerable question(s) left out (see data_report.json)", dropped)
    return RunData(splits, train_windows, eval_windows)


@dataclass
class Trainable:
    """The model and what trains and evaluates it, prepared by Accelerate."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # Accelerate's wrapper of the learning-rate schedule
    train_loader: DataLoader
    eval_loader: DataLoader
    total_steps: int  # optimiser steps of the whole run
    pad_left: bool  # the tokenizer pads on the left: logits are shifted back when stored


def prepare_training(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, data: RunData, trainer: DictConfig, accelerator: Accelerator
) -> Trainable:
    """Loaders, AdamW and the linear schedule with warm-up, all prepared for the run's processes."""
    pad_left, how = tokenizer.padding_side == "left", loading(trainer, accelerator)
    train_loader = batching.train_loader(
        data.train_windows, trainer.batch_size, trainer.seed, tokenizer.pad_token_id, pad_left,
        trainer.length_group_batches, trainer.group_by_length, how,
    )
    eval_loader = batching.eval_loader(data.eval_windows, trainer.eval_batch_size, tokenizer.pad_token_id, pad_left, how)
    optimizer = optim.adamw(model, trainer.lr, trainer.weight_decay, trainer.adamw, on_gpu(accelerator))
    model, optimizer = accelerator.prepare(model, optimizer)
    # training batches stay on the host: the loop counts their tokens there and copies them without blocking
    train_loader = accelerator.prepare_data_loader(train_loader, device_placement=False)
    eval_loader = accelerator.prepare(eval_loader)
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
    return Trainable(model, optimizer, scheduler, train_loader, eval_loader, total_steps, pad_left)

