"""A run's side of an Optuna study: report each epoch's objective to its trial, stop when the pruner says so.

The study sweeper (sweeper.py) starts every trial as a Hydra job numbered as the trial (`hydra.job.num`).
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
SWEEPER = "qa_lab.studies.sweeper.StudySweeper"  # the study sweeper's _target_ (sweeper.py)
# storage null: the sweep's in-memory studies by name, where its trials (jobs in the same process) find them
IN_MEMORY: dict[str, optuna.storages.InMemoryStorage] = {}


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
        """What W&B and summary.json record about the trial (with several workers, which one ran it)."""
        worker = {key: value for key, value in self.trial.user_attrs.items() if key.startswith("worker")}
        return {"number": self.number, "study": self.trial.study.study_name, "params": self.params} | worker

    def should_stop(self, epoch: int, value: float) -> bool:
        """Report the epoch's objective; True when the pruner stops the trial here."""
        self.trial.report(value, step=epoch)
        return self.trial.should_prune()


def open_trial() -> StudyTrial | None:
    """The trial this run is, or None outside a study sweep: the study sweeper numbers each job as its trial
    (hydra.job.num)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or HydraConfig.get().sweeper.get("_target_") != SWEEPER:
        return None
    sweeper, number = HydraConfig.get().sweeper, HydraConfig.get().job.num
    if sweeper.storage is None:
        storage = IN_MEMORY.get(sweeper.study_name)
        if storage is None:
            raise ConfigError(
                "is null: the study lives in the sweep's memory, and this trial runs in another process",
                where="hydra.sweeper.storage",
                fix="give the study a database its trials can reach: hydra.sweeper.storage=sqlite:///<file>.db",
            )
    else:
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
