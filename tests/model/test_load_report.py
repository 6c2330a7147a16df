"""transformers' weight-loading report in qa-lab's words: a span head that is new by design is one line,
the pooler a span model has no place for is left out silently, and weights the backbone lacks still warn."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForQuestionAnswering, BertModel

from qa_lab.model.backbone import load_model

pytestmark = pytest.mark.unit

SHAPE = {"vocab_size": 120, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
DROPPED = "encoder.layer.1.output.dense.weight"  # a backbone weight taken out of one checkpoint


def settings(folder) -> OmegaConf:
    return OmegaConf.create({"name_or_path": str(folder), "pretrained": True, "config_overrides": {}})


def load(folder, caplog, capfd):
    """The model loaded the way a run loads it; qa-lab's log records and what reached stderr."""
    with caplog.at_level(logging.INFO, logger="qa_lab"):
        model = load_model(settings(folder), hub_timeout=1, seed=0)
    return model, [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("qa_lab")], capfd.readouterr().err


def test_a_backbone_checkpoint_gets_one_span_head_line(tmp_path, caplog, capfd):
    BertModel(BertConfig(**SHAPE)).save_pretrained(tmp_path)  # a pretrained encoder: pooler, no span head
    model, records, stderr = load(tmp_path, caplog, capfd)
    assert records == [("INFO", "span head initialised for fine-tuning (qa_outputs.bias, qa_outputs.weight)")]
    assert "LOAD REPORT" not in stderr and "UNEXPECTED" not in stderr
    assert isinstance(model, BertForQuestionAnswering)


def test_a_complete_qa_checkpoint_loads_without_a_word(tmp_path, caplog, capfd):
    BertForQuestionAnswering(BertConfig(**SHAPE)).save_pretrained(tmp_path)
    _, records, stderr = load(tmp_path, caplog, capfd)
    assert records == [] and "LOAD REPORT" not in stderr


def test_backbone_weights_missing_from_the_checkpoint_still_warn(tmp_path, caplog, capfd):
    BertModel(BertConfig(**SHAPE)).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights[DROPPED]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model, records, _ = load(tmp_path, caplog, capfd)
    warnings = [message for level, message in records if level == "WARNING"]
    assert warnings == [f"1 backbone weight(s) are not in the checkpoint and start random: bert.{DROPPED}"]
    assert ("INFO", "span head initialised for fine-tuning (qa_outputs.bias, qa_outputs.weight)") in records
    assert torch.isfinite(model.bert.encoder.layer[1].output.dense.weight).all()


def test_checkpoint_weights_that_fit_nowhere_warn(tmp_path, caplog, capfd):
    BertModel(BertConfig(**SHAPE)).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["encoder.layer.7.output.dense.weight"] = torch.zeros(16, 32)  # a layer this config does not have
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    _, records, _ = load(tmp_path, caplog, capfd)
    warnings = [message for level, message in records if level == "WARNING"]
    assert len(warnings) == 1 and "fit no part of the model" in warnings[0] and "encoder.layer.7.output.dense.weight" in warnings[0]
