"""Public data files qa-lab's benchmark, examples and tests use, fetched from their public sources and
checked against a pinned sha256, so a fresh machine needs nothing but network (or a mirror).

A file is looked for in the folders given, in QA_LAB_SHARED_DATA, and in the download cache
(QA_LAB_PUBLIC_DATA, default ~/.cache/qa-lab/public-data), under the same relative name
(`xquad-en/xquad.en.json`); only when it is in none of them is it fetched into the cache. The source is
`<base>/<owner>/<repo>/<branch>/<path>` with base https://raw.githubusercontent.com, or the mirror given in
QA_LAB_TEST_DATA_MIRROR, which keeps the rest of the path as it is. A file whose checksum differs is
refused and not kept.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from qa_lab.core.errors import DataError

GITHUB_RAW = "https://raw.githubusercontent.com"
MIRROR_ENV = "QA_LAB_TEST_DATA_MIRROR"  # a base URL that replaces GITHUB_RAW
SHARED_ENV = "QA_LAB_SHARED_DATA"  # a folder that already holds the files
CACHE_ENV = "QA_LAB_PUBLIC_DATA"  # where fetched files are kept
FETCH_TIMEOUT_SECONDS = 30  # per connection attempt and read: a mirror that hangs fails instead of blocking a run
CHUNK_BYTES = 1 << 20
_HOW_TO_GET = (
    f"give {SHARED_ENV}=<a folder that holds it>, or {MIRROR_ENV}=<base URL of a mirror of {GITHUB_RAW}>, "
    f"or run where {GITHUB_RAW} is reachable"
)


@dataclass(frozen=True)
class Source:
    repository: str  # owner/name on GitHub
    branch: str
    path: str  # inside the repository
    sha256: str

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/{self.repository}/{self.branch}/{urllib.parse.quote(self.path)}"


# the files, by their name in the shared data layout; sources and checksums as published with that data
FILES = {
    "xquad-en/xquad.en.json": Source(
        "google-deepmind/xquad", "master", "xquad.en.json",
        "e4c57d1c9143aaa1c5d265ba5987a65f4e69528d2a98f29d6e75019b10344f29",
    ),
    "squad-peer-predictions/bert-ensemble.json": Source(
        "rajpurkar/SQuAD-explorer", "master", "models/1.1/BERT (ensemble) (Google AI Language).json",
        "619e9d716d7f211eb1433841ecf2e8e0845f0fc46b59d08bff615f27d5d4601d",
    ),
    "squad-peer-predictions/match-lstm.json": Source(
        "rajpurkar/SQuAD-explorer", "master",
        "models/1.1/Match-LSTM with Ans-Ptr (Boundary+Ensemble) (Singapore Management University).json",
        "e91af6cccb21f06cc2820f94728f805cd5e5d000616ccdd18edd7be8101bc2a9",
    ),
    "squad-peer-predictions/logistic-regression-baseline.json": Source(
        "rajpurkar/SQuAD-explorer", "master", "models/1.1/Logistic Regression Baseline (Stanford University).json",
        "03bfd0bcf5285382f1cbf290875634b0224c0db5c06a8fbff5fa7e23c0ea7233",
    ),
}


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa-lab" / "public-data"
    return Path(os.environ.get(CACHE_ENV) or default)


def locate(name: str, folders: tuple[Path, ...] = ()) -> Path:
    """The file `name` (a key of FILES) from the first folder that has it, else fetched into the cache."""
    if name not in FILES:
        raise DataError(f"unknown public data file '{name}'", fix=f"one of {', '.join(FILES)}")
    shared = (Path(os.environ[SHARED_ENV]),) if os.environ.get(SHARED_ENV) else ()
    for folder in (*folders, *shared, cache_dir()):
        if (folder / name).is_file():
            return folder / name
    return fetch(name, cache_dir())


def fetch(name: str, into: Path) -> Path:
    """Download `name` into `into`, checking its sha256 on the way; nothing is kept unless it matches."""
    source = FILES[name]
    url = source.url(os.environ.get(MIRROR_ENV) or GITHUB_RAW)
    target = into / name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as staging:
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
                while chunk := response.read(CHUNK_BYTES):
                    digest.update(chunk)
                    staging.write(chunk)
        except (urllib.error.URLError, OSError) as error:
            Path(staging.name).unlink(missing_ok=True)
            reason = getattr(error, "reason", None) or error
            raise DataError(f"{name} is not on this machine and could not be fetched from {url} ({reason})", fix=_HOW_TO_GET) from None
    if digest.hexdigest() != source.sha256:
        Path(staging.name).unlink()
        raise DataError(
            f"{name} fetched from {url} has sha256 {digest.hexdigest()}, not the published {source.sha256}: refused, not kept",
            fix=f"check the mirror ({MIRROR_ENV}); {_HOW_TO_GET}",
        )
    os.replace(staging.name, target)
    return target
