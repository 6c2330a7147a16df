"""Logits -> answer spans: the best start+end pair across all windows of each example.

For every window the `n_best` highest start and end logits form n_best x n_best candidate spans; a span
is valid when both ends are context tokens, end >= start and it is at most `max_answer_length` tokens.
The answer is the valid span with the highest start+end logit over all windows of the example, or ""
when there is none. `postprocess` does this with array operations over all windows at once (the n-best
lists, which only files and the pipeline need, are built on first use). It gives the same answers as the
seeds' Python loop (qa_lab/bench/reference.py), ties included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from qa_lab.features.windows import NOT_CONTEXT

CHUNK_WINDOWS = 1024  # windows scored at once: their n_best^2 pair scores stay in the CPU cache (faster than larger chunks)
NO_SPAN_ODDS = float(np.finfo(np.float32).max)  # null odds of an example without a valid span (finite for JSON)


class Postprocessed:
    """The best span of every example; its n-best list is built on first use (files and the pipeline need it,
    scoring does not)."""

    def __init__(
        self,
        answers: list[str],
        scores: np.ndarray,
        start_char: np.ndarray,
        end_char: np.ndarray,
        null_scores: np.ndarray,
        build_nbest: Callable[[], list[list[dict]]],
    ) -> None:
        self.answers = answers  # per example, "" when no valid span
        self.scores = scores  # float32 (n_examples,): best start+end logit, -inf when none
        self.start_char = start_char  # int64 (n_examples,), -1 when none
        self.end_char = end_char  # int64 (n_examples,), -1 when none
        self.null_scores = null_scores  # float32 (n_examples,): min over windows of CLS start + CLS end logit
        self._build_nbest = build_nbest

    @cached_property
    def nbest(self) -> list[list[dict]]:
        """Per example: up to n_best distinct spans over its windows, best first."""
        return self._build_nbest()

    @property
    def null_odds(self) -> np.ndarray:
        """Null score - best span score (NO_SPAN_ODDS without a valid span): how strongly "no answer" wins."""
        return np.minimum(self.null_scores.astype(np.float64) - self.scores, NO_SPAN_ODDS)

    def answers_at(self, threshold: float) -> list[str]:
        """SQuAD v2 answers: "" where the null odds exceed `threshold`, else the best span."""
        return ["" if no_answer else answer for answer, no_answer in zip(self.answers, self.null_odds > threshold)]


def top_indices(logits: np.ndarray, n: int) -> np.ndarray:
    """Each row's n highest positions, highest first, exactly as the reference's np.argsort(row)[-1:-n-1:-1].

    A top-k selection of the n + 1 highest (torch's, about twice as fast as numpy's argpartition at
    SQuAD-dev scale) is enough when they are all different (the order is then unique); rows with a tie among
    them (equal logits, -inf padding of short windows) are fully sorted, as the reference does, so ties
    fall the same way.
    """
    width = logits.shape[1]
    if width <= n + 1:
        return np.argsort(logits, axis=1)[:, ::-1][:, :n]
    # contiguous: torch takes no negative strides (a reversed or sliced view of someone's logits)
    values, chosen = (part.numpy() for part in torch.topk(torch.from_numpy(np.ascontiguousarray(logits)), n + 1, dim=1, sorted=True))
    tied = (values[:, 1:] == values[:, :-1]).any(axis=1)
    top = chosen[:, :n]
    if tied.any():
        top[tied] = np.argsort(logits[tied], axis=1)[:, ::-1][:, :n]
    return top


def _at(array: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """array[w, positions[w, k]] for every window w (of offsets: the start character), as one flat take:
    several times faster than fancy indexing with a row index."""
    width, per_position = array.shape[1], array[0, 0].size
    flat = (np.arange(len(array))[:, None] * width + positions) * per_position
    return np.take(array.reshape(-1), flat)


def _pair_scores(
    start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray, n_best: int, max_answer_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The n_best x n_best (start, end) pairs of each window in the reference's loop order (start rank, end
    rank): scores (W, n*n) with -inf for invalid spans, and the ranked start/end positions and logits."""
    starts, ends = top_indices(start_logits, n_best), top_indices(end_logits, n_best)
    start_value, end_value = _at(start_logits, starts), _at(end_logits, ends)
    # a start or end outside the context makes all its pairs -inf; the span length is masked on the n x n pairs
    in_context_start = np.where(_at(offsets, starts) != NOT_CONTEXT, start_value, -np.inf)
    in_context_end = np.where(_at(offsets, ends) != NOT_CONTEXT, end_value, -np.inf)
    # 1 <= end - start + 1 <= max_answer_length as one unsigned comparison (a negative length wraps around)
    span = (ends.astype(np.int32)[:, None, :] - starts.astype(np.int32)[:, :, None]).view(np.uint32) < max_answer_length
    scores = np.where(span, in_context_start[:, :, None] + in_context_end[:, None, :], -np.inf).reshape(len(starts), -1)
    return scores, starts, ends, start_value, end_value


@dataclass
class _Candidates:
    """The n_best best valid spans of each window, best first (invalid ones have score -inf)."""

    score: np.ndarray  # float32 (W, n)
    start_token: np.ndarray  # int64 (W, n)
    end_token: np.ndarray  # int64 (W, n)
    start_logit: np.ndarray  # float32 (W, n)
    end_logit: np.ndarray  # float32 (W, n)


def _window_candidates(
    start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray, n_best: int, max_answer_length: int
) -> _Candidates:
    flat, starts, ends, start_value, end_value = _pair_scores(start_logits, end_logits, offsets, n_best, max_answer_length)
    # stable sort: among equal scores the earlier pair in loop order comes first, as in the reference
    order = np.argsort(-flat, axis=1, kind="stable")[:, :n_best]
    start_rank, end_rank = np.divmod(order, ends.shape[1])
    return _Candidates(
        score=np.take_along_axis(flat, order, axis=1).astype(np.float32),
        start_token=np.take_along_axis(starts, start_rank, axis=1),
        end_token=np.take_along_axis(ends, end_rank, axis=1),
        start_logit=np.take_along_axis(start_value, start_rank, axis=1),
        end_logit=np.take_along_axis(end_value, end_rank, axis=1),
    )


def postprocess(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    example_index: np.ndarray,
    contexts: Sequence[str],
    n_best: int = 20,
    max_answer_length: int = 30,
    cls_index: np.ndarray | None = None,
) -> Postprocessed:
    """Best span per example (and null score) with array operations over all windows at once.

    The answer is the first best pair in the reference's order: windows in order, then the loop order
    within a window. `cls_index`: each window's CLS position; None means position 0 (BERT-style inputs).
    """
    n_windows, n_examples = len(start_logits), len(contexts)
    example_index = np.asarray(example_index, dtype=np.int64)
    window_score = np.full(n_windows, -np.inf, dtype=np.float32)
    start_char, end_char = np.full(n_windows, -1, dtype=np.int64), np.full(n_windows, -1, dtype=np.int64)
    for i in range(0, n_windows, CHUNK_WINDOWS):
        chunk = slice(i, i + CHUNK_WINDOWS)
        flat, starts, ends, _, _ = _pair_scores(start_logits[chunk], end_logits[chunk], offsets[chunk], n_best, max_answer_length)
        pick = np.argmax(flat, axis=1)  # the first maximum in loop order
        rows = np.arange(len(flat))
        start_rank, end_rank = np.divmod(pick, starts.shape[1])
        window_score[chunk] = flat[rows, pick]
        start_char[chunk] = offsets[chunk][rows, starts[rows, start_rank], 0]
        end_char[chunk] = offsets[chunk][rows, ends[rows, end_rank], 1]

    # per example, the first of its windows with the highest score
    order = np.lexsort((-window_score, example_index))  # by example, best first, window order among ties
    first = order[np.r_[True, example_index[order][1:] != example_index[order][:-1]]] if n_windows else order
    found = first[np.isfinite(window_score[first])]
    scores = np.full(n_examples, -np.inf, dtype=np.float32)
    best_start, best_end = np.full(n_examples, -1, dtype=np.int64), np.full(n_examples, -1, dtype=np.int64)
    examples = example_index[found]
    scores[examples], best_start[examples], best_end[examples] = window_score[found], start_char[found], end_char[found]
    answers = [""] * n_examples
    for e, begin, stop in zip(examples.tolist(), best_start[examples].tolist(), best_end[examples].tolist()):
        answers[e] = contexts[e][begin:stop]
    null_scores = _null_scores(start_logits, end_logits, example_index, n_examples, cls_index)

    def build_nbest() -> list[list[dict]]:
        return _nbest(start_logits, end_logits, offsets, example_index, contexts, n_best, max_answer_length)

    return Postprocessed(answers, scores, best_start, best_end, null_scores, build_nbest)


def _nbest(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    example_index: np.ndarray,
    contexts: Sequence[str],
    n_best: int,
    max_answer_length: int,
) -> list[list[dict]]:
    """Per example, up to n_best distinct spans over all its windows, best first (ties: window, loop order)."""
    n_windows, n_examples = len(start_logits), len(contexts)
    chunks = [
        _window_candidates(
            start_logits[i : i + CHUNK_WINDOWS], end_logits[i : i + CHUNK_WINDOWS], offsets[i : i + CHUNK_WINDOWS], n_best, max_answer_length
        )
        for i in range(0, n_windows, CHUNK_WINDOWS)
    ]
    fields = ("score", "start_token", "end_token", "start_logit", "end_logit")
    if chunks:
        merged = {name: np.concatenate([getattr(chunk, name) for chunk in chunks]).ravel() for name in fields}
    else:
        merged = {name: np.zeros(0) for name in fields}
    per_window = chunks[0].score.shape[1] if chunks else 0
    window = np.repeat(np.arange(n_windows), per_window)
    example = example_index[window]
    keep = np.isfinite(merged["score"])
    window, example = window[keep], example[keep]
    candidate = {name: value[keep] for name, value in merged.items()}
    start_char = offsets[window, candidate["start_token"], 0].astype(np.int64)
    end_char = offsets[window, candidate["end_token"], 1].astype(np.int64)

    # rank every example's candidates: by example, then best score; ties keep window and loop order
    order = np.lexsort((-candidate["score"], example))
    example, start_char, end_char = example[order], start_char[order], end_char[order]
    candidate = {name: value[order] for name, value in candidate.items()}
    # the same span found in two overlapping windows is one candidate (its best score is kept)
    _, first = np.unique(np.stack([example, start_char, end_char]), axis=1, return_index=True)
    distinct = np.zeros(len(example), dtype=bool)
    distinct[first] = True
    group_start = np.searchsorted(example, example, side="left")
    nbest: list[list[dict]] = [[] for _ in range(n_examples)]
    distinct_before = np.cumsum(distinct) - 1
    rank = distinct_before - distinct_before[group_start]  # among the example's distinct spans
    for i in np.flatnonzero(distinct & (rank < n_best)):
        nbest[example[i]].append(
            {
                "text": contexts[example[i]][start_char[i] : end_char[i]],
                "score": float(candidate["score"][i]),
                "start_logit": float(candidate["start_logit"][i]),
                "end_logit": float(candidate["end_logit"][i]),
                "start_char": int(start_char[i]),
                "end_char": int(end_char[i]),
            }
        )
    return nbest


def _null_scores(
    start_logits: np.ndarray, end_logits: np.ndarray, example_index: np.ndarray, n_examples: int, cls_index: np.ndarray | None
) -> np.ndarray:
    """Per example, the smallest CLS start + CLS end logit over its windows (+inf for an example without any)."""
    rows = np.arange(len(start_logits))
    cls = np.zeros(len(rows), dtype=np.int64) if cls_index is None else np.asarray(cls_index, dtype=np.int64)
    null_scores = np.full(n_examples, np.inf, dtype=np.float32)
    np.minimum.at(null_scores, np.asarray(example_index, dtype=np.int64), start_logits[rows, cls] + end_logits[rows, cls])
    return null_scores
