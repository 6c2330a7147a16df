"""`qa-lab compare`: runs side by side, offline. Reads run folders (and their Optuna study), prints the
table sorted by best F1; report.py writes runs.csv and a self-contained report.html.

Per-question scores come from each run's predictions.json against its validation set, rebuilt from the
run's own config and checked against the data fingerprint the run recorded; only runs scored on the
same questions are paired in the significance tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from qa_lab.analysis.breakdown import breakdown, question_categories, score_questions
from qa_lab.analysis.runs import Runs, job_config, load_runs, varied_parameters
from qa_lab.analysis.significance import PairedTest, paired_bootstrap, seed_groups
from qa_lab.core.errors import DataError, QALabError
from qa_lab.core.secrets import mask_text
from qa_lab.data.examples import fingerprint
from qa_lab.data.splits import load_splits

PRINTED = ["status", "worker", "backbone", "max_length", "stride", "lr", "epochs", "best_epoch", "exact_match", "f1", "HasAns_f1", "NoAns_f1", "train_samples_per_second", "wall_seconds"]


@dataclass
class Comparison:
    runs: Runs
    varied: list[str]
    groups: pd.DataFrame  # seed groups
    breakdowns: dict[str, pd.DataFrame]
    tests: pd.DataFrame  # best run against each run on the same questions
    best_run: str | None
    notes: list[str] = field(default_factory=list)  # what could not be analysed, and why
    study: optuna.Study | None = None


def compare(paths: list[str], options: DictConfig, hub_timeout: float, study_storage: str | None = None, study_name: str | None = None) -> Comparison:
    """Everything the table and the report show, computed once."""
    runs = load_runs(paths)
    notes: list[str] = []
    per_question, categories = _question_scores(runs, options, hub_timeout, notes)
    best_run = next((run for run in runs.table.index if run in per_question), None)
    tests = _paired_tests(runs, per_question, best_run, options.bootstrap, notes)
    study = _study(runs, study_storage, study_name, notes)
    return Comparison(
        runs=runs,
        varied=varied_parameters(runs),
        groups=seed_groups(runs.parameters, runs.table[["exact_match", "f1"]]),
        breakdowns=breakdown(per_question, categories),
        tests=tests,
        best_run=best_run,
        notes=notes,
        study=study,
    )


def _question_scores(runs: Runs, options: DictConfig, hub_timeout: float, notes: list[str]) -> tuple[dict, dict]:
    """Per-question EM/F1 of every run whose predictions and validation set are at hand."""
    # data config -> (validation set, its question categories, its fingerprint), or why the set is missing;
    # built once per set, however many runs share it
    validations: dict[str, tuple[pd.DataFrame, pd.DataFrame, str] | str] = {}
    per_question, categories = {}, {}
    for run in runs.table.index:
        folder, summary = runs.folders[run], runs.summaries[run]
        predictions_file = folder / "predictions.json"
        if not predictions_file.is_file():
            continue  # failed before its first evaluation: the table says so
        data = job_config(runs.configs[run])["data"]
        key = json.dumps(data, sort_keys=True)
        if key not in validations:
            try:
                validation = load_splits(OmegaConf.create(data), hub_timeout).validation
                bins = options.breakdown
                validations[key] = (
                    validation,
                    question_categories(validation, bins.answer_length_bins, bins.context_length_bins),
                    fingerprint(validation),
                )
            except QALabError as error:
                validations[key] = f"its validation data could not be loaded ({error.what})"
        if isinstance(validations[key], str):
            notes.append(f"{run}: no per-question analysis: {validations[key]}")
            continue
        validation, run_categories, validation_fingerprint = validations[key]
        recorded = summary.get("data_fingerprints", {}).get("validation")
        if recorded is not None and recorded != validation_fingerprint:
            notes.append(f"{run}: no per-question analysis: its validation data changed since the run (fingerprint {recorded})")
            continue
        categories[run] = run_categories
        predictions = json.loads(predictions_file.read_text(encoding="utf-8"))
        per_question[run] = score_questions(predictions, validation, bool(summary.get("version_2", False)))
    return per_question, categories


def _paired_tests(runs: Runs, per_question: dict, best_run: str | None, bootstrap: DictConfig, notes: list[str]) -> pd.DataFrame:
    """The best run against every other run scored on the same validation questions."""
    rows = []
    if best_run is not None:
        best_fingerprint = runs.table.loc[best_run, "validation_fingerprint"]
        for run in per_question:
            if run == best_run:
                continue
            if runs.table.loc[run, "validation_fingerprint"] != best_fingerprint:
                notes.append(f"{run}: not paired with {best_run}: scored on a different validation set, so no question-by-question comparison exists")
                continue
            a, b = per_question[best_run]["f1"], per_question[run]["f1"].reindex(per_question[best_run].index)
            test: PairedTest = paired_bootstrap(a.to_numpy(), b.to_numpy(), bootstrap.samples, bootstrap.confidence, bootstrap.seed, bootstrap.chunk)
            rows.append({
                "run": run, "against": best_run, "questions": test.questions, "f1_difference": test.difference,
                "ci_low": test.low, "ci_high": test.high, "p_value": test.p_value,
                "verdict": "significant" if test.significant else "noise",
            })
    return pd.DataFrame(rows, columns=["run", "against", "questions", "f1_difference", "ci_low", "ci_high", "p_value", "verdict"])


def _study(runs: Runs, storage: str | None, name: str | None, notes: list[str]) -> optuna.Study | None:
    """The Optuna study given on the command line, else the one the runs' sweep wrote (when they share one)."""
    given = storage is not None or name is not None
    if given and (storage is None or name is None):
        raise DataError("--study-storage and --study-name go together", where="qa-lab compare", fix="give both, or neither")
    if not given:
        studies = {(study, _sweep_storage(runs.configs[run])) for run, study in runs.table["study"].dropna().items()}
        if len(studies) != 1:
            if len(studies) > 1:
                notes.append(f"the runs come from {len(studies)} studies; give --study-storage and --study-name for the study views")
            return None
        [(name, storage)] = studies
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except Exception as error:  # noqa: BLE001 - unknown study, bad URL, unreachable server: all mean "no study"
        if given:
            raise DataError(mask_text(f"cannot open study {name!r}: {type(error).__name__}: {error}"), where=mask_text(str(storage)),
                            fix="check --study-storage (an SQLAlchemy URL) and --study-name (optuna study list shows the names)") from None
        notes.append(mask_text(f"study {name!r} could not be opened in {storage}: {error}"))
        return None


def _sweep_storage(config: DictConfig) -> str | None:
    """The storage URL a sweep trial's Hydra config names; relative SQLite paths are taken from the sweep's cwd."""
    storage = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
    cwd = OmegaConf.select(config, "hydra.runtime.cwd", default=None)
    prefix = "sqlite:///"
    if storage and storage.startswith(prefix) and not storage.startswith(prefix + "/") and cwd:
        storage = prefix + str(Path(cwd) / storage[len(prefix):])
    return storage


def table_text(comparison: Comparison) -> str:
    """The runs table as the terminal shows it: best F1 first, v2 columns only for v2 runs."""
    table = comparison.runs.table
    columns = [c for c in PRINTED if c in table.columns and table[c].notna().any()]
    shown = table[columns].copy()
    for column in ("exact_match", "f1", "HasAns_f1", "NoAns_f1", "train_samples_per_second"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    if "wall_seconds" in shown:
        shown["wall_seconds"] = shown["wall_seconds"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    return shown.fillna("").to_string()
