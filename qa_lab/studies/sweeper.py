"""The Hydra plugins behind `python run.py -m sweep=<preset>`: the study sweeper (with its pruner and
cluster configs in the ConfigStore, so it starts in any Hydra app) and the presets' search path (qa-lab's
own config only).

Both are registered through the `hydra.plugins` entry point (pyproject.toml). This module stays light
because Hydra loads it at every start; the sweep itself (and Optuna) lives in loop.py, the workers in
workers.py.
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

from qa_lab.core.paths import CONF_DIR

PRESETS_FOLDER = "sweeps"  # next to conf/; holds the `sweep` config group


@dataclass
class WorkersConf:
    """How `n_jobs` workers share this machine (hydra.sweeper.workers; README, "Several workers")."""

    # GPUs the workers share, worker k on the (k mod G)-th alone: auto = the visible ones (CUDA_VISIBLE_DEVICES
    # when set, else all); a list of ids (e.g. [0, 0, 1, 1]: two workers per GPU); [] = none
    gpus: Any = "auto"
    threads: Any = "auto"  # torch / OpenMP threads per worker: auto = this machine's cores // n_jobs, at least 1
    poll_interval: float = 1.0  # seconds between the sweep owner's looks at the study and its workers
    stop_timeout: float = 60.0  # seconds a stopped worker has to fail its trial and exit before it is killed


@dataclass
class ClusterConf:
    """Workers as submitit jobs (hydra/sweeper/cluster=slurm | local); the keys of Hydra's submitit launcher."""

    executor: str = "slurm"  # submitit's AutoExecutor cluster: slurm, or local (the same job code as local processes)
    folder: str = "${hydra.sweep.dir}/.submitit"  # submitit's job scripts, pickles and logs
    timeout_min: int = 60
    nodes: int = 1
    tasks_per_node: int = 1  # one worker loop per job
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    mem_gb: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)  # shell lines before the job starts (module load ..., source ...)


@dataclass
class StudySweeperConf(OptunaSweeperConf):
    """The official Optuna sweeper's keys (sampler, direction, storage, study_name, n_trials, params, ...)
    plus pruning, heartbeats and asynchronous workers; the pruners are in the ConfigStore below."""

    _target_: str = "qa_lab.studies.sweeper.StudySweeper"
    # _self_ first: a chosen group (hydra/sweeper/cluster=slurm) replaces the null default below
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": "median"}, {"cluster": None}])
    # direction, study_name, storage and n_trials default as in the official sweeper, for any Hydra app;
    # qa-lab's presets set its own (sweeps/sweep/_study.yaml)
    direction: Any = "minimize"
    study_name: str | None = None  # null: a name Optuna makes up (one worker only)
    # any SQLAlchemy URL; re-running the same command continues the study stored there. null: a study in
    # this process's memory (one worker, nothing kept)
    storage: Any = None
    n_trials: int = 20  # trials of the study in total (COMPLETE + PRUNED + running), not per command
    # workers, each running one trial at a time and claiming the next the moment its own ends (no batches);
    # 1 = the trials run in this process, one after the other
    n_jobs: int = 1
    workers: WorkersConf = field(default_factory=WorkersConf)
    cluster: Any = None  # hydra/sweeper/cluster=slurm | local: the n_jobs workers as submitit jobs
    # stop when more than this share of n_trials failed in this session (0: stop at the first failure)
    max_failure_rate: float = 0.25
    pruner: Any = MISSING  # from the defaults list: hydra/sweeper/pruner=median|hyperband|successive_halving|none
    # a worker's running trial sends a heartbeat every heartbeat_interval seconds; a RUNNING trial silent
    # for grace_period seconds (default 2 intervals) belonged to a dead worker and is marked FAIL
    heartbeat_interval: int = 60
    grace_period: int | None = None
    # a storage call that fails for want of its database (a server restarting) is tried again this many
    # times, this many seconds apart, before the worker gives up
    storage_retries: int = 10
    storage_retry_seconds: float = 3.0


# The pruners, shipped with the plugin so that it starts in any Hydra app. Steps are epochs in qa-lab: a run
# reports its objective to its trial after every evaluation.
@dataclass
class MedianPrunerConf:
    """Stop a trial whose objective after a step is below the median of earlier trials' at that step."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 2  # trials that always run to the end, to have a median to compare with
    n_warmup_steps: int = 0  # steps before a trial may be stopped (0: already after its first)
    interval_steps: int = 1
    n_min_trials: int = 1  # earlier trials that reached this step before comparing


@dataclass
class SuccessiveHalvingPrunerConf:
    """Asynchronous successive halving: after min_resource steps and at each rung, only the top
    1/reduction_factor of the trials that got there go on. Works with several workers sharing a study."""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = 1  # steps before the first rung
    reduction_factor: int = 2  # with a handful of epochs, halving (not Optuna's quartering) leaves rungs to use
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConf:
    """Several successive-halving brackets with different first rungs, so a slow starter is not always
    stopped at the first one; max_resource auto = the most steps a finished trial took (its epochs)."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 2
    bootstrap_count: int = 0


@dataclass
class NopPrunerConf:
    """No pruning: every trial runs all its steps (the per-step values are still recorded)."""

    _target_: str = "optuna.pruners.NopPruner"


_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="qa_lab", node=StudySweeperConf, provider="qa_lab")
for _name, _node in {"median": MedianPrunerConf, "successive_halving": SuccessiveHalvingPrunerConf,
                     "hyperband": HyperbandPrunerConf, "none": NopPrunerConf}.items():
    _store.store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="qa_lab")
_store.store(group="hydra/sweeper/cluster", name="slurm", node=ClusterConf, provider="qa_lab")
_store.store(group="hydra/sweeper/cluster", name="local", node=ClusterConf(executor="local"), provider="qa_lab")


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
    """Put sweeps/ (next to qa-lab's conf/) on qa-lab's own search path: `sweep=<preset>`. Another Hydra app
    in the same environment is left exactly as it is."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for element in search_path.get_path():
            if element.provider == "main" and _is_qa_lab_conf(element.path):
                search_path.append(provider="qa-lab", path=f"file://{CONF_DIR.parent / PRESETS_FOLDER}")
                return


def _is_qa_lab_conf(path: str) -> bool:
    """A config folder (a plain or file:// path; not pkg:// or structured://) that is qa-lab's conf/."""
    if "://" in path and not path.startswith("file://"):
        return False
    try:
        return Path(path.removeprefix("file://")).resolve() == CONF_DIR.resolve()
    except OSError:
        return False
