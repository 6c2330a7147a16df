"""Hydra callbacks (listed in conf/hydra/default.yaml) for what Hydra does before qa-lab's code runs.

Hydra creates the run folder, writes the composed config into `.hydra/` and logs a sweep's jobs itself, so
two guarantees have to hook into it: an output folder that cannot be written fails at once with a clear
message (not with Hydra's traceback, nor after training), and no saved config or log line keeps a secret.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from qa_lab.core.artifacts import write_text
from qa_lab.core.errors import ConfigError, exit_on_user_error
from qa_lab.core.secrets import mask_log_records, redact

SAVED_CONFIGS = ("config.yaml", "hydra.yaml", "overrides.yaml")


class WritableOutput(Callback):
    """Before Hydra creates anything: the run (or sweep) folder and the feature cache must be writable."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _require_writable(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _require_writable(config, "hydra.sweep.dir")


class RedactSecrets(Callback):
    """Secrets masked in every log line from the start, and in the configs Hydra saved for each job."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        mask_log_records()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        mask_log_records()  # before the launcher logs each job's overrides

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.output_subdir is not None:
            saved = Path(config.hydra.runtime.output_dir) / config.hydra.output_subdir
            for name in SAVED_CONFIGS:
                redact_yaml(saved / name)
        if config.hydra.mode == RunMode.MULTIRUN:  # Hydra's basic sweeper saves the sweep's config too
            redact_yaml(Path(config.hydra.sweep.dir) / "multirun.yaml")


def redact_yaml(path: Path) -> None:
    """Rewrite a saved YAML config with its secrets masked (interpolations are kept as written)."""
    if not path.is_file():
        return
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    masked = redact(saved)
    if masked != saved:
        write_text(path, OmegaConf.to_yaml(OmegaConf.create(masked)))


def _require_writable(config: DictConfig, key: str) -> None:
    """Exit with a clear message when the folder at `key`, or the feature cache, could not be created or written."""
    folders = (
        (key, "the run's files", f"give {key}=<a folder you can write>"),
        ("paths.cache_dir", "the feature cache", "give paths.cache_dir=<a folder you can write> (or set QA_LAB_CACHE_DIR)"),
    )
    with exit_on_user_error():
        for where, what, fix in folders:
            folder = OmegaConf.select(config, where)
            problem = _write_problem(Path(str(folder)))
            if problem:
                raise ConfigError(f"cannot write {what} to {folder}: {problem}; nothing was run", where=where, fix=fix)


def _write_problem(folder: Path) -> str | None:
    """Why `folder` could not be created and written to, or None: the nearest existing ancestor decides."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"{existing} is not writable ({error.strerror})"
    return None
