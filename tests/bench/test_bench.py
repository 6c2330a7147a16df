"""The benchmark's plumbing, on the tiny model so it runs in seconds: its settings are checked before any
work, it prints the issue's JSON line, the report shows that line's numbers, and the two span searches
agree on logits of questions that span several windows. The ratios themselves are BENCHMARKS.md's
business (`python -m qa_lab.bench` on MiniLM), never asserted here."""

from __future__ import annotations

import json
import re

import datasets
import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering, Trainer, TrainingArguments

from qa_lab.bench.__main__ import peers_main
from qa_lab.bench.benchmark import benchmark, one_epoch
from qa_lab.bench.reference import Features
from qa_lab.bench.settings import bench_settings
from qa_lab.bench.trainer_peer import predict_in_order
from qa_lab.core.conf import register_resolvers
from qa_lab.core.errors import ConfigError
from tests.helpers import run

SUMMARY_KEYS = {
    "train_speedup", "postprocess_speedup", "postprocess_speedup_dev_scale", "cache_prep_ratio", "f1_qa_lab", "f1_reference",
    "trainer_default_speedup", "trainer_best_speedup", "f1_trainer_default", "f1_trainer_best", "f1_gap_trainer_default", "f1_gap_trainer_best",
}


@pytest.mark.unit
def test_one_epoch_keeps_the_first_questions_whose_windows_fit_the_steps():
    windows_of = np.repeat(np.arange(4), [2, 1, 3, 1])  # questions 0..3 with 2, 1, 3 and 1 windows
    assert [one_epoch(windows_of, slots) for slots in (1, 2, 5, 6, 7, 100)] == [0, 1, 2, 3, 4, 4]


@pytest.mark.unit
def test_steps_too_few_for_one_question_are_a_config_error(xquad_file):
    register_resolvers()  # the model group's ${package_path:...}, as `python -m qa_lab.bench` registers them
    settings = bench_settings(True, ["model=tiny", "max_length=128", "stride=32", "steps=1", "batch_size=1", "peak_matrix_size=64", f"data_file={xquad_file}"])
    with pytest.raises(ConfigError, match="steps x batch_size = 1 windows are fewer than the first training question's") as error:
        benchmark(settings)  # XQuAD's first training context needs several windows of 128 tokens
    assert error.value.where == "one_epoch" and "one_epoch=false" in error.value.fix


@pytest.mark.unit
def test_a_missing_data_file_is_one_message_and_exit_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        peers_main(["--quick", "peak_matrix_size=64", f"data_file={tmp_path / 'missing.json'}", f"out={tmp_path / 'BENCHMARKS.md'}"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'missing.json'}: file not found" in err and "Fix:" in err and "Traceback" not in err
    assert not (tmp_path / "BENCHMARKS.md").exists()


@pytest.mark.unit
def test_settings_are_the_defaults_then_quick_then_overrides():
    assert bench_settings(False, []).steps > bench_settings(True, []).steps  # quick shortens the run
    settings = bench_settings(True, ["steps=5", "lr=1", "eval_questions=null"])
    assert (settings.steps, settings.lr, settings.eval_questions) == (5, 1, None)


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, message",
    [("stepz=3", "expected KEY=VALUE with KEY one of model, "), ("steps", "expected KEY=VALUE"), ("steps=abc", "steps takes int values"),
     ("quick=1", "expected KEY=VALUE"), ("seeds=42", "seeds takes list values"), ("seeds=[]", "non-empty list of integers"),
     ("compile_backend=indcutor", "compile_backend=indcutor: not a torch.compile backend; choose among .*inductor")],
)
def test_a_bad_setting_is_refused_before_any_work(override, message):
    with pytest.raises(ValueError, match=message):
        bench_settings(False, [override])


@pytest.mark.e2e
def test_tiny_benchmark_prints_its_summary_and_writes_the_report(tmp_path, xquad_file):
    out = tmp_path / "BENCHMARKS.md"
    done = run(["-m", "qa_lab.bench", "--quick", "model=tiny", "max_length=128", "stride=32", "steps=2",
                "eval_questions=30", "span_search_questions=100", "seeds=[1,2]", "bf16=true", "adamw_probe_steps=2",
                "padded_control=true", "compile_probe=true", "compile_backend=eager", "probe_batches=1", f"data_file={xquad_file}", f"out={out}"], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert SUMMARY_KEYS <= summary.keys()
    # measured, whichever way they go here
    assert summary["bf16_autocast_speedup"] > 0 and summary["adamw_fused_step_speedup"] > 0 and summary["compile_speedup"] > 0
    for pipeline in ("qa_lab", "reference"):  # one run per seed, scores averaged
        per_seed = summary[f"f1_{pipeline}_per_seed"]
        assert len(per_seed) == 2 and summary[f"f1_{pipeline}"] == pytest.approx(sum(per_seed) / 2, abs=1e-3)
    assert summary["identical_predictions"] is True  # 30 questions in windows of 128: several windows each
    assert 0 < summary["cache_prep_ratio"] < 1
    report = out.read_text(encoding="utf-8")
    assert "30 evaluation questions" in report and "2 optimiser steps" in report and "seeds 1, 2" in report and "the seeds pad all to 128" in report
    # one_epoch: the training questions were cut so that their windows make the 2 steps of 16 one epoch
    epoch = re.search(r"one epoch: the training questions are the first (\d+) of the split's (\d+), whose (\d+) windows fill the steps", report)
    assert epoch, "the report does not say what the steps cover"
    kept, split, windows = map(int, epoch.groups())
    assert kept < split and 16 < windows <= 32
    # the report's numbers are the JSON line's (which is rounded to 4 decimals)
    shown = {
        "train_speedup": r"\| training samples/s, qa-lab / seeds \| ([\d.]+)x \|",
        "trainer_default_speedup": r"\| training samples/s, qa-lab / HF Trainer with its defaults \| ([\d.]+)x",
        "f1_gap_trainer_best": r"\| training samples/s, qa-lab / HF Trainer with its best flags \| [\d.]+x \(F1 ([+-][\d.]+) ± [\d.]+; per seed",
        "padding_slowdown": r"\| training samples/s, qa-lab / qa-lab padding every batch to max_length \| ([\d.]+)x",
        "compile_speedup": r"\| training with trainer.compile / eager \(forward \+ backward, 1 qa-lab batches, after \d+ s of compiling\) \| ([\d.]+)x",
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
    for gap in ("f1_gap_trainer_default", "f1_gap_trainer_best", "f1_gap_reference", "f1_gap_padded"):  # the mean gap, its seeds and its standard error
        per_seed = np.asarray(summary[f"{gap}_per_seed"])
        assert len(per_seed) == 2 and summary[gap] == pytest.approx(per_seed.mean(), abs=1e-3)
        assert summary[f"{gap}_se"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2, abs=1e-3)  # sd / sqrt(2) of two values


@pytest.mark.unit
def test_trainer_with_length_grouping_is_scored_on_logits_in_the_windows_order(tokenizer, tmp_path):
    """Trainer's length grouping also reorders `predict` (its evaluation sampler): unhandled, its F1 would
    score other windows' logits."""
    model = BertForQuestionAnswering(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).eval()
    ids = torch.randint(1000, 2000, (12, 24), generator=torch.Generator().manual_seed(0))
    features = Features({"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}, np.zeros((12, 24, 2)), np.arange(12))
    arguments = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=2, report_to="none", train_sampling_strategy="group_by_length", disable_tqdm=True, dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=arguments, processing_class=tokenizer)
    with torch.no_grad():
        expected = model(**features.tensors).start_logits.numpy()
    grouped = trainer.predict(datasets.Dataset.from_dict({key: value.numpy() for key, value in features.tensors.items()})).predictions[0]
    assert not np.allclose(grouped, expected, atol=1e-5)  # transformers' own order: why predict_in_order exists
    start, _ = predict_in_order(trainer, features)
    np.testing.assert_allclose(start, expected, atol=1e-5)
