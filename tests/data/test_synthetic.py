"""Generated data: exact, seeded, split cleanly, and hard in the intended ways (distractors, long contexts,
unanswerable questions)."""

from __future__ import annotations

import os
import re
import string
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from qa_lab.core.conf import conf_file
from qa_lab.core.errors import ConfigError
from qa_lab.data.examples import fingerprint
from qa_lab.data.synthetic import (
    COLOURS,
    FILLER,
    KINDS,
    MONTHS,
    NAME_FORMS,
    ORG_SUFFIXES,
    PLACE_SUFFIXES,
    PRIZE_SUFFIXES,
    PRONOUNS,
    QUESTIONS_PER_PARAGRAPH,
    Kind,
    answer_type,
    make_synthetic,
)

pytestmark = pytest.mark.unit

WINDOW = 384  # data.max_length
LATE_TOKEN = 350  # an answer starting after this context token is out of reach of the first window
MONTH = "|".join(MONTHS)
NUMBER_START = r"(?<!\d)(?<!\d,)"  # not inside a number written with thousands separators
# Answer types recognisable from their text alone; an answer of one of these types must have another span
# of the same type in its context.
SPANS = {
    "date": rf"\b\d{{1,2}} (?:{MONTH}) \d{{4}}\b",
    "year": rf"{NUMBER_START}\d{{4}}(?!\d|,\d)",
    "measure": rf"{NUMBER_START}\d{{1,3}}(?:,\d{{3}})* (?:square kilometres|kilometres|metres)\b",
    "count": rf"{NUMBER_START}\d{{1,3}}(?:,\d{{3}})*(?!\d|,\d| (?:square|kilometres|metres|{MONTH}))",
    "colour": rf"\b(?:{'|'.join(COLOURS)})\b",
    "month": rf"\b(?:{MONTH})\b",
    "place": rf"\b[A-Z][a-z]+(?:{'|'.join(PLACE_SUFFIXES)})\b",
    "org": rf"\b[A-Z][a-z]+ (?:{'|'.join(ORG_SUFFIXES)})\b",
    "prize": rf"\b[A-Z][a-z]+ (?:{'|'.join(PRIZE_SUFFIXES)})\b",
    "river": r"\b[A-Z][a-z]+ River\b",
    "mountain": r"\bMount [A-Z][a-z]+\b",
}


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return make_synthetic(600, 200, seed=7, long_context_fraction=0.2)


@pytest.fixture(scope="module")
def with_unanswerable() -> dict[str, pd.DataFrame]:
    return make_synthetic(400, 400, seed=11, unanswerable_fraction=0.25)


def answered(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
    """(context, answer text, answer start) of every answer."""
    return [
        (context, text, start)
        for context, answers in zip(frame["context"], frame["answers"])
        for text, start in zip(answers["text"], answers["answer_start"])
    ]


def test_same_seed_same_data_other_seed_other_data():
    first, again, other = (make_synthetic(150, 50, seed=seed) for seed in (3, 3, 4))
    for split in ("train", "validation"):
        pd.testing.assert_frame_equal(first[split], again[split])
        assert set(first[split]["context"]).isdisjoint(other[split]["context"])


def test_same_data_in_every_process():
    """Caches are keyed by a fingerprint of the data, so string hashing must not change it."""
    code = (
        "from qa_lab.data.synthetic import make_synthetic; from qa_lab.data.examples import fingerprint; "
        "print(*(fingerprint(f) for f in make_synthetic(150, 50, seed=3, unanswerable_fraction=0.2).values()))"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    here = make_synthetic(150, 50, seed=3, unanswerable_fraction=0.2)
    assert done.stdout.split() == [fingerprint(frame) for frame in here.values()]


def test_validation_does_not_depend_on_the_training_size():
    pd.testing.assert_frame_equal(
        make_synthetic(50, 80, seed=3)["validation"], make_synthetic(500, 80, seed=3)["validation"]
    )


@pytest.mark.parametrize("sizes", [(0, 0), (1, 7), (333, 121)])
def test_exact_sizes_columns_and_ids_unique_across_splits(sizes):
    frames = make_synthetic(*sizes, seed=1, unanswerable_fraction=0.2)
    assert [len(frames["train"]), len(frames["validation"])] == list(sizes)
    assert all(list(frame.columns) == ["id", "title", "context", "question", "answers"] for frame in frames.values())
    ids = pd.concat([frames["train"]["id"], frames["validation"]["id"]])
    assert ids.is_unique and all(isinstance(i, str) for i in ids)


def test_answers_are_exact_clean_ascii_spans(data):
    for frame in data.values():
        for context, text, start in answered(frame):
            assert context[start : start + len(text)] == text
            assert text == text.strip() and text[-1] not in string.punctuation
        for column in ("context", "question", "title"):
            assert frame[column].map(str.isascii).all()
        assert all(len(a["text"]) == len(a["answer_start"]) == 1 for a in frame["answers"])


def test_several_questions_per_paragraph_none_repeated(data):
    sizes = data["train"].groupby("context").size()
    low, high = QUESTIONS_PER_PARAGRAPH
    assert sizes.max() <= high and (sizes < low).sum() <= 1  # only the last paragraph may be cut short
    assert not data["train"].duplicated(["context", "question"]).any()


def test_no_paragraph_or_name_shared_between_splits(data):
    train, validation = data["train"], data["validation"]
    assert set(train["context"]).isdisjoint(validation["context"])
    assert set(train["title"]).isdisjoint(validation["title"])
    templates = [t for kind in KINDS for group in kind.core + kind.optional for t in group]
    templates += [t for kind in KINDS for ts in kind.questions.values() for t in ts]
    templates += [*FILLER, *MONTHS, *(form for _, forms in NAME_FORMS.values() for form in forms)]
    templates += [word for pronouns in PRONOUNS for word in pronouns.values()]
    fixed = {word for template in templates for word in re.findall(r"[A-Z][a-z]+", template)}

    def names(frame: pd.DataFrame) -> set[str]:
        return {w for text in pd.concat([frame["context"], frame["question"]]) for w in re.findall(r"[A-Z][a-z]+", text)}

    assert names(train) & names(validation) <= fixed


@pytest.fixture(scope="module")
def default_shape() -> dict[str, pd.DataFrame]:
    """The data `python run.py` trains on (conf/data/synthetic.yaml): short paragraphs."""
    options = OmegaConf.to_container(conf_file("data", "synthetic.yaml").synthetic)
    return make_synthetic(**options)


@pytest.mark.parametrize("shape", ["data", "default_shape"])
def test_every_answer_has_a_same_type_distractor_in_its_paragraph(shape, request):
    data = request.getfixturevalue(shape)
    checked = 0
    for context, text, start in answered(data["train"]):
        kind = next((kind for kind, pattern in SPANS.items() if re.fullmatch(pattern, text)), None)
        if kind is None:  # people, reasons, fields...: see the structural test below
            continue
        checked += 1
        others = {match.group(0) for match in re.finditer(SPANS[kind], context)} - {text}
        assert others, (kind, text, context)
    assert checked > 0.5 * len(data["train"])


def test_every_fact_asked_is_stated_next_to_another_of_its_type():
    """Structurally, for every kind of subject: paraphrases state the same facts, and each fact that can be
    asked shares its paragraph with another value of the same answer type (the subject counts)."""

    def facts(kind: Kind, templates: tuple[str, ...]) -> set[str]:
        stated = [{f for _, f, _, _ in string.Formatter().parse(t) if f in kind.facts} for t in templates]
        assert all(fields == stated[0] for fields in stated), templates
        return stated[0]

    for kind in KINDS:
        assert set(kind.questions) <= set(kind.facts)
        core = set().union(*(facts(kind, group) for group in kind.core))
        for optional in [(), *kind.optional]:
            stated = core | (facts(kind, optional) if optional else set())
            types = [answer_type(kind.facts[f]) for f in stated] + [answer_type(kind.subject)]
            for fact in stated & set(kind.questions):
                assert types.count(answer_type(kind.facts[fact])) >= 2, (kind.subject, fact)


def test_long_contexts_put_answers_beyond_the_first_window(data, tokenizer):
    frame = data["train"]
    encoded = tokenizer(list(frame["context"].unique()), add_special_tokens=False, return_offsets_mapping=True)
    offsets = dict(zip(frame["context"].unique(), encoded["offset_mapping"]))
    long = {context for context, spans in offsets.items() if len(spans) > WINDOW}
    assert 0.1 < len(long) / len(offsets) < 0.35  # long_context_fraction=0.2
    starts = [
        next(index for index, (_, end) in enumerate(offsets[context]) if end > start)
        for context, _, start in answered(frame)
        if context in long
    ]
    assert sum(index > LATE_TOKEN for index in starts) > 0.25 * len(starts)

    ordinary = make_synthetic(300, 0, seed=7, long_context_fraction=0.0)["train"]["context"].unique()
    assert max(len(ids) for ids in tokenizer(list(ordinary), add_special_tokens=False)["input_ids"]) < WINDOW


def test_the_default_shape_is_short_with_some_contexts_past_one_window(default_shape, tokenizer):
    """conf's paragraphs: the stated fact sentences in the configured range, most paragraphs in one window of
    data.max_length, the long ones past it with answers in a later window."""
    data = conf_file("data", "synthetic.yaml")
    low, high = data.synthetic.fact_sentences
    frame = default_shape["train"]
    contexts = list(frame["context"].unique())
    sentences = [len(re.findall(r"[.?!](?: |$)", context)) for context in contexts]
    lengths = [len(ids) for ids in tokenizer(contexts, add_special_tokens=False)["input_ids"]]
    window = data.max_length  # a context longer than the whole window cannot fit in one
    long = {context for context, length in zip(contexts, lengths) if length > window}
    assert 0.05 < len(long) / len(contexts) < 0.2  # long_context_fraction=0.1
    ordinary = [count for context, count in zip(contexts, sentences) if context not in long]
    assert min(ordinary) >= 1 + low and max(ordinary) <= 1 + high + 2  # introduction + facts + up to 2 background
    assert sorted(lengths)[len(lengths) // 2] < window * 0.75
    encoded = tokenizer(contexts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    offsets = dict(zip(contexts, encoded))
    late = [next(i for i, (_, end) in enumerate(offsets[c]) if end > start) > window for c, _, start in answered(frame) if c in long]
    assert sum(late) > 0.2 * len(late)


def test_unanswerable_fraction_is_honoured(with_unanswerable, data):
    for frame in with_unanswerable.values():
        empty = frame["answers"].map(lambda a: a["text"] == [] and a["answer_start"] == [])
        assert empty.mean() == pytest.approx(0.25, abs=0.01)
        unanswerable = frame[empty]
        # both forms: a fact the paragraph leaves out, and the same question about a subject it never mentions
        about_subject = [title in question for title, question in zip(unanswerable["title"], unanswerable["question"])]
        assert 0 < sum(about_subject) < len(unanswerable)
        for context, text, start in answered(frame):
            assert context[start : start + len(text)] == text
    assert all(a["text"] for frame in data.values() for a in frame["answers"])  # unanswerable_fraction=0.0


@pytest.mark.parametrize(
    "arguments", [{"num_train": -1}, {"long_context_fraction": 1.5}, {"unanswerable_fraction": -0.1},
                  {"fact_sentences": [3, 2]}, {"fact_sentences": [0, 2]}, {"long_filler_words": -1}]
)
def test_invalid_arguments_are_config_errors(arguments):
    with pytest.raises(ConfigError):
        make_synthetic(**{"num_train": 10, "num_validation": 10, "seed": 0, **arguments})


def test_ten_thousand_questions_are_exact_and_unique():
    frames = make_synthetic(10_000, 0, seed=0, unanswerable_fraction=0.1)
    assert len(frames["train"]) == 10_000 and frames["train"]["id"].is_unique
