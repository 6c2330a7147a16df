"""The device benchmark's plumbing on this CPU (its `cpu` block: the tiny model, a few steps): it runs in a
fresh interpreter without importing Hydra, omegaconf, datasets, Optuna or W&B (a GPU machine may have
none of them), prints its table and a JSON line that agree, and refuses bad settings before any work.
Its speeds are for BENCHMARKS.md, measured on a GPU; never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qa_lab.bench.device import device_settings
from tests.helpers import ROOT

HEAVY = ("hydra", "omegaconf", "datasets", "optuna", "wandb", "plotly", "mlflow")


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, message",
    [("stepz=3", "expected KEY=VALUE with KEY one of models, "), ("steps", "expected KEY=VALUE"),
     ("precisions=[fp16]", r"\['fp16'\] unknown; choose among fp32, bf16, each with or without \+compile")],
)
def test_a_bad_setting_is_refused(override, message):
    with pytest.raises(ValueError, match=message):
        device_settings([override], gpu=False)


@pytest.mark.unit
def test_without_a_gpu_the_cpu_block_applies():
    gpu, cpu = device_settings([], gpu=True), device_settings(["steps=2"], gpu=False)
    assert {"minilm", "bert-base"} <= gpu["models"].keys() and "bf16+compile" in gpu["precisions"]
    assert list(cpu["models"]) == ["tiny"] and cpu["steps"] == 2 and cpu["max_length"] < gpu["max_length"]


@pytest.mark.e2e
def test_device_benchmark_runs_on_the_cpu_with_light_imports_only(tmp_path):
    table = tmp_path / "device.md"
    script = (
        "import sys, json\n"
        "from qa_lab.bench.__main__ import main\n"
        f"code = main(['device', '--out', {str(table)!r}, 'steps=2', 'eval_batches=1'])\n"
        f"print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    *_, summary_line, imported_line = done.stdout.strip().splitlines()
    assert json.loads(imported_line) == [], "the device benchmark imported heavy libraries"
    summary = json.loads(summary_line)
    assert summary["peak_tflops_fp32"] > 0 and summary["peak_tflops_bf16"] > 0
    assert set(summary["cases"]) == {"tiny fp32", "tiny bf16"}
    report = table.read_text(encoding="utf-8")
    for case, run in summary["cases"].items():
        assert run["windows_per_second"] > 0 and run["eval_windows_per_second"] > 0 and 0 < run["mfu"] < 1
        row = next(line for line in report.splitlines() if line.startswith(f"| {case} |"))
        assert row.split(" | ")[1] == f"{run['windows_per_second']:.0f}"  # the table shows the JSON line's numbers
