"""The default experiment (`python run.py`, what `make run` runs) learns: MiniLM on the default generated
data, shortened only by settings a user could pass (one epoch, the first questions of the same training
set), answers questions about entities it never saw far better than the same model untrained on the same
validation set. Its run folder is also the real-backbone case of the load message and the model card."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_py

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("default_experiment")]

SHORTER = ["trainer.epochs=1"]  # the default run's first epoch, as its only one
# F1 points above the untrained model that count as learning: measured 2.7 untrained and 39.3 after this run
# (README, "Data"), so the margin is far from both noise and the measured gain
MARGIN = 15
SPAN_HEAD_LINE = "span head initialised for fine-tuning (qa_outputs.bias, qa_outputs.weight)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The shortened default run, and the untrained model scored on the same data (trainer.epochs=0)."""
    root = tmp_path_factory.mktemp("default")
    folders = {}
    for name, overrides in (("untrained", ["trainer.epochs=0"]), ("trained", SHORTER)):
        done = run_py(root / name, *overrides, "trainer.checkpoint.keep_last=0")
        assert done.returncode == 0, done.stderr[-3000:]
        folders[name] = root / name
    return folders


def best(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())["best"]


def test_the_default_experiment_learns(runs):
    untrained, trained = best(runs["untrained"]), best(runs["trained"])
    assert untrained["epoch"] == 0 and trained["epoch"] == 1
    assert trained["f1"] > untrained["f1"] + MARGIN, (untrained["f1"], trained["f1"])
    fingerprints = [json.loads((runs[name] / "summary.json").read_text())["data_fingerprints"]["validation"] for name in runs]
    assert fingerprints[0] == fingerprints[1]  # one validation set


def test_the_new_span_head_is_one_line_and_transformers_report_is_gone(runs):
    log = (runs["trained"] / "run.log").read_text()
    assert log.count(SPAN_HEAD_LINE) == 1 and "LOAD REPORT" not in log and "UNEXPECTED" not in log


def test_the_model_card_names_the_backbone_and_the_scores(runs):
    from huggingface_hub import ModelCard

    card = ModelCard.load(runs["trained"] / "best" / "README.md")
    scores = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert scores == {"exact_match": best(runs["trained"])["exact_match"], "f1": best(runs["trained"])["f1"]}
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert "| max_length | 192 |" in card.text and "| batch size | 8 |" in card.text
