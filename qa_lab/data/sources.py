"""Data sources -> example tables (not yet cleaned): a Hub data set, official SQuAD JSON, flat
JSON/JSONL/CSV/Parquet, or the generated data set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from qa_lab.core.errors import DataError
from qa_lab.data.examples import COLUMNS, REQUIRED

if TYPE_CHECKING:  # read_examples runs where omegaconf is not installed (the device benchmark)
    from omegaconf import DictConfig

FLAT_LAYOUT = (
    "official SQuAD JSON ({'data': [{'paragraphs': [{'context', 'qas': [{'id', 'question', 'answers'}]}]}]}) "
    "or flat records with the columns id, title (optional), context, question, "
    "answers {'text': [...], 'answer_start': [...]}"
)


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
    if frame.empty:  # nothing to train or score on; cleaning an empty table would fail inside pandas
        raise DataError("no questions in it", where=where, fix=f"expected {FLAT_LAYOUT} with at least one question")
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


def load_source(data: DictConfig, hub_timeout: float) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The raw tables of the configured source (`data.source`), by split, and where each came from."""
    if data.source == "synthetic":
        from omegaconf import OmegaConf

        from qa_lab.data.synthetic import make_synthetic

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

    from qa_lab.core.hub import load_from_hub

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
