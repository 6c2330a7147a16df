"""`hydra.sweeper.n_jobs=N`: one sweep command, N asynchronous worker processes on real SQLite and PostgreSQL
storages (read back with Optuna's API), stopped by SIGINT, one of them killed, the PostgreSQL server
restarted under them, and as submitit jobs through submitit's local executor. Trials are the tiny model on synthetic data, of unequal lengths: with
the sampler's seed below, one of the first two trials trains LONG epochs and every other trial one epoch."""

from __future__ import annotations

import re
import signal
import time

import optuna
import psutil
import pytest

from qa_lab.analysis.compare import compare, table_text
from qa_lab.core.conf import conf_file
from qa_lab.core.errors import ConfigError
from qa_lab.studies.workers import GPU_COUNT_ENV, split_machine
from tests.helpers import DIVERGING_LR, NO_PRUNING, study, sweep

LONG = 6  # epochs of the long trial
UNEQUAL = ("sweep=lr", NO_PRUNING, f"trainer.epochs=choice(1,{LONG})", "hydra.sweeper.sampler.seed=6", "hydra.sweeper.n_jobs=2")
NAME = "lr-tiny-synthetic"
State = optuna.trial.TrialState
STARTED = re.compile(r"worker (\d) started \(pid (\d+)")


def by_number(trials: list[optuna.trial.FrozenTrial]) -> dict[int, optuna.trial.FrozenTrial]:
    return {t.number: t for t in trials}


def assert_asynchronous(trials: list[optuna.trial.FrozenTrial]) -> None:
    """Both workers ran trials; two overlapped in time; and a worker started a new trial while the other's
    long trial was still running (a batch-synchronous sweep would have waited for it)."""
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    assert all(t.user_attrs["worker_device"] == "cpu" and t.user_attrs["worker_threads"] >= 1 for t in trials)
    [long] = [t for t in trials if t.params["trainer.epochs"] == LONG]
    others = [t for t in trials if t.user_attrs["worker"] != long.user_attrs["worker"]]
    assert any(t.datetime_start < long.datetime_complete and long.datetime_start < t.datetime_complete for t in others)
    first = min(others, key=lambda t: t.datetime_start)
    assert any(long.datetime_start < t.datetime_start < long.datetime_complete for t in others if t is not first), \
        [(t.number, t.datetime_start, t.datetime_complete) for t in trials]


@pytest.mark.unit
@pytest.mark.parametrize(
    "gpus, visible, n_jobs, expected",
    [("auto", None, 6, ["0", "1", "2", "3", "0", "1"]),  # worker k on GPU k mod G
     ("auto", "5,7", 3, ["5", "7", "5"]),  # the user's CUDA_VISIBLE_DEVICES is respected
     ([0, 0, 1, 1], None, 4, ["0", "0", "1", "1"]),  # two workers per GPU, as hydra.sweeper.workers.gpus says
     ([], None, 2, [None, None])],  # no GPU
)
def test_each_worker_sees_its_own_gpu(monkeypatch, gpus, visible, n_jobs, expected):
    monkeypatch.setenv(GPU_COUNT_ENV, "4" if visible is None else "2")
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    shares = split_machine(n_jobs, gpus, "auto")
    assert [share.gpu for share in shares] == expected and [share.index for share in shares] == list(range(n_jobs))
    for share in shares:
        assert share.environment().get("CUDA_VISIBLE_DEVICES") == share.gpu


@pytest.mark.unit
def test_without_gpus_the_cores_are_split(monkeypatch):
    monkeypatch.setenv(GPU_COUNT_ENV, "0")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert [share.threads for share in split_machine(3, "auto", "auto")] == [2, 2, 2]
    assert [share.threads for share in split_machine(16, "auto", "auto")] == [1] * 16  # at least one each
    assert {share.environment()["OMP_NUM_THREADS"] for share in split_machine(2, "auto", 3)} == {"3"}
    assert all(share.gpu is None and "CUDA_VISIBLE_DEVICES" not in share.environment() for share in split_machine(2, "auto", "auto"))
    for bad in (0, "four", 2.5):
        with pytest.raises(ConfigError, match=rf"hydra.sweeper.workers.threads: is {bad!r}"):
            split_machine(2, "auto", bad)


@pytest.mark.e2e
def test_two_asynchronous_workers_fill_the_study_from_one_command(tmp_path):
    storage, name = f"sqlite:///{tmp_path}/optuna/{NAME}.db", "async"
    done = sweep(tmp_path, *UNEQUAL, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={name}")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study(tmp_path, name, storage).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and [t.state for t in trials] == [State.COMPLETE] * 4
    assert_asynchronous(trials)
    output = done.stdout + done.stderr
    for t in trials:  # the owner's line for each trial's start and end
        assert re.search(rf"worker {t.user_attrs['worker']}: trial {t.number} started: trainer.lr=", output)
        assert re.search(rf"worker {t.user_attrs['worker']}: trial {t.number} COMPLETE [0-9.]+ in \d+ s \| \d/4 done", output)
    assert "4/4 done" in output and f"Best trial of {name}: #" in output
    logs = tmp_path / "sweeps" / name / "workers"
    assert sorted(path.name for path in logs.iterdir()) == ["worker-0.log", "worker-1.log"]
    assert all("trial " in path.read_text() for path in logs.iterdir())
    options = conf_file("compare", "default.yaml")  # qa-lab compare's table shows which worker ran each trial
    options.bootstrap.samples = 50
    comparison = compare([str(tmp_path / "sweeps" / name)], options, hub_timeout=1)
    table = comparison.runs.table
    assert sorted(zip(table["trial"], table["worker"])) == sorted((t.number, t.user_attrs["worker"]) for t in trials)
    assert "worker" in table_text(comparison).splitlines()[0]


def worker_pids(owner, count: int, timeout: float = 120) -> dict[int, int]:
    """The workers' pids from the owner's "worker k started (pid N, ...)" lines."""
    pids: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(pids) < count and time.monotonic() < deadline:
        pids = {int(k): int(pid) for k, pid in STARTED.findall(owner.output()[0])}
        time.sleep(0.2)
    return pids


def wait_for_running(storage: str, name: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(states=(State.RUNNING,))
            if sum("worker" in t.user_attrs for t in trials) >= count:
                return
        except KeyError:  # the study is not created yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} trials running after {timeout} s")


@pytest.mark.e2e
@pytest.mark.postgres
def test_two_asynchronous_workers_on_postgresql_survive_a_server_restart(tmp_path, postgres_server):
    name = "restarted"
    command = (*UNEQUAL, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={postgres_server.url}", f"hydra.sweeper.study_name={name}",
               "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=10", "hydra.sweeper.storage_retry_seconds=1")
    owner = sweep(tmp_path, *command, wait=False)
    wait_for_running(postgres_server.url, name, 2)
    postgres_server.restart()  # both workers are inside a trial, with open connections and heartbeats
    assert owner.wait(timeout=600) == 0, owner.output()[0][-3000:]
    trials = study(tmp_path, name, postgres_server.url).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # n_trials, no number twice
    # each trial reconnected and completed, or failed with its reason (this session counts it; a re-run replaces it)
    assert all(t.state == State.COMPLETE or (t.state == State.FAIL and t.user_attrs.get("error")) for t in trials)
    assert_asynchronous(trials)


@pytest.mark.e2e
def test_sigint_to_the_owner_stops_every_worker_and_a_rerun_completes_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna/{NAME}.db"
    command = ("sweep=lr", NO_PRUNING, "trainer.epochs=30", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2")
    owner = sweep(tmp_path, *command, wait=False)
    pids = worker_pids(owner, 2)
    wait_for_running(storage, NAME, 2)
    family = [psutil.Process(pid) for pid in pids.values()]
    family += [child for process in family for child in process.children(recursive=True)]
    owner.kill(signal.SIGINT)
    assert owner.wait(timeout=120) == 128 + signal.SIGINT
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left behind: {alive}"
    output = owner.output()[0]
    assert "SIGINT: stopping 2 worker(s)" in output and "Sweep stopped by SIGINT; re-run the same command" in output
    trials = study(tmp_path, NAME).get_trials()
    assert [t.state for t in trials] == [State.FAIL, State.FAIL]
    assert [t.user_attrs["error"] for t in trials] == ["SweepStopped: the sweep was stopped by SIGTERM; a re-run replaces this trial"] * 2
    again = sweep(tmp_path, "sweep=lr", NO_PRUNING, "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2")
    assert again.returncode == 0, again.stderr[-3000:]
    after = study(tmp_path, NAME).get_trials()
    assert [t.state for t in after] == [State.FAIL, State.FAIL, State.COMPLETE, State.COMPLETE]


@pytest.mark.e2e
def test_a_killed_worker_does_not_stop_the_others_and_its_trial_is_replaced(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna/{NAME}.db"
    command = ("sweep=lr", NO_PRUNING, "trainer.epochs=4", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=3",
               "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=3")
    owner = sweep(tmp_path, *command, wait=False)
    pids = worker_pids(owner, 2)
    wait_for_running(storage, NAME, 2)
    [victim] = [t for t in study(tmp_path, NAME).get_trials(states=(State.RUNNING,)) if t.user_attrs["worker"] == 0]
    psutil.Process(pids[0]).kill()
    assert owner.wait(timeout=600) == 0, owner.output()[0][-3000:]
    trials = by_number(study(tmp_path, NAME).get_trials())
    assert trials[victim.number].state == State.FAIL
    assert [t.state for t in trials.values()].count(State.COMPLETE) == 3
    assert {t.user_attrs["worker"] for n, t in trials.items() if n != victim.number} == {1}
    output = owner.output()[0]
    assert "worker 0 ended with exit status -9" in output
    assert f"worker 0: trial {victim.number} FAIL" in output and "no heartbeat within the grace period: its worker died" in output


@pytest.mark.e2e
def test_failures_count_across_workers_and_stop_the_sweep(tmp_path):
    done = sweep(tmp_path, "sweep=lr", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=4", "hydra.sweeper.max_failure_rate=0.25",
                 f"trainer.lr=choice({DIVERGING_LR})")
    assert done.returncode == 1
    trials = study(tmp_path, NAME).get_trials()
    assert {t.state for t in trials} == {State.FAIL} and 2 <= len(trials) <= 4  # the study's failures, not each worker's
    assert re.search(r"\d trials failed in this session, more than hydra.sweeper.max_failure_rate=0.25 of 4 \(the last: trial \d, "
                     r"NonFiniteLossError: ", done.stderr)
    assert "too many failures: stopping" in done.stdout + done.stderr


@pytest.mark.e2e
def test_workers_as_submitit_jobs_complete_a_study(tmp_path):
    done = sweep(tmp_path, "sweep=lr", NO_PRUNING, "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2", "hydra/sweeper/cluster=local")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study(tmp_path, NAME).get_trials()
    assert [t.state for t in trials] == [State.COMPLETE] * 2 and {t.user_attrs["worker"] for t in trials} <= {0, 1}
    output = done.stdout + done.stderr
    assert len(re.findall(r"worker \d started \(job \d+", output)) == 2
    assert (tmp_path / "sweeps" / NAME / ".submitit").is_dir()


@pytest.mark.e2e
def test_sqlite_on_a_cluster_is_refused_before_any_trial(tmp_path):
    done = sweep(tmp_path, "sweep=lr", "hydra/sweeper/cluster=slurm", "hydra.sweeper.n_jobs=2")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "hydra.sweeper.storage: is sqlite:///" in done.stderr and "SQLite on a cluster's network file system loses its locks" in done.stderr
    assert "Fix: give a PostgreSQL server all nodes reach" in done.stderr
    assert not (tmp_path / "optuna").exists()
