"""End to end through `python run.py`: the run files, the saved model, W&B offline files, the CLI."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    TINY_RUN,
    inspect_wandb,
    last_json_line,
    offline_env,
    qa_lab,
    run,
    run_py,
    synthetic_validation,
)

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("tiny_run")]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    done = run_py(run_dir, *TINY_RUN)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, done


def test_metrics_jsonl_has_one_line_per_epoch(tiny_run):
    run_dir, _ = tiny_run
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    for line in lines:
        for key in ("train_loss", "exact_match", "f1", "learning_rate", "train_samples_per_second", "eval_seconds"):
            assert isinstance(line[key], float), key
        assert 0 <= line["exact_match"] <= line["f1"] + 1e-9 <= 100 + 1e-9
    assert lines[1]["learning_rate"] < lines[0]["learning_rate"]  # the linear schedule decays


@pytest.fixture(scope="module")
def tiny_validation(tiny_run, tmp_path_factory) -> Path:
    """The validation set the tiny run used, regenerated from its config and written out as JSONL."""
    gold = tmp_path_factory.mktemp("gold") / "validation.jsonl"
    synthetic_validation(tiny_run[0], gold)
    return gold


def test_predictions_are_official_format_and_rescore_to_the_logged_f1(tiny_run, tiny_validation):
    run_dir, _ = tiny_run
    predictions = json.loads((run_dir / "predictions.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(predictions) == 32 and all(isinstance(v, str) for v in predictions.values())
    nbest = json.loads((run_dir / "nbest_predictions.json").read_text())
    assert set(nbest) == set(predictions)
    for qid, candidates in nbest.items():
        if candidates:
            assert candidates[0]["text"] == predictions[qid]
            assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
    result = last_json_line(qa_lab("score", str(tiny_validation), str(run_dir / "predictions.json")))
    assert result["f1"] == pytest.approx(summary["best"]["f1"], abs=1e-9)
    assert result["missing"] == 0


def test_predict_with_best_uses_the_runs_settings_and_reproduces_its_predictions(tiny_run, tiny_validation, tmp_path):
    """No window flags: best/qa_lab.json carries max_length=128, stride=32 of the run, not conf's 384/128,
    and the SQuAD version the run resolved from its data (v1.1 here, conf says "decide from the data")."""
    from qa_lab.evaluation.settings import SETTINGS_FILE, conf_defaults

    run_dir, _ = tiny_run
    saved = json.loads((run_dir / "best" / SETTINGS_FILE).read_text())
    assert saved == conf_defaults() | {"max_length": 128, "stride": 32, "version_2": False}
    out = tmp_path / "predictions.json"
    done = qa_lab("predict", "--model", str(run_dir / "best"), "--data", str(tiny_validation), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text()) == json.loads((run_dir / "predictions.json").read_text())


def test_summary_records_provenance(tiny_run):
    run_dir, _ = tiny_run
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best = max(lines, key=lambda line: line["f1"])
    assert summary["best_epoch"] == best["epoch"] and summary["best"]["f1"] == best["f1"]
    assert summary["seed"] == 42 and summary["wall_seconds"] > 0
    assert summary["versions"]["torch"] and summary["versions"]["transformers"]
    assert len(summary["data_fingerprints"]["validation"]) == 16
    assert "git_commit" in summary


def test_best_model_loads_in_a_pipeline(tiny_run):
    from transformers import pipeline

    import qa_lab.pipeline  # noqa: F401 - registers the question-answering task (dropped by transformers 5.3)

    run_dir, _ = tiny_run
    answerer = pipeline("question-answering", model=str(run_dir / "best"))
    answer = answerer(question="Where was Ada born?", context="Ada was born in London in 1815.")
    assert isinstance(answer["answer"], str) and 0 <= answer["start"] <= answer["end"] <= 31


def test_wandb_offline_files_hold_the_best_f1(tiny_run):
    run_dir, _ = tiny_run
    inspected, _ = inspect_wandb(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert inspected["state"] == "finished"
    assert inspected["summary"]["eval/f1"]["max"] == pytest.approx(summary["best"]["f1"])
    assert inspected["summary"]["epoch"] == 2
    assert inspected["config"]["trainer"]["seed"] == 42 and inspected["config"]["model"]["short_name"] == "tiny"


def test_one_readable_line_per_epoch(tiny_run):
    run_dir, done = tiny_run
    log = (run_dir / "run.log").read_text() if (run_dir / "run.log").exists() else done.stdout + done.stderr
    epoch_lines = [line for line in log.splitlines() if "| EM " in line]
    assert len(epoch_lines) == 2 and epoch_lines[0].split("epoch ")[1].startswith("1 |")


def test_predict_command_writes_predictions_for_a_long_context_file(tiny_run, xquad_file, tmp_path):
    run_dir, _ = tiny_run
    out = tmp_path / "predictions.json"
    done = qa_lab("predict", "--model", str(run_dir / "best"), "--data", str(xquad_file), "--out", str(out), "--max-length", "128", "--stride", "32")
    assert done.returncode == 0, done.stderr[-2000:]
    predictions = json.loads(out.read_text())
    assert len(predictions) == 1190
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["windows"] > 1190 and 0 <= result["f1"] <= 100


def test_a_failing_job_does_not_end_a_multirun(tmp_path):
    """A bad value in one job is reported for that job; the next job still trains (no SystemExit)."""
    env = offline_env(QA_LAB_OUTPUT_ROOT=str(tmp_path))
    done = run(["run.py", "-m", "debug=fast", "trainer.lr=-1,1e-3"], env=env, timeout=600)
    assert "trainer.lr: must be positive, got -1" in done.stderr
    sweep = next((tmp_path / "multirun").iterdir())
    assert not (sweep / "0" / "summary.json").exists()
    assert json.loads((sweep / "1" / "summary.json").read_text())["best_epoch"] == 1


def test_progress_bars_on_a_terminal_only(tmp_path):
    """Bars for training and evaluation on a terminal; none in captured output, logs and CI."""
    command = shlex.join([sys.executable, "run.py", f"hydra.run.dir={tmp_path / 'tty'}", "debug=fast"])
    terminal = f"stty cols 120 rows 40; {command}"  # `script` gives a pseudo-terminal, of zero width unless told
    on_terminal = subprocess.run(["script", "-qec", terminal, "/dev/null"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert on_terminal.returncode == 0, on_terminal.stdout[-2000:]
    assert "epoch 1:" in on_terminal.stdout and "eval:" in on_terminal.stdout and "it/s" in on_terminal.stdout
    captured = run_py(tmp_path / "captured", "debug=fast")
    assert captured.returncode == 0 and "it/s" not in captured.stderr + captured.stdout
