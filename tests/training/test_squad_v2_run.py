"""SQuAD v2 end to end through `python run.py data=synthetic_v2`: per-epoch HasAns/NoAns scores and best
threshold, null odds that decide the saved predictions, official re-scoring, and `qa-lab predict`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import (
    TINY_RUN,
    inspect_wandb,
    last_json_line,
    qa_lab,
    run_py,
    synthetic_validation,
)

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("v2_run")]

V2_RUN = [*TINY_RUN, "data=synthetic_v2", "data.synthetic.num_validation=48"]
PER_EPOCH = ("HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh", "null_threshold")


def epochs(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("v2") / "run"
    done = run_py(run_dir, *V2_RUN)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "SQuAD v2" in log and "HasAns F1" in log
    return run_dir


@pytest.fixture(scope="module")
def v2_validation(v2_run, tmp_path_factory) -> Path:
    """The run's validation set (a third unanswerable), regenerated from its config, as JSONL."""
    gold = tmp_path_factory.mktemp("gold") / "validation.jsonl"
    frame = synthetic_validation(v2_run, gold)
    assert 10 <= frame["answers"].map(lambda a: not a["text"]).sum() <= 22
    return gold


def test_every_epoch_logs_hasans_noans_and_the_best_threshold(v2_run):
    lines = epochs(v2_run)
    assert [line["epoch"] for line in lines] == [1, 2]
    for line in lines:
        for key in PER_EPOCH:
            assert isinstance(line[key], float), key
        assert line["null_threshold"] == 0.0  # postprocess.null_score_diff_threshold
        assert line["best_f1"] >= line["f1"] - 1e-9  # no threshold beats the best one
    assert json.loads((v2_run / "summary.json").read_text())["version_2"] is True
    report = json.loads((v2_run / "data_report.json").read_text())
    assert report["version_2"] is True and report["splits"]["train"]["unanswerable"] > 0


def test_the_closing_block_and_the_model_card_carry_the_v2_scores(v2_run):
    from huggingface_hub import ModelCard

    best = json.loads((v2_run / "summary.json").read_text())["best"]
    log = (v2_run / "run.log").read_text()
    scores = (f"EM {best['exact_match']:.2f} | F1 {best['f1']:.2f} | HasAns F1 {best['HasAns_f1']:.2f} | "
              f"NoAns F1 {best['NoAns_f1']:.2f} | null threshold {best['null_threshold']:.3f}")
    assert f"  best epoch {best['epoch']} of 2: {scores}\n" in log and "SQuAD v2.0 scoring" in log
    card = ModelCard.load(v2_run / "best" / "README.md")
    results = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert results == {
        "Exact match (SQuAD v2.0 scoring)": best["exact_match"], "F1 (SQuAD v2.0 scoring)": best["f1"],
        "F1 on answerable questions (SQuAD v2.0 scoring)": best["HasAns_f1"],
        "F1 on unanswerable questions (SQuAD v2.0 scoring)": best["NoAns_f1"],
    }
    assert "squad-v2.0" in card.data.tags and f"| null score threshold | {best['null_threshold']:.3f} |" in card.text


def test_null_odds_decide_the_saved_predictions_and_rescore_officially(v2_run, v2_validation):
    predictions = json.loads((v2_run / "predictions.json").read_text())
    null_odds = json.loads((v2_run / "null_odds.json").read_text())
    nbest = json.loads((v2_run / "nbest_predictions.json").read_text())
    summary = json.loads((v2_run / "summary.json").read_text())
    threshold = summary["best"]["null_threshold"]
    assert set(predictions) == set(null_odds) == set(nbest) and len(predictions) == 48
    for qid, text in predictions.items():
        best_span = nbest[qid][0]["text"] if nbest[qid] else ""
        assert text == ("" if null_odds[qid] > threshold else best_span)
    official = last_json_line(qa_lab(
        "score", str(v2_validation), str(v2_run / "predictions.json"), "--na-prob-file", str(v2_run / "null_odds.json"),
        "--na-prob-thresh", str(threshold),
    ))
    assert official["exact"] == pytest.approx(summary["best"]["exact_match"], abs=1e-9)
    assert official["f1"] == pytest.approx(summary["best"]["f1"], abs=1e-9)
    assert official["HasAns_f1"] == pytest.approx(summary["best"]["HasAns_f1"], abs=1e-9)
    assert official["NoAns_f1"] == pytest.approx(summary["best"]["NoAns_f1"], abs=1e-9)


def test_wandb_gets_the_v2_scores(v2_run):
    view, _ = inspect_wandb(v2_run)
    best = max(epochs(v2_run), key=lambda line: line["f1"])
    assert view["summary"]["eval/f1"]["max"] == pytest.approx(best["f1"])
    assert view["summary"]["eval/HasAns_f1"]["max"] == pytest.approx(max(line["HasAns_f1"] for line in epochs(v2_run)))
    assert "eval/best_f1_thresh" in view["summary"]


def test_predict_with_best_answers_no_answer_as_the_run_did(v2_run, v2_validation, tmp_path):
    saved = json.loads((v2_run / "best" / "qa_lab.json").read_text())
    assert saved["version_2"] is True and saved["null_score_diff_threshold"] == 0.0
    out, odds = tmp_path / "predictions.json", tmp_path / "null_odds.json"
    done = qa_lab("predict", "--model", str(v2_run / "best"), "--data", str(v2_validation), "--out", str(out), "--null-odds-out", str(odds))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text()) == json.loads((v2_run / "predictions.json").read_text())
    assert json.loads(odds.read_text()) == pytest.approx(json.loads((v2_run / "null_odds.json").read_text()), abs=1e-4)
    result = json.loads(done.stdout)
    summary = json.loads((v2_run / "summary.json").read_text())
    assert result["version_2"] is True and result["f1"] == pytest.approx(summary["best"]["f1"], abs=1e-6)


def test_apply_best_threshold_answers_with_each_epochs_tuned_threshold(tmp_path):
    run_dir = tmp_path / "run"
    done = run_py(run_dir, *V2_RUN, "trainer.epochs=1", "postprocess.apply_best_threshold=true", "logger=none")
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = epochs(run_dir)
    assert line["null_threshold"] == line["best_f1_thresh"]
    assert line["f1"] == pytest.approx(line["best_f1"], abs=1e-9)
    saved = json.loads((run_dir / "best" / "qa_lab.json").read_text())
    assert saved["null_score_diff_threshold"] == line["best_f1_thresh"]


def test_version_2_false_leaves_unanswerable_questions_out_and_says_so(tmp_path):
    run_dir = tmp_path / "run"
    done = run_py(run_dir, *V2_RUN, "trainer.epochs=1", "data.version_2=false", "logger=none")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unanswerable question(s) left out" in done.stdout + done.stderr
    [line] = epochs(run_dir)
    assert "HasAns_f1" not in line and "null_threshold" not in line
    report = json.loads((run_dir / "data_report.json").read_text())
    dropped = report["splits"]["validation"]["unanswerable_dropped"]
    assert dropped > 0 and len(json.loads((run_dir / "predictions.json").read_text())) == 48 - dropped


def test_pipeline_of_a_v2_model_answers_no_answer_above_its_threshold(v2_run, v2_validation):
    import numpy as np
    import pandas as pd
    from transformers import pipeline

    import qa_lab.pipeline  # noqa: F401 - registers the question-answering task

    null_odds = json.loads((v2_run / "null_odds.json").read_text())
    nbest = json.loads((v2_run / "nbest_predictions.json").read_text())
    answerer = pipeline("question-answering", model=str(v2_run / "best"))
    rows = pd.read_json(v2_validation, lines=True, dtype=False).set_index("id")
    # a threshold in the middle of the run's null odds: some questions get a span, some "no answer"
    threshold = float(np.median(list(null_odds.values())))
    ranked = sorted(null_odds, key=null_odds.get)
    spans = empties = 0
    for qid in ranked[::6]:
        answer = answerer(question=rows.loc[qid, "question"], context=rows.loc[qid, "context"], null_score_diff_threshold=threshold)
        expected = "" if null_odds[qid] > threshold or not nbest[qid] else nbest[qid][0]["text"]
        assert answer["answer"] == expected, qid
        assert 0.0 <= answer["score"] <= 1.0
        if expected == "":
            assert answer["start"] == answer["end"] == -1
            empties += 1
        else:
            spans += 1
    assert spans and empties


def test_compare_shows_hasans_and_noans_columns(v2_run, tmp_path):
    done = qa_lab("compare", str(v2_run), "--out", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    import pandas as pd

    [row] = pd.read_csv(tmp_path / "runs.csv").to_dict("records")
    best = json.loads((v2_run / "summary.json").read_text())["best"]
    assert (row["HasAns_f1"], row["NoAns_f1"], row["f1"]) == (best["HasAns_f1"], best["NoAns_f1"], best["f1"])
    assert "HasAns_f1" in done.stdout.splitlines()[0] and "<th>NoAns_f1</th>" in (tmp_path / "report.html").read_text()
