"""The data layer: every source format, repairs, skips and clear errors on bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from qa_lab.core.errors import DataError
from qa_lab.data.cleaning import clean_examples
from qa_lab.data.examples import fingerprint
from qa_lab.data.sources import read_examples
from qa_lab.data.splits import load_splits, split_by_context

pytestmark = pytest.mark.unit

CONTEXT = "Ada Lovelace was born in London in 1815. She worked with Charles Babbage."


def record(qid, question="Where was Ada born?", context=CONTEXT, text="London", start=25):
    return {"id": qid, "title": "Ada", "context": context, "question": question, "answers": {"text": [text], "answer_start": [start]}}


def squad_json(records):
    paragraphs = [
        {"context": r["context"], "qas": [{"id": r["id"], "question": r["question"], "answers": [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]}]}
        for r in records
    ]
    return {"version": "1.1", "data": [{"title": "Ada", "paragraphs": paragraphs}]}


def test_official_squad_json_matches_the_file(xquad_file):
    frame = read_examples(xquad_file)
    raw = json.loads(xquad_file.read_text())
    questions = [qa for article in raw["data"] for p in article["paragraphs"] for qa in p["qas"]]
    assert len(frame) == len(questions) == 1190
    assert frame["id"].tolist() == [q["id"] for q in questions]
    assert frame.loc[0, "answers"] == {"text": [questions[0]["answers"][0]["text"]], "answer_start": [questions[0]["answers"][0]["answer_start"]]}


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_flat_formats_read_the_same(tmp_path, suffix):
    records = [record(1), record(2, question="When was Ada born?", text="1815", start=35)]
    path = tmp_path / f"data{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(records))
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in records))
    elif suffix == ".csv":
        pd.DataFrame([{**r, "answers": json.dumps(r["answers"])} for r in records]).to_csv(path, index=False)
    else:
        pd.DataFrame(records).to_parquet(path)
    frame, report = clean_examples(read_examples(path), str(path), training=True)
    assert frame["id"].tolist() == ["1", "2"]
    assert frame.loc[1, "answers"] == {"text": ["1815"], "answer_start": [35]}
    assert report.examples == 2


def test_integer_ids_are_kept_as_strings(tmp_path):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(squad_json([record(7), record(8, question="Who?", text="Charles Babbage", start=56)])))
    frame, report = clean_examples(read_examples(path), str(path), training=True)
    assert frame["id"].tolist() == ["7", "8"]
    assert report.ids_converted == 2


def test_misaligned_answer_start_is_repaired_to_the_nearest_occurrence():
    context = "London is big. Ada was born in London. London again."
    frame = pd.DataFrame([record("a", context=context, text="London", start=29)])  # true occurrences: 0, 31, 39
    cleaned, report = clean_examples(frame, "test", training=True)
    assert cleaned.loc[0, "answers"]["answer_start"] == [31]
    assert report.answers_repaired == 1


def test_unlocatable_answer_drops_training_example_but_keeps_evaluation_gold():
    frame = pd.DataFrame([record("a", text="Paris", start=25), record("b")])
    train, report = clean_examples(frame, "test", training=True)
    assert train["id"].tolist() == ["b"]
    assert (report.answers_unlocatable, report.examples_dropped) == (1, 1)
    evaluation, report = clean_examples(frame, "test", training=False)
    assert evaluation["id"].tolist() == ["a", "b"]
    assert evaluation.loc[0, "answers"]["text"] == ["Paris"]
    assert report.examples_dropped == 0


def test_answer_with_surrounding_space_is_trimmed():
    frame = pd.DataFrame([record("a", text=" London", start=24)])
    cleaned, report = clean_examples(frame, "test", training=True)
    assert cleaned.loc[0, "answers"] == {"text": ["London"], "answer_start": [25]}
    assert report.answers_repaired == 1


def test_verbatim_duplicates_are_dropped_and_counted():
    frame = pd.DataFrame([record("a"), record("a"), record("b")])
    cleaned, report = clean_examples(frame, "test", training=True)
    assert cleaned["id"].tolist() == ["a", "b"]
    assert report.duplicates_dropped == 1


def test_conflicting_duplicate_ids_are_an_error():
    frame = pd.DataFrame([record("a"), record("a", question="Who was Ada?")])
    with pytest.raises(DataError, match=r"1 id\(s\) used by different questions.*'a'"):
        clean_examples(frame, "file.json", training=True)


def test_empty_question_or_context_is_skipped_and_counted():
    frame = pd.DataFrame([record("a", question="  "), record("b", context=" ", text="", start=0), record("c")])
    cleaned, report = clean_examples(frame, "test", training=True)
    assert cleaned["id"].tolist() == ["c"]
    assert report.empty_skipped == 2


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"data": [\n  {"title": "x",, }\n]}')
    with pytest.raises(DataError, match=r"bad.json: malformed JSON at line 2, column 17"):
        read_examples(path)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "flat.jsonl"
    path.write_text(json.dumps({"id": "1", "question": "q?", "context": "c"}))
    with pytest.raises(DataError, match=r"missing column\(s\) \['answers'\]"):
        read_examples(path)


def test_squad_json_entry_without_a_field(tmp_path):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "1", "answers": []}]}]}]}))
    with pytest.raises(DataError, match="without the field 'question'"):
        read_examples(path)


@pytest.mark.parametrize("payload", [{"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": []}]}]}, {"data": []}])
def test_a_file_without_questions_is_refused(tmp_path, payload):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(DataError, match=r"empty.json: no questions in it\nFix: expected official SQuAD JSON"):
        read_examples(path)


def test_unsupported_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_examples(tmp_path / "nope.json")
    path = tmp_path / "data.txt"
    path.write_text("x")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        read_examples(path)


def test_split_by_context_keeps_paragraphs_whole(xquad):
    train, validation = split_by_context(xquad, 0.2, seed=3)
    assert len(train) + len(validation) == len(xquad)
    assert not set(train["context"]) & set(validation["context"])
    assert 0.15 < len(validation) / len(xquad) < 0.3
    again, _ = split_by_context(xquad, 0.2, seed=3)
    assert again["id"].tolist() == train["id"].tolist()
    other, _ = split_by_context(xquad, 0.2, seed=4)
    assert other["id"].tolist() != train["id"].tolist()


def test_load_splits_from_one_file_selects_whole_examples(xquad_file):
    data = OmegaConf.create(
        {"source": "files", "train_file": str(xquad_file), "validation_file": None, "validation_fraction": 0.2,
         "split_seed": 0, "max_train_samples": 100, "max_eval_samples": 50}
    )
    splits = load_splits(data, hub_timeout=1)
    assert (len(splits.train), len(splits.validation)) == (100, 50)
    assert splits.report["train"].selected_out > 0
    assert not set(splits.train["context"]) & set(splits.validation["context"])


def test_fingerprint_follows_content(xquad):
    assert fingerprint(xquad) == fingerprint(xquad.copy())
    changed = xquad.copy()
    changed.loc[0, "question"] = changed.loc[0, "question"] + "?"
    assert fingerprint(changed) != fingerprint(xquad)


def v2_files(tmp_path):
    """Official SQuAD v2.0 JSON (is_impossible, plausible answers) for training, flat JSONL with empty answers for validation."""
    answerable = [record(f"a{i}", question=f"Where was Ada born? ({i})") for i in range(6)]
    impossible = [
        {"id": f"n{i}", "question": f"Where did Babbage die? ({i})", "is_impossible": True, "answers": [],
         "plausible_answers": [{"text": "London", "answer_start": 25}]}
        for i in range(3)
    ]
    payload = squad_json(answerable)
    payload["version"] = "v2.0"
    payload["data"][0]["paragraphs"][0]["qas"] += impossible
    train = tmp_path / "train.json"
    train.write_text(json.dumps(payload))
    validation = tmp_path / "validation.jsonl"
    rows = [record("va"), {**record("vn", question="Who was Ada's teacher?"), "answers": {"text": [], "answer_start": []}}]
    validation.write_text("\n".join(json.dumps(row) for row in rows))
    return train, validation


@pytest.mark.parametrize(("version_2", "expected"), [(None, True), (True, True), (False, False)])
def test_squad_v2_is_detected_and_can_be_overridden(tmp_path, version_2, expected):
    train, validation = v2_files(tmp_path)
    data = OmegaConf.create(
        {"source": "files", "train_file": str(train), "validation_file": str(validation), "version_2": version_2,
         "max_train_samples": None, "max_eval_samples": None}
    )
    splits = load_splits(data, hub_timeout=1)
    assert splits.version_2 is expected
    impossible = splits.train["answers"].map(lambda a: not a["text"]).sum()
    if expected:  # unanswerable questions are trained on and scored
        assert (len(splits.train), impossible, len(splits.validation)) == (9, 3, 2)
        assert splits.report["train"].unanswerable == 3 and splits.report["train"].unanswerable_dropped == 0
    else:  # left out, and counted
        assert (len(splits.train), impossible, len(splits.validation)) == (6, 0, 1)
        assert (splits.report["train"].unanswerable_dropped, splits.report["validation"].unanswerable_dropped) == (3, 1)


def test_answerable_data_stays_squad_v1_unless_asked(xquad_file):
    data = OmegaConf.create({"source": "files", "train_file": str(xquad_file), "validation_file": None, "validation_fraction": 0.2,
                             "split_seed": 0, "max_train_samples": None, "max_eval_samples": None, "version_2": None})
    assert load_splits(data, hub_timeout=1).version_2 is False
    data.version_2 = True
    assert load_splits(data, hub_timeout=1).version_2 is True
