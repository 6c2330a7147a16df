"""The study sweeper in a Hydra app that is not qa-lab (a few lines in tmp_path), with warnings as errors:
installing qa-lab leaves the app's search path alone, and `hydra/sweeper=qa_lab` starts there with its own
pruners, the official defaults (storage null) and no key the app lacks; a non-float return and a
multi-objective direction are refused clearly."""

from __future__ import annotations

import optuna
import pytest
import yaml

from tests.helpers import offline_env, run

pytestmark = pytest.mark.e2e

APP = '''
import hydra


@hydra.main(config_path="conf", config_name="config")
def main(cfg) -> object:
    if cfg.kind == "tuple":
        return (cfg.x, cfg.x)
    return (cfg.x - 0.3) ** 2


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def app(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("x: 0.5\nkind: float\n", encoding="utf-8")
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    return tmp_path


def in_app(app, *arguments: str):
    """`python -W error app.py ...` in the app's folder; the sweep's folders under it."""
    return run(["-W", "error", "app.py", f"hydra.sweep.dir={app}/multirun", f"hydra.run.dir={app}/run", *arguments],
               env=offline_env(), cwd=app, timeout=300, fresh=True)  # a new interpreter: -W error from its start


def test_the_apps_search_path_is_its_own(app):
    done = in_app(app, "--info", "searchpath")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "qa-lab" not in done.stdout and "sweeps" not in done.stdout
    plain = in_app(app)
    assert plain.returncode == 0 and "Warning" not in plain.stderr, plain.stderr[-2000:]


@pytest.mark.parametrize("pruner", ["median", "hyperband", "successive_halving", "none"])
def test_the_sweeper_runs_an_app_with_its_defaults_and_each_pruner(app, pruner):
    done = in_app(app, "-m", "hydra/sweeper=qa_lab", f"hydra/sweeper/pruner={pruner}", "x=interval(0,1)", "hydra.sweeper.n_trials=3")
    assert done.returncode == 0, done.stderr[-3000:]
    results = yaml.safe_load((app / "multirun" / "optimization_results.yaml").read_text(encoding="utf-8"))
    assert results["trials"]["COMPLETE"] == 3 and 0 <= results["best_params"]["x"] <= 1
    assert results["best_value"] == pytest.approx((results["best_params"]["x"] - 0.3) ** 2)
    assert "storage in memory (storage null: not kept)" in done.stdout
    assert sorted(path.name for path in (app / "multirun").iterdir() if path.is_dir()) == ["0", "1", "2"]  # job numbers = trial numbers


def test_a_return_that_is_not_one_number_fails_its_trial_with_the_reason_and_the_sweep_goes_on(app):
    storage = f"sqlite:///{app}/study.db"
    done = in_app(app, "-m", "hydra/sweeper=qa_lab", "kind=tuple", "x=interval(0,1)", "hydra.sweeper.n_trials=2",
                  f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=tuples")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(study_name="tuples", storage=storage).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    x = trials[0].params["x"]
    assert trials[0].user_attrs["error"] == f"RejectedResult: the run returned ({x}, {x}), not a finite number (for qa-lab: no epoch was evaluated)"


def test_a_multi_objective_study_is_refused_before_any_trial(app):
    done = in_app(app, "-m", "hydra/sweeper=qa_lab", "x=interval(0,1)", "hydra.sweeper.direction=[minimize,minimize]")
    assert done.returncode == 2
    assert "hydra.sweeper.direction: is ['minimize', 'minimize']: a multi-objective study" in done.stderr
    assert "Fix: give one direction (maximize or minimize)" in done.stderr and "Traceback" not in done.stderr
    assert not (app / "multirun" / "0").exists()


def test_workers_without_a_shared_storage_are_refused(app):
    done = in_app(app, "-m", "hydra/sweeper=qa_lab", "x=interval(0,1)", "hydra.sweeper.n_jobs=2", "hydra.sweeper.study_name=s")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "hydra.sweeper.storage: is null (a study in this process's memory), but workers in other processes share" in done.stderr


@pytest.mark.unit
def test_workers_are_refused_when_the_sweep_was_not_started_from_its_own_command_line(hydra_sweep_runner, tmp_path, capsys):
    """A sweep run inside another program (here pytest, through Hydra's test utilities) cannot be re-run as
    its workers: that would start the other program once per worker."""
    sweep = hydra_sweep_runner(
        calling_file=None, calling_module="hydra.test_utils.a_module", task_function=lambda cfg: 1.0,
        config_path="configs", config_name="compose.yaml",
        overrides=["hydra/sweeper=qa_lab", "hydra.sweeper.n_jobs=2", "hydra.sweeper.study_name=s", "hydra.sweeper.n_trials=2",
                   f"hydra.sweeper.storage=sqlite:///{tmp_path}/s.db", f"hydra.sweep.dir={tmp_path}/sweep"],
    )
    with pytest.raises(SystemExit) as stop, sweep:
        pass
    assert stop.value.code == 2
    assert "hydra.sweeper.n_jobs: is 2: the workers re-run the command that started this sweep, but it was started from another program" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()
