"""The records runs write and analysis reads back (core/records.py)."""

from __future__ import annotations

import pytest

from qa_lab.core.records import flatten, read_jsonl

pytestmark = pytest.mark.unit


def test_records_flatten_configs_and_skip_a_cut_line(tmp_path):
    assert flatten({"model": {"lr": 1e-4, "name": "x"}, "seed": 1}) == {"model.lr": 1e-4, "model.name": "x", "seed": 1}
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_jsonl(path) == ([{"epoch": 1}, {"epoch": 2}], 1)
    assert read_jsonl(tmp_path / "none.jsonl") == ([], 0)
