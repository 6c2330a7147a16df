"""Inference with a saved model, in-process on the tiny model: `pipeline("question-answering")` and
`predict_file` answer with the settings saved beside the model (best/qa_lab.json) unless told otherwise."""

from __future__ import annotations

import json

import pytest

from qa_lab.data.synthetic import make_synthetic
from qa_lab.evaluation import settings
from qa_lab.inference.predict import predict_file
from qa_lab.model.backbone import load_model, load_tokenizer, model_settings

pytestmark = pytest.mark.unit

CONTEXT = "Ada Lovelace was born in London in 1815. She worked with Charles Babbage on the Analytical Engine."


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """The tiny random model saved as a run saves best/, with SQuAD v2 settings and windows of 64 tokens."""
    folder = tmp_path_factory.mktemp("model") / "best"
    model_config = model_settings("tiny")
    load_model(model_config, hub_timeout=1, seed=0).save_pretrained(folder)
    load_tokenizer(model_config, hub_timeout=1).save_pretrained(folder)
    saved = settings.conf_defaults() | {"max_length": 64, "stride": 16, "max_question_tokens": 16, "version_2": True}
    (folder / settings.SETTINGS_FILE).write_text(json.dumps(saved))
    return folder


def test_the_pipeline_answers_with_a_span_of_the_context(saved_model):
    from transformers import pipeline

    import qa_lab.pipeline  # noqa: F401 - registers the task

    answerer = pipeline("question-answering", model=str(saved_model))
    answer = answerer(question="Where was Ada born?", context=CONTEXT, version_2=False)
    assert answer["answer"] == CONTEXT[answer["start"]:answer["end"]] and answer["answer"]
    assert 0 < answer["score"] <= 1


def test_a_v2_model_answers_nothing_when_the_null_answer_wins(saved_model):
    from transformers import pipeline

    import qa_lab.pipeline  # noqa: F401

    answerer = pipeline("question-answering", model=str(saved_model))
    # a threshold below every null odds: the null answer always wins
    answer = answerer(question="Where was Ada born?", context=CONTEXT, null_score_diff_threshold=-1e9)
    assert (answer["answer"], answer["start"], answer["end"]) == ("", -1, -1)


def test_predict_file_uses_the_saved_windows_unless_told_otherwise(saved_model, tmp_path):
    data = tmp_path / "validation.jsonl"
    make_synthetic(num_train=8, num_validation=12, seed=3)["validation"].to_json(data, orient="records", lines=True)
    saved = predict_file(str(saved_model), str(data), settings.for_model(saved_model), batch_size=4, hub_timeout=1)
    wider = predict_file(str(saved_model), str(data), settings.for_model(saved_model, {"max_length": 128}), batch_size=4, hub_timeout=1)
    assert saved.examples == wider.examples == 12
    assert saved.windows > wider.windows  # 64-token windows cut the contexts into more pieces
    assert saved.version_2 and saved.labelled and set(saved.evaluation.answers) == set(wider.evaluation.answers)
    assert {"exact_match", "f1", "null_threshold"} <= set(saved.evaluation.metrics)
