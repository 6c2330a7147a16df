"""Official SQuAD v1.1 exact match and token F1, computed offline.

`evaluate.load("squad")` fetches its script from the Hub, so the metric lives here. It reproduces the
official v1.1 evaluate script exactly, quirks included: a prediction and a gold answer that both
normalise to the empty string have EM 1 but F1 0, and a question without a prediction scores 0 and still
counts in the total.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence

import numpy as np

from qa_lab.errors import DataError

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Make answers that differ only in case, punctuation, articles or spacing compare equal (official order)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def question_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-question EM (0/1) and F1 (0..1), in the order of `references`, for paired comparisons of runs.

    Strings are normalised once in Python; the token overlaps of all (question, gold answer) pairs are then
    counted together with numpy instead of one Counter intersection per pair.
    """
    vocabulary: dict[str, int] = {}  # normalised token -> id
    answers: dict[str, int] = {}  # normalised answer -> id, so that EM compares integers

    def encode(text: str) -> tuple[int, list[int]]:
        normalized = normalize_answer(text)
        return answers.setdefault(normalized, len(answers)), [
            vocabulary.setdefault(token, len(vocabulary)) for token in normalized.split()
        ]

    # per question: its prediction (-1 when missing, equal to no gold answer) and how many gold answers;
    # per pair (question, gold answer): the gold answer; tokens of all predictions / gold answers in a row.
    pred_answer, pred_length, pred_tokens, n_golds = [], [], [], []
    gold_answer, gold_length, gold_tokens = [], [], []
    for qid, golds in references.items():
        if len(golds) == 0:
            raise DataError(
                "question without a gold answer",
                where=f"question {qid}",
                fix="SQuAD v1.1 scoring needs at least one gold answer per question; "
                "leave unanswerable (SQuAD v2 style) questions out",
            )
        answer, tokens = encode(predictions[qid]) if qid in predictions else (-1, [])
        pred_answer.append(answer)
        pred_length.append(len(tokens))
        pred_tokens += tokens
        n_golds.append(len(golds))
        for gold in golds:
            answer, tokens = encode(gold)
            gold_answer.append(answer)
            gold_length.append(len(tokens))
            gold_tokens += tokens

    question_of_pair = np.repeat(np.arange(len(n_golds)), n_golds)
    exact = (np.array(pred_answer)[question_of_pair] == np.array(gold_answer)).astype(np.float64)

    # Counter semantics: a pair's common tokens are, summed over its distinct gold tokens,
    # min(count in the gold answer, count in the prediction). Each (owner, token) is one int64 key.
    size = max(len(vocabulary), 1)
    pred_keys, pred_counts = np.unique(
        np.repeat(np.arange(len(pred_length)), pred_length) * size + np.array(pred_tokens, dtype=np.int64),
        return_counts=True,
    )
    gold_keys, gold_counts = np.unique(
        np.repeat(np.arange(len(gold_length)), gold_length) * size + np.array(gold_tokens, dtype=np.int64),
        return_counts=True,
    )
    pair, token = np.divmod(gold_keys, size)
    wanted = question_of_pair[pair] * size + token  # the same token in the pair's prediction
    found = np.searchsorted(pred_keys, wanted)
    in_prediction = np.append(pred_keys, -1)[found] == wanted  # found == len(pred_keys): not there
    pred_counts_here = np.where(in_prediction, np.append(pred_counts, 0)[found], 0)
    common = np.bincount(pair, weights=np.minimum(gold_counts, pred_counts_here), minlength=len(gold_length))

    f1 = np.zeros(len(gold_length))
    overlap = common > 0  # no common token gives F1 0, even for two empty answers (official v1.1)
    precision = common[overlap] / np.array(pred_length)[question_of_pair[overlap]]
    recall = common[overlap] / np.array(gold_length)[overlap]
    f1[overlap] = 2 * precision * recall / (precision + recall)

    first_pair = np.cumsum(n_golds, dtype=np.int64) - np.array(n_golds, dtype=np.int64)
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
