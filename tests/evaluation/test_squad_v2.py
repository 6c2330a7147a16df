"""The SQuAD v2.0 metric: hand-checked cases, and the official script's algorithm in plain Python as the
yardstick on XQuAD questions made partly unanswerable, with real peer predictions and tied null odds."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from qa_lab.core.errors import DataError
from qa_lab.evaluation.squad import question_scores, squad_v2
from tests.helpers import official_normalize, qa_lab, read_squad_answers


# The official SQuAD v2.0 evaluate script's algorithm, question by question, in plain Python.
def official_v2_f1(gold: str, prediction: str) -> float:
    gold_tokens = official_normalize(gold).split() if gold else []
    prediction_tokens = official_normalize(prediction).split() if prediction else []
    common = Counter(gold_tokens) & Counter(prediction_tokens)
    num_same = sum(common.values())
    if len(gold_tokens) == 0 or len(prediction_tokens) == 0:
        return int(gold_tokens == prediction_tokens)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def official_v2(references: dict, predictions: dict, na_probs: dict | None = None, threshold: float = 1.0) -> dict:
    has_answer = {qid: bool(golds) for qid, golds in references.items()}
    exact_raw, f1_raw = {}, {}
    for qid, golds in references.items():
        golds = [gold for gold in golds if official_normalize(gold)] or [""]
        if qid not in predictions:
            continue
        exact_raw[qid] = max(int(official_normalize(g) == official_normalize(predictions[qid])) for g in golds)
        f1_raw[qid] = max(official_v2_f1(g, predictions[qid]) for g in golds)
    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}

    def at_threshold(scores):
        return {qid: float(not has_answer[qid]) if probs[qid] > threshold else s for qid, s in scores.items()}

    def totals(exact, f1, qids=None, prefix=""):
        qids = qids if qids is not None else list(exact)
        total = len(qids)
        return {
            f"{prefix}exact": 100.0 * sum(exact[k] for k in qids) / total,
            f"{prefix}f1": 100.0 * sum(f1[k] for k in qids) / total,
            f"{prefix}total": total,
        }

    exact, f1 = at_threshold(exact_raw), at_threshold(f1_raw)
    result = totals(exact, f1)
    answerable = [qid for qid, has in has_answer.items() if has]
    unanswerable = [qid for qid, has in has_answer.items() if not has]
    if answerable:
        result |= totals(exact, f1, answerable, "HasAns_")
    if unanswerable:
        result |= totals(exact, f1, unanswerable, "NoAns_")
    if na_probs is not None:
        for name, scores in (("exact", exact_raw), ("f1", f1_raw)):
            current = best = len(unanswerable)
            best_threshold = 0.0
            for qid in sorted(na_probs, key=lambda k: na_probs[k]):
                if qid not in scores:
                    continue
                current += scores[qid] if has_answer[qid] else (-1 if predictions[qid] else 0)
                if current > best:
                    best, best_threshold = current, na_probs[qid]
            result[f"best_{name}"] = 100.0 * best / len(scores)
            result[f"best_{name}_thresh"] = best_threshold
    return result


@pytest.mark.unit
def test_empty_gold_and_empty_prediction_cases_by_hand():
    references = {"none-none": [], "none-text": [], "text-none": ["Denver"], "article-gold": ["The"], "text-text": ["Denver"]}
    predictions = {"none-none": "", "none-text": "Denver", "text-none": "", "article-gold": "", "text-text": "in Denver"}
    exact, f1 = question_scores(predictions, references, version_2=True)
    # "the" normalises to "", so its question's gold answer is "" (still an answerable question);
    # "in denver" vs "denver": 1 common token, P 1/2, R 1, F1 2/3.
    assert exact.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert f1.tolist() == pytest.approx([1.0, 0.0, 0.0, 1.0, 2 / 3], rel=1e-12)
    result = squad_v2(predictions, references)
    assert result == pytest.approx(
        {
            "exact": 40.0, "f1": 100 * (2 + 2 / 3) / 5, "total": 5,
            "HasAns_exact": 100 / 3, "HasAns_f1": 100 * (1 + 2 / 3) / 3, "HasAns_total": 3,
            "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
        },
        rel=1e-12,
    )
    assert "best_f1" not in result  # the best-threshold fields need no-answer scores


HAND = {  # question: (gold answers, prediction, no-answer score)
    "a": (["Denver Broncos"], "Denver Broncos", 0.1),  # answerable, right: +1
    "d": ([], "", 0.2),  # unanswerable, predicted empty: 0
    "b": ([], "Carolina", 0.5),  # unanswerable, answered anyway: -1
    "c": (["Super Bowl 50"], "Bowl 50", 0.9),  # answerable, F1 0.8, EM 0
    "e": (["Levi's Stadium"], "Levi's Stadium", 0.95),  # answerable, right: +1
}


@pytest.mark.unit
def test_threshold_search_by_hand():
    references = {qid: golds for qid, (golds, _, _) in HAND.items()}
    predictions = {qid: text for qid, (_, text, _) in HAND.items()}
    na_probs = {qid: p for qid, (_, _, p) in HAND.items()}
    result = squad_v2(predictions, references, na_probs)
    # threshold 1.0 turns nothing into "no answer": EM a, d, e = 3/5; F1 1 + 1 + 0 + 0.8 + 1 = 3.8
    assert result["exact"] == pytest.approx(60.0) and result["f1"] == pytest.approx(76.0)
    # start at 2 (b and d right when everything is "no answer"), admit by no-answer score:
    # F1 a 3, d 3, b 2, c 2.8, e 3.8 -> best 3.8/5 at 0.95; EM a 3, d 3, b 2, c 2, e 3 -> best 3/5, first at 0.1
    assert (result["best_f1"], result["best_f1_thresh"]) == pytest.approx((76.0, 0.95))
    assert (result["best_exact"], result["best_exact_thresh"]) == pytest.approx((60.0, 0.1))
    # at threshold 0.6, c and e count as "no answer": wrong for both; EM a, d = 2/5, F1 = 2/5
    lower = squad_v2(predictions, references, na_probs, na_prob_thresh=0.6)
    assert (lower["exact"], lower["f1"]) == pytest.approx((40.0, 40.0))
    assert (lower["HasAns_exact"], lower["NoAns_exact"]) == pytest.approx((100 / 3, 50.0))
    # the search does not depend on the threshold applied to the main scores
    assert {k: v for k, v in lower.items() if k.startswith("best")} == {k: v for k, v in result.items() if k.startswith("best")}
    assert result == official_v2(references, predictions, na_probs)


@pytest.mark.unit
def test_no_improvement_keeps_threshold_zero():
    references = {"x": [], "y": ["Denver"]}
    result = squad_v2({"x": "Paris", "y": "Rome"}, references, {"x": 0.3, "y": 0.4})
    assert (result["best_f1"], result["best_f1_thresh"]) == (50.0, 0.0)


@pytest.fixture(scope="module")
def xquad_v2(xquad_file, peer_predictions) -> tuple[dict, dict]:
    """XQuAD with one question in three made unanswerable, and the BERT ensemble's real predictions,
    of which some are emptied (on both kinds of question)."""
    references = read_squad_answers(xquad_file)
    predictions = json.loads(peer_predictions["bert-ensemble.json"].read_text(encoding="utf-8"))
    rng = random.Random(5)
    references = {qid: [] if rng.random() < 1 / 3 else golds for qid, golds in references.items()}
    predictions = {qid: "" if rng.random() < 0.3 else text for qid, text in predictions.items()}
    return references, predictions


@pytest.mark.unit
@pytest.mark.parametrize("threshold", [1.0, 0.35, -0.2])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_official_algorithm_on_real_predictions(xquad_v2, threshold, seed):
    references, predictions = xquad_v2
    rng = random.Random(seed)
    ids = list(predictions)
    rng.shuffle(ids)  # ties are broken by the na-prob file's order, not the data's
    na_probs = {qid: round(rng.uniform(-1, 1.5), 1) for qid in ids}  # 26 values: many ties
    assert squad_v2(predictions, references, na_probs, threshold) == official_v2(references, predictions, na_probs, threshold)
    assert squad_v2(predictions, references) == official_v2(references, predictions)


@pytest.mark.unit
def test_missing_prediction_scores_zero_and_is_reported():
    references = {"a": ["Denver"], "b": []}
    result = squad_v2({"a": "Denver"}, references, {"a": -5.0})
    assert (result["exact"], result["HasAns_exact"], result["NoAns_exact"], result["missing"]) == (50.0, 100.0, 0.0, 1)


@pytest.mark.unit
def test_answered_question_without_null_odds_is_an_error():
    with pytest.raises(DataError, match="no null odds"):
        squad_v2({"a": "x", "b": ""}, {"a": ["x"], "b": []}, {"a": 0.5})


@pytest.mark.e2e
def test_score_command_on_official_v2_files(xquad_v2, xquad_file, tmp_path):
    """`qa-lab score` reads the official v2.0 layout (is_impossible, plausible_answers) and prints the
    official fields, best thresholds included."""

    references, predictions = xquad_v2
    articles = json.loads(xquad_file.read_text(encoding="utf-8"))
    for article in articles["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if not references[qa["id"]]:
                    qa["is_impossible"], qa["plausible_answers"], qa["answers"] = True, qa["answers"], []
    (tmp_path / "dev-v2.0.json").write_text(json.dumps({"version": "v2.0", **articles}))
    (tmp_path / "predictions.json").write_text(json.dumps(predictions))
    rng = random.Random(3)
    na_probs = {qid: rng.gauss(0, 2) for qid in predictions}
    (tmp_path / "null_odds.json").write_text(json.dumps(na_probs))

    def score(*extra: str) -> dict:
        done = qa_lab("score", str(tmp_path / "dev-v2.0.json"), str(tmp_path / "predictions.json"), *extra, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert score() == official_v2(references, predictions)
    assert score("--na-prob-file", str(tmp_path / "null_odds.json")) == official_v2(references, predictions, na_probs)
    with_threshold = score("--na-prob-file", str(tmp_path / "null_odds.json"), "--na-prob-thresh", "0.5")
    assert with_threshold == official_v2(references, predictions, na_probs, 0.5)
    assert set(with_threshold) >= {"HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh", "best_exact_thresh"}
    (tmp_path / "bad_odds.json").write_text(json.dumps({qid: "high" for qid in predictions}))
    done = qa_lab("score", str(tmp_path / "dev-v2.0.json"), str(tmp_path / "predictions.json"), "--na-prob-file", str(tmp_path / "bad_odds.json"), timeout=120)
    assert done.returncode == 2 and "not numbers" in done.stderr and "Traceback" not in done.stderr
