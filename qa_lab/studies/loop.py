"""The sweep loop of the study sweeper: ask Optuna for a trial, run it as a Hydra job, tell Optuna how it ended.

It reuses hydra-optuna-sweeper's parsing of search spaces and its sampling (`OptunaSweeperImpl`) and adds
what that sweeper lacks:
- Pruning: the job reports each epoch's objective to its trial (trial.py) and raises
  `optuna.TrialPruned` when the study's pruner stops it; the trial is recorded as PRUNED.
- One study, any number of workers: each worker runs one trial at a time until the study holds
  `n_trials` trials that completed, were pruned or are running (the failures of this session count
  too, so a failing combination is not tried again and again), then waits for the running ones. Failed
  trials of earlier sessions and dead workers do not count: a re-run of the same command resumes the
  study and replaces them (except on a grid, where every point is tried once). Claiming a trial happens
  under a study-wide lock (a file lock next to a SQLite file, an advisory lock on PostgreSQL), so workers
  never overshoot. With n_jobs > 1 the command is the owner of n_jobs such workers (workers.py).
- Failures: a trial whose job raises is recorded as FAIL with its error and the sweep goes on, until
  more than `max_failure_rate * n_trials` trials of this session failed; a job that returns no single
  number is FAIL too, without counting towards that rate.
- Stops: SIGINT or SIGTERM ends the running trial's job, which is recorded as FAIL (SweepStopped), and
  no new trial starts; a re-run replaces it.
- Heartbeats: a dead worker's trial stays RUNNING no longer than the grace period, then it is FAIL; a
  storage that cannot be reached for a moment (a database restarting) is retried.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import signal
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from filelock import FileLock
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import DictConfig, OmegaConf

from qa_lab.core.errors import ConfigError, exit_on_user_error, require
from qa_lab.core.secrets import mask_text
from qa_lab.studies.trial import IN_MEMORY, make_pruner, trial_id
from qa_lab.studies.workers import (
    STORAGE_ERRORS,
    ClusterWorker,
    NOT_FAILURES,
    Owner,
    RejectedResult,
    Share,
    SweepStopped,
    Worker,
    cluster_executor,
    current_worker,
    session_failures,
    session_start,
    split_machine,
    storage_reason,
)

log = logging.getLogger(__name__)

RUNNING = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, *RUNNING)  # towards n_trials
SAMPLER_MODULES = ("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*")  # as the official sweeper
RESULTS_FILE = "optimization_results.yaml"
HYDRA_OWN_OVERRIDES = ("hydra.mode=",)  # what Hydra adds to a command's overrides itself
RUN_DIR_ATTR = "run_dir"  # the trial's user attribute with its run folder
# a worker with nothing left to claim checks this often whether other workers' trials have ended
WAIT_FOR_OTHERS_SECONDS = 2


class SweepFailedError(RuntimeError):
    """Too many trials failed: something is wrong with the setup rather than with a few combinations."""


class StudyLoop(OptunaSweeperImpl):
    def __init__(
        self,
        sampler: DictConfig,
        pruner: DictConfig | None,
        heartbeat_interval: int,
        grace_period: int | None,
        workers: DictConfig,
        cluster: DictConfig | None,
        storage_retries: int,
        storage_retry_seconds: float,
        **settings: Any,
    ) -> None:
        self.sampler_config = sampler
        super().__init__(instantiate(sampler, _execution_whitelist_=SAMPLER_MODULES), **settings)
        self.pruner = make_pruner(pruner)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.workers, self.cluster = workers, cluster
        self.storage_retries, self.storage_retry_seconds = storage_retries, storage_retry_seconds
        self.counted = COUNTED  # trial states that count towards n_trials
        self.stop_signal: int | None = None  # SIGINT or SIGTERM received by this worker
        self.in_trial = False  # a trial's job is running: a stop signal ends it

    def sweep(self, arguments: list[str]) -> None:
        with exit_on_user_error():
            self._check_settings()
        distributions, fixed_params, fixed_overrides = self._search_space(arguments)
        with self._claim():  # the first worker creates the tables and the study, the others load them
            storage = self._storage()
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                pruner=self.pruner,
                direction=self._get_directions()[0],
                load_if_exists=True,
            )
        self.study_name = study.study_name  # the name Optuna made up when none was given
        log.info("Study %s in %s: %d trials in total, %d in it already", self.study_name, self._storage_text,
                 self.n_trials, self._taken(study, set()))
        if self.n_jobs > 1 and current_worker() is None:
            self._own(study)
            return
        if self._run_trials(study, storage, distributions, fixed_params, fixed_overrides) and current_worker() is None:
            self._save_results(study)

    def _check_settings(self) -> None:
        """What would fail later or silently do something else, refused before any trial."""
        directions = self._get_directions()
        require(len(directions) == 1, "hydra.sweeper.direction", f"is {directions}: a multi-objective study",
                "give one direction (maximize or minimize): the study sweeper runs single-objective studies, whose trials it can prune")
        require(not OmegaConf.select(self.config, "hub.push"), "hub.push", "a sweep does not push its trials to the Hub",
                "leave hub.push off and push the best trial's folder afterwards: qa-lab push <its folder> --repo-id <user/name>")
        require(self.n_jobs >= 1, "hydra.sweeper.n_jobs", f"is {self.n_jobs}", "give the number of workers, 1 or more")
        shared = self.n_jobs > 1 or self.cluster is not None
        require(self.study_name is not None or not shared, "hydra.sweeper.study_name", "is null, but workers find their study by name",
                "name the study: hydra.sweeper.study_name=<name>")
        require(self.storage is not None or not shared, "hydra.sweeper.storage",
                "is null (a study in this process's memory), but workers in other processes share the study through its storage",
                "give a database: hydra.sweeper.storage=sqlite:///<file>.db on one machine, postgresql://... on a cluster")
        if self.n_jobs > 1 and current_worker() is None:  # the owner re-runs its own command line as each worker
            given = [*self.config.hydra.overrides.hydra, *self.config.hydra.overrides.task]
            require(all(o in sys.argv for o in given if not o.startswith(HYDRA_OWN_OVERRIDES)), "hydra.sweeper.n_jobs",
                    f"is {self.n_jobs}: the workers re-run the command that started this sweep, but it was started from "
                    f"another program ({' '.join(sys.orig_argv[:3])} ...)",
                    "start the sweep from its own command line (python <app>.py -m ...), or keep n_jobs=1")
        on_cluster = self.cluster is not None and self.cluster.executor != "local"
        require(not (on_cluster and str(self.storage).startswith("sqlite")), "hydra.sweeper.storage",
                f"is {mask_text(str(self.storage))}: SQLite on a cluster's network file system loses its locks",
                "give a PostgreSQL server all nodes reach: hydra.sweeper.storage=postgresql://<user>@<host>/<database>")

    def _search_space(self, arguments: list[str]) -> tuple[dict, dict, list[str]]:
        """The sampled parameters' distributions, the fixed ones, and the other overrides of the sweep."""
        self._process_searchspace_config()
        distributions, fixed_params, fixed_overrides = create_params_from_overrides(
            self._parse_sweeper_params_config() + list(arguments)
        )
        for name in fixed_params:
            distributions.pop(name, None)
        self._size_grid(distributions)
        return distributions, fixed_params, fixed_overrides

    def _own(self, study: optuna.Study) -> None:
        """n_jobs > 1: run the same command as n_jobs workers (processes, or submitit jobs) and follow them."""
        owner = Owner(study, self.n_trials, self.workers, self._get_directions()[0], Path(self.sweep_dir) / "workers",
                      self.max_failure_rate * self.n_trials)
        command = [sys.executable, *sys.orig_argv[1:]]  # this very command, with this interpreter, as each worker
        if self.cluster is None:
            with exit_on_user_error():
                shares = split_machine(self.n_jobs, self.workers.gpus, self.workers.threads)
            stopped = owner.run(lambda share, log_file: Worker(share, command, log_file), shares)
        else:
            executor = cluster_executor(self.cluster, self.study_name)
            # a cluster gives each job its own GPUs and cores: no split of this machine's
            shares = [Share(index, None, None) for index in range(self.n_jobs)]
            stopped = owner.run(lambda share, log_file: ClusterWorker(share, command, log_file, executor), shares)
        self._save_results(study)
        if owner.too_many_failures:
            raise _too_many_failures(owner.too_many_failures, self.max_failure_rate, self.n_trials, self.sweep_dir)
        if stopped is not None:
            print(f"Sweep stopped by {signal.Signals(stopped).name}; re-run the same command to complete the study", file=sys.stderr)
            raise SystemExit(128 + stopped)

    def _run_trials(self, study: optuna.Study, storage: optuna.storages.BaseStorage, distributions: dict,
                    fixed_params: dict, fixed_overrides: list[str]) -> bool:
        """One trial at a time until the study holds n_trials; False when a signal stopped it first."""
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._stop)
        worker = current_worker()
        failed: set[int] = set()  # trial numbers that failed in this session (they count towards n_trials)
        failures: set[int] = set()  # those of them that count towards max_failure_rate
        while self.stop_signal is None:
            claimed = self._retrying("claiming a trial", lambda: self._claim_next(study, storage, failed, distributions, fixed_params, fixed_overrides, worker))
            if claimed == "done":
                break
            if claimed == "wait":  # the study is full, but other workers' trials still run and may fail
                time.sleep(WAIT_FOR_OTHERS_SECONDS)
                continue
            trial, overrides = claimed
            log.info("trial %d: %s", trial.number, " ".join(overrides))
            result = self._launch(storage, trial, overrides)
            if self.stop_signal is not None and not (isinstance(result, JobReturn) and result.status == JobStatus.COMPLETED):
                result = _stopped(self.stop_signal)  # whatever the interrupted job raised (a library may wrap it), it was stopped
            state, error = self._retrying(f"recording trial {trial.number}", lambda: _tell(study, trial, result))
            if state == optuna.trial.TrialState.FAIL and self.stop_signal is None:
                failed.add(trial.number)
                if not isinstance(error, NOT_FAILURES):
                    failures.add(trial.number)
                counted = self._failures(study, failures, NOT_FAILURES)
                if len(counted) > self.max_failure_rate * self.n_trials:
                    raise _too_many_failures([study.trials[n] for n in sorted(counted)], self.max_failure_rate, self.n_trials, self.sweep_dir)
        if self.stop_signal is None:
            return True
        log.warning("stopped by %s; re-run the same command to complete the study", signal.Signals(self.stop_signal).name)
        if worker is None:
            raise SystemExit(128 + self.stop_signal)
        return False

    def _claim_next(self, study: optuna.Study, storage: optuna.storages.BaseStorage, failed: set[int], distributions: dict,
                    fixed_params: dict, fixed_overrides: list[str], worker: dict[str, Any] | None) -> tuple | str:
        """Under the study-wide lock: the next trial and its overrides, "wait" while others' trials run in a
        full study, or "done"."""
        with self._claim(), _own_heartbeats():
            optuna.storages.fail_stale_trials(study)
            if self._taken(study, failed) >= self.n_trials:
                return "wait" if study.get_trials(deepcopy=False, states=RUNNING) else "done"
            trial = study.ask()
            if isinstance(storage, optuna.storages.RDBStorage):  # from its first moment: a trial left half-made is failed as stale
                storage.record_heartbeat(trial_id(storage, self.study_name, trial.number))
            study.sampler = self._sampler_for(trial.number)
            [overrides] = self._configure_trials([trial], distributions, fixed_params, fixed_overrides)
            for key, value in (worker or {}).items():
                trial.set_user_attr(key, value)
            return trial, overrides

    def _retrying(self, what: str, action: Callable[[], Any]) -> Any:
        """`action`, retried while the storage cannot be reached (a database server restarting), at most
        storage_retries times, storage_retry_seconds apart."""
        for attempt in range(1, self.storage_retries + 2):
            try:
                return action()
            except STORAGE_ERRORS as error:
                if attempt > self.storage_retries:
                    raise
                log.warning("the storage failed while %s (%s); retry %d of %d in %s s", what,
                            mask_text(storage_reason(error)), attempt, self.storage_retries, self.storage_retry_seconds)
                time.sleep(self.storage_retry_seconds)
        raise AssertionError("unreachable")

    def _launch(self, storage: optuna.storages.BaseStorage, trial: optuna.Trial, overrides: Sequence[str]) -> JobReturn | SweepStopped:
        """The trial as a Hydra job numbered as the trial (hydra.job.num: no override the app must know, and
        unique in the study whichever worker runs it); the stop when a signal ended it outside the job."""
        self.in_trial = True  # first: from here on a stop signal raises in this thread, whenever it comes
        try:
            if self.stop_signal is not None:  # claimed, then stopped before it began
                return _stopped(self.stop_signal)
            with _heartbeat(storage, trial_id(storage, self.study_name, trial.number), self.heartbeat_interval):
                [result] = self.launcher.launch([overrides], initial_job_idx=trial.number)
        except SweepStopped as stop:
            return stop
        finally:
            self.in_trial = False
        return result

    def _stop(self, number: int, frame: Any) -> None:
        """SIGINT / SIGTERM: the running trial's job ends with SweepStopped (recorded as FAIL) and no new trial starts."""
        self.stop_signal = number
        if self.in_trial:
            self.in_trial = False  # once: the job's own clean-up runs undisturbed
            raise _stopped(number)


    def _size_grid(self, distributions: dict[str, optuna.distributions.BaseDistribution]) -> None:
        """A grid sampler gets its grid from the search space and caps n_trials at the grid's size; each point
        is tried once, so a failed point counts too."""
        if not (isinstance(self.sampler, functools.partial) and self.sampler.func is optuna.samplers.GridSampler):
            return
        grid = {name: self._to_grid_sampler_choices(distribution) for name, distribution in distributions.items()}
        self.sampler = self.sampler(grid)
        self.n_trials = min(self.n_trials, math.prod(len(choices) for choices in grid.values()))
        self.counted = (*COUNTED, optuna.trial.TrialState.FAIL)  # Optuna's grid tries each point once, failed or not

    def _taken(self, study: optuna.Study, failed: set[int]) -> int:
        """Trials that count towards n_trials: those in the counted states, and this session's failures
        (a failing combination is not tried again and again by one command)."""
        return len({t.number for t in study.get_trials(deepcopy=False, states=self.counted)} | self._failures(study, failed, (SweepStopped,)))

    @staticmethod
    def _failures(study: optuna.Study, own: set[int], excluded: tuple[type, ...]) -> set[int]:
        """This session's failed trials but for the `excluded` causes: this process's own, and with an owner
        every worker's since it started."""
        since = session_start()
        return own | ({t.number for t in session_failures(study, since, excluded)} if since else set())

    def _sampler_for(self, number: int) -> optuna.samplers.BaseSampler:
        """A seeded sampler draws from seed + trial number: workers sharing a study, or a resumed study,
        do not repeat each other's draws, and each trial's draw is reproducible."""
        seed = self.sampler_config.get("seed")
        if seed is None or isinstance(self.sampler, optuna.samplers.GridSampler):
            return self.sampler
        return instantiate(self.sampler_config, seed=seed + number, _execution_whitelist_=SAMPLER_MODULES)

    def _storage(self) -> optuna.storages.BaseStorage:
        """The study's database, with heartbeats; storage null: a study in this process's memory, which the
        trials (jobs in this process) find through trial.IN_MEMORY."""
        if self.storage is None:
            return IN_MEMORY.setdefault(self.study_name, optuna.storages.InMemoryStorage())
        with _own_heartbeats():
            return optuna.storages.RDBStorage(
                self.storage, heartbeat_interval=self.heartbeat_interval, grace_period=self.grace_period
            )

    @contextmanager
    def _claim(self) -> Iterator[None]:
        """Study-wide mutual exclusion for counting and asking, so that workers never exceed n_trials."""
        if self.storage is None:  # one process: nothing to exclude
            yield
            return
        url = sqlalchemy.engine.make_url(self.storage)
        backend = url.get_backend_name()
        if backend == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)  # SQLite does not create folders
            with FileLock(f"{url.database}.lock"):
                yield
        elif backend == "postgresql":
            key = zlib.crc32(str(self.study_name).encode())  # one advisory lock per study
            with self._lock_engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        else:
            log.warning("no study-wide lock for %s: several workers may run a few trials more than n_trials", backend)
            yield

    @functools.cached_property
    def _lock_engine(self) -> sqlalchemy.Engine:
        """The connection pool for the PostgreSQL study lock, opened once per worker."""
        return sqlalchemy.create_engine(self.storage, pool_size=1, pool_pre_ping=True)  # pre-ping: a restarted server's dead connections are replaced

    def _save_results(self, study: optuna.Study) -> None:
        counts = Counter(trial.state for trial in study.get_trials(deepcopy=False))
        states = {state.name: counts[state] for state in optuna.trial.TrialState}
        results: dict[str, Any] = {"name": "optuna", "study_name": self.study_name, "trials": states}
        try:
            best = study.best_trial
        except ValueError:  # no completed trial
            log.warning("study %s has no completed trial yet: %s", self.study_name, states)
        else:
            results |= {"best_trial": best.number, "best_params": best.params, "best_value": best.value}
        Path(self.sweep_dir).mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), Path(self.sweep_dir) / RESULTS_FILE)
        if "best_trial" in results:
            print("\n".join(self._report_lines(best, states)))

    def _report_lines(self, best: optuna.trial.FrozenTrial, states: dict[str, int]) -> list[str]:
        """The block a sweep ends with: the study's best trial, where its files are, what comes next."""
        counts = ", ".join(f"{count} {state}" for state, count in states.items() if count)
        run_dir = best.user_attrs.get(RUN_DIR_ATTR, "<the best trial's run folder>")
        return [
            f"Best trial of {self.study_name}: #{best.number}, {self.direction} {best.value}, params {best.params}",
            f"  study: {counts}; n_trials {self.n_trials}; storage {self._storage_text}",
            f"  best trial's run folder: {run_dir}",
            f"  sweep folder: {self.sweep_dir} ({RESULTS_FILE})",
            "  next:",
            f"    qa-lab compare {self.sweep_dir}",
            f"    qa-lab push {run_dir} --repo-id <user/name>",
            *([f"    optuna-dashboard {self._storage_text}"] if self.storage is not None else []),
        ]

    @property
    def _storage_text(self) -> str:
        return mask_text(self.storage) if self.storage is not None else "in memory (storage null: not kept)"


def _too_many_failures(failed: list[optuna.trial.FrozenTrial], rate: float, n_trials: int, sweep_dir: str) -> SweepFailedError:
    return SweepFailedError(
        f"{len(failed)} trials failed in this session, more than hydra.sweeper.max_failure_rate={rate} of {n_trials} "
        f"(the last: trial {failed[-1].number}, {failed[-1].user_attrs.get('error')}); all errors are in the study "
        f"(user attribute 'error') and in the trials' run folders under {sweep_dir}"
    )


def _stopped(number: int) -> SweepStopped:
    """The stop as the trial records it: which signal, and that a re-run replaces the trial."""
    return SweepStopped(f"the sweep was stopped by {signal.Signals(number).name}; a re-run replaces this trial")


@contextmanager
def _own_heartbeats() -> Iterator[None]:
    """Optuna warns that heartbeats are experimental and meant for Study.optimize; this loop sends them itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


@contextmanager
def _heartbeat(storage: optuna.storages.BaseStorage, identifier: int, interval: int) -> Iterator[None]:
    """Tell the storage every `interval` seconds that this worker's trial (by storage id) is alive."""
    if not isinstance(storage, optuna.storages.RDBStorage):  # in memory: no other worker to tell
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            try:
                storage.record_heartbeat(identifier)
            except STORAGE_ERRORS as error:  # the database is restarting: the next beat tries again
                log.warning("heartbeat of trial id %d not recorded: %s", identifier, storage_reason(error))

    storage.record_heartbeat(identifier)
    thread = threading.Thread(target=beat, name=f"heartbeat-{identifier}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _tell(study: optuna.Study, trial: optuna.Trial, result: JobReturn | SweepStopped) -> tuple[optuna.trial.TrialState, BaseException | None]:
    """Record how the trial's job ended: its objective, pruned (or skipped), or failed with its error (or with
    the stop, when a signal ended it before or around its job); the state, and the error of a FAIL."""
    if isinstance(result, JobReturn) and result.hydra_cfg is not None:  # the trial's run folder: `qa-lab push` of the best trial needs it
        trial.set_user_attr(RUN_DIR_ATTR, str(result.hydra_cfg.hydra.runtime.output_dir))
    if isinstance(result, SweepStopped):
        error: BaseException = result
    elif result.status == JobStatus.COMPLETED:
        value = _objective(result.return_value)
        if isinstance(value, float) and math.isfinite(value):
            _record(study, trial, values=value)
            return optuna.trial.TrialState.COMPLETE, None
        error = RejectedResult(f"the run returned {value!r}, not a finite number (for qa-lab: no epoch was evaluated)")
    else:
        error = result._return_value  # the job's exception; `return_value` would re-raise it
    if isinstance(error, optuna.TrialPruned):
        trial.set_user_attr("pruned", str(error))
        _record(study, trial, state=optuna.trial.TrialState.PRUNED)
        log.info("trial %d pruned: %s", trial.number, error)
        return optuna.trial.TrialState.PRUNED, None
    trial.set_user_attr("error", f"{type(error).__name__}: {error}")
    _record(study, trial, state=optuna.trial.TrialState.FAIL)
    log.warning("trial %d failed: %s: %s", trial.number, type(error).__name__, error)
    return optuna.trial.TrialState.FAIL, error


def _objective(value: Any) -> Any:
    """The job's return value as the study's float objective, or the value itself when it is not one number."""
    if isinstance(value, (bool, str)) or not isinstance(value, numbers.Real):
        return value
    return float(value)


def _record(study: optuna.Study, trial: optuna.Trial, **outcome: Any) -> None:
    """study.tell, except that a grid sampler may end the study when its last point is told: in ask-and-tell
    use Optuna raises on that `study.stop()` after storing the outcome, and the loop stops on n_trials anyway."""
    try:
        study.tell(trial, **outcome)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise
