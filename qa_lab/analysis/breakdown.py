"""Where a run is right and wrong: its per-question EM/F1, broken down by question type, answer length
and context length, so two runs with the same F1 can still be told apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from qa_lab.evaluation.squad import question_scores

# the first question word decides the type; "how much" counts as "how many", whom/whose as "who"
QUESTION_WORDS = r"\b(how many|how much|what|whom|whose|who|when|where|which|how|why)\b"
SAME_TYPE = {"how much": "how many", "whom": "who", "whose": "who"}
QUESTION_TYPES = ("what", "who", "when", "where", "which", "how many", "how", "why", "other")
NO_ANSWER = "no answer"
DIMENSIONS = ("question_type", "answer_length", "context_length")


def question_categories(validation: pd.DataFrame, answer_bins: Sequence[int], context_bins: Sequence[int]) -> pd.DataFrame:
    """Per question (index = id): its type, answer length bucket (first gold answer, in words) and
    context length bucket (words)."""
    words = validation["question"].str.lower().str.extract(QUESTION_WORDS, expand=False)
    question_type = words.replace(SAME_TYPE).fillna("other")
    answer_words = validation["answers"].map(lambda a: len(a["text"][0].split()) if a["text"] else 0)
    answer_length = _buckets(answer_words.to_numpy(), answer_bins)
    answer_length[answer_words.to_numpy() == 0] = NO_ANSWER
    context_length = _buckets(validation["context"].str.split().str.len().to_numpy(), context_bins)
    return pd.DataFrame(
        {
            "question_type": pd.Categorical(question_type, categories=QUESTION_TYPES, ordered=True),
            "answer_length": answer_length.array,
            "context_length": context_length.array,
        },
        index=validation["id"].to_numpy(),
    )


def _buckets(values: np.ndarray, edges: Sequence[int]) -> pd.Series:
    """Bucket labels ("1", "4-5", "6+") of integer values cut at inclusive upper `edges`, in order."""
    labels, low = [], 1
    for high in edges:
        labels.append(str(high) if low == high else f"{low}-{high}")
        low = high + 1
    labels.append(f"{low}+")
    which = np.searchsorted(np.asarray(edges), values, side="left")
    return pd.Series(pd.Categorical(np.asarray(labels, dtype=object)[which], categories=[*labels, NO_ANSWER], ordered=True))


def score_questions(predictions: Mapping[str, str], validation: pd.DataFrame, version_2: bool) -> pd.DataFrame:
    """EM and F1 (0-100) per question (index = id) with the official rules of the run's SQuAD version."""
    references = dict(zip(validation["id"], (a["text"] for a in validation["answers"])))
    exact, f1 = question_scores(predictions, references, version_2=version_2)
    return pd.DataFrame({"exact_match": 100.0 * exact, "f1": 100.0 * f1}, index=list(references))


def breakdown(per_question: Mapping[str, pd.DataFrame], categories: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per dimension: one row per (run, bucket) with the number of questions and mean EM/F1."""
    tables = {}
    for dimension in DIMENSIONS:
        parts = []
        for run, scores in per_question.items():
            joined = scores.join(categories[run][dimension])
            grouped = joined.groupby(dimension, observed=True, sort=True).agg(
                questions=("f1", "size"), exact_match=("exact_match", "mean"), f1=("f1", "mean")
            )
            parts.append(grouped.reset_index().rename(columns={dimension: "bucket"}).assign(run=run))
        tables[dimension] = pd.concat(parts, ignore_index=True)[["run", "bucket", "questions", "exact_match", "f1"]] if parts else pd.DataFrame()
    return tables
