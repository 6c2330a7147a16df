"""The example table every source becomes: one row per question with the columns id (str), title, context,
question, answers {text: [...], answer_start: [...]}; its unanswerable rows and its content fingerprint."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

COLUMNS = ["id", "title", "context", "question", "answers"]
REQUIRED = ["id", "context", "question", "answers"]


def unanswerable(frame: pd.DataFrame) -> np.ndarray:
    """Rows without any gold answer (SQuAD v2's unanswerable questions)."""
    return frame["answers"].map(lambda answers: len(answers["text"]) == 0).to_numpy(dtype=bool)


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of an example table: identical data gives the same key in every process."""
    columns = frame[["id", "question", "context"]].assign(answers=frame["answers"].map(json.dumps))
    hashes = pd.util.hash_pandas_object(columns, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()[:16]
