"""`hydra.sweeper.n_jobs=N`: the sweep command becomes the study's owner and runs N asynchronous workers.

Each worker is the same command in a process of its own (or a submitit job on a cluster) running the
study loop of loop.py: it claims the next trial the moment its own ends, through the study-wide claim, so
there is no batch barrier and the study still never exceeds n_trials. The owner gives each worker its
share of the machine (a GPU, or a share of the cores), follows the study in its storage (one line per
trial as it starts and ends, progress, best so far), keeps each worker's log in the sweep folder, stops
every worker on Ctrl-C or SIGTERM, and reports a worker that died.
"""

from __future__ import annotations

import ctypes
import datetime
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from omegaconf import DictConfig

from qa_lab.core.errors import ConfigError

log = logging.getLogger(__name__)

WORKER_ENV = "QA_LAB_SWEEP_WORKER"  # set on a worker: its index; the command then runs one worker loop
SESSION_ENV = "QA_LAB_SWEEP_SESSION"  # set on a worker: when its owner started (ISO), the session its failures count in
GPU_COUNT_ENV = "QA_LAB_GPU_COUNT"  # the number of GPUs to split among workers, in place of torch's count (tests)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # torch reads them at import
WORKER_ATTRS = ("worker", "worker_device", "worker_threads")  # the user attributes a worker sets on its trials
# what a storage raises while its database cannot be reached (a server restarting); retried, not fatal
STORAGE_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, optuna.exceptions.StorageInternalError)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


class SweepStopped(BaseException):  # noqa: N818 - what the trial's error says: the sweep was stopped, not a bug
    """SIGINT or SIGTERM reached a worker: its running trial ends as FAIL with this reason (not a failure of
    the trial: it does not count towards max_failure_rate, and a re-run replaces it). A BaseException, as
    KeyboardInterrupt is: no `except Exception` in the run (a tracker's "never cost the run") swallows it,
    while every `finally` (the run's end hooks, Hydra's job end) still runs."""


class RejectedResult(ValueError):
    """The job returned no single finite number: its trial ends as FAIL with this reason, and (as in the
    official sweeper) it does not count towards max_failure_rate."""


NOT_FAILURES = (SweepStopped, RejectedResult)  # FAIL trials whose cause was not a failing run: no max_failure_rate


@dataclass(frozen=True)
class Share:
    """One worker's part of the machine, decided once by the owner."""

    index: int
    gpu: str | None  # the CUDA_VISIBLE_DEVICES it sees alone; None: no GPU (or the cluster's allocation)
    threads: int | None  # torch / OpenMP threads; None: the job's own

    def environment(self) -> dict[str, str]:
        env = {WORKER_ENV: str(self.index)}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        if self.threads is not None:
            env |= dict.fromkeys(THREAD_VARIABLES, str(self.threads))
        return env


def split_machine(n_jobs: int, gpus: Any, threads: Any) -> list[Share]:
    """Worker k gets GPU k mod G of the G the workers share (hydra.sweeper.workers.gpus) and, with GPUs or
    without, cores // n_jobs threads (at least 1) unless workers.threads says otherwise."""
    visible = _visible_gpus() if gpus == "auto" else [str(gpu) for gpu in gpus]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads != "auto" and not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise ConfigError(f"is {threads!r}", where="hydra.sweeper.workers.threads", fix="give auto or a whole number of threads >= 1")
    per_worker = max(cores // n_jobs, 1) if threads == "auto" else threads
    return [Share(k, visible[k % len(visible)] if visible else None, per_worker) for k in range(n_jobs)]


def _visible_gpus() -> list[str]:
    """The GPUs this process may use: those CUDA_VISIBLE_DEVICES names (kept as the user gave them), else all."""
    if GPU_COUNT_ENV in os.environ:
        count = int(os.environ[GPU_COUNT_ENV])
    else:
        import torch

        count = torch.cuda.device_count()  # NVML only: does not initialise CUDA in the owner
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [gpu.strip() for gpu in given.split(",") if gpu.strip()][:count] if count else []
    return [str(gpu) for gpu in range(count)]


def current_worker() -> dict[str, Any] | None:
    """This process's worker attributes (index, device, threads) when an owner started it, else None."""
    if WORKER_ENV not in os.environ:
        return None
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    threads = os.environ.get(THREAD_VARIABLES[0])
    return dict(zip(WORKER_ATTRS, (int(os.environ[WORKER_ENV]), f"cuda:{gpu}" if gpu else "cpu", int(threads) if threads else None)))


def session_start() -> datetime.datetime | None:
    """When this worker's owner started its session (None outside an owner's workers)."""
    value = os.environ.get(SESSION_ENV)
    return datetime.datetime.fromisoformat(value) if value else None


def session_failures(study: optuna.Study, since: datetime.datetime, excluded: tuple[type, ...]) -> list[optuna.trial.FrozenTrial]:
    """Trials that failed with an error since `since`, whichever worker ran them, but for the `excluded` causes
    (a dead worker's trial, failed by the heartbeat check, has no error of its own and never counts)."""
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    prefixes = tuple(f"{kind.__name__}:" for kind in excluded)
    return [t for t in failed if "error" in t.user_attrs and not t.user_attrs["error"].startswith(prefixes)
            and t.datetime_start is not None and t.datetime_start >= since]


def storage_reason(error: BaseException) -> str:
    """The first line of what the database said (Optuna wraps a lost connection in a message about invalid data)."""
    return str(error.__cause__ or error).strip().splitlines()[0]


class Stop:
    """SIGINT and SIGTERM, noted: the owner stops its workers at its next look instead of dying mid-way."""

    def __init__(self) -> None:
        self.signal: int | None = None
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._note)

    def _note(self, number: int, frame: Any) -> None:
        self.signal = number


class Worker:
    """A worker process on this machine, in a session of its own: the terminal's Ctrl-C reaches the owner only,
    and the owner can stop the worker with everything it started (data loaders, tracker services)."""

    def __init__(self, share: Share, command: Sequence[str], log_file: Path) -> None:
        self.share, self.log_file = share, log_file
        with log_file.open("ab") as output:
            self.process = subprocess.Popen(
                list(command), env=os.environ | share.environment(), stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_end_with_parent,
            )
        self.pid = self.process.pid
        self.name = f"pid {self.pid}"

    def exit_status(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        _signal_group(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        _signal_group(self.pid, signal.SIGKILL)


class ClusterWorker:
    """A worker as a submitit job (SLURM, or submitit's local executor): the job runs `run_worker`."""

    def __init__(self, share: Share, command: Sequence[str], log_file: Path, executor: Any) -> None:
        self.share, self.log_file = share, log_file
        self.job = executor.submit(run_worker, list(command), share.environment(), os.getcwd(), str(log_file))
        self.name = f"job {self.job.job_id}"

    def exit_status(self) -> int | None:
        if not self.job.done():
            return None
        try:
            return int(self.job.result())
        except Exception as error:  # noqa: BLE001 - a job the cluster ended (timeout, node failure) or cancelled
            log.warning("worker %d (job %s): %s", self.share.index, self.job.job_id, str(error).strip().splitlines()[-1:])
            return 1

    def stop(self) -> None:
        self.job.cancel(check=False)

    def kill(self) -> None:
        self.job.cancel(check=False)


def run_worker(command: list[str], environment: dict[str, str], cwd: str, log_file: str) -> int:
    """A submitit job's body: the worker command with its share, the job's SIGINT or SIGTERM (a cancel, or
    SLURM's warning before the time limit) passed on as SIGTERM, so its running trial ends as FAIL."""
    with open(log_file, "ab") as output:
        child = subprocess.Popen(command, env=os.environ | environment, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: child.send_signal(signal.SIGTERM))
    return child.wait()


def _end_with_parent() -> None:
    """In the new worker (Linux): SIGTERM when the owner dies, even by SIGKILL, so no worker outlives it."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(pid: int, number: int) -> None:
    try:
        os.killpg(pid, number)
    except ProcessLookupError:
        pass


def cluster_executor(cluster: DictConfig, study_name: str) -> Any:
    """submitit's executor for hydra.sweeper.cluster (hydra/sweeper/cluster=slurm | local)."""
    import submitit

    executor = submitit.AutoExecutor(folder=cluster.folder, cluster=cluster.executor)
    generic = {key: cluster[key] for key in ("timeout_min", "nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "mem_gb")}
    slurm = {f"slurm_{key}": cluster[key] for key in ("partition", "account", "qos", "constraint", "additional_parameters", "setup")}
    parameters = {key: value for key, value in (generic | slurm).items() if value not in (None, {}, [])}
    executor.update_parameters(name=f"{study_name}-worker", **parameters)
    return executor


class Owner:
    """The sweep command with n_jobs > 1: starts the workers, follows the study, stops and reports."""

    def __init__(self, study: optuna.Study, n_trials: int, settings: DictConfig, direction: str, log_dir: Path, max_failures: float) -> None:
        self.study, self.n_trials, self.settings, self.direction, self.log_dir = study, n_trials, settings, direction, log_dir
        self.max_failures = max_failures  # more failed trials in this session than this stop the sweep
        self.started = datetime.datetime.now()  # Optuna's own clock for trial times: local and naive
        self.too_many_failures: list[optuna.trial.FrozenTrial] = []
        # trial number -> "started" or "ended", as reported; earlier sessions' trials are not reported again
        self.reported = {t.number: "ended" if t.state in FINISHED else "started" for t in study.get_trials(deepcopy=False)}

    def run(self, make_worker: Callable[[Share, Path], Any], shares: list[Share]) -> int | None:
        """Run the workers to the end of the study; the signal that stopped the sweep, if one did."""
        stop = Stop()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        os.environ[SESSION_ENV] = self.started.isoformat()  # the workers inherit it (a submitit job too)
        workers = []
        for share in shares:
            worker = make_worker(share, self.log_dir / f"worker-{share.index}.log")
            log.info("worker %d started (%s, device %s, %s threads), log %s", share.index, worker.name,
                     f"cuda:{share.gpu}" if share.gpu is not None else "cpu", share.threads or "the job's", worker.log_file)
            workers.append(worker)
        running, deadline = set(range(len(workers))), None
        while running:
            time.sleep(self.settings.poll_interval)
            try:
                self._report_trials()
                failures = session_failures(self.study, self.started, NOT_FAILURES)
            except STORAGE_ERRORS as error:  # the workers retry their own storage calls; the owner looks again
                log.warning("the study's storage failed (%s); looking again in %s s", storage_reason(error), self.settings.poll_interval)
                failures = []
            if len(failures) > self.max_failures and not self.too_many_failures:
                self.too_many_failures = failures
                log.error("%d trials failed in this session: stopping the workers", len(failures))
                stop.signal = stop.signal or signal.SIGTERM
            for index in sorted(running):
                status = workers[index].exit_status()
                if status is None:
                    continue
                running.discard(index)
                if status != 0 and stop.signal is None:
                    log.warning("worker %d ended with exit status %s (log %s); its running trial is failed by the heartbeat "
                                "check after the grace period and replaced; the other workers go on",
                                index, status, workers[index].log_file)
            if stop.signal is not None and deadline is None:
                log.warning("%s: stopping %d worker(s); their running trials end as FAIL (a re-run replaces them)",
                            "too many failures" if self.too_many_failures else signal.Signals(stop.signal).name, len(running))
                for index in running:
                    workers[index].stop()
                deadline = time.monotonic() + self.settings.stop_timeout
            if deadline is not None and time.monotonic() > deadline:
                for index in running:
                    log.warning("worker %d did not stop within %s s: killed", index, self.settings.stop_timeout)
                    workers[index].kill()
                deadline = float("inf")
        for worker in workers:
            worker.kill()  # what a finished worker left in its session (a tracker's service) goes with it
        self._report_trials()
        return None if self.too_many_failures else stop.signal

    def _report_trials(self) -> None:
        """One line per trial as it starts (once its worker has set its parameters) and as it ends."""
        for trial in self.study.get_trials(deepcopy=False):
            worker = trial.user_attrs.get("worker", "?")
            if trial.number not in self.reported and ("worker" in trial.user_attrs or trial.state in FINISHED):
                params = " ".join(f"{key}={value}" for key, value in trial.params.items())
                log.info("worker %s: trial %d started: %s", worker, trial.number, params)
                self.reported[trial.number] = "started"
            if self.reported.get(trial.number) == "started" and trial.state in FINISHED:
                self.reported[trial.number] = "ended"
                log.info("worker %s: trial %d %s%s | %s", worker, trial.number, trial.state.name, _outcome(trial), self._progress())

    def _progress(self) -> str:
        trials = self.study.get_trials(deepcopy=False)
        done = sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
        failed = sum(t.state == optuna.trial.TrialState.FAIL for t in trials)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        pick = max if self.direction == "maximize" else min
        best = pick(complete, key=lambda t: t.value) if complete else None
        text = f"{done}/{self.n_trials} done" + (f", {failed} failed" if failed else "")
        return text + (f", best {best.value:.4g} (trial {best.number})" if best else "")


def _outcome(trial: optuna.trial.FrozenTrial) -> str:
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete and trial.datetime_start else None
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    if trial.state == optuna.trial.TrialState.COMPLETE:
        return f" {trial.value:.4g}{took}"
    reason = trial.user_attrs.get("error") or trial.user_attrs.get("pruned") or ""
    if trial.state == optuna.trial.TrialState.FAIL and not reason:  # the sweeper records every other failure's error
        reason = "no heartbeat within the grace period: its worker died"
    return f"{took}" + (f": {reason}" if reason else "")
