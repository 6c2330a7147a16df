"""Window geometry against the model and tokenizer (model/checks.py): a clear error naming the key and a
value that works."""

from __future__ import annotations

import pytest
from transformers import AutoConfig

from qa_lab.core.errors import ConfigError
from qa_lab.features.windows import WindowSpec
from qa_lab.model.checks import check_window_fit

pytestmark = pytest.mark.unit


def test_stride_without_room_for_new_context_is_rejected(tokenizer, minilm_path):
    model_config = AutoConfig.from_pretrained(minilm_path)
    with pytest.raises(ConfigError) as error:
        check_window_fit(WindowSpec(128, 64, 64), tokenizer, model_config, minilm_path)
    message = error.value.message()
    assert message.startswith("data.stride: stride 64 leaves no new context token")
    assert "at most 61 context tokens" in message and "Fix: use data.stride=30 or less" in message
    check_window_fit(WindowSpec(128, 60, 64), tokenizer, model_config, minilm_path)


def test_max_length_above_the_model_limit(tokenizer, minilm_path):
    with pytest.raises(ConfigError, match=r"data.max_length: 1024 is above the limit .* \(512 tokens\)"):
        check_window_fit(WindowSpec(1024, 128, 64), tokenizer, AutoConfig.from_pretrained(minilm_path), minilm_path)


def test_a_question_budget_without_room_for_context_is_rejected(tokenizer, minilm_path):
    with pytest.raises(ConfigError, match=r"data.max_question_tokens: a window of data.max_length=64 tokens has no room"):
        check_window_fit(WindowSpec(64, 8, 64), tokenizer, AutoConfig.from_pretrained(minilm_path), minilm_path)
