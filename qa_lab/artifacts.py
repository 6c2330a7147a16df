"""Run files written so that a crash never leaves half of one: temporary name, then rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp")
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


def write_json(path: str | Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=1, ensure_ascii=False))


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """One line per call, flushed to disk at once, so a reader (or a crash) sees whole lines only."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_directory(path: str | Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh staging folder, then swap it in for `path`: the old one stays intact until the end."""
    path = Path(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(staging)
        retired = path.with_name(f".{path.name}.old")
        if path.exists():
            os.replace(path, retired)
        os.replace(staging, path)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
