"""Official SQuAD v1.1 and v2.0 scores, computed offline.

`evaluate.load("squad")` fetches its script from the Hub, so the metrics live here. They reproduce the
official evaluate scripts exactly, quirks included. v1.1: a prediction and a gold answer that both
normalise to the empty string have EM 1 but F1 0, and a question without a prediction scores 0 and still
counts in the total. v2.0: an unanswerable question has the gold answer "", two empty answers score
EM 1 and F1 1, a "no answer" probability (here: the null odds) above a threshold turns a prediction into
"no answer", and the best threshold is searched over the questions in order of that probability.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qa_lab.core.answers import normalized_texts
from qa_lab.core.errors import DataError


@dataclass
class _Texts:
    """Predictions then gold answers, normalised and encoded as integers: a token id per token (in text
    order), and per text its answer id (equal ids: equal normalised answers) and its number of tokens."""

    token_id: np.ndarray
    answer_id: np.ndarray
    length: np.ndarray
    vocabulary_size: int
    empty_answer: int  # the answer id of "" (the empty gold answer of an unanswerable v2.0 question)

    @property
    def owner(self) -> np.ndarray:
        """The text of every token."""
        return np.repeat(np.arange(len(self.length)), self.length)


def _encode(texts: list[str]) -> _Texts:
    answers = normalized_texts(texts)  # single-spaced: a text's tokens are its spaces + 1
    answer_id, _ = pd.factorize(np.array([*answers, ""], dtype=object))  # hashed in C rather than a dict per text
    token_id, vocabulary = pd.factorize(np.array(" ".join(answers).split(), dtype=object))
    length = np.array([answer.count(" ") + 1 if answer else 0 for answer in answers], dtype=np.int64)
    return _Texts(token_id.astype(np.int64), answer_id[:-1], length, max(len(vocabulary), 1), int(answer_id[-1]))


def _gold_pairs(texts: _Texts, ids: list[str], n_given: np.ndarray, version_2: bool) -> tuple[np.ndarray, np.ndarray]:
    """The (question, gold answer text) pairs, by question; text -1 is the empty gold answer.

    v2.0 drops gold answers that normalise to "" and gives a question left without any the gold answer "";
    v1.1 needs at least one per question.
    """
    n_questions = len(ids)
    gold_question = np.repeat(np.arange(n_questions), n_given)
    gold_text = n_questions + np.arange(len(gold_question))
    kept = texts.length[gold_text] > 0 if version_2 else np.ones(len(gold_question), dtype=bool)
    lacking = np.flatnonzero(np.bincount(gold_question[kept], minlength=n_questions) == 0)
    if len(lacking) and not version_2:
        raise DataError(
            "question without a gold answer",
            where=f"question {ids[lacking[0]]}",
            fix="SQuAD v1.1 scoring needs at least one gold answer per question; "
            "leave unanswerable (SQuAD v2 style) questions out",
        )
    question_of_pair = np.concatenate([gold_question[kept], lacking])
    text_of_pair = np.concatenate([gold_text[kept], np.full(len(lacking), -1)])
    order = np.argsort(question_of_pair, kind="stable")
    return question_of_pair[order], text_of_pair[order]


def _common_tokens(texts: _Texts, question_of_pair: np.ndarray, text_of_pair: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per pair, the tokens its gold answer and its question's prediction share, with Counter semantics:
    summed over the distinct gold tokens, min(count in the gold answer, count in the prediction).
    Each (text, token) is one int64 key."""
    n_questions, size, owner, real = len(present), texts.vocabulary_size, texts.owner, text_of_pair >= 0
    pair_of_text = np.full(len(texts.length), -1)
    pair_of_text[text_of_pair[real]] = np.flatnonzero(real)
    in_pred = (owner < n_questions) & present[np.minimum(owner, n_questions - 1)]
    in_gold = pair_of_text[owner] >= 0
    pred_keys, pred_counts = np.unique(owner[in_pred] * size + texts.token_id[in_pred], return_counts=True)
    gold_keys, gold_counts = np.unique(pair_of_text[owner[in_gold]] * size + texts.token_id[in_gold], return_counts=True)
    pair, token = np.divmod(gold_keys, size)
    wanted = question_of_pair[pair] * size + token  # the same token in the pair's prediction
    found = np.searchsorted(pred_keys, wanted)
    in_prediction = np.append(pred_keys, -1)[found] == wanted  # found == len(pred_keys): not there
    pred_counts_here = np.where(in_prediction, np.append(pred_counts, 0)[found], 0)
    return np.bincount(pair, weights=np.minimum(gold_counts, pred_counts_here), minlength=len(question_of_pair))


def question_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], version_2: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-question EM (0/1) and F1 (0..1), in the order of `references`, for paired comparisons of runs.

    Strings are normalised together in one pass; the exact matches and token overlaps of all (question,
    gold answer) pairs are then counted together with numpy instead of one Counter intersection per pair. With `version_2`,
    the v2.0 rules: gold answers that normalise to "" are dropped, a question left without one has the
    gold answer "", and an empty prediction against an empty gold answer has F1 1.
    """
    ids = list(references)
    n_questions = len(ids)
    given = [references[qid] for qid in ids]
    present = np.array([qid in predictions for qid in ids], dtype=bool)
    # texts 0..n_questions-1 are the predictions ("" when missing), then every gold answer in order
    texts = _encode([predictions[qid] if here else "" for qid, here in zip(ids, present)] + [g for golds in given for g in golds])
    question_of_pair, text_of_pair = _gold_pairs(texts, ids, np.array([len(golds) for golds in given], dtype=np.int64), version_2)
    real = text_of_pair >= 0
    gold_answer = np.where(real, texts.answer_id[text_of_pair], texts.empty_answer)
    gold_length = np.where(real, texts.length[text_of_pair], 0)
    pred_answer = np.where(present, texts.answer_id[:n_questions], -1)  # -1: missing, equal to no gold answer
    pred_length = np.where(present, texts.length[:n_questions], 0)
    exact = (pred_answer[question_of_pair] == gold_answer).astype(np.float64)

    common = _common_tokens(texts, question_of_pair, text_of_pair, present)
    f1 = np.zeros(len(gold_length))
    overlap = common > 0  # no common token gives F1 0, even for two empty answers (official v1.1)
    precision = common[overlap] / pred_length[question_of_pair[overlap]]
    recall = common[overlap] / gold_length[overlap]
    f1[overlap] = 2 * precision * recall / (precision + recall)
    if version_2:  # v2.0: no tokens on either side scores 1 when both are empty (a present prediction)
        f1[present[question_of_pair] & (pred_length[question_of_pair] == 0) & (gold_length == 0)] = 1.0

    n_golds = np.bincount(question_of_pair, minlength=n_questions)
    first_pair = np.cumsum(n_golds) - n_golds
    return np.maximum.reduceat(exact, first_pair), np.maximum.reduceat(f1, first_pair)


def squad_v1(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict:
    """The official SQuAD v1.1 scores, comparable with published numbers; extra prediction ids are ignored."""
    if not references:
        raise DataError("no questions to score", fix="give at least one question with its gold answers")
    exact, f1 = question_scores(predictions, references)
    total = len(references)
    return {
        "exact_match": 100.0 * float(exact.sum()) / total,
        "f1": 100.0 * float(f1.sum()) / total,
        "total": total,
        "missing": sum(qid not in predictions for qid in references),
    }


def squad_v2(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict:
    """The official SQuAD v2.0 scores: overall, HasAns_* and NoAns_*, and with `na_probs` (per-question
    "no answer" scores, e.g. null odds) the best-threshold fields. A question whose na_prob is above
    `na_prob_thresh` counts as answered "no answer". A question without a prediction scores 0 (the
    official script stops with a KeyError there) and is reported under "missing".
    """
    if not references:
        raise DataError("no questions to score", fix="give at least one question with its gold answers")
    ids = list(references)
    present = np.array([qid in predictions for qid in ids])
    if na_probs is not None:
        lacking = [qid for qid, here in zip(ids, present) if here and qid not in na_probs]
        if lacking:
            raise DataError(
                f"{len(lacking)} answered question(s) have no null odds / no-answer probability, e.g. {lacking[:5]}",
                fix="give the na-prob (null odds) file of the same predictions",
            )
    # a missing prediction is never turned into "no answer": it stays wrong
    probs = np.array([na_probs[qid] if na_probs is not None and here else -np.inf for qid, here in zip(ids, present)], dtype=np.float64)
    has_answer = np.array([len(golds) > 0 for golds in references.values()])
    exact, f1 = question_scores(predictions, references, version_2=True)
    no_answer = probs > na_prob_thresh
    exact_at = np.where(no_answer, (~has_answer).astype(np.float64), exact)
    f1_at = np.where(no_answer, (~has_answer).astype(np.float64), f1)

    result = _totals("", exact_at, f1_at)
    if has_answer.any():
        result |= _totals("HasAns_", exact_at[has_answer], f1_at[has_answer])
    if (~has_answer).any():
        result |= _totals("NoAns_", exact_at[~has_answer], f1_at[~has_answer])
    if na_probs is not None:
        position = {qid: i for i, qid in enumerate(na_probs)}
        order_in_file = np.array([position.get(qid, -1) for qid in ids])
        empty_prediction = np.array([not predictions.get(qid) for qid in ids])
        for name, scores in (("exact", exact), ("f1", f1)):
            best, threshold = _best_threshold(scores, has_answer, empty_prediction, probs, present, order_in_file)
            result[f"best_{name}"], result[f"best_{name}_thresh"] = best, threshold
    missing = int((~present).sum())
    return result | ({"missing": missing} if missing else {})


def _totals(prefix: str, exact: np.ndarray, f1: np.ndarray) -> dict:
    """Percentages summed left to right with Python's sum, as the official script does (same floats)."""
    total = len(exact)
    return {
        f"{prefix}exact": 100.0 * sum(exact.tolist()) / total,
        f"{prefix}f1": 100.0 * sum(f1.tolist()) / total,
        f"{prefix}total": total,
    }


def _best_threshold(
    scores: np.ndarray,
    has_answer: np.ndarray,
    empty_prediction: np.ndarray,
    probs: np.ndarray,
    present: np.ndarray,
    order_in_file: np.ndarray,
) -> tuple[float, float]:
    """The official best-threshold search as one cumulative sum.

    Start from "every question answered no answer" (score = number of unanswerable questions), then
    admit questions in increasing na_prob (ties in the na-prob file's order): an answerable one adds its
    score, an unanswerable one with a non-empty prediction costs 1. The best running total (first reached)
    and the na_prob where it is reached are the best score and threshold.
    """
    start = float((~has_answer).sum())
    admitted = np.flatnonzero(present)
    admitted = admitted[np.lexsort((order_in_file[admitted], probs[admitted]))]
    gain = np.where(has_answer[admitted], scores[admitted], np.where(empty_prediction[admitted], 0.0, -1.0))
    running = np.cumsum(np.concatenate([[start], gain]))[1:]
    best_at = int(np.argmax(running)) if len(running) else 0
    if len(running) and running[best_at] > start:
        best, threshold = float(running[best_at]), float(probs[admitted[best_at]])
    else:
        best, threshold = start, 0.0
    return 100.0 * best / int(present.sum()), threshold
