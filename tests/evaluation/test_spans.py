"""The vectorised span search gives the seeds' loop's answers, ties and edge cases included."""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pytest

from qa_lab.bench.reference import postprocess_reference
from qa_lab.evaluation.spans import CHUNK_WINDOWS, postprocess, top_indices
from qa_lab.features.windows import NOT_CONTEXT, WindowSpec, tokenize_windows

pytestmark = pytest.mark.unit


def random_windows(rng, n_windows=600, width=96):
    """Windows of random examples; some examples have no context token, some no window at all."""
    example_index = np.sort(rng.integers(0, n_windows // 2, n_windows))
    example_index = np.unique(example_index, return_inverse=True)[1] * 2  # odd examples get no window
    n_examples = int(example_index.max()) + 2
    offsets = np.full((n_windows, width, 2), NOT_CONTEXT, dtype=np.int32)
    for w in range(n_windows):
        if w % 37 == 0:
            continue  # a window without context tokens
        first = int(rng.integers(3, 20))
        last = int(rng.integers(first + 5, width))
        base = int(rng.integers(0, 50))
        offsets[w, first:last, 0] = base + np.arange(last - first) * 3
        offsets[w, first:last, 1] = base + np.arange(last - first) * 3 + 2
    letters = np.array(list(string.ascii_letters))
    contexts = ["".join(rng.choice(letters, width * 3 + 60)) for _ in range(n_examples)]
    return offsets, example_index.astype(np.int32), contexts


@pytest.mark.parametrize("seed, n_windows", [(0, 600), (1, 600), (2, 2 * CHUNK_WINDOWS + 100)])  # the last spans several chunks
def test_random_logits_match_the_reference(seed, n_windows):
    rng = np.random.default_rng(seed)
    offsets, example_index, contexts = random_windows(rng, n_windows)
    start, end = (rng.normal(size=offsets.shape[:2]).astype(np.float32) for _ in range(2))
    result = postprocess(start, end, offsets, example_index, contexts)
    assert result.answers == postprocess_reference(start, end, offsets, example_index, contexts)
    assert all(result.answers[e] == "" for e in range(1, len(contexts), 2))  # no window -> empty answer
    assert np.isneginf(result.scores[1::2]).all()


@pytest.mark.parametrize("n_best", [1, 5, 20])
def test_heavy_ties_match_the_reference(n_best):
    rng = np.random.default_rng(7)
    offsets, example_index, contexts = random_windows(rng)
    start, end = (rng.integers(0, 3, size=offsets.shape[:2]).astype(np.float32) for _ in range(2))
    result = postprocess(start, end, offsets, example_index, contexts, n_best=n_best, max_answer_length=4)
    reference = postprocess_reference(start, end, offsets, example_index, contexts, n_best=n_best, max_answer_length=4)
    assert result.answers == reference
    if n_best > 1:  # the ties are real: many examples do have an answer
        assert sum(a != "" for a in reference) > 30


def one_window(start_token, end_token, width=12, context_from=4):
    offsets = np.full((1, width, 2), NOT_CONTEXT, dtype=np.int32)
    offsets[0, context_from:, 0] = np.arange(width - context_from) * 2
    offsets[0, context_from:, 1] = np.arange(width - context_from) * 2 + 1
    start = np.zeros((1, width), dtype=np.float32)
    end = np.zeros((1, width), dtype=np.float32)
    start[0, start_token] = 10
    end[0, end_token] = 10
    return start, end, offsets


def test_max_answer_length_is_inclusive():
    context = "abcdefghijklmnopq"
    start, end, offsets = one_window(4, 6)  # a 3-token span
    assert postprocess(start, end, offsets, np.zeros(1, np.int32), [context], max_answer_length=3).answers == ["abcde"]
    shorter = postprocess(start, end, offsets, np.zeros(1, np.int32), [context], max_answer_length=2).answers
    assert shorter != ["abcde"]
    assert shorter == postprocess_reference(start, end, offsets, np.zeros(1, np.int32), [context], max_answer_length=2)


def test_end_before_start_and_question_tokens_are_never_answers():
    context = "abcdefghijklmnopq"
    start, end, offsets = one_window(8, 5)
    answer = postprocess(start, end, offsets, np.zeros(1, np.int32), [context], n_best=1).answers
    assert answer == [""]  # only pair considered is end < start
    start, end, offsets = one_window(1, 2)  # question tokens
    assert postprocess(start, end, offsets, np.zeros(1, np.int32), [context], n_best=1).answers == [""]


def test_nbest_lists_distinct_spans_best_first():
    rng = np.random.default_rng(3)
    offsets, example_index, contexts = random_windows(rng, n_windows=80)
    start, end = (rng.normal(size=offsets.shape[:2]).astype(np.float32) for _ in range(2))
    result = postprocess(start, end, offsets, example_index, contexts, n_best=5)
    for e, candidates in enumerate(result.nbest):
        assert len(candidates) <= 5
        if not candidates:
            assert result.answers[e] == ""
            continue
        assert candidates[0]["text"] == result.answers[e]
        assert candidates[0]["score"] == pytest.approx(float(result.scores[e]))
        scores = [c["score"] for c in candidates]
        assert scores == sorted(scores, reverse=True)
        assert len({(c["start_char"], c["end_char"]) for c in candidates}) == len(candidates)
        for c in candidates:
            assert c["text"] == contexts[e][c["start_char"] : c["end_char"]]
            assert c["score"] == pytest.approx(c["start_logit"] + c["end_logit"], abs=1e-5)


def test_real_windows_find_an_answer_across_the_overlap(tokenizer):
    sentences = [f"Fact number {i} concerns the old harbour of Telmar." for i in range(40)]
    context = " ".join(sentences[:20]) + " The lighthouse was built in 1847 by Ivo Renn. " + " ".join(sentences[20:])
    answer = "1847 by Ivo Renn"
    start_char = context.index(answer)
    frame = pd.DataFrame([{"id": "q", "title": "", "context": context, "question": "When was the lighthouse built?", "answers": {"text": [answer], "answer_start": [start_char]}}])
    windows = tokenize_windows(tokenizer, frame, WindowSpec(64, 24, 16), keep_offsets=True)
    assert len(windows) >= 3
    containing = np.flatnonzero(windows.start_positions != 0)
    assert len(containing) >= 2  # the answer lies in the overlap of two windows
    rng = np.random.default_rng(0)
    start = rng.normal(size=windows.offsets.shape[:2]).astype(np.float32)
    end = rng.normal(size=windows.offsets.shape[:2]).astype(np.float32)
    assert postprocess(start, end, windows.offsets, windows.example_index, [context]).answers == postprocess_reference(
        start, end, windows.offsets, windows.example_index, [context]
    )
    w = containing[-1]
    start[w, windows.start_positions[w]] = 20
    end[w, windows.end_positions[w]] = 20
    assert postprocess(start, end, windows.offsets, windows.example_index, [context]).answers == [answer]


def test_null_score_is_the_smallest_cls_score_over_an_examples_windows(tokenizer):
    """SQuAD v2: example 0 has three windows, example 1 (unanswerable) one; CLS is each window's first token."""
    sentences = [f"Fact number {i} concerns the old harbour of Telmar." for i in range(30)]
    long_context, short_context = " ".join(sentences), "The harbour of Telmar has no lighthouse."
    frame = pd.DataFrame(
        [
            {"id": "long", "title": "", "context": long_context, "question": "What is fact 7 about?", "answers": {"text": ["Fact number 7"], "answer_start": [long_context.index("Fact number 7")]}},
            {"id": "none", "title": "", "context": short_context, "question": "Who built the lighthouse?", "answers": {"text": [], "answer_start": []}},
        ]
    )
    windows = tokenize_windows(tokenizer, frame, WindowSpec(64, 24, 16), keep_offsets=True)
    assert (windows.cls_index == 0).all() and np.bincount(windows.example_index).tolist()[1] == 1
    unanswerable_window = int(np.flatnonzero(windows.example_index == 1)[0])
    # an unanswerable example is labelled at CLS, like every window without the answer
    assert windows.start_positions[unanswerable_window] == windows.end_positions[unanswerable_window] == 0
    start = np.zeros(windows.offsets.shape[:2], dtype=np.float32)
    end = np.zeros(windows.offsets.shape[:2], dtype=np.float32)
    long_windows = np.flatnonzero(windows.example_index == 0)
    assert len(long_windows) >= 3
    start[long_windows, 0] = [4.0, 1.5, 3.0][: len(long_windows)] + [9.0] * (len(long_windows) - 3)
    end[long_windows, 0] = 1.0
    start[unanswerable_window, 0], end[unanswerable_window, 0] = 6.0, 2.0
    w = long_windows[1]  # the best span: 5 + 4 = 9
    span = np.flatnonzero(windows.offsets[w, :, 0] != NOT_CONTEXT)[:2]
    start[w, span[0]], end[w, span[1]] = 5.0, 4.0
    first_context = np.flatnonzero(windows.offsets[unanswerable_window, :, 0] != NOT_CONTEXT)[0]
    start[unanswerable_window, first_context] = end[unanswerable_window, first_context] = 1.0

    result = postprocess(start, end, windows.offsets, windows.example_index, frame["context"].tolist(), cls_index=windows.cls_index)
    assert result.null_scores.tolist() == [2.5, 8.0]  # min(4+1, 1.5+1, 3+1, ...), 6+2
    assert result.null_odds[0] == pytest.approx(2.5 - 9.0)
    assert result.answers_at(0.0)[0] == result.answers[0] != ""
    assert result.answers_at(-7.0)[0] == ""  # -6.5 > -7: "no answer" wins
    # the unanswerable example's best span scores 2: null odds 8 - 2 > 0 -> ""
    assert result.null_odds[1] == pytest.approx(6.0)
    assert result.answers_at(0.0)[1] == "" and result.answers[1] == "The" == result.answers_at(6.0)[1]
    # the same logits with CLS taken as the last token change the null scores
    moved = postprocess(start, end, windows.offsets, windows.example_index, frame["context"].tolist(), cls_index=windows.lengths - 1)
    assert moved.null_scores.tolist() == [0.0, 0.0]


def test_an_example_without_a_valid_span_always_answers_no_answer():
    start, end, offsets = one_window(8, 5)  # end before start: the only high-scoring pair is invalid
    start[:, 4:], end[:, 4:] = -np.inf, -np.inf  # and no other context pair is finite
    result = postprocess(start, end, offsets, np.zeros(1, np.int32), ["abcdefghijklmnopq"])
    assert result.answers == [""] and np.isfinite(result.null_odds).all()
    assert result.answers_at(1e30) == [""]


@pytest.mark.parametrize("n", [1, 5, 20])
def test_top_indices_order_like_the_references_argsort(n):
    """The partial selection gives argsort's order: distinct logits, integer ties and -inf padding alike."""
    rng = np.random.default_rng(n)
    distinct = rng.normal(size=(200, 64)).astype(np.float32)
    tied = rng.integers(0, 4, size=(200, 64)).astype(np.float32)
    padded = distinct.copy()
    padded[:, rng.integers(3, 30) :] = -np.inf  # short windows: -inf among the n highest
    for logits in (distinct, tied, padded):
        expected = np.stack([np.argsort(row)[-1 : -n - 1 : -1] for row in logits])
        assert (top_indices(logits, n) == expected).all()


def test_logits_given_as_a_reversed_view_give_the_same_answers():
    """A view with negative strides (what a caller's slicing can hand over) is searched like its copy."""
    rng = np.random.default_rng(3)
    offsets, example_index, contexts = random_windows(rng)
    start, end = (rng.normal(size=offsets.shape[:2]).astype(np.float32) for _ in range(2))
    start_view, end_view = (np.flip(np.ascontiguousarray(side[:, ::-1]), axis=1) for side in (start, end))
    assert start_view.strides[1] < 0 and np.array_equal(start_view, start)
    assert postprocess(start_view, end_view, offsets, example_index, contexts).answers == postprocess(start, end, offsets, example_index, contexts).answers
