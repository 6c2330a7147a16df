"""Optuna studies through `python run.py -m sweep=<preset>`: real SQLite and PostgreSQL storages, read back
with Optuna's own API; the tiny model on synthetic data, so each trial takes seconds."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import OmegaConf

from tests.helpers import (
    DIVERGING_LR,
    NO_PRUNING,
    composed,
    inspect_wandb,
    mlflow_runs,
    study,
    sweep,
    tensorboard_events,
    tensorboard_hparams,
)

pytestmark = pytest.mark.e2e

State = optuna.trial.TrialState


def trial_dir(root: Path, name: str, number: int) -> Path:
    return root / "sweeps" / name / f"trial-{number}"


def epochs_run(folder: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_study_records_every_trial_its_epochs_and_its_inspect_wandb(tmp_path):
    done = sweep(tmp_path, "sweep=lr", NO_PRUNING, "hydra.sweeper.n_trials=3", "trainer.epochs=2", "logger=wandb")
    assert done.returncode == 0, done.stderr[-3000:]
    name = "lr-tiny-synthetic"
    trials = study(tmp_path, name).get_trials()
    assert [t.state for t in trials] == [State.COMPLETE] * 3
    assert len({t.params["trainer.lr"] for t in trials}) == 3
    for t in trials:
        assert 1e-5 <= t.params["trainer.lr"] <= 1e-3
        assert sorted(t.intermediate_values) == [1, 2]
        folder = trial_dir(tmp_path, name, t.number)
        summary = json.loads((folder / "summary.json").read_text())
        assert t.value == max(t.intermediate_values.values()) == summary["best"]["f1"]
        assert summary["trial"] == {"number": t.number, "study": name, "params": t.params}
        assert epochs_run(folder) == [1, 2]
        if t.number > 0:  # only the learning rate changed: the first trial's tokenised windows are reused
            assert re.search(r"-> \d+ windows \(cached\), \d+ validation examples -> \d+ windows \(cached\)", (folder / "run.log").read_text())
        shown, record = inspect_wandb(folder)
        assert shown["state"] == "finished" and shown["summary"]["eval/f1"]["max"] == t.value
        assert record["run_group"] == name and record["display_name"] == f"tiny-synthetic-trial-{t.number}"
        assert shown["config"]["trial"] == {"number": t.number, "study": name, "params": t.params}
    best = study(tmp_path, name).best_trial
    results = yaml.safe_load((tmp_path / "sweeps" / name / "optimization_results.yaml").read_text())
    assert results["best_value"] == best.value and results["best_params"] == best.params
    assert results["trials"]["COMPLETE"] == 3
    assert f"Best trial of {name}: #{best.number}" in done.stdout
    # the closing block: where the best trial's files are and what comes next
    best_dir = trial_dir(tmp_path, name, best.number)
    assert best.user_attrs["run_dir"] == str(best_dir)
    assert f"  best trial's run folder: {best_dir}\n" in done.stdout and "  study: 3 COMPLETE; n_trials 3;" in done.stdout
    assert f"    qa-lab push {best_dir} --repo-id <user/name>\n" in done.stdout
    assert f"    qa-lab compare {tmp_path / 'sweeps' / name}\n" in done.stdout


def test_an_aggressive_pruner_stops_trials_after_their_first_epoch(tmp_path):
    done = sweep(
        tmp_path, "sweep=lr", "hydra.sweeper.n_trials=2", "trainer.epochs=3",
        # prunes any trial whose F1 is below 101 after any epoch: all of them, at epoch 1
        "hydra/sweeper/pruner=none", "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
        "+hydra.sweeper.pruner.lower=101", "logger=[mlflow,tensorboard]",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study(tmp_path, "lr-tiny-synthetic").get_trials()
    assert [t.state for t in trials] == [State.PRUNED] * 2
    # one MLflow experiment for the study (the database under the output root), one run per trial
    runs = mlflow_runs(tmp_path / "mlflow.db", "lr-tiny-synthetic")
    assert [run.data.tags["trial"] for run in runs] == [str(t.number) for t in trials]
    for t, tracked in zip(trials, runs):
        assert list(t.intermediate_values) == [1] and t.value == t.intermediate_values[1]
        assert t.user_attrs["pruned"].startswith("pruned after epoch 1 of 3")
        folder = trial_dir(tmp_path, "lr-tiny-synthetic", t.number)
        assert epochs_run(folder) == [1]  # trained no further
        assert json.loads((folder / "summary.json").read_text())["pruned_at_epoch"] == 1
        assert tracked.info.status == "KILLED" and tracked.data.tags["qa_lab.status"] == "pruned"
        assert tracked.data.tags["param.trainer.lr"] == str(t.params["trainer.lr"]) and tracked.data.metrics["eval/f1"] == t.value
        # TensorBoard: the trial's own folder under the study's, its one epoch and its pruned status
        events = tensorboard_events(folder / "tensorboard")
        assert [(point.step, point.value) for point in events.Scalars("eval/f1")] == [(1, pytest.approx(t.value))]
        assert events.Tensors("status/text_summary")[0].tensor_proto.string_val == [b"pruned at epoch 1"]
        assert tensorboard_hparams(events)[1] == "STATUS_UNKNOWN"  # HParams has no pruned status


def test_a_failing_trial_is_recorded_with_its_error_and_the_others_complete(tmp_path):
    done = sweep(
        tmp_path, "sweep=lr", NO_PRUNING, "hydra/sweeper/sampler=grid", "hydra.sweeper.max_failure_rate=0.5",
        f"trainer.lr=choice(1e-3,{DIVERGING_LR},2e-3)", "logger=[wandb,mlflow]",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = study(tmp_path, "lr-tiny-synthetic").get_trials()
    states = {t.params["trainer.lr"]: t.state for t in trials}
    assert len(trials) == 3  # the failed grid point is not retried by the same command
    assert states == {1e-3: State.COMPLETE, 1e6: State.FAIL, 2e-3: State.COMPLETE}
    [failed] = [t for t in trials if t.state == State.FAIL]
    assert failed.user_attrs["error"].startswith("NonFiniteLossError: trainer: the training loss became nan at optimiser step")
    shown, _ = inspect_wandb(trial_dir(tmp_path, "lr-tiny-synthetic", failed.number))
    assert shown["state"] == "failed"  # closed, with the failure recorded
    statuses = {run.data.tags["trial"]: run.info.status for run in mlflow_runs(tmp_path / "mlflow.db", "lr-tiny-synthetic")}
    assert statuses == {str(t.number): "FAILED" if t.state == State.FAIL else "FINISHED" for t in trials}
    again = sweep(tmp_path, "sweep=lr", NO_PRUNING, "hydra/sweeper/sampler=grid", "hydra.sweeper.max_failure_rate=0.5",
                  f"trainer.lr=choice(1e-3,{DIVERGING_LR},2e-3)")
    assert again.returncode == 0, again.stderr[-3000:]
    # a grid tries each point once: a re-run has nothing left to do, and never repeats a point
    assert len(study(tmp_path, "lr-tiny-synthetic").trials) == 3 and "Launching" not in again.stdout + again.stderr


def test_too_many_failures_stop_the_sweep_with_a_clear_error(tmp_path):
    done = sweep(tmp_path, "sweep=lr", "hydra.sweeper.n_trials=3", "hydra.sweeper.max_failure_rate=0",
                 f"trainer.lr=choice({DIVERGING_LR})")
    assert done.returncode != 0
    assert "1 trials failed in this session, more than hydra.sweeper.max_failure_rate=0.0 of 3" in done.stderr
    assert [t.state for t in study(tmp_path, "lr-tiny-synthetic").get_trials()] == [State.FAIL]
    hydra = yaml.safe_load((trial_dir(tmp_path, "lr-tiny-synthetic", 0) / ".hydra" / "hydra.yaml").read_text())
    assert hydra["hydra"]["sweeper"]["pruner"]["_target_"] == "optuna.pruners.MedianPruner"  # the default pruner


def test_invalid_window_pairs_are_skipped_not_failed(tmp_path):
    # the context room is max_length - 64 question tokens - 3 special tokens; the stride must be smaller
    done = sweep(
        tmp_path, "sweep=max_length_stride",
        "data.max_length=choice(128,192)", "data.stride=choice(64,128)",  # a search space entry from the command line
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name = "max_length_stride-tiny-synthetic"
    trials = study(tmp_path, name).get_trials()
    by_pair = {(t.params["data.max_length"], t.params["data.stride"]): t for t in trials}
    assert set(by_pair) == {(128, 64), (128, 128), (192, 64), (192, 128)}  # the grid, each pair once
    assert by_pair[192, 64].state == State.COMPLETE
    for pair in ((128, 64), (128, 128), (192, 128)):
        skipped = by_pair[pair]
        assert skipped.state == State.PRUNED and skipped.intermediate_values == {}
        assert skipped.user_attrs["pruned"].startswith(f"skipped, the sampled values are invalid: data.stride: stride {pair[1]}")
        assert not (trial_dir(tmp_path, name, skipped.number) / "metrics.jsonl").exists()


def test_rerunning_the_command_resumes_the_study(tmp_path):
    first = sweep(tmp_path, "sweep=lr", NO_PRUNING, "hydra.sweeper.n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    before = study(tmp_path, "lr-tiny-synthetic").get_trials()
    more = sweep(tmp_path, "sweep=lr", NO_PRUNING, "hydra.sweeper.n_trials=3")
    assert more.returncode == 0, more.stderr[-3000:]
    after = study(tmp_path, "lr-tiny-synthetic").get_trials()
    assert [(t.number, t.params, t.value) for t in after[:2]] == [(t.number, t.params, t.value) for t in before]
    assert len(after) == 3 and after[2].state == State.COMPLETE and after[2].params not in [t.params for t in before]
    assert "3 trials in total, 2 in it already" in more.stdout + more.stderr
    again = sweep(tmp_path, "sweep=lr", NO_PRUNING, "hydra.sweeper.n_trials=3")
    assert again.returncode == 0 and len(study(tmp_path, "lr-tiny-synthetic").trials) == 3
    assert "Launching" not in again.stdout + again.stderr


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_dead_workers_trial_is_failed_after_the_grace_period_and_replaced(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna/lr-tiny-synthetic.db"
    (tmp_path / "optuna").mkdir()
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=1, grace_period=2)
    dead = optuna.create_study(study_name="lr-tiny-synthetic", storage=rdb, direction="maximize").ask()
    rdb.record_heartbeat(rdb.get_trial_id_from_study_id_trial_number(rdb.get_study_id_from_name("lr-tiny-synthetic"), dead.number))
    time.sleep(3)  # the worker died: no heartbeat for longer than the grace period
    done = sweep(tmp_path, "sweep=lr", NO_PRUNING, "hydra.sweeper.n_trials=2", "hydra.sweeper.heartbeat_interval=1",
                 "hydra.sweeper.grace_period=2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [t.state for t in study(tmp_path, "lr-tiny-synthetic").get_trials()] == [State.FAIL, State.COMPLETE, State.COMPLETE]


# the same command in two shells (or on two machines) against one PostgreSQL study; one command with
# hydra.sweeper.n_jobs=2 on SQLite is in test_workers.py
@pytest.mark.postgres
def test_two_workers_share_one_study_without_losing_or_repeating_a_trial(tmp_path, postgres_url):
    storage = postgres_url
    command = ("sweep=lr", NO_PRUNING, "hydra.sweeper.study_name=shared", f"hydra.sweeper.storage={storage}",
               "hydra.sweeper.n_trials=6")
    # one core each: two torch processes with a thread per core each slow each other down many times over
    workers = [sweep(tmp_path, *command, wait=False, env_extra={"OMP_NUM_THREADS": "1"}) for _ in range(2)]
    ended = [worker.communicate(timeout=600) for worker in workers]
    logs = [done.stdout for done in ended]
    assert [done.returncode for done in ended] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    trials = study(tmp_path, "shared", storage).get_trials()
    assert [t.state for t in trials] == [State.COMPLETE] * 6
    assert len({t.params["trainer.lr"] for t in trials}) == 6
    ran = [{int(line.split("trial ")[1].split(":")[0]) for line in log.splitlines() if "][HYDRA] trial " in line} for log in logs]
    assert ran[0] and ran[1] and ran[0].isdisjoint(ran[1]) and ran[0] | ran[1] == set(range(6))
    for number in range(6):
        assert epochs_run(trial_dir(tmp_path, "shared", number)) == [1]
    best = study(tmp_path, "shared", storage).best_trial
    for log in logs:  # each worker waited for the other's last trial before reporting the best
        assert f"Best trial of shared: #{best.number}, maximize {best.value}" in log


@pytest.mark.unit
@pytest.mark.parametrize("preset", ["backbones", "max_length_stride", "lr", "search", "cpu_smoke"])
def test_every_preset_composes_into_a_study(preset):
    cfg = composed(f"sweep={preset}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "qa_lab.studies.sweeper.StudySweeper" and sweeper.direction == "maximize"
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner" and sweeper.n_trials >= 4
    assert sweeper.params and all(key == "model" or OmegaConf.select(cfg, key) is not None for key in sweeper.params)
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "trial-${hydra.job.num}"

