"""The configured source -> clean train and validation tables: validation held out when the source has
none, SQuAD v2 decided, samples selected, and one warning per split that was repaired."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from qa_lab.data.cleaning import REPAIRS, SplitReport, clean_examples
from qa_lab.data.examples import unanswerable
from qa_lab.data.sources import load_source

if TYPE_CHECKING:  # split_by_context runs where omegaconf is not installed (the device benchmark)
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


@dataclass
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    report: dict[str, SplitReport] = field(default_factory=dict)
    version_2: bool = False  # SQuAD v2: unanswerable questions are trained on and scored
    sources: dict[str, str] = field(default_factory=dict)  # where each split came from, for people to read


def load_splits(data: DictConfig, hub_timeout: float) -> Splits:
    """Load the configured source, clean it, hold out validation if needed and select samples."""
    raw, where = load_source(data, hub_timeout)
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
    held_out = "validation" not in where
    sources = {"train": where["train"],
               "validation": f"held out of {where['train']} ({data.validation_fraction:.0%}, by context)" if held_out else where["validation"]}
    return Splits(train, validation, reports, version_2, sources)


def split_by_context(frame: pd.DataFrame, fraction: float, seed: int, by: str = "context") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out about `fraction` of the questions, whole paragraphs (or, by="title", whole articles) at a
    time, so none is on both sides."""
    contexts = frame[by].unique()
    order = np.random.default_rng(seed).permutation(len(contexts))
    sizes = frame.groupby(by, sort=False).size().reindex(contexts).to_numpy()[order]
    held = contexts[order[: int(np.searchsorted(np.cumsum(sizes), fraction * len(frame))) + 1]]
    is_held = frame[by].isin(held).to_numpy()
    return frame[~is_held].reset_index(drop=True), frame[is_held].reset_index(drop=True)


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
