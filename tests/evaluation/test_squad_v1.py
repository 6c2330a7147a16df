"""The SQuAD v1.1 metric against the official formula: published peer scores, hand-checked cases, random strings."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest

from qa_lab.core.answers import SEPARATOR, normalize_answer, normalized_texts
from qa_lab.core.errors import DataError
from qa_lab.evaluation.squad import question_scores, squad_v1
from tests.helpers import PEER_SCORES, official_normalize, read_squad_answers

pytestmark = pytest.mark.unit

PEERS = ["bert-ensemble.json", "logistic-regression-baseline.json", "match-lstm.json"]


# The official SQuAD v1.1 evaluate script, per pair in plain Python: the yardstick for the vectorised metric.
def official_f1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = official_normalize(prediction).split()
    ground_truth_tokens = official_normalize(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def official_em(prediction: str, ground_truth: str) -> float:
    return float(official_normalize(prediction) == official_normalize(ground_truth))


def official_question_scores(predictions, references) -> tuple[list[float], list[float]]:
    exact, f1 = [], []
    for qid, golds in references.items():
        if qid not in predictions:
            exact.append(0.0)
            f1.append(0.0)
            continue
        exact.append(max(official_em(predictions[qid], gold) for gold in golds))
        f1.append(max(official_f1(predictions[qid], gold) for gold in golds))
    return exact, f1


@pytest.fixture(scope="module")
def xquad(xquad_file) -> dict[str, list[str]]:
    return read_squad_answers(xquad_file)


def test_peer_files_are_all_covered(peer_predictions):
    expected = json.loads(PEER_SCORES.read_text())["scores"]
    assert set(peer_predictions) == set(expected) == set(PEERS)


@pytest.mark.parametrize("name", PEERS)
def test_reproduces_official_scores_of_published_predictions(xquad, peer_predictions, name):
    predictions = json.loads(peer_predictions[name].read_text(encoding="utf-8"))
    expected = json.loads(PEER_SCORES.read_text())["scores"][name]

    scores = squad_v1(predictions, xquad)

    assert scores == pytest.approx(expected, rel=1e-12)
    assert (scores["total"], scores["missing"]) == (expected["total"], expected["missing"])
    exact, f1 = question_scores(predictions, xquad)
    official_exact, official_f1_ = official_question_scores(predictions, xquad)
    np.testing.assert_allclose(exact, official_exact, rtol=1e-12, atol=0)
    np.testing.assert_allclose(f1, official_f1_, rtol=1e-12, atol=0)


def test_logistic_regression_baseline_has_the_two_missing_predictions(xquad, peer_predictions):
    predictions = json.loads(peer_predictions[PEERS[1]].read_text(encoding="utf-8"))
    missing = [qid for qid in xquad if qid not in predictions]
    exact, f1 = question_scores(predictions, xquad)
    positions = [list(xquad).index(qid) for qid in missing]
    assert len(missing) == 2
    assert exact[positions].tolist() == f1[positions].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The  Quick, brown FOX!", "quick brown fox"),  # case, punctuation, article, white space
        ("an apple a day\tand THE night\n", "apple day and night"),
        ("theatre another a.m.", "theatre another am"),  # articles only as whole words
        ("the-end", "theend"),  # punctuation goes before articles, so "the" is no longer a word
        ("(a) 1,000 \u201cquotes\u201d", "1000 \u201cquotes\u201d"),  # only ASCII punctuation is removed
        ("  ", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized == official_normalize(text)


def test_normalizing_texts_together_equals_one_by_one(xquad):
    """The joined pass agrees with the official normalisation text by text: real answers and contexts,
    Greek capitals whose lower case depends on the word's end, articles at every edge, empty texts, spaces
    of other kinds at the edges, and a text holding the joining character itself (then each is normalised alone)."""
    texts = [gold for golds in xquad.values() for gold in golds][:500]
    texts += ["ΟΔΟΣ", "Σ", "ΑΣ.", "the", "a", " an ", "", "THE END", "end the", "(the)", "\u00a0x\u2003 y\x1c", "\t", f"a{SEPARATOR}the b"]
    # word boundaries beside non-ASCII letters and symbols, underscores, near-articles; a lone surrogate
    texts += ["\u2019the x", "\u00e9the an", "_the a_", "tan than ant", "xan a-n", "\u03b1 the\u00b0", "\ud800 the \udfff"]
    joined_pass = [text for text in texts if SEPARATOR not in text]
    for group in (joined_pass, joined_pass[-12:], [joined_pass[-1]], texts, [f"a{SEPARATOR}the b"], []):  # texts: each alone
        assert normalized_texts(group) == [official_normalize(text) for text in group]


def test_case_punctuation_articles_and_spacing_do_not_matter():
    scores = squad_v1({"q": " the Eiffel   Tower."}, {"q": ["Eiffel tower"]})
    assert scores == {"exact_match": 100.0, "f1": 100.0, "total": 1, "missing": 0}


def test_best_gold_answer_counts():
    references = {"exact": ["Broncos", "Denver Broncos", "the Panthers"], "partial": ["1990", "year 1990s"]}
    predictions = {"exact": "Denver Broncos", "partial": "in the year 1990"}
    exact, f1 = question_scores(predictions, references)
    # "in year 1990" (3 tokens) vs "1990": 1 common, P 1/3, R 1, F1 = 2/3 / (4/3) = 0.5;
    # vs "year 1990s": 1 common ("year"), P 1/3, R 1/2, F1 = 1/3 / (5/6) = 0.4; the max is 0.5.
    assert exact.tolist() == [1.0, 0.0]
    assert f1.tolist() == pytest.approx([1.0, 0.5], rel=1e-12)


def test_partial_overlap_f1_by_hand():
    references = {"bowl": ["Bowl 50"], "repeats": ["b b b d"]}
    predictions = {"bowl": "Super Bowl 50 champions", "repeats": "a b b c"}
    exact, f1 = question_scores(predictions, references)
    # "super bowl 50 champions" vs "bowl 50": 2 common, P 2/4, R 2/2, F1 = 2 * 1/2 * 1 / (3/2) = 2/3.
    # "b b c" ("a" is an article) vs "b b b d": common tokens min(2, 3) = 2 b's,
    # P 2/3, R 2/4, F1 = 2 * 2/3 * 1/2 / (2/3 + 1/2) = (2/3) / (7/6) = 4/7.
    assert exact.tolist() == [0.0, 0.0]
    assert f1.tolist() == pytest.approx([2 / 3, 4 / 7], rel=1e-12)


def test_empty_predictions():
    exact, f1 = question_scores({"q": "", "articles": "The"}, {"q": ["Denver"], "articles": ["a"]})
    # "The" and "a" both normalise to "": official v1.1 gives EM 1 but F1 0 (no common token).
    assert exact.tolist() == [0.0, 1.0]
    assert f1.tolist() == [0.0, 0.0]


def test_missing_prediction_scores_zero_and_counts_in_total():
    references = {"answered": ["Denver"], "missing": ["Denver"]}
    scores = squad_v1({"answered": "Denver"}, references)
    assert scores == {"exact_match": 50.0, "f1": 50.0, "total": 2, "missing": 1}
    exact, f1 = question_scores({"answered": "Denver"}, references)
    assert exact.tolist() == f1.tolist() == [1.0, 0.0]


def test_missing_prediction_is_not_an_empty_prediction():
    # An empty prediction matches a gold answer that normalises to ""; a missing one matches nothing.
    assert question_scores({"q": ""}, {"q": ["the"]})[0].tolist() == [1.0]
    assert question_scores({}, {"q": ["the"]})[0].tolist() == [0.0]


def test_extra_prediction_ids_are_ignored():
    references = {"q": ["Denver Broncos"]}
    alone = squad_v1({"q": "Broncos"}, references)
    with_extra = squad_v1({"q": "Broncos", "extra": "Denver Broncos", "other": ""}, references)
    assert with_extra == alone
    assert with_extra["total"] == 1 and with_extra["missing"] == 0


def test_question_scores_follow_the_order_of_references():
    references = {"c": ["x"], "a": ["y z"], "b": ["w"]}
    predictions = {"a": "y", "b": "w", "c": "nothing"}
    exact, f1 = question_scores(predictions, references)
    assert exact.dtype == f1.dtype == np.float64
    assert exact.tolist() == [0.0, 0.0, 1.0]
    assert f1.tolist() == pytest.approx([0.0, 2 / 3, 1.0], rel=1e-12)  # "y" vs "y z": P 1, R 1/2


def test_question_without_gold_answer_is_an_error():
    with pytest.raises(DataError, match="without a gold answer"):
        question_scores({"q": "x"}, {"ok": ["x"], "q": []})


def test_no_questions_is_an_error():
    with pytest.raises(DataError, match="no questions"):
        squad_v1({"q": "x"}, {})


def random_answer(rng: random.Random) -> str:
    # few distinct tokens, so that tokens repeat within and across answers and min(counts) matters;
    # articles, punctuation and odd spacing, so that normalisation can empty or merge tokens
    pool = ["a", "an", "the", "The", "b", "B.", "b", "b", "c", "c,", "d", "(d)", "e-f", "ef", "!"]
    separators = [" ", " ", " ", " ", "  ", "\t", "-", ""]
    return "".join(rng.choice(pool) + rng.choice(separators) for _ in range(rng.randint(0, 7)))


def test_matches_official_formula_on_random_strings():
    rng = random.Random(1234)
    references = {f"q{i}": [random_answer(rng) for _ in range(rng.randint(1, 3))] for i in range(2000)}
    predictions = {qid: random_answer(rng) for qid in references if rng.random() > 0.1}
    predictions |= {"not-a-question": "b b"}

    exact, f1 = question_scores(predictions, references)
    official_exact, official_f1_ = official_question_scores(predictions, references)

    np.testing.assert_allclose(exact, official_exact, rtol=1e-12, atol=0)
    np.testing.assert_allclose(f1, official_f1_, rtol=1e-12, atol=0)
    scores = squad_v1(predictions, references)
    assert scores["exact_match"] == pytest.approx(100 * np.mean(official_exact), rel=1e-12)
    assert scores["f1"] == pytest.approx(100 * np.mean(official_f1_), rel=1e-12)
    # the random cases reach partial overlaps, both EM outcomes and repeated common tokens
    assert 0 < np.mean(exact) < 1 and ((f1 > 0) & (f1 < 1)).sum() > 100
    repeated = 0
    for qid, golds in references.items():
        pred = Counter(official_normalize(predictions.get(qid, "")).split())
        for gold in golds:
            common = pred & Counter(official_normalize(gold).split())
            repeated += sum(common.values()) > len(common)
    assert repeated > 50
