"""trainer.compile on the tiny model: the run trains and scores compiled, and the width buckets hold (the
second epoch, which meets only shapes the first one met, compiles nothing new; run.log counts the graphs).
The eager backend captures the same graphs as inductor without generating code (README's "Why the
defaults" records an inductor run). Whether compiling pays off is never asserted here."""

from __future__ import annotations

import json
import math
import re

import pytest

from tests.helpers import TINY_RUN, run_py

pytestmark = pytest.mark.e2e


def test_a_compiled_run_compiles_each_bucket_once(tmp_path):
    run_dir = tmp_path / "run"
    done = run_py(run_dir, *TINY_RUN, "data.max_length=64", "data.stride=16", "data.max_question_tokens=15", "trainer.compile=true", "trainer.compile_bucket=64",
                  "trainer.compile_backend=eager")  # graphs captured as inductor's would be, without minutes of code generation
    assert done.returncode == 0, done.stderr[-3000:]
    counts = [int(n) for n in re.findall(r"torch.compile: (\d+) graphs so far", (run_dir / "run.log").read_text(encoding="utf-8"))]
    assert len(counts) == 2 and counts[0] >= 2, counts  # one line per epoch; training and evaluation graphs
    assert counts[1] == counts[0], f"epoch 2 compiled {counts[1] - counts[0]} new graph(s): widths escape the buckets"
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(epochs) == 2 and all(math.isfinite(epoch["train_loss"]) and 0 <= epoch["f1"] <= 100 for epoch in epochs)
