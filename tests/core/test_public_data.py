"""Public data fetched by checksum (core/public_data.py), against a real HTTP server on loopback that mirrors
raw.githubusercontent.com's layout: a good file is kept, a file with another checksum is refused and not
kept, and an unreachable mirror is one clear error that says how to get the data."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from qa_lab.core import public_data
from qa_lab.core.errors import DataError
from tests.helpers import XQUAD_NAME, free_port

pytestmark = pytest.mark.unit


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Iterator[Path]:
    """A loopback HTTP server over a folder laid out as <owner>/<repo>/<branch>/<path>; the cache and the
    shared folder point at empty places."""
    root = tmp_path / "mirror"
    handler = partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(public_data.MIRROR_ENV, f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv(public_data.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(public_data.SHARED_ENV, raising=False)
    yield root
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test output stays readable
        pass


def _serve(root: Path, name: str, content: bytes) -> None:
    source = public_data.FILES[name]
    path = root / source.repository / source.branch / source.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_a_good_file_is_fetched_checked_and_kept(mirror, xquad_file, tmp_path):
    _serve(mirror, XQUAD_NAME, xquad_file.read_bytes())
    fetched = public_data.locate(XQUAD_NAME)
    assert fetched == tmp_path / "cache" / XQUAD_NAME and fetched.read_bytes() == xquad_file.read_bytes()
    mirror_copy = mirror / "google-deepmind" / "xquad" / "master" / "xquad.en.json"
    mirror_copy.unlink()  # found in the cache from now on: no second download
    assert public_data.locate(XQUAD_NAME) == fetched


def test_a_name_with_spaces_and_brackets_is_url_encoded(mirror, peer_predictions):
    name = "squad-peer-predictions/bert-ensemble.json"  # "models/1.1/BERT (ensemble) (Google AI Language).json"
    _serve(mirror, name, peer_predictions["bert-ensemble.json"].read_bytes())
    assert public_data.locate(name).read_bytes() == peer_predictions["bert-ensemble.json"].read_bytes()


def test_a_file_with_another_checksum_is_refused_and_not_kept(mirror, xquad_file, tmp_path):
    _serve(mirror, XQUAD_NAME, xquad_file.read_bytes()[:-10] + b"tampered!!")
    with pytest.raises(DataError, match="has sha256 .*, not the published e4c57d1c.*: refused, not kept"):
        public_data.locate(XQUAD_NAME)
    cache = tmp_path / "cache" / "xquad-en"
    assert not cache.exists() or list(cache.iterdir()) == []  # no file, no partial download


def test_an_unreachable_mirror_is_one_clear_error(monkeypatch, tmp_path):
    port = free_port()  # nothing listens there
    monkeypatch.setenv(public_data.MIRROR_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv(public_data.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(public_data.SHARED_ENV, raising=False)
    with pytest.raises(DataError) as error:
        public_data.locate(XQUAD_NAME)
    message = error.value.message()
    assert message.startswith(f"{XQUAD_NAME} is not on this machine and could not be fetched from http://127.0.0.1:{port}/")
    assert "Connection refused" in message and "QA_LAB_SHARED_DATA=" in message and "QA_LAB_TEST_DATA_MIRROR=" in message
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_a_folder_that_holds_the_file_wins_over_the_cache(tmp_path, monkeypatch, xquad_file):
    monkeypatch.setenv(public_data.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(public_data.SHARED_ENV, str(xquad_file.parents[1]))
    assert public_data.locate(XQUAD_NAME) == xquad_file
    with pytest.raises(DataError, match="unknown public data file 'nope.json'"):
        public_data.locate("nope.json")
