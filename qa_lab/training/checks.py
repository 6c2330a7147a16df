"""The composed config checked before anything expensive starts: value ranges and files, each error with
the key and a value that works. (Whether the window geometry fits the model is model/checks.py.)"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from qa_lab.core.errors import ConfigError, require
from qa_lab.model.compiling import compile_backends

MIXED_PRECISION = ("no", "fp16", "bf16")
OBJECTIVES = ("f1", "exact_match")
ADAMW = ("auto", "fused", "foreach", "for_loop")


def check_settings(cfg: DictConfig) -> None:
    """The whole run's config (it is the one part that reads all of it): checks that need no model."""
    if OmegaConf.is_interpolation(cfg.trainer, "lr") and OmegaConf.select(cfg, "model.lr") is None:
        raise ConfigError(
            "defaults to the backbone's model.lr, but the model config sets none",
            where="trainer.lr",
            fix="give trainer.lr=3e-5 on the command line, or add `lr:` to the model's YAML",
        )
    check_data(cfg.data)
    check_trainer(cfg.trainer)
    require(not cfg.hub.push or bool(cfg.hub.repo_id), "hub.repo_id", "hub.push=true needs the repository to push to",
            "hub.repo_id=<user or organisation>/<name>")
    require(cfg.objective in OBJECTIVES, "objective", f"unknown objective '{cfg.objective}'", f"one of {OBJECTIVES}")


def check_data(data: DictConfig) -> None:
    require(data.max_length > 0, "data.max_length", f"must be positive, got {data.max_length}", "e.g. data.max_length=384")
    require(data.stride >= 0, "data.stride", f"must be >= 0, got {data.stride}", "e.g. data.stride=128")
    require(data.max_question_tokens > 0, "data.max_question_tokens", "must be positive", "e.g. 64")
    if data.source == "files":
        for key in ("train_file", "validation_file"):
            path = data[key]
            require(
                path is None or Path(path).is_file(),
                f"data.{key}",
                f"no such file: {path}",
                "give the path of a SQuAD-format file (JSON, JSONL, CSV or Parquet)",
            )


def check_trainer(trainer: DictConfig) -> None:
    for key in ("batch_size", "eval_batch_size", "gradient_accumulation_steps"):
        require(trainer[key] >= 1, f"trainer.{key}", f"must be >= 1, got {trainer[key]}", f"e.g. trainer.{key}=1")
    require(trainer.epochs >= 0, "trainer.epochs", f"must be >= 0 (0 = evaluate only), got {trainer.epochs}", "e.g. trainer.epochs=2")
    every = trainer.checkpoint.every_n_steps
    require(every is None or every >= 1, "trainer.checkpoint.every_n_steps", f"must be >= 1 or null, got {every}", "e.g. 500")
    require(trainer.checkpoint.keep_last >= 0, "trainer.checkpoint.keep_last", "must be >= 0 (0 = no checkpoints)", "e.g. 1")
    require(trainer.lr > 0, "trainer.lr", f"must be positive, got {trainer.lr}", "e.g. trainer.lr=5e-5")
    require(0 <= trainer.warmup_ratio < 1, "trainer.warmup_ratio", "must be in [0, 1)", "e.g. 0.1")
    require(trainer.adamw in ADAMW, "trainer.adamw", f"unknown value '{trainer.adamw}'", f"one of {ADAMW}")
    for key, value, least in (("loader.num_workers", trainer.loader.num_workers, 0), ("pad_to_multiple_of", trainer.pad_to_multiple_of, 1)):
        require(value == "auto" or (isinstance(value, int) and value >= least), f"trainer.{key}",
                f"takes auto or a whole number >= {least}, got {value!r}", f"e.g. trainer.{key}=auto")
    require(trainer.loader.pin_memory == "auto" or isinstance(trainer.loader.pin_memory, bool), "trainer.loader.pin_memory",
            f"takes auto, true or false, got {trainer.loader.pin_memory!r}", "e.g. trainer.loader.pin_memory=auto")
    require(str(trainer.compile_backend).lower() in compile_backends(), "trainer.compile_backend",
            f"takes a torch.compile backend's name, got {trainer.compile_backend!r}", f"one of {', '.join(compile_backends())}")
    require(isinstance(trainer.compile, bool), "trainer.compile", f"takes true or false, got {trainer.compile!r}", "e.g. trainer.compile=true")
    for key in ("compile_bucket", "compile_recompile_limit"):
        require(isinstance(trainer[key], int) and trainer[key] >= 1, f"trainer.{key}", f"takes a whole number >= 1, got {trainer[key]!r}",
                f"e.g. trainer.{key}=64")
    require(
        trainer.mixed_precision in MIXED_PRECISION,
        "trainer.mixed_precision",
        f"unknown value '{trainer.mixed_precision}'",
        f"one of {MIXED_PRECISION}",
    )
