"""End to end through `python run.py`: the run files, the saved model, W&B offline files, the CLI."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from datetime import datetime
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


PROGRESS_EVERY = 0.1  # seconds between progress lines: several per epoch of the tiny run
PROGRESS = re.compile(
    r"^\[(?P<time>[\d-]+ [\d:,]+)\]\[qa_lab\.training\.hooks\.progress_log\]\[INFO\] - epoch (?P<epoch>\d)/2 \| "
    r"step (?P<step>\d+)/(?P<total>\d+) \| loss (?P<loss>[\d.]+) \| (?P<rate>[\d.]+) samples/s \| training time left \d+s$",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    done = run_py(run_dir, *TINY_RUN, f"trainer.progress_every_seconds={PROGRESS_EVERY}")
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
    assert (run_dir / "best" / "README.md").is_file()  # the model card does not stand in the pipeline's way
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


def test_progress_lines_at_the_configured_cadence_without_a_terminal(tiny_run):
    run_dir, _ = tiny_run
    lines = list(PROGRESS.finditer((run_dir / "run.log").read_text()))
    per_epoch = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])["step"]
    assert len(lines) >= 2 and {int(line["epoch"]) for line in lines} == {1, 2}
    assert all(int(line["total"]) == 2 * per_epoch for line in lines)
    steps = [int(line["step"]) for line in lines]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    times = [datetime.strptime(line["time"], "%Y-%m-%d %H:%M:%S,%f") for line in lines]
    same_epoch = [(b - a).total_seconds() for a, b, first, second in zip(times, times[1:], lines, lines[1:]) if first["epoch"] == second["epoch"]]
    assert same_epoch and min(same_epoch) >= PROGRESS_EVERY - 0.002  # the log's times have millisecond resolution
    assert all(float(line["rate"]) > 0 for line in lines)


def test_the_run_ends_with_a_summary_block(tiny_run):
    run_dir, done = tiny_run
    summary = json.loads((run_dir / "summary.json").read_text())
    best = summary["best"]
    log = done.stdout + done.stderr
    block = log[log.index("run complete in "):].splitlines()
    assert f"best epoch {summary['best_epoch']} of 2: EM {best['exact_match']:.2f} | F1 {best['f1']:.2f}" in block[1]
    windows = json.loads((run_dir / "data_report.json").read_text())["features"]["validation"]["windows"]
    assert block[2].strip() == f"validation: synthetic validation, 32 questions ({windows} windows), SQuAD v1.1 scoring"
    assert block[3].strip() == f"run folder: {run_dir}"
    commands = [line.strip() for line in block[block.index("  next:") + 1 :] if line.startswith("    ")]
    [wandb_run] = (run_dir / "wandb").glob("offline-run-*")
    assert commands[:3] == [
        f"qa-lab compare {run_dir}",
        f"qa-lab predict --model {run_dir / 'best'} --data <questions file> --out answers.json",
        f"qa-lab push {run_dir} --repo-id <user/name>",
    ]
    assert f"wandb sync {wandb_run}" in commands
    assert summary["push"] == {"state": "off"}
    assert summary["trackers"]["wandb"]["view"] == f"wandb sync {wandb_run}"


def test_checkpoint_lines_name_epochs_that_ran(tiny_run):
    run_dir, _ = tiny_run
    lines = [line for line in (run_dir / "run.log").read_text().splitlines() if "][qa_lab.training.checkpoint]" in line]
    assert [re.search(r"\((after epoch \d)", line)[1] for line in lines] == ["after epoch 1", "after epoch 2"]


def test_the_model_card_holds_the_runs_scores(tiny_run):
    from huggingface_hub import ModelCard

    run_dir, _ = tiny_run
    summary = json.loads((run_dir / "summary.json").read_text())
    card = ModelCard.load(run_dir / "best" / "README.md")
    results = {result.metric_type: result for result in card.data.eval_results}
    assert results["exact_match"].metric_value == summary["best"]["exact_match"]
    assert results["f1"].metric_value == summary["best"]["f1"]
    assert {result.task_type for result in results.values()} == {"question-answering"}
    assert results["f1"].dataset_type == "qa-lab-synthetic" and results["f1"].dataset_split == "validation"
    assert card.data.pipeline_tag == "question-answering" and card.data.base_model is None  # tiny: random weights
    for fingerprint in summary["data_fingerprints"].values():
        assert fingerprint in card.text
    assert "| max_length | 128 |" in card.text and "| stride | 32 |" in card.text and "| seed | 42 |" in card.text
    assert f"epoch {summary['best_epoch']}." in card.text and "SQuAD v1.1 scoring" in card.text


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
    """Bars for training and evaluation on a terminal (and no progress lines there); none in captured output,
    logs and CI."""
    command = shlex.join([sys.executable, "run.py", f"hydra.run.dir={tmp_path / 'tty'}", "debug=fast", "trainer.progress_every_seconds=0.01"])
    terminal = f"stty cols 120 rows 40; {command}"  # `script` gives a pseudo-terminal, of zero width unless told
    on_terminal = subprocess.run(["script", "-qec", terminal, "/dev/null"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert on_terminal.returncode == 0, on_terminal.stdout[-2000:]
    assert "epoch 1:" in on_terminal.stdout and "eval:" in on_terminal.stdout and "it/s" in on_terminal.stdout
    assert "training time left" not in on_terminal.stdout  # the bar, not progress lines, on a terminal
    captured = run_py(tmp_path / "captured", "debug=fast")
    assert captured.returncode == 0 and "it/s" not in captured.stderr + captured.stdout
