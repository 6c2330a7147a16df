"""The device benchmark's plumbing on this CPU (its `cpu` block: the tiny model, a few steps): it runs in a
fresh interpreter without importing Hydra, omegaconf, datasets, Optuna or W&B (a GPU machine may have
none of them), prints its table and a JSON line that agree, and refuses bad settings before any work.
Its speeds are for BENCHMARKS.md, measured on a GPU; never asserted here."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from qa_lab.bench.__main__ import device_main
from qa_lab.bench.device import device_settings, minilm_folder
from qa_lab.core.errors import EXIT_INPUT_ERROR
from tests.helpers import ROOT

HEAVY = ("hydra", "omegaconf", "datasets", "optuna", "wandb", "plotly", "mlflow")


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, message",
    [("stepz=3", "expected KEY=VALUE with KEY one of models, "), ("steps", "expected KEY=VALUE"),
     ("precisions=[fp16]", r"\['fp16'\] unknown; choose among fp32, bf16, each with or without \+compile"),
     ("quality_model=large", r"quality_model=large: not one of models \(tiny\)"),
     ("quality_precisions=[bf16+compile]", "choose among fp32 and bf16"),
     ("compile_backend=indcutor", "compile_backend=indcutor: not a torch.compile backend; choose among .*inductor")],
)
def test_a_bad_setting_is_refused(override, message):
    with pytest.raises(ValueError, match=message):
        device_settings([override], gpu=False)


@pytest.mark.unit
def test_without_a_gpu_the_cpu_block_applies():
    gpu, cpu = device_settings([], gpu=True), device_settings(["steps=2"], gpu=False)
    assert {"minilm", "bert-base"} <= gpu["models"].keys() and "bf16+compile" in gpu["precisions"]
    assert list(cpu["models"]) == ["tiny"] and cpu["steps"] == 2 and cpu["max_length"] < gpu["max_length"]


@pytest.mark.unit
def test_a_weights_folder_without_a_tokenizer_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no tokenizer.json there; give a folder where the model and its tokenizer were saved"):
        minilm_folder(tmp_path)


@pytest.mark.unit
def test_unusable_data_stops_before_the_timing_with_the_fix(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [{"paragraphs": [{"qas": [{"id": "1", "question": "q", "answers": []}]}]}]}', encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        device_main(["--data", str(broken)])
    assert stop.value.code == EXIT_INPUT_ERROR
    message = capsys.readouterr().err
    assert f"{broken}: SQuAD JSON entry without the field 'context'" in message and "Fix: expected official SQuAD JSON" in message


@pytest.mark.e2e
def test_device_benchmark_runs_on_the_cpu_with_light_imports_only(tmp_path, xquad_file):
    table = tmp_path / "device.md"
    script = (
        "import sys, json\n"
        "from qa_lab.bench.__main__ import main\n"
        f"code = main(['device', '--data', {str(xquad_file)!r}, '--out', {str(table)!r}, 'steps=2', 'eval_batches=1',\n"
        # the compiled case's plumbing (its width buckets, measured after the quality part) with the eager
        # backend: inductor's code generation would take minutes on a CPU
        "'precisions=[fp32, bf16, bf16+compile]', 'compile_backend=eager'])\n"
        f"print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    *_, summary_line, imported_line = done.stdout.strip().splitlines()
    assert json.loads(imported_line) == [], "the device benchmark imported heavy libraries"
    summary = json.loads(summary_line)
    assert summary["peak_tflops_fp32"] > 0 and summary["peak_tflops_bf16"] > 0
    assert list(summary["cases"]) == ["tiny fp32", "tiny bf16", "tiny bf16+compile"]  # the table's order, not the measuring order
    assert summary["cases"]["tiny fp32"]["compilations"] == 0 < summary["cases"]["tiny bf16+compile"]["compilations"]
    # every result is logged as it lands, the compiled case last: a run stopped while compiling keeps the rest
    logged = [line.split("] ", 1)[1].split(":")[0] for line in done.stderr.splitlines() if "[qa_lab.bench.device]" in line]
    assert logged[1:] == ["tiny fp32", "tiny bf16", "quality, fp32", "quality, bf16", "tiny bf16+compile"], logged
    assert set(summary["quality"]) == {"fp32", "bf16"}
    assert summary["f1_gap_bf16"] == pytest.approx(summary["quality"]["bf16"]["f1"] - summary["quality"]["fp32"]["f1"], abs=1e-3)
    report = table.read_text(encoding="utf-8")
    for precision, run in summary["quality"].items():
        assert 0 <= run["exact_match"] <= run["f1"] <= 100 and math.isfinite(run["train_loss"])
        assert f"| {precision} | {run['exact_match']:.2f} | {run['f1']:.2f} |" in report
    for case, run in summary["cases"].items():
        assert run["windows_per_second"] > 0 and run["eval_windows_per_second"] > 0 and 0 < run["mfu"] < 1
        row = next(line for line in report.splitlines() if line.startswith(f"| {case} |"))
        assert row.split(" | ")[1] == f"{run['windows_per_second']:.0f}"  # the table shows the JSON line's numbers
