"""Backbone + span head, and its tokenizer, from a Hub id or a local folder."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from qa_lab.core.conf import model_option
from qa_lab.core.errors import ConfigError
from qa_lab.core.hub import load_from_hub

# models whose position ids start after the padding index, so max_position_embeddings overstates the limit
PADDING_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod"}
LOAD_REPORT_LOGGER = "transformers.modeling_utils"  # where transformers logs its weight-loading report
SHOWN_KEYS = 5  # weight names quoted in a load warning; the rest are counted

log = logging.getLogger(__name__)


def model_settings(name: str) -> DictConfig:
    """A `model` config from a name on the command line: a conf/model option (`minilm`: the offline backbone
    folder), else a Hub id or a folder with pretrained weights."""
    return model_option(name) or OmegaConf.create({"name_or_path": name, "pretrained": True, "config_overrides": {}})


def load_tokenizer(model: DictConfig, hub_timeout: float) -> PreTrainedTokenizerBase:
    """The model's tokenizer; a fast (Rust) one, because windows need character offsets."""
    tokenizer = load_from_hub(
        lambda: AutoTokenizer.from_pretrained(model.name_or_path), model.name_or_path, "model", hub_timeout
    )
    if not tokenizer.is_fast:
        raise ConfigError(
            f"the tokenizer of '{model.name_or_path}' ({type(tokenizer).__name__}) is a slow (Python) tokenizer: "
            "qa-lab maps answers to tokens with the offset mapping (character offsets) that only fast tokenizers give",
            where="model.name_or_path",
            fix="choose a model that ships a tokenizer.json (a fast tokenizer), or convert it with "
            "transformers' convert_slow_tokenizer and save it into the model folder",
        )
    return tokenizer


def load_config(model: DictConfig, hub_timeout: float) -> PretrainedConfig:
    overrides = OmegaConf.to_container(model.config_overrides, resolve=True)
    return load_from_hub(
        lambda: AutoConfig.from_pretrained(model.name_or_path, **overrides), model.name_or_path, "model", hub_timeout
    )


def position_limit(config: PretrainedConfig) -> int:
    """The longest input the model can take, in tokens."""
    limit = config.max_position_embeddings
    if config.model_type in PADDING_OFFSET_POSITIONS:
        limit -= config.pad_token_id + 1
    return limit


def load_model(model: DictConfig, hub_timeout: float, seed: int) -> PreTrainedModel:
    """Pretrained weights with a fresh span head, or (pretrained: false) random weights; whatever is newly
    initialised is drawn from `seed`, so the same seed gives the same starting model."""
    config = load_config(model, hub_timeout)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if not model.pretrained:
            return AutoModelForQuestionAnswering.from_config(config)
        with _held_back(LOAD_REPORT_LOGGER):
            loaded, info = load_from_hub(
                lambda: AutoModelForQuestionAnswering.from_pretrained(model.name_or_path, config=config, output_loading_info=True),
                model.name_or_path,
                "model",
                hub_timeout,
            )
    report_loading(loaded, info)
    return loaded


def report_loading(model: PreTrainedModel, info: dict[str, Any]) -> None:
    """transformers' load report in qa-lab's words: the span head that a QA fine-tune adds is one line, and
    the checkpoint's pooler and pretraining heads, which a span model has no place for, are left out by
    design; backbone weights the checkpoint lacks, or weights that fit nowhere, are a warning, because the
    model would then start partly random. (Weights of another shape make transformers refuse the load.)"""
    backbone = model.base_model_prefix + "."
    missing = info.get("missing_keys") or []
    head = sorted(key for key in missing if not key.startswith(backbone))
    if head:
        log.info("span head initialised for fine-tuning (%s)", ", ".join(head))
    if lacking := sorted(set(missing) - set(head)):
        log.warning("%d backbone weight(s) are not in the checkpoint and start random: %s", len(lacking), _names(lacking))
    modules = {name for name, _ in model.base_model.named_children()}
    stray = sorted(key for key in info.get("unexpected_keys") or [] if key.removeprefix(backbone).split(".")[0] in modules)
    if stray:
        log.warning("%d weight(s) of the checkpoint fit no part of the model and were not loaded: %s", len(stray), _names(stray))


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


@contextmanager
def _held_back(logger_name: str) -> Iterator[None]:
    """A library logger's records held back while the block runs: dropped when it succeeds (qa-lab reports
    instead), logged after all when it raises (transformers' report explains its own refusal)."""
    logger, held = logging.getLogger(logger_name), []

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    logger.addFilter(hold)
    try:
        yield
    except BaseException:
        logger.removeFilter(hold)
        for record in held:
            logger.handle(record)
        raise
    finally:
        logger.removeFilter(hold)
