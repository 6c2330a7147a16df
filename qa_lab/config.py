"""Checks on the composed config before anything expensive starts, and the config's own resolvers."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from qa_lab.errors import ConfigError

if TYPE_CHECKING:  # run.py imports this module: a mistyped option should fail in a second, without torch
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

MIXED_PRECISION = ("no", "fp16", "bf16")
OBJECTIVES = ("f1", "exact_match")


def package_path(package: str, *parts: str) -> str:
    """`${package_path:pkg,sub}`: a folder shipped inside an installed package, found at run time."""
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise ConfigError(
            f"the package '{package}' is not installed", fix=f"pip install {package.replace('_', '-')}"
        ) from None
    return str(Path(str(root)).joinpath(*parts))


def register_resolvers() -> None:
    OmegaConf.register_resolver("package_path", package_path, replace=True)


def validate_settings(cfg: DictConfig) -> None:
    """Checks that need no model: value ranges and files."""
    if OmegaConf.is_interpolation(cfg.trainer, "lr") and OmegaConf.select(cfg, "model.lr") is None:
        raise ConfigError(
            "defaults to the backbone's model.lr, but the model config sets none",
            where="trainer.lr",
            fix="give trainer.lr=3e-5 on the command line, or add `lr:` to the model's YAML",
        )
    data, trainer = cfg.data, cfg.trainer
    _require(data.max_length > 0, "data.max_length", f"must be positive, got {data.max_length}", "e.g. data.max_length=384")
    _require(data.stride >= 0, "data.stride", f"must be >= 0, got {data.stride}", "e.g. data.stride=128")
    _require(data.max_question_tokens > 0, "data.max_question_tokens", "must be positive", "e.g. 64")
    if data.source == "files":
        for key in ("train_file", "validation_file"):
            path = data[key]
            _require(
                path is None or Path(path).is_file(),
                f"data.{key}",
                f"no such file: {path}",
                "give the path of a SQuAD-format file (JSON, JSONL, CSV or Parquet)",
            )
    for key in ("batch_size", "eval_batch_size", "gradient_accumulation_steps"):
        _require(trainer[key] >= 1, f"trainer.{key}", f"must be >= 1, got {trainer[key]}", f"e.g. trainer.{key}=1")
    _require(trainer.epochs >= 0, "trainer.epochs", f"must be >= 0 (0 = evaluate only), got {trainer.epochs}", "e.g. trainer.epochs=2")
    every = trainer.checkpoint.every_n_steps
    _require(every is None or every >= 1, "trainer.checkpoint.every_n_steps", f"must be >= 1 or null, got {every}", "e.g. 500")
    _require(trainer.checkpoint.keep_last >= 0, "trainer.checkpoint.keep_last", "must be >= 0 (0 = no checkpoints)", "e.g. 1")
    _require(trainer.lr > 0, "trainer.lr", f"must be positive, got {trainer.lr}", "e.g. trainer.lr=5e-5")
    _require(0 <= trainer.warmup_ratio < 1, "trainer.warmup_ratio", "must be in [0, 1)", "e.g. 0.1")
    _require(
        trainer.mixed_precision in MIXED_PRECISION,
        "trainer.mixed_precision",
        f"unknown value '{trainer.mixed_precision}'",
        f"one of {MIXED_PRECISION}",
    )
    _require(cfg.objective in OBJECTIVES, "objective", f"unknown objective '{cfg.objective}'", f"one of {OBJECTIVES}")


def validate_for_model(cfg: DictConfig, tokenizer: PreTrainedTokenizerBase, model_config: PretrainedConfig) -> None:
    """Checks that need the tokenizer and the model's config: window geometry and length limits."""
    from qa_lab.model import position_limit

    data = cfg.data
    limit = position_limit(model_config)
    _require(
        data.max_length <= limit,
        "data.max_length",
        f"{data.max_length} is above the limit of '{cfg.model.name_or_path}' ({limit} tokens)",
        f"use data.max_length={limit} or less",
    )
    special = tokenizer.num_special_tokens_to_add(pair=True)
    room = data.max_length - data.max_question_tokens - special
    _require(
        room > 0,
        "data.max_question_tokens",
        f"a window of data.max_length={data.max_length} tokens has no room for context after up to "
        f"data.max_question_tokens={data.max_question_tokens} question tokens and {special} special tokens",
        f"use data.max_question_tokens={(data.max_length - special) // 4} or less (longer questions are cut to it), "
        "or raise data.max_length",
    )
    _require(
        data.stride < room,
        "data.stride",
        f"stride {data.stride} leaves no new context token per window: a window of data.max_length="
        f"{data.max_length} holds up to data.max_question_tokens={data.max_question_tokens} question tokens "
        f"and {special} special tokens, so at most {room} context tokens, of which the stride repeats "
        f"{data.stride}",
        f"use data.stride={max(room // 2, 0)} or less (must be below {room}), raise data.max_length, "
        "or lower data.max_question_tokens",
    )


def _require(condition: bool, key: str, what: str, fix: str) -> None:
    if not condition:
        raise ConfigError(what, where=key, fix=fix)
