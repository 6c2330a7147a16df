"""Data sources -> clean SQuAD-format example tables with a report of every repair and skip.

Every source (Hub data set, official SQuAD JSON, flat JSON/JSONL/CSV/Parquet, generated data) becomes a
pandas DataFrame with the columns id (str), title, context, question, answers {text, answer_start}.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from qa_lab.errors import DataError

COLUMNS = ["id", "title", "context", "question", "answers"]
REQUIRED = ["id", "context", "question", "answers"]
FLAT_LAYOUT = (
    "official SQuAD JSON ({'data': [{'paragraphs': [{'context', 'qas': [{'id', 'question', 'answers'}]}]}]}) "
    "or flat records with the columns id, title (optional), context, question, "
    "answers {'text': [...], 'answer_start': [...]}"
)
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

log = logging.getLogger(__name__)


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


@dataclass
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    report: dict[str, SplitReport] = field(default_factory=dict)
    version_2: bool = False  # SQuAD v2: unanswerable questions are trained on and scored


def unanswerable(frame: pd.DataFrame) -> np.ndarray:
    """Rows without any gold answer (SQuAD v2's unanswerable questions)."""
    return frame["answers"].map(lambda answers: len(answers["text"]) == 0).to_numpy(dtype=bool)


def read_examples(path: str | Path) -> pd.DataFrame:
    """Read one file in any supported layout into the canonical columns (not yet cleaned)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", where=str(path), fix="give an existing file path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            frame = _read_json(path)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".csv":
            frame = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise DataError(
                f"unsupported file type '{suffix}'",
                where=str(path),
                fix="use .json (SQuAD or flat), .jsonl, .csv or .parquet",
            )
    except ValueError as error:
        raise DataError(f"cannot parse the file: {error}", where=str(path), fix=f"expected {FLAT_LAYOUT}") from None
    return _canonical(frame, str(path))


def _read_json(path: Path) -> pd.DataFrame:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(
            f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}",
            where=str(path),
            fix="repair the JSON (or use .jsonl for one record per line)",
        ) from None
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return _flatten_squad(payload["data"], str(path))
    if isinstance(payload, list) or (isinstance(payload, dict) and "question" in payload):
        return pd.DataFrame(payload)
    raise DataError("unrecognised JSON layout", where=str(path), fix=f"expected {FLAT_LAYOUT}")


def _flatten_squad(articles: list[Any], where: str) -> pd.DataFrame:
    rows = []
    try:
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                    rows.append(
                        {
                            "id": qa["id"],
                            "title": article.get("title", ""),
                            "context": paragraph["context"],
                            "question": qa["question"],
                            "answers": {
                                "text": [answer["text"] for answer in answers],
                                "answer_start": [answer["answer_start"] for answer in answers],
                            },
                        }
                    )
    except (KeyError, TypeError) as error:
        raise DataError(
            f"SQuAD JSON entry without the field {error} (after {len(rows)} questions)",
            where=where,
            fix=f"expected {FLAT_LAYOUT}",
        ) from None
    return pd.DataFrame(rows, columns=COLUMNS)


def _canonical(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; found {list(frame.columns)}",
            where=where,
            fix=f"expected {FLAT_LAYOUT}",
        )
    frame = frame.copy()
    if "title" not in frame.columns:
        frame["title"] = ""
    frame["answers"] = [_answers(value, where) for value in frame["answers"]]
    return frame[COLUMNS].reset_index(drop=True)


def _answers(value: Any, where: str) -> dict[str, list]:
    """Accept {text, answer_start} (lists or scalars), a list of {text, answer_start}, or JSON text of either."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {"text": [], "answer_start": []}
        except json.JSONDecodeError:
            raise DataError(
                f"answers cell is not JSON: {value[:80]!r}", where=where, fix="write answers as JSON"
            ) from None
    if isinstance(value, list):
        value = {"text": [a["text"] for a in value], "answer_start": [a["answer_start"] for a in value]}
    if not isinstance(value, dict) or "text" not in value or "answer_start" not in value:
        raise DataError(
            f"answers must have 'text' and 'answer_start', got {str(value)[:80]!r}",
            where=where,
            fix="answers: {'text': [...], 'answer_start': [...]}",
        )
    texts, starts = value["text"], value["answer_start"]
    texts = [texts] if isinstance(texts, str) else list(texts)
    starts = [starts] if np.isscalar(starts) else list(starts)
    if len(texts) != len(starts):
        raise DataError(
            f"{len(texts)} answer texts but {len(starts)} answer_start values",
            where=where,
            fix="give one answer_start per answer text",
        )
    return {"text": [str(t) for t in texts], "answer_start": [int(s) for s in starts]}


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


def split_by_context(frame: pd.DataFrame, fraction: float, seed: int, by: str = "context") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out about `fraction` of the questions, whole paragraphs (or, by="title", whole articles) at a
    time, so none is on both sides."""
    contexts = frame[by].unique()
    order = np.random.default_rng(seed).permutation(len(contexts))
    sizes = frame.groupby(by, sort=False).size().reindex(contexts).to_numpy()[order]
    held = contexts[order[: int(np.searchsorted(np.cumsum(sizes), fraction * len(frame))) + 1]]
    is_held = frame[by].isin(held).to_numpy()
    return frame[~is_held].reset_index(drop=True), frame[is_held].reset_index(drop=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of an example table: identical data gives the same key in every process."""
    columns = frame[["id", "question", "context"]].assign(answers=frame["answers"].map(json.dumps))
    hashes = pd.util.hash_pandas_object(columns, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()[:16]


def load_splits(data: DictConfig, hub_timeout: float) -> Splits:
    """Load the configured source, clean it, hold out validation if needed and select samples."""
    raw, where = _load_source(data, hub_timeout)
    train, train_report = clean_examples(raw["train"], where["train"], training=True)
    if "validation" in raw:
        validation, validation_report = clean_examples(raw["validation"], where["validation"], training=False)
    else:
        train, validation = split_by_context(train, data.validation_fraction, data.split_seed)
        validation_report = SplitReport(rows=len(validation))
    # SQuAD v2 when asked (data.version_2) or, by default, when any question has no answer
    version_2 = data.get("version_2")
    if version_2 is None:
        version_2 = bool(unanswerable(train).any() or unanswerable(validation).any())
    if not version_2:
        train, train_report.unanswerable_dropped = _answerable_only(train)
        validation, validation_report.unanswerable_dropped = _answerable_only(validation)
    train, train_report.selected_out = _select(train, data.max_train_samples)
    validation, validation_report.selected_out = _select(validation, data.max_eval_samples)
    train_report.examples, validation_report.examples = len(train), len(validation)
    reports = {"train": train_report, "validation": validation_report}
    for split, report in reports.items():
        _warn_repairs(where.get(split, where["train"]), report)
    return Splits(train, validation, reports, version_2)


def _warn_repairs(where: str, report: SplitReport) -> None:
    """One warning line per split that was repaired or thinned, so the data report is not the only trace."""
    counted = [f"{getattr(report, key)} {text}" for key, text in REPAIRS.items() if getattr(report, key)]
    if counted:
        log.warning("data %s: %s (counted in the run's data_report.json)", where, "; ".join(counted))


def _answerable_only(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    empty = unanswerable(frame)
    return frame[~empty].reset_index(drop=True), int(empty.sum())


def _select(frame: pd.DataFrame, limit: int | None) -> tuple[pd.DataFrame, int]:
    if limit is None or limit >= len(frame):
        return frame, 0
    return frame.iloc[:limit].reset_index(drop=True), len(frame) - limit


def _load_source(data: DictConfig, hub_timeout: float) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    if data.source == "synthetic":
        from qa_lab.synthetic import make_synthetic

        options = OmegaConf.to_container(data.synthetic, resolve=True)
        return make_synthetic(**options), {"train": "synthetic train", "validation": "synthetic validation"}
    if data.source == "files":
        frames = {"train": read_examples(data.train_file)}
        where = {"train": str(data.train_file)}
        if data.validation_file:
            frames["validation"] = read_examples(data.validation_file)
            where["validation"] = str(data.validation_file)
        return frames, where
    if data.source == "hub":
        return _load_hub(data, hub_timeout)
    raise DataError(f"unknown data.source '{data.source}'", where="data.source", fix="use hub, files or synthetic")


def _load_hub(data: DictConfig, hub_timeout: float) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    import datasets

    from qa_lab.hub import load_from_hub

    loaded = load_from_hub(
        lambda: datasets.load_dataset(data.name, data.config_name), data.name, kind="data set", timeout=hub_timeout
    )
    frames = {}
    for split in ("train", "validation"):
        if split in loaded:
            frame = loaded[split].to_pandas()
            frame["answers"] = [{"text": list(a["text"]), "answer_start": list(a["answer_start"])} for a in frame["answers"]]
            frames[split] = _canonical(frame, f"{data.name}[{split}]")
    if "train" not in frames:
        raise DataError(f"no 'train' split (found {list(loaded)})", where=data.name, fix="use a data set with a train split")
    return frames, {split: f"{data.name}[{split}]" for split in frames}
