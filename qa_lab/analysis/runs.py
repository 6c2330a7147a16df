"""Run directories -> tables: one row per run (its config, status and best epoch), one row per epoch.

A run directory is a folder with `.hydra/config.yaml`: every `python run.py` run and every sweep trial.
A PATH given to `qa-lab compare` may be such a folder, a folder holding many (multirun, sweep) or a glob.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from qa_lab.core.errors import DataError
from qa_lab.core.records import flatten, read_jsonl
from qa_lab.core.secrets import mask_text, redact

RUN_MARKER = Path(".hydra") / "config.yaml"
# config keys that never describe an experiment: where it wrote, how it logged (and the hooks that did), which trial it was
NOT_PARAMETERS = ("paths.", "logger.", "hooks.", "trial", "hub_timeout", "run_name", "data.preprocessing_batch_size", "trainer.log_every_n_steps")
TABLE_KEYS = {  # table column -> resolved config key
    "backbone": "model.short_name",
    "data": "data.short_name",
    "max_length": "data.max_length",
    "stride": "data.stride",
    "lr": "trainer.lr",
    "batch_size": "trainer.batch_size",
    "epochs": "trainer.epochs",
    "seed": "trainer.seed",
}


@dataclass
class Runs:
    table: pd.DataFrame  # one row per run, best F1 first; index = run name
    epochs: pd.DataFrame  # one row per (run, epoch): what metrics.jsonl holds
    parameters: dict[str, dict[str, Any]]  # run -> flattened resolved config, without NOT_PARAMETERS keys
    configs: dict[str, DictConfig]  # run -> its config with its Hydra config (see resolved_config)
    folders: dict[str, Path]
    summaries: dict[str, dict]


def find_run_dirs(paths: Sequence[str]) -> list[Path]:
    """Every run directory under the given paths (globs expanded), in a stable order, each once."""
    found: list[Path] = []
    for pattern in paths:
        matches = sorted(glob.glob(pattern)) or [pattern]
        for match in map(Path, matches):
            if not match.exists():
                raise DataError("no such file or directory", where=pattern, fix="give run directories, sweep folders or a glob")
            if (match / RUN_MARKER).is_file():
                found.append(match)
            else:
                found += sorted(marker.parent.parent for marker in match.rglob(str(RUN_MARKER)))
    unique = list(dict.fromkeys(folder.resolve() for folder in found))
    if not unique:
        raise DataError(
            "no run directories found",
            where=" ".join(paths),
            fix="give folders written by `python run.py` (they hold .hydra/config.yaml), a multirun or sweep folder, or a glob",
        )
    return unique


def load_runs(paths: Sequence[str]) -> Runs:
    """Read every run's config, metrics.jsonl and summary.json into pandas tables."""
    from qa_lab.core.conf import register_resolvers

    register_resolvers()
    folders = find_run_dirs(paths)
    names = _names(folders)
    rows, epoch_rows, parameters, configs, summaries = [], [], {}, {}, {}
    for name, folder in zip(names, folders):
        config = configs[name] = resolved_config(folder)
        try:
            flat = flatten(redact(job_config(config)))  # the tables and the report show no secret
        except Exception as error:  # noqa: BLE001 - any resolver failure means the same to the user
            raise DataError(f"cannot resolve the run's config: {error}", where=str(folder / RUN_MARKER)) from None
        summary = _read_json(folder / "summary.json")
        epochs, skipped = read_jsonl(folder / "metrics.jsonl")
        row = _row(name, folder, flat, summary, epochs)
        if skipped:
            row["note"] = f"{skipped} malformed line(s) of metrics.jsonl left out; " + row["note"]
        rows.append(row)
        epoch_rows += [{"run": name, **epoch} for epoch in epochs]
        parameters[name] = {key: value for key, value in flat.items() if not key.startswith(NOT_PARAMETERS)}
        summaries[name] = summary
    table = pd.DataFrame(rows).set_index("run").sort_values("f1", ascending=False, na_position="last", kind="stable")
    epochs_table = pd.DataFrame(epoch_rows, columns=["run", "epoch", "exact_match", "f1"] if not epoch_rows else None)
    return Runs(table, epochs_table, parameters, configs, dict(zip(names, folders)), summaries)


def resolved_config(folder: Path) -> DictConfig:
    """The run's composed config, with its Hydra config under `hydra` so that `${hydra:...}` resolves
    as in the run (output_dir = the folder, wherever it is now)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():  # outside a Hydra app: look `${hydra:key}` up in the saved hydra.yaml
        OmegaConf.register_resolver("hydra", lambda key, _root_: OmegaConf.select(_root_, f"hydra.{key}"), replace=True)
    config = OmegaConf.load(folder / RUN_MARKER)
    hydra_file = folder / ".hydra" / "hydra.yaml"
    if hydra_file.is_file():
        config = OmegaConf.merge(config, OmegaConf.load(hydra_file))
    if OmegaConf.select(config, "paths") is not None:
        config.paths.output_dir = str(folder)
    return config


def job_config(config: DictConfig) -> dict[str, Any]:
    """The run's own keys, resolved, without the Hydra config (whose run.dir needs Hydra's `now`)."""
    return {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in config.items()
        if key != "hydra"
    }


def varied_parameters(runs: Runs) -> list[str]:
    """Config keys whose value differs between runs: what a sweep (or the user) changed."""
    frame = pd.DataFrame.from_dict(runs.parameters, orient="index").astype(str)
    return [key for key in frame.columns if frame[key].nunique(dropna=False) > 1]


def _names(folders: list[Path]) -> list[str]:
    """Short unique names: each folder relative to the folders' common parent."""
    if len(folders) == 1:
        return [folders[0].name]
    root = Path(os.path.commonpath(folders))
    return [str(folder.relative_to(root)) if folder != root else folder.name for folder in folders]


def _row(name: str, folder: Path, flat: dict[str, Any], summary: dict, epochs: list[dict]) -> dict[str, Any]:
    best = summary.get("best", {})
    status = summary.get("status") or ("pruned" if "pruned_at_epoch" in summary else "complete" if summary else "failed")
    speeds = [epoch["train_samples_per_second"] for epoch in epochs if "train_samples_per_second" in epoch]
    return {
        "run": name,
        "status": status,
        **{column: flat.get(key) for column, key in TABLE_KEYS.items()},
        "epochs_run": len(epochs),
        "best_epoch": summary.get("best_epoch"),
        "exact_match": best.get("exact_match"),
        "f1": best.get("f1"),
        "HasAns_f1": best.get("HasAns_f1"),
        "NoAns_f1": best.get("NoAns_f1"),
        "train_samples_per_second": sum(speeds) / len(speeds) if speeds else None,
        "wall_seconds": summary.get("wall_seconds"),
        "note": _note(folder, summary, status),
        "validation_fingerprint": summary.get("data_fingerprints", {}).get("validation"),
        "study": summary.get("trial", {}).get("study"),
        "trial": summary.get("trial", {}).get("number"),
        "worker": summary.get("trial", {}).get("worker"),  # with hydra.sweeper.n_jobs > 1: the worker that ran it
        "path": str(folder),
    }


def _note(folder: Path, summary: dict, status: str) -> str:
    """Why a run stopped early: its pruning epoch, or the last error line of its log."""
    if status == "pruned":
        return f"pruned after epoch {summary.get('pruned_at_epoch')}"
    if status != "failed":
        return ""
    log = folder / "run.log"
    errors = [line for line in log.read_text(errors="replace").splitlines() if "][ERROR] - " in line] if log.is_file() else []
    if errors:  # the first one says what went wrong; later ones ("Job failed") only that it did
        return mask_text(errors[0].split("][ERROR] - ", 1)[1])[:300]
    return "no summary.json: failed before its first evaluation (or still running)"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"malformed JSON: {error.msg}", where=str(path), fix="remove the run folder, or repair the file") from None
