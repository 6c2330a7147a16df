"""The inference settings a model was evaluated with (window geometry, span search, SQuAD version).

A run saves them next to its best model (`best/qa_lab.json`), so `qa-lab predict` and
`pipeline("question-answering")` answer the way the run was scored without repeating its flags. A model
without them (the raw MiniLM folder, a Hub id) gets the defaults of `conf/`, the single source of truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qa_lab.core.artifacts import write_json
from qa_lab.core.conf import conf_file
from qa_lab.evaluation.scoring import SpanSearch
from qa_lab.features.windows import WindowSpec

SETTINGS_FILE = "qa_lab.json"
WINDOW_KEYS = ("max_length", "stride", "max_question_tokens")  # under `data`
VERSION_KEY = "version_2"  # under `data`: None = decided by the data (any unanswerable question)
SEARCH_KEYS = ("n_best", "max_answer_length", "null_score_diff_threshold")  # under `postprocess`


def describe(spec: WindowSpec, version_2: bool | None, search: SpanSearch) -> dict[str, Any]:
    """The settings as qa_lab.json holds them."""
    return {**spec.key(), VERSION_KEY: version_2, **{key: getattr(search, key) for key in SEARCH_KEYS}}


def save(folder: str | Path, settings: dict[str, Any]) -> None:
    write_json(Path(folder) / SETTINGS_FILE, settings)


def conf_defaults() -> dict[str, Any]:
    """The values `python run.py` uses when nothing is overridden."""
    data, postprocess = conf_file("data", "_common.yaml"), conf_file("config.yaml").postprocess
    return {key: data[key] for key in (*WINDOW_KEYS, VERSION_KEY)} | {key: postprocess[key] for key in SEARCH_KEYS}


def for_model(model: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Explicit overrides (None = not given) > what the model was saved with > the conf/ defaults."""
    saved = Path(model) / SETTINGS_FILE
    settings = conf_defaults() | (json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {})
    return settings | {key: value for key, value in (overrides or {}).items() if value is not None}
