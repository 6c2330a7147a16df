"""A run's side of an Optuna study: report each epoch's objective to its trial, stop when the pruner says so.

The study sweeper (sweeper.py) starts every trial as a Hydra job with the override `trial=<number>`.
The job opens that trial in the study's storage (read from the sweeper's own config, so both sides always
agree on the storage, study and pruner), reports the objective after each epoch, and raises
`optuna.TrialPruned` when the pruner stops it: the sweeper records the trial as PRUNED.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig

from qa_lab.core.errors import ConfigError

PRUNER_MODULES = ("optuna.pruners.*",)  # what a pruner config may instantiate


class SkippedTrial(optuna.TrialPruned):
    """The sampled values are an invalid combination (say a stride too long for a short max_length):
    nothing to train, and no failure either."""


def make_pruner(config: DictConfig | None) -> optuna.pruners.BasePruner:
    """`hydra/sweeper/pruner=<name>` as an Optuna pruner; no pruner config means never prune."""
    if config is None:
        return optuna.pruners.NopPruner()
    return instantiate(config, _execution_whitelist_=PRUNER_MODULES)


def trial_id(storage: optuna.storages.BaseStorage, study_name: str, number: int) -> int:
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)


class StudyTrial:
    """The Optuna trial this run is, with the values the sweeper sampled for it."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.params: dict[str, Any] = dict(trial.params)

    @property
    def number(self) -> int:
        return self.trial.number

    def describe(self) -> dict[str, Any]:
        """What W&B and summary.json record about the trial."""
        return {"number": self.number, "study": self.trial.study.study_name, "params": self.params}

    def should_stop(self, epoch: int, value: float) -> bool:
        """Report the epoch's objective; True when the pruner stops the trial here."""
        self.trial.report(value, step=epoch)
        return self.trial.should_prune()


def open_trial(number: int | None) -> StudyTrial | None:
    """The trial this run is (`trial`, set by the study sweeper), or None outside a study sweep."""
    if number is None:
        return None
    from hydra.core.hydra_config import HydraConfig

    sweeper = HydraConfig.get().sweeper
    if "study_name" not in sweeper:
        raise ConfigError(
            f"is {number}, but this run is not part of an Optuna study",
            where="trial",
            fix="leave trial unset: the study sweeper (python run.py -m sweep=<preset>) sets it",
        )
    storage = optuna.storages.get_storage(sweeper.storage)
    try:
        study = optuna.load_study(study_name=sweeper.study_name, storage=storage, pruner=make_pruner(sweeper.pruner))
        return StudyTrial(optuna.Trial(study, trial_id(storage, sweeper.study_name, number)))
    except KeyError:
        raise ConfigError(
            f"trial {number} of study '{sweeper.study_name}' is not in the study's storage",
            where="hydra.sweeper.study_name",
            fix="give the study a name that does not interpolate a swept key (each trial must resolve the same name)",
        ) from None


@contextmanager
def skip_if_invalid(trial: StudyTrial | None) -> Iterator[None]:
    """Inside a trial, a config error in a sampled key means the combination is invalid: skip the trial."""
    try:
        yield
    except ConfigError as error:
        if trial is None or error.where not in trial.params:
            raise
        raise SkippedTrial(f"skipped, the sampled values are invalid: {error.message()}") from error
