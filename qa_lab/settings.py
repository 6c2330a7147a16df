"""The inference settings a model was evaluated with (window geometry, span search, SQuAD version).

A run saves them next to its best model (`best/qa_lab.json`), so `qa-lab predict` and
`pipeline("question-answering")` answer the way the run was scored without repeating its flags. A model
without them (the raw MiniLM folder, a Hub id) gets the defaults of `conf/`, the single source of truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SETTINGS_FILE = "qa_lab.json"
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
WINDOW_KEYS = ("max_length", "stride", "max_question_tokens")  # under `data`
VERSION_KEY = "version_2"  # under `data`: None = decided by the data (any unanswerable question)
SEARCH_KEYS = ("n_best", "max_answer_length", "null_score_diff_threshold")  # under `postprocess`


def from_config(cfg: DictConfig) -> dict[str, Any]:
    return {key: cfg.data[key] for key in (*WINDOW_KEYS, VERSION_KEY)} | {key: cfg.postprocess[key] for key in SEARCH_KEYS}


def save(folder: str | Path, cfg: DictConfig, **used: Any) -> None:
    """The config's settings, with what the run actually used (`used`: e.g. the resolved SQuAD version)."""
    (Path(folder) / SETTINGS_FILE).write_text(json.dumps(from_config(cfg) | used, indent=1), encoding="utf-8")


def conf_file(*parts: str) -> DictConfig:
    """One file of conf/, e.g. conf_file("trainer", "default.yaml"): defaults for tools outside a Hydra run."""
    return OmegaConf.load(CONF_DIR.joinpath(*parts))


def conf_defaults() -> dict[str, Any]:
    """The values `python run.py` uses when nothing is overridden."""
    cfg = {"data": conf_file("data", "_common.yaml"), "postprocess": conf_file("config.yaml").postprocess}
    return from_config(OmegaConf.create(cfg))


def for_model(model: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Explicit overrides (None = not given) > what the model was saved with > the conf/ defaults."""
    saved = Path(model) / SETTINGS_FILE
    settings = conf_defaults() | (json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {})
    return settings | {key: value for key, value in (overrides or {}).items() if value is not None}
