"""Tokenised windows cached on disk, keyed by everything that changes them: the tokenizer's content, the
window geometry, the data's content hash and the code of this package that makes and stores them.

Concurrent builders (sweep workers) wait for one build under a file lock; an entry appears by an atomic
rename, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock
from transformers import PreTrainedTokenizerBase

from qa_lab.data.examples import fingerprint
from qa_lab.features.windows import FeatureStats, Windows, WindowSpec, tokenize_windows

log = logging.getLogger(__name__)

# the code that makes the windows and stores them: an edit to either invalidates every entry
CODE_VERSION = hashlib.sha256(b"".join(Path(__file__).with_name(name).read_bytes() for name in ("windows.py", "cache.py"))).hexdigest()[:12]


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A content hash of the tokenizer (vocabulary, normaliser, special tokens, padding side).

    It runs on every cache lookup, so it hashes the serialised tokenizer as written instead of re-parsing
    it (parsing a large vocabulary costs a good part of a cache hit): the `tokenizers` library writes the
    per-call truncation and padding settings first and what the tokenizer is from "added_tokens" on.
    """
    state = tokenizer.backend_tokenizer.to_str()
    content = state[max(state.find('"added_tokens"'), 0):] + tokenizer.padding_side + type(tokenizer).__name__
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def cached_windows(
    tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, spec: WindowSpec, keep_offsets: bool, cache_dir: str | Path
) -> tuple[Windows, bool]:
    """Windows from the on-disk cache, or built and stored there; returns (windows, cache_hit).

    A file lock makes concurrent builders (sweep workers) wait for one build; the cache entry
    appears by an atomic rename, so a reader never sees half of it.
    """
    key_fields = {
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "data": fingerprint(frame),
        "offsets": keep_offsets,
        "code": CODE_VERSION,
        **spec.key(),
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:20]
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    entry = cache_dir / key
    with FileLock(str(entry) + ".lock"):
        hit = entry.is_dir()
        if hit:
            windows = _load(entry)
        else:
            windows = tokenize_windows(tokenizer, frame, spec, keep_offsets)
            _store(windows, entry, key_fields)
    if windows.stats.questions_truncated:
        log.warning(
            "%d of %d questions are longer than data.max_question_tokens=%d tokens and were cut to that length "
            "(questions_truncated in data_report.json)", windows.stats.questions_truncated, len(frame), spec.max_question_tokens,
        )
    return windows, hit


def _store(windows: Windows, entry: Path, key_fields: dict) -> None:
    staging = Path(tempfile.mkdtemp(prefix=entry.name + ".", dir=entry.parent))
    try:
        arrays = {f.name: getattr(windows, f.name) for f in fields(windows)}
        arrays = {name: value for name, value in arrays.items() if isinstance(value, np.ndarray)}
        np.savez(staging / "windows.npz", **arrays)
        (staging / "meta.json").write_text(json.dumps({"key": key_fields, "stats": asdict(windows.stats)}, indent=1))
        os.replace(staging, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load(entry: Path) -> Windows:
    with np.load(entry / "windows.npz") as arrays:
        loaded = {name: arrays[name] for name in arrays.files}
    stats = FeatureStats(**json.loads((entry / "meta.json").read_text())["stats"])
    return Windows(
        input_ids=loaded["input_ids"],
        token_type_ids=loaded.get("token_type_ids"),
        lengths=loaded["lengths"],
        example_index=loaded["example_index"],
        start_positions=loaded["start_positions"],
        end_positions=loaded["end_positions"],
        cls_index=loaded["cls_index"],
        offsets=loaded.get("offsets"),
        stats=stats,
    )
