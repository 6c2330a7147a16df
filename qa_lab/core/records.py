"""The records a run writes and analysis reads back: metric names, JSON lines, dotted config keys.

They sit here because both sides use them: the training run writes metrics.jsonl and summary.json with
these names, checkpoints compare flattened configs, and `qa-lab compare` and the benchmark read the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# the official SQuAD v2.0 scores logged beside exact_match and f1, and the null threshold the answers used
V2_KEYS = ("HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh")
THRESHOLD_KEY = "null_threshold"
EPOCH_SCORES = ("exact_match", "f1", *V2_KEYS, THRESHOLD_KEY)  # what an epoch's record takes from its evaluation


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict with dotted keys (model.lr)."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat |= flatten(inner, f"{prefix}{key}.")
        return flat
    return {prefix[:-1]: value}


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """metrics.jsonl records, and how many lines could not be read (e.g. one cut by a crash)."""
    if not path.is_file():
        return [], 0
    records, skipped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            skipped += 1
    return records, skipped
