"""The benchmark's plumbing, on the tiny model so it runs in seconds: its settings are checked before any
work, it prints the issue's JSON line, the report shows that line's numbers, and the two span searches
agree on logits of questions that span several windows. The ratios themselves are BENCHMARKS.md's
business (`python -m qa_lab.bench` on MiniLM), never asserted here."""

from __future__ import annotations

import json
import re

import pytest

from qa_lab.bench.settings import bench_settings
from tests.helpers import run

SUMMARY_KEYS = {
    "train_speedup", "postprocess_speedup", "postprocess_speedup_dev_scale", "cache_prep_ratio", "f1_qa_lab", "f1_reference",
    "trainer_default_speedup", "trainer_best_speedup", "f1_trainer_default", "f1_trainer_best", "f1_gap_trainer_default", "f1_gap_trainer_best",
}


@pytest.mark.unit
def test_settings_are_the_defaults_then_quick_then_overrides():
    assert bench_settings(False, []).steps > bench_settings(True, []).steps  # quick shortens the run
    settings = bench_settings(True, ["steps=5", "lr=1", "eval_questions=null"])
    assert (settings.steps, settings.lr, settings.eval_questions) == (5, 1, None)


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, message",
    [("stepz=3", "expected KEY=VALUE with KEY one of model, "), ("steps", "expected KEY=VALUE"), ("steps=abc", "steps takes int values"),
     ("quick=1", "expected KEY=VALUE"), ("seeds=42", "seeds takes list values"), ("seeds=[]", "non-empty list of integers")],
)
def test_a_bad_setting_is_refused_before_any_work(override, message):
    with pytest.raises(ValueError, match=message):
        bench_settings(False, [override])


@pytest.mark.e2e
def test_tiny_benchmark_prints_its_summary_and_writes_the_report(tmp_path, xquad_file):
    out = tmp_path / "BENCHMARKS.md"
    done = run(["-m", "qa_lab.bench", "--quick", "model=tiny", "max_length=128", "stride=32", "steps=2",
                "eval_questions=30", "span_search_questions=100", "seeds=[1,2]", "bf16=true", "adamw_probe_steps=2", f"data_file={xquad_file}", f"out={out}"], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["bf16_autocast_speedup"] > 0 and summary["adamw_fused_step_speedup"] > 0  # measured, whichever way they go here
    for pipeline in ("qa_lab", "reference"):  # one run per seed, scores averaged
        per_seed = summary[f"f1_{pipeline}_per_seed"]
        assert len(per_seed) == 2 and summary[f"f1_{pipeline}"] == pytest.approx(sum(per_seed) / 2, abs=1e-3)
    assert summary["identical_predictions"] is True  # 30 questions in windows of 128: several windows each
    assert 0 < summary["cache_prep_ratio"] < 1
    report = out.read_text(encoding="utf-8")
    assert "30 evaluation questions" in report and "2 optimiser steps" in report and "seeds 1, 2" in report and "the seeds pad all to 128" in report
    # the report's numbers are the JSON line's (which is rounded to 4 decimals)
    shown = {
        "train_speedup": r"\| training samples/s, qa-lab / seeds \| ([\d.]+)x \|",
        "trainer_default_speedup": r"\| training samples/s, qa-lab / HF Trainer with its defaults \| ([\d.]+)x",
        "f1_gap_trainer_best": r"\| training samples/s, qa-lab / HF Trainer with its best flags \| [\d.]+x \(F1 ([+-][\d.]+)\)",
        "postprocess_speedup": r"\| postprocessing \+ metric, seeds / qa-lab \(same logits, 30 questions, \d+ windows\) \| ([\d.]+)x",
        # the 30 questions 4 times over: the fewest copies that reach span_search_questions=100
        "postprocess_speedup_dev_scale": r"\| postprocessing \+ metric, seeds / qa-lab \(same logits, 120 questions, \d+ windows\) \| ([\d.]+)x",
        "f1_qa_lab": r"\| F1 \| ([\d.]+) \|",
        # the last column: a bf16 run, when the probe found autocast faster, sits between the two
        "f1_reference": r"\| F1 \| (?:[\d.]+ \| )+?([\d.]+) \|$",
    }
    for key, pattern in shown.items():
        value = re.search(pattern, report, re.MULTILINE)
        assert value, f"{key} is not in the report"
        assert float(value.group(1)) == pytest.approx(summary[key], abs=0.051), key
    for peer in ("trainer_default", "trainer_best"):  # Trainer trained and was scored: a speed and an F1 of its own
        assert summary[f"{peer}_speedup"] > 0 and summary[f"f1_gap_{peer}"] == pytest.approx(summary["f1_qa_lab"] - summary[f"f1_{peer}"], abs=1e-3)
