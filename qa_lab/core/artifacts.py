"""Run files written so that a crash never leaves half of one: temporary name, then rename.

A full disk (or quota, or a read-only file system) while writing is reported as a StorageError that says so,
where, and how to fix it; what was there before stays as it was.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qa_lab.core.errors import StorageError

MORE_ROOM = "free space on that disk, or give hydra.run.dir=<a folder on a disk with room> and run again"
WRITE_FAILURES = {  # errno -> (what happened, how to fix it)
    errno.ENOSPC: ("the disk is full", MORE_ROOM),
    errno.EDQUOT: ("the disk quota is used up", MORE_ROOM),
    errno.EROFS: ("the file system is read-only", "give hydra.run.dir=<a folder on a writable disk>"),
}


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp")
    with reported(path):
        try:
            with open(staging, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, path)
        finally:
            staging.unlink(missing_ok=True)  # only left when writing it failed


def write_json(path: str | Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=1, ensure_ascii=False))


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """The whole file again, renamed into place: a crash never leaves half a line (files stay small: one line
    per epoch)."""
    write_text(path, "".join(json.dumps(record) + "\n" for record in records))


def write_directory(path: str | Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh staging folder, then swap it in for `path`: the old one stays intact until the end."""
    path = Path(path)
    with reported(path):
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


@contextmanager
def reported(path: Path) -> Iterator[None]:
    """A full or read-only disk becomes a StorageError naming it, the path, what was kept and the fix."""
    kept = f"the previous {path.name}{'/' if path.is_dir() else ''} is intact" if path.exists() else "nothing half-written is left"
    try:
        yield
    except OSError as error:
        if error.errno not in WRITE_FAILURES:
            raise
        what, fix = WRITE_FAILURES[error.errno]
        raise StorageError(f"could not write {path.name}: {what} ({error.strerror}); {kept}", where=str(path), fix=fix) from None
