"""The experiment as a recipe: set up the run (its processes, data, model, optimiser and schedule), then
train and evaluate it epoch by epoch (loop.py). What the run leaves in its folder is written by its hooks
(hooks/, listed in conf/hooks/): metrics.jsonl, predictions and best/, checkpoints, summary.json, tracking.
"""

from __future__ import annotations

import time
from pathlib import Path

from accelerate.utils import set_seed
from omegaconf import DictConfig

from qa_lab.evaluation.scoring import SpanSearch
from qa_lab.model.backbone import load_config, load_model, load_tokenizer
from qa_lab.model.checks import check_window_fit
from qa_lab.studies.trial import open_trial, skip_if_invalid
from qa_lab.training import checkpoint
from qa_lab.training.checks import check_settings
from qa_lab.training.context import Run
from qa_lab.training.hooks import build_hooks
from qa_lab.training.loop import fit
from qa_lab.training.setup import (
    prepare_data,
    prepare_training,
    quiet_library_bars,
    recorded_config,
    shared_run_dir,
    start_processes,
    window_spec,
)
from qa_lab.training.state import LoopState


def train(cfg: DictConfig) -> float:
    """Run one experiment and return its objective (cfg.objective at the best epoch).

    In a study sweep the objective goes to the run's trial after every epoch, and `optuna.TrialPruned` is
    raised (after the run's files are written and its tracker is closed) when the pruner stops it. A sampled
    combination the config checks reject skips the trial instead.
    """
    started = time.perf_counter()
    quiet_library_bars()
    trial = open_trial()  # None outside a study sweep
    with skip_if_invalid(trial):
        check_settings(cfg)
    accelerator = start_processes(cfg.trainer)
    folder = shared_run_dir(accelerator, Path(cfg.paths.output_dir))
    config = recorded_config(cfg)
    resume_from = checkpoint.find(cfg.trainer.resume, folder)
    if resume_from:  # a checkpoint trained with other settings is refused before any work
        checkpoint.check(resume_from, checkpoint.training_config(config))
    set_seed(cfg.trainer.seed)
    hooks = build_hooks(cfg.hooks, accelerator.is_main_process)  # before any work: a tracker may be missing its package

    tokenizer = load_tokenizer(cfg.model, cfg.hub_timeout)
    windows = window_spec(cfg.data)
    with skip_if_invalid(trial):
        check_window_fit(windows, tokenizer, load_config(cfg.model, cfg.hub_timeout), cfg.model.name_or_path)
    data = prepare_data(cfg.data, tokenizer, windows, cfg.paths.cache_dir, cfg.hub_timeout, accelerator)
    model = load_model(cfg.model, cfg.hub_timeout, cfg.trainer.seed)
    parts = prepare_training(model, tokenizer, data, cfg.trainer, accelerator)
    state = checkpoint.load(accelerator, resume_from) if resume_from else LoopState()

    run = Run(
        folder=folder, accelerator=accelerator, tokenizer=tokenizer, data=data, parts=parts, trainer=cfg.trainer,
        windows=windows, search=SpanSearch(**cfg.postprocess), objective=cfg.objective, name=cfg.run_name,
        config=config, trial=trial, state=state, started=started,
    )
    return fit(run, hooks)
