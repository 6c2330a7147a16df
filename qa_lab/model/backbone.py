"""Backbone + span head, and its tokenizer, from a Hub id or a local folder."""

from __future__ import annotations

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
        return load_from_hub(
            lambda: AutoModelForQuestionAnswering.from_pretrained(model.name_or_path, config=config),
            model.name_or_path,
            "model",
            hub_timeout,
        )
