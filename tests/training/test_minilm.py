"""The real backbone on real data: MiniLM (from PyPI) fine-tuned on XQuAD articles learns to answer
questions about articles it has never seen, and `qa-lab predict` with the saved model reproduces the
run's own evaluation."""

from __future__ import annotations

import json

import pytest

from tests.helpers import last_json_line, qa_lab, run_py

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("minilm")]

# 28 of the 48 articles to train on (725 questions): about the fewest that MiniLM reads well within two
# epochs at its default rate (README, "Why the defaults are what they are"); the last 8 (177 questions) are held out
TRAIN_ARTICLES, HELD_OUT_ARTICLES = 28, 8
GEOMETRY = {"max_length": 192, "stride": 64}  # XQuAD paragraphs fit in 1-2 windows; a third of the CPU time of 384


@pytest.fixture(scope="module")
def split_by_article(tmp_path_factory, xquad_file):
    """Train and validation files in the official nested layout, no article on both sides."""
    folder = tmp_path_factory.mktemp("xquad")
    squad = json.loads(xquad_file.read_text(encoding="utf-8"))
    paths = {}
    for name, articles in (("train", squad["data"][:TRAIN_ARTICLES]), ("validation", squad["data"][-HELD_OUT_ARTICLES:])):
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps({"version": squad.get("version", "1.1"), "data": articles}))
    return paths


@pytest.fixture(scope="module")
def fine_tuned(split_by_article, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("minilm") / "run"
    done = run_py(
        run_dir,
        "model=minilm",
        "data=local",
        f"data.train_file={split_by_article['train']}",
        f"data.validation_file={split_by_article['validation']}",
        f"data.max_length={GEOMETRY['max_length']}",
        f"data.stride={GEOMETRY['stride']}",
        "trainer.epochs=2",  # the learning rate is MiniLM's model.lr (3e-4)
        "trainer.batch_size=16",  # as measured (README, "Why the defaults"): batch 8 learned less on these articles
        "logger=none",
        "trainer.checkpoint.keep_last=0",  # crash recovery is tested on the tiny model; here it would only write 540 MB
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def window_arguments() -> list[str]:
    return ["--max-length", str(GEOMETRY["max_length"]), "--stride", str(GEOMETRY["stride"])]


def test_fine_tuned_minilm_beats_the_untrained_model_on_held_out_articles(split_by_article, fine_tuned, tmp_path):
    untrained = last_json_line(qa_lab(
        "predict", "--model", "minilm", "--data", str(split_by_article["validation"]),
        "--out", str(tmp_path / "untrained.json"), *window_arguments(),
    ))
    epochs = [json.loads(line) for line in (fine_tuned / "metrics.jsonl").read_text().splitlines()]
    print({"untrained_f1": untrained["f1"], "epochs_f1": [epoch["f1"] for epoch in epochs]})
    assert [epoch["epoch"] for epoch in epochs] == [1, 2]
    assert epochs[1]["f1"] > epochs[0]["f1"]  # still learning in the second epoch
    assert epochs[1]["f1"] > untrained["f1"] + 20


def test_predict_with_the_saved_model_reproduces_the_runs_evaluation(split_by_article, fine_tuned, tmp_path):
    """No window flags: `best/qa_lab.json` carries the run's geometry."""
    summary = json.loads((fine_tuned / "summary.json").read_text())
    predicted = last_json_line(qa_lab(
        "predict", "--model", str(fine_tuned / "best"), "--data", str(split_by_article["validation"]),
        "--out", str(tmp_path / "predictions.json"),
    ))
    assert predicted["f1"] == pytest.approx(summary["best"]["f1"], abs=1e-6)
    assert json.loads((tmp_path / "predictions.json").read_text()) == json.loads(
        (fine_tuned / "predictions.json").read_text()
    )
