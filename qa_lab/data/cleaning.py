"""Example tables -> clean ones, with a count of every repair and skip (data_report.json).

Ids become strings, verbatim duplicates and empty rows are dropped, answer offsets that miss their text are
moved to it; two different questions under one id are an error, since predictions are keyed by id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qa_lab.core.errors import DataError

SHOWN_IDS = 5  # how many offending ids an error message lists
# SplitReport counts that mean the data was changed on its way in, as a log warning names them
REPAIRS = {
    "answers_repaired": "answer_start value(s) moved to where the answer text is",
    "answers_unlocatable": "answer(s) whose text is not in the context",
    "examples_dropped": "training example(s) dropped for want of a locatable answer",
    "empty_skipped": "row(s) with an empty question or context skipped",
    "duplicates_dropped": "verbatim duplicate row(s) dropped",
    "ids_converted": "non-string id(s) kept as strings",
}


@dataclass
class SplitReport:
    """What cleaning did to one split; every repair and skip is counted here."""

    rows: int = 0
    examples: int = 0
    ids_converted: int = 0  # non-string ids (e.g. integers) kept as strings
    duplicates_dropped: int = 0  # rows repeated verbatim
    empty_skipped: int = 0  # empty question or context
    answers_repaired: int = 0  # answer_start moved to the occurrence of the text nearest to it
    answers_unlocatable: int = 0  # answer text not found in the context
    examples_dropped: int = 0  # training examples none of whose answers could be located
    unanswerable: int = 0  # examples with no answer (SQuAD v2 style)
    unanswerable_dropped: int = 0  # left out because data.version_2=false (SQuAD v1.1 cannot score them)
    selected_out: int = 0  # left out by max_train_samples / max_eval_samples


def clean_examples(frame: pd.DataFrame, where: str, training: bool) -> tuple[pd.DataFrame, SplitReport]:
    """Make ids strings, drop verbatim duplicates and empty rows, repair answer offsets; count each."""
    report = SplitReport(rows=len(frame))
    frame = frame.copy()
    report.ids_converted = int(sum(not isinstance(i, str) for i in frame["id"]))
    if frame["id"].isna().any():
        raise DataError("rows without an id", where=where, fix="give every question a unique id")
    frame["id"] = [str(i) for i in frame["id"]]
    frame["question"] = frame["question"].astype(str).str.strip()
    frame["context"] = frame["context"].astype(str)
    frame["title"] = frame["title"].fillna("").astype(str)

    keys = frame["id"] + "\x00" + frame["question"] + "\x00" + frame["context"] + "\x00" + frame["answers"].map(json.dumps)
    verbatim = keys.duplicated()
    report.duplicates_dropped = int(verbatim.sum())
    frame = frame[~verbatim.to_numpy()]
    conflicting = frame["id"][frame["id"].duplicated()].unique()
    if len(conflicting):
        raise DataError(
            f"{len(conflicting)} id(s) used by different questions, e.g. {list(conflicting[:SHOWN_IDS])}",
            where=where,
            fix="give every question a unique id (predictions are keyed by id, so duplicates would be lost)",
        )

    empty = (frame["question"] == "") | (frame["context"].str.strip() == "")
    report.empty_skipped = int(empty.sum())
    frame = frame[~empty.to_numpy()]

    answers, had_answers, kept_answers = [], [], []
    for row_answers, context in zip(frame["answers"], frame["context"]):
        located = [_locate(text, start, context) for text, start in zip(row_answers["text"], row_answers["answer_start"])]
        original = list(zip(row_answers["text"], row_answers["answer_start"]))
        report.answers_repaired += sum(s is not None and (t, s) != o for (t, s), o in zip(located, original))
        report.answers_unlocatable += sum(s is None for _, s in located)
        if training:  # a training label needs a span: keep only the answers found in the context
            pairs = [(t, s) for t, s in located if s is not None]
        else:  # scoring needs only the texts: keep every gold answer
            pairs = [(t, o[1] if s is None else s) for (t, s), o in zip(located, original)]
        answers.append({"text": [t for t, _ in pairs], "answer_start": [s for _, s in pairs]})
        had_answers.append(len(located) > 0)
        kept_answers.append(len(pairs) > 0)
    frame = frame.assign(answers=answers)
    had, kept = np.array(had_answers, dtype=bool), np.array(kept_answers, dtype=bool)
    report.unanswerable = int((~had).sum())
    lost = had & ~kept
    report.examples_dropped = int(lost.sum())
    frame = frame[~lost]
    frame = frame.reset_index(drop=True)
    report.examples = len(frame)
    return frame, report


def _locate(text: str, start: int, context: str) -> tuple[str, int | None]:
    """The answer without surrounding white space, and its start in `context`: the given start when it
    fits, else the occurrence nearest to it, else None."""
    stripped = text.strip()
    start += len(text) - len(text.lstrip())
    if not stripped:
        return text, None
    if context[start : start + len(stripped)] == stripped:
        return stripped, start
    occurrences = [match.start() for match in re.finditer(re.escape(stripped), context)]
    if not occurrences:
        return text, None
    return stripped, min(occurrences, key=lambda position: abs(position - start))
