"""The inference settings a model was evaluated with (window geometry and span search).

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
SEARCH_KEYS = ("n_best", "max_answer_length")  # under `postprocess`


def from_config(cfg: DictConfig) -> dict[str, int]:
    return {**{key: int(cfg.data[key]) for key in WINDOW_KEYS}, **{key: int(cfg.postprocess[key]) for key in SEARCH_KEYS}}


def save(folder: str | Path, cfg: DictConfig) -> None:
    (Path(folder) / SETTINGS_FILE).write_text(json.dumps(from_config(cfg), indent=1), encoding="utf-8")


def conf_file(*parts: str) -> DictConfig:
    """One file of conf/, e.g. conf_file("trainer", "default.yaml"): defaults for tools outside a Hydra run."""
    return OmegaConf.load(CONF_DIR.joinpath(*parts))


def conf_defaults() -> dict[str, int]:
    """The values `python run.py` uses when nothing is overridden."""
    cfg = {"data": conf_file("data", "_common.yaml"), "postprocess": conf_file("config.yaml").postprocess}
    return from_config(OmegaConf.create(cfg))


def for_model(model: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, int]:
    """Explicit overrides (None = not given) > what the model was saved with > the conf/ defaults."""
    saved = Path(model) / SETTINGS_FILE
    settings = conf_defaults() | (json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {})
    return settings | {key: value for key, value in (overrides or {}).items() if value is not None}
