"""Examples -> tokenised windows (features), labelled for training and mapped back for evaluation.

A context longer than one window is cut into overlapping windows (`stride` shared context tokens).
Windows are kept unpadded (one flat token array plus lengths), so batches can be padded dynamically
(batching.py); cache.py keeps them on disk, keyed by everything that changes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from qa_lab.core.answers import normalize_answer

NOT_CONTEXT = -1  # offset value of question, special and padding tokens


@dataclass
class WindowSpec:
    """Everything about windowing that changes the features (and so the cache key)."""

    max_length: int
    stride: int
    max_question_tokens: int
    batch_size: int = 1000  # examples per tokenizer call; does not change the result

    def key(self) -> dict[str, int]:
        return {"max_length": self.max_length, "stride": self.stride, "max_question_tokens": self.max_question_tokens}


@dataclass
class FeatureStats:
    examples: int = 0
    windows: int = 0
    questions_truncated: int = 0  # questions cut to max_question_tokens
    windows_with_answer: int = 0
    label_mismatches: int = 0  # labelled tokens whose text differs from the gold answer after normalisation
    answers_inside_token: int = 0  # gold answers that start or end inside a word piece (label takes the token)
    examples_multi_window: int = 0  # examples whose context needs more than one window
    window_length: dict[str, float] = field(default_factory=dict)  # distribution of tokens per window
    windows_per_example: dict[str, float] = field(default_factory=dict)


@dataclass
class Windows:
    """Tokenised windows of a split, unpadded: window i is input_ids[starts[i]:starts[i]+lengths[i]]."""

    input_ids: np.ndarray  # int32, all windows concatenated
    token_type_ids: np.ndarray | None  # int8, same layout; None for models without segment ids
    lengths: np.ndarray  # int32 (W,)
    example_index: np.ndarray  # int32 (W,): row of the window's example in the split's table
    start_positions: np.ndarray  # int32 (W,): answer start token, the CLS position when not inside
    end_positions: np.ndarray  # int32 (W,)
    cls_index: np.ndarray  # int32 (W,): the CLS token, where "no answer" is labelled and scored (SQuAD v2)
    offsets: np.ndarray | None  # int32 (W, max_length, 2): context character spans, NOT_CONTEXT elsewhere
    stats: FeatureStats

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths[:-1], dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.lengths)


def tokenize_windows(
    tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, spec: WindowSpec, keep_offsets: bool
) -> Windows:
    """Tokenise every example into windows with labels; offsets are kept for evaluation only."""
    questions, truncated = _truncate_questions(tokenizer, frame["question"].tolist(), spec.max_question_tokens)
    contexts = frame["context"].tolist()
    first_answer = [(a["text"][0], a["answer_start"][0]) if a["text"] else ("", -1) for a in frame["answers"]]
    parts: list[dict[str, np.ndarray]] = []
    mismatches = inside_token = 0
    for begin in range(0, len(frame), spec.batch_size):
        end = min(begin + spec.batch_size, len(frame))
        batch = _tokenize_batch(tokenizer, questions[begin:end], contexts[begin:end], spec)
        answers = first_answer[begin:end]
        batch["start_positions"], batch["end_positions"], batch["inside"] = _label(batch, answers)
        batch_mismatches, batch_inside_token = _count_mismatches(batch, answers, contexts[begin:end])
        mismatches += batch_mismatches
        inside_token += batch_inside_token
        batch["example_index"] += begin
        if not keep_offsets:
            del batch["offsets"]
        parts.append(batch)
    merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]} if parts else {}
    stats = FeatureStats(
        examples=len(frame), questions_truncated=truncated, label_mismatches=mismatches, answers_inside_token=inside_token
    )
    return _assemble(merged, stats, keep_offsets)


def _truncate_questions(tokenizer: PreTrainedTokenizerBase, questions: list[str], limit: int) -> tuple[list[str], int]:
    """Cut questions longer than `limit` tokens at a token boundary, so every window has context room."""
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    truncated = 0
    for i, offsets in enumerate(encoded["offset_mapping"]):
        if len(offsets) > limit:
            questions[i] = questions[i][: offsets[limit - 1][1]]
            truncated += 1
    return questions, truncated


def _tokenize_batch(
    tokenizer: PreTrainedTokenizerBase, questions: list[str], contexts: list[str], spec: WindowSpec
) -> dict[str, np.ndarray]:
    context_first = tokenizer.padding_side == "left"
    first, second = (contexts, questions) if context_first else (questions, contexts)
    encoded = tokenizer(
        first,
        second,
        truncation="only_first" if context_first else "only_second",
        max_length=spec.max_length,
        stride=spec.stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        padding="max_length",
    )
    attention = np.asarray(encoded["attention_mask"], dtype=bool)
    special = np.asarray(encoded["special_tokens_mask"], dtype=bool) | ~attention
    # segments of ordinary tokens between special tokens: 1 = first text, 2 = second text
    segment = np.cumsum(~special & np.pad(special, ((0, 0), (1, 0)), constant_values=True)[:, :-1], axis=1) * ~special
    is_context = segment == (1 if context_first else 2)
    offsets = np.asarray(encoded["offset_mapping"], dtype=np.int32)
    offsets[~is_context] = NOT_CONTEXT
    batch = {
        "input_ids": np.asarray(encoded["input_ids"], dtype=np.int32),
        "attention": attention,
        "offsets": offsets,
        "example_index": np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int32),
        "cls_index": np.argmax(np.asarray(encoded["input_ids"]) == tokenizer.cls_token_id, axis=1).astype(np.int32)
        if tokenizer.cls_token_id is not None
        else np.zeros(len(attention), dtype=np.int32),
    }
    if "token_type_ids" in encoded:
        batch["token_type_ids"] = np.asarray(encoded["token_type_ids"], dtype=np.int8)
    return batch


def _label(batch: dict[str, np.ndarray], answers: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token positions of each window's answer; windows without the whole answer point at CLS."""
    offsets = batch["offsets"]
    local = batch["example_index"]
    char_start = np.array([start for _, start in answers], dtype=np.int64)[local]
    char_end = char_start + np.array([len(text) for text, _ in answers], dtype=np.int64)[local]
    is_context = offsets[..., 0] != NOT_CONTEXT
    positions = np.arange(offsets.shape[1])
    first = np.argmax(is_context, axis=1)
    last = offsets.shape[1] - 1 - np.argmax(is_context[:, ::-1], axis=1)
    rows = np.arange(len(offsets))
    inside = (
        (char_start >= 0)
        & is_context.any(axis=1)
        & (offsets[rows, first, 0] <= char_start)
        & (offsets[rows, last, 1] >= char_end)
    )
    # the first context token ending after the answer's first character, the last one starting before its end
    start_token = np.where(is_context & (offsets[..., 1] > char_start[:, None]), positions, offsets.shape[1]).min(axis=1)
    end_token = np.where(is_context & (offsets[..., 0] < char_end[:, None]), positions, -1).max(axis=1)
    cls = batch["cls_index"]
    return (
        np.where(inside, start_token, cls).astype(np.int32),
        np.where(inside, end_token, cls).astype(np.int32),
        inside,
    )


def _count_mismatches(
    batch: dict[str, np.ndarray], answers: list[tuple[str, int]], contexts: list[str]
) -> tuple[int, int]:
    """Check each label against its gold answer: (mismatches, answers that start or end inside a token).

    A label must cover exactly the gold text after normalisation. The only accepted difference is a gold
    answer cut inside a word piece (e.g. "2,70" of "2,700"): no token span can express it, the label takes
    the whole token, and it is counted apart.
    """
    mismatches = inside_token = 0
    for window in np.flatnonzero(batch["inside"]):
        local = batch["example_index"][window]
        text, char_start = answers[local]
        span_start = batch["offsets"][window, batch["start_positions"][window], 0]
        span_end = batch["offsets"][window, batch["end_positions"][window], 1]
        if normalize_answer(contexts[local][span_start:span_end]) == normalize_answer(text):
            continue
        first_token = batch["offsets"][window, batch["start_positions"][window]]
        last_token = batch["offsets"][window, batch["end_positions"][window]]
        char_end = char_start + len(text)
        minimal_cover = first_token[0] <= char_start < first_token[1] and last_token[0] < char_end <= last_token[1]
        if minimal_cover:
            inside_token += 1
        else:
            mismatches += 1
    return mismatches, inside_token


def _assemble(merged: dict[str, np.ndarray], stats: FeatureStats, keep_offsets: bool) -> Windows:
    if not merged:
        empty = np.zeros(0, dtype=np.int32)
        return Windows(empty, None, empty, empty, empty, empty, empty, None, stats)
    attention = merged["attention"]
    lengths = attention.sum(axis=1).astype(np.int32)
    per_example = np.bincount(merged["example_index"], minlength=stats.examples)
    stats.windows = len(lengths)
    stats.windows_with_answer = int(merged["inside"].sum())
    stats.examples_multi_window = int((per_example > 1).sum())
    stats.window_length = _distribution(lengths)
    stats.windows_per_example = _distribution(per_example)
    return Windows(
        input_ids=merged["input_ids"][attention],
        token_type_ids=merged["token_type_ids"][attention] if "token_type_ids" in merged else None,
        lengths=lengths,
        example_index=merged["example_index"],
        start_positions=merged["start_positions"],
        end_positions=merged["end_positions"],
        cls_index=merged["cls_index"],
        offsets=merged["offsets"] if keep_offsets else None,
        stats=stats,
    )


def _distribution(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {}
    quantiles = np.percentile(values, [50, 90, 99])
    return {
        "min": int(values.min()),
        "p50": float(quantiles[0]),
        "p90": float(quantiles[1]),
        "p99": float(quantiles[2]),
        "max": int(values.max()),
        "mean": float(values.mean()),
    }
