"""Logits -> answers -> the official SQuAD scores against the gold answers: one evaluation of a model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qa_lab.core.records import THRESHOLD_KEY, V2_KEYS
from qa_lab.evaluation.spans import Postprocessed, postprocess
from qa_lab.evaluation.squad import squad_v1, squad_v2
from qa_lab.features.windows import Windows


@dataclass(frozen=True)
class SpanSearch:
    """How logits become answers (conf: `postprocess`)."""

    n_best: int  # top start and end logits considered per window
    max_answer_length: int  # in tokens
    null_score_diff_threshold: float = 0.0  # SQuAD v2: "" when the null odds exceed it
    apply_best_threshold: bool = False  # SQuAD v2: answer with the best-F1 threshold of these examples instead


@dataclass
class Evaluation:
    metrics: dict[str, float]  # exact_match and f1 (v1: none for unlabelled data); V2_KEYS and null_threshold for v2
    answers: dict[str, str]  # {question id: answer text}, the official predictions format
    null_odds: dict[str, float]  # {question id: null score - best span score}, what SQuAD v2 thresholds
    spans: Postprocessed
    ids: list[str]

    @property
    def nbest(self) -> dict[str, list[dict]]:
        """{question id: its n-best spans}, built when asked for (only files need it)."""
        return dict(zip(self.ids, self.spans.nbest))


def score(start: np.ndarray, end: np.ndarray, windows: Windows, examples: pd.DataFrame, search: SpanSearch, version_2: bool) -> Evaluation:
    """Answers from logits, then the official SQuAD scores against the examples' gold answers.

    SQuAD v2: an answer is "" when its null odds exceed the threshold, or, with `apply_best_threshold`, the
    threshold that maximises F1 on these examples. The best-threshold search runs over the best spans
    and their null odds (not over answers already cut at a threshold).
    """
    result: Postprocessed = postprocess(
        start, end, windows.offsets, windows.example_index, examples["context"].tolist(), search.n_best, search.max_answer_length,
        windows.cls_index,
    )
    ids = examples["id"].tolist()
    references = dict(zip(ids, (a["text"] for a in examples["answers"])))
    null_odds = dict(zip(ids, result.null_odds.tolist()))
    spans = dict(zip(ids, result.answers))  # the best span of every question
    if not version_2:
        # SQuAD v1.1 cannot score a question without a gold answer (e.g. unlabelled data): no metrics then
        metrics = squad_v1(spans, references) if all(len(golds) for golds in references.values()) else {}
        return Evaluation(metrics=metrics, answers=spans, null_odds=null_odds, spans=result, ids=ids)
    null_threshold = search.null_score_diff_threshold
    official = squad_v2(spans, references, null_odds, null_threshold)
    if search.apply_best_threshold:
        null_threshold = official["best_f1_thresh"]
        official = squad_v2(spans, references, null_odds, null_threshold)
    metrics = {
        "exact_match": official["exact"],
        "f1": official["f1"],
        **{key: official[key] for key in V2_KEYS if key in official},  # HasAns_/NoAns_ only when there are some
        THRESHOLD_KEY: float(null_threshold),
    }
    answers = dict(zip(ids, result.answers_at(null_threshold)))
    return Evaluation(metrics=metrics, answers=answers, null_odds=null_odds, spans=result, ids=ids)
