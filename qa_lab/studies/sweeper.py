"""The Hydra plugins behind `python run.py -m sweep=<preset>`: the study sweeper and the presets' search path.

Both are registered through the `hydra.plugins` entry point (pyproject.toml). This module stays light
because Hydra loads it at every start; the sweep itself (and Optuna) lives in loop.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import MISSING, DictConfig

PRESETS_FOLDER = "sweeps"  # next to conf/; holds the `sweep` config group


@dataclass
class StudySweeperConf(OptunaSweeperConf):
    """The official Optuna sweeper's keys (sampler, direction, storage, study_name, n_trials, params, ...)
    plus pruning and heartbeats; see conf/hydra/sweeper/pruner/ for the pruners."""

    _target_: str = "qa_lab.studies.sweeper.StudySweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])
    direction: Any = "maximize"  # run.py returns F1 (or EM) of the best epoch
    study_name: str | None = "${run_name}"
    # any SQLAlchemy URL; re-running the same command continues the study stored there
    storage: Any = "sqlite:///${paths.output_root}/optuna/${hydra.sweeper.study_name}.db"
    n_trials: int = 10  # trials of the study in total (COMPLETE + PRUNED + running), not per command
    n_jobs: int = 1  # trials per worker at a time; start more workers for parallel trials
    # stop when more than this share of n_trials failed in this session (0: stop at the first failure)
    max_failure_rate: float = 0.25
    pruner: Any = MISSING  # from the defaults list: hydra/sweeper/pruner=median|hyperband|successive_halving|none
    # a worker's running trial sends a heartbeat every heartbeat_interval seconds; a RUNNING trial silent
    # for grace_period seconds (default 2 intervals) belonged to a dead worker and is marked FAIL
    heartbeat_interval: int = 60
    grace_period: int | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="qa_lab", node=StudySweeperConf, provider="qa_lab")


class StudySweeper(Sweeper):
    """Hydra's Optuna sweeper, extended with pruning, resumable totals and several workers per study."""

    def __init__(self, **settings: Any) -> None:
        from qa_lab.studies.loop import StudyLoop

        self.loop = StudyLoop(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.loop.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.loop.sweep(arguments)


class SweepPresets(SearchPathPlugin):
    """Put sweeps/ (next to the primary config folder conf/) on the search path: `sweep=<preset>`."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for element in search_path.get_path():
            if element.provider == "main" and not element.path.startswith("pkg://"):
                presets = Path(element.path.removeprefix("file://")).parent / PRESETS_FOLDER
                search_path.append(provider="qa-lab", path=f"file://{presets}")
                return
