"""Does a window geometry fit this model and tokenizer? Checked before any work, with the key and a value
that works: a window longer than the model's position limit, or one with no room for new context."""

from __future__ import annotations

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from qa_lab.core.errors import require
from qa_lab.features.windows import WindowSpec
from qa_lab.model.backbone import position_limit


def check_window_fit(spec: WindowSpec, tokenizer: PreTrainedTokenizerBase, model_config: PretrainedConfig, model_name: str) -> None:
    """The keys named in the errors are the `data.*` ones, so a sweep can tell an invalid sampled combination."""
    limit = position_limit(model_config)
    require(
        spec.max_length <= limit,
        "data.max_length",
        f"{spec.max_length} is above the limit of '{model_name}' ({limit} tokens)",
        f"use data.max_length={limit} or less",
    )
    special = tokenizer.num_special_tokens_to_add(pair=True)
    room = spec.max_length - spec.max_question_tokens - special
    require(
        room > 0,
        "data.max_question_tokens",
        f"a window of data.max_length={spec.max_length} tokens has no room for context after up to "
        f"data.max_question_tokens={spec.max_question_tokens} question tokens and {special} special tokens",
        f"use data.max_question_tokens={(spec.max_length - special) // 4} or less (longer questions are cut to it), "
        "or raise data.max_length",
    )
    require(
        spec.stride < room,
        "data.stride",
        f"stride {spec.stride} leaves no new context token per window: a window of data.max_length="
        f"{spec.max_length} holds up to data.max_question_tokens={spec.max_question_tokens} question tokens "
        f"and {special} special tokens, so at most {room} context tokens, of which the stride repeats "
        f"{spec.stride}",
        f"use data.stride={max(room // 2, 0)} or less (must be below {room}), raise data.max_length, "
        "or lower data.max_question_tokens",
    )
