"""The workers benchmark's arithmetic on known timelines: what it reports as each worker's busy time and
idle share, and the idle time while trials remained, which separates a batch barrier from the end of a
study (its measurements are in BENCHMARKS.md, never asserted here)."""

from __future__ import annotations

import json
import os

import pytest

from qa_lab.bench.workers import Span, idle, trial_spans

pytestmark = pytest.mark.unit


def test_an_asynchronous_worker_never_waits_while_trials_remain():
    spans = [Span(0, 0, 10), Span(1, 0, 2), Span(1, 2, 4), Span(1, 4, 6)]
    result = idle(spans)
    assert result[0] == {"busy_seconds": 10, "idle_share": 0, "idle_while_trials_remained_seconds": 0}
    assert result[1] == {"busy_seconds": 6, "idle_share": pytest.approx(0.4), "idle_while_trials_remained_seconds": 0}


def test_a_batch_barrier_is_idle_time_while_trials_remain():
    spans = [Span(0, 0, 10), Span(1, 0, 2), Span(0, 10, 12), Span(1, 10, 11)]  # the second batch waits for the long trial
    result = idle(spans)
    assert result[1]["idle_while_trials_remained_seconds"] == pytest.approx(8)
    assert result[1]["idle_share"] == pytest.approx(1 - 3 / 12) and result[0]["idle_while_trials_remained_seconds"] == 0


def test_trial_spans_come_from_the_run_folders(tmp_path):
    for job, (worker, wall, end) in enumerate([(None, 4.0, 1000.0), (None, 2.0, 1001.0), (1, 3.0, 1005.0)]):
        folder = tmp_path / str(job)
        folder.mkdir()
        summary = {"wall_seconds": wall} | ({"trial": {"number": job, "worker": worker}} if worker is not None else {})
        (folder / "summary.json").write_text(json.dumps(summary))
        os.utime(folder / "summary.json", (end, end))
    assert trial_spans(tmp_path, n_jobs=2) == [Span(0, 996.0, 1000.0), Span(1, 999.0, 1001.0), Span(1, 1002.0, 1005.0)]
