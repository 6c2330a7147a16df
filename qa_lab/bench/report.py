"""The benchmark's results as BENCHMARKS.md (tables of the pipelines and the ratios against their targets)
and as the one JSON line it prints last."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa_lab.core import provenance

if TYPE_CHECKING:  # the device benchmark imports this module where omegaconf is not installed
    from omegaconf import DictConfig

HEADINGS = {
    "qa_lab": "qa-lab",
    "qa_lab_bf16": "qa-lab, bf16 autocast",
    "qa_lab_fused": "qa-lab, fused AdamW",
    "trainer_best": "HF Trainer, best flags",
    "trainer_default": "HF Trainer, defaults",
    "reference": "seeds' pipeline",
}
# Trainer as run_qa.py runs it: its defaults (every window padded to max_length), then its best flags
# (dynamic padding + length grouping), with qa-lab's targets against each
PEERS = {"trainer_default": ("defaults", 2.5), "trainer_best": ("best flags", 1.0)}
ROWS = (  # label, key of a pipeline's results, format
    ("training samples/s", "samples_per_second", "{:.2f}"),
    ("non-padding tokens/s", "tokens_per_second", "{:.0f}"),
    ("model FLOP utilisation", "mfu", "{:.1%}"),
    ("training seconds", "train_seconds", "{:.1f}"),
    ("evaluation seconds (predict + postprocess + metric)", "eval_seconds", "{:.1f}"),
    ("peak resident memory above the run's start (MB)", "peak_mb", "{:.0f}"),
    ("EM", "exact_match", "{:.2f}"),
    ("F1", "f1", "{:.2f}"),
)


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    runs, search, prep = results["runs"], results["span_search"], results["data_preparation_seconds"]
    summary = {
        "train_speedup": runs["qa_lab"]["samples_per_second"] / runs["reference"]["samples_per_second"],
        "postprocess_speedup": _seconds(search["benchmark"], "reference") / _seconds(search["benchmark"], "qa_lab"),
        "postprocess_speedup_dev_scale": _seconds(search["dev_scale"], "reference") / _seconds(search["dev_scale"], "qa_lab"),
        "cache_prep_ratio": prep["cache_hit"] / prep["first"],
        "f1_qa_lab": runs["qa_lab"]["f1"],
        "f1_reference": runs["reference"]["f1"],
        "f1_qa_lab_per_seed": runs["qa_lab"]["f1_per_seed"],
        "f1_reference_per_seed": runs["reference"]["f1_per_seed"],
        "identical_predictions": search["benchmark"]["identical_predictions"] and search["dev_scale"]["identical_predictions"],
    }
    for peer in PEERS:
        summary[f"{peer}_speedup"] = runs["qa_lab"]["samples_per_second"] / runs[peer]["samples_per_second"]
        summary[f"f1_{peer}"] = runs[peer]["f1"]
        summary[f"f1_gap_{peer}"] = runs["qa_lab"]["f1"] - runs[peer]["f1"]
    if "bf16_probe" in results:
        summary["bf16_autocast_speedup"] = results["bf16_probe"]["speedup"]
    if "adamw_probe" in results:
        summary["adamw_fused_step_speedup"] = results["adamw_probe"]["speedup"]
    if "qa_lab_fused" in runs:
        summary["train_speedup_fused"] = runs["qa_lab_fused"]["samples_per_second"] / runs["qa_lab"]["samples_per_second"]
        summary["f1_qa_lab_fused"] = runs["qa_lab_fused"]["f1"]
    if "qa_lab_bf16" in runs:
        summary["train_speedup_bf16"] = runs["qa_lab_bf16"]["samples_per_second"] / runs["reference"]["samples_per_second"]
        summary["f1_qa_lab_bf16"] = runs["qa_lab_bf16"]["f1"]
    return summary


def _seconds(timings: dict[str, Any], pipeline: str) -> float:
    """Span search + metric of one pipeline."""
    return timings[f"{pipeline}_postprocess_seconds"] + timings[f"{pipeline}_metric_seconds"]


def markdown(settings: DictConfig, results: dict[str, Any], summary: dict[str, Any], quick: bool) -> str:
    runs = results["runs"]
    names = [name for name in HEADINGS if name in runs]
    lines = [
        "# Benchmark: qa-lab against Hugging Face Trainer and the seeds' pipeline",
        "",
        *_setup_paragraphs(settings, results, quick),
        "| | " + " | ".join(HEADINGS[name] for name in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [f"| {label} | " + " | ".join(fmt.format(runs[name][key]) for name in names) + " |" for label, key, fmt in ROWS]
    return "\n".join([*lines, "", *_ratio_rows(settings, results, summary), ""])


def _setup_paragraphs(settings: DictConfig, results: dict[str, Any], quick: bool) -> list[str]:
    """Where and how it ran: machine, versions, commit; data, windows, steps and seeds."""
    described = provenance.describe()
    versions = ", ".join(f"{name} {described['versions'][name]}" for name in ("torch", "transformers", "accelerate", "numpy"))
    return [
        f"`python -m qa_lab.bench{' --quick' if quick else ''}` on {date.today().isoformat()}: {described['machine']['platform']}, "
        f"{described['machine']['cpu_threads']} CPU threads, measured peak {results['peak_gflops']['fp32']:.0f} GFLOP/s fp32 and "
        f"{results['peak_gflops']['bf16']:.0f} GFLOP/s bf16 ({settings.peak_matrix_size}x{settings.peak_matrix_size} matrix product); "
        f"{versions}; qa-lab {described['git_commit']}.",
        "",
        f"`model={settings.model}` on {Path(settings.data_file).name}, split by article: {results['train_examples']} training and "
        f"{results['validation_examples']} evaluation questions; windows of {settings.max_length} tokens, stride "
        f"{settings.stride}, batch {settings.batch_size}, {settings.steps} optimiser steps at lr {settings.lr}{_epoch(results)}; "
        f"seeds {', '.join(map(str, settings.seeds))} (speeds, times and scores are their means, memory the highest). "
        f"All start from the same weights and train with the seeds' recipe (AdamW, linear decay without warm-up, no gradient clipping); "
        "Trainer runs as run_qa.py runs it (its preprocessing, `report_to=\"none\"`), with its defaults (every window padded "
        "to max_length) and with its best flags (dynamic padding + `group_by_length`). "
        f"Training windows hold {results['windows']['mean_train_tokens']:.0f} tokens on average; the seeds pad all to {settings.max_length}.",
        "",
    ]


def _epoch(results: dict[str, Any]) -> str:
    """What the steps cover, when the training questions were cut to one epoch (settings.one_epoch)."""
    if "one_epoch_of" not in results:
        return ""
    return (f" (one epoch: the training questions are the first {results['train_examples']} of the split's "
            f"{results['one_epoch_of']}, whose {results['windows']['train']} windows fill the steps; data preparation is timed on all)")


def _ratio_rows(settings: DictConfig, results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The ratios table: each measured ratio against its target."""
    search, prep = results["span_search"], results["data_preparation_seconds"]
    lines = [
        "| ratio | value | target |",
        "|---|---|---|",
        *(
            f"| training samples/s, qa-lab / HF Trainer with its {label} | {summary[f'{peer}_speedup']:.2f}x "
            f"(F1 {summary[f'f1_gap_{peer}']:+.2f}) | >= {target}x, F1 within 1 point |"
            for peer, (label, target) in PEERS.items()
        ),
        f"| training samples/s, qa-lab / seeds | {summary['train_speedup']:.2f}x | >= 2.0x, F1 within 1 point |",
        f"| F1 qa-lab - seeds | {summary['f1_qa_lab'] - summary['f1_reference']:+.2f} (per seed: "
        + ", ".join(f"{ours - theirs:+.2f}" for ours, theirs in zip(summary["f1_qa_lab_per_seed"], summary["f1_reference_per_seed"]))
        + ") | within +-1 |",
    ]
    if "train_speedup_bf16" in summary:
        lines.append(f"| training samples/s, qa-lab bf16 / seeds | {summary['train_speedup_bf16']:.2f}x (F1 {summary['f1_qa_lab_bf16']:.2f}) | measured |")
    elif "bf16_probe" in results:
        probe = results["bf16_probe"]
        lines.append(
            f"| training with bf16 autocast / fp32 (forward + backward, {settings.bf16_probe_batches} qa-lab batches) | "
            f"{probe['speedup']:.2f}x ({probe['bf16_seconds']:.1f} s vs {probe['fp32_seconds']:.1f} s): slower, so not kept "
            "and no bf16 run | measured |"
        )
    if "adamw_probe" in results:
        probe = results["adamw_probe"]
        lines.append(
            f"| AdamW step, fused / torch's default here ({settings.adamw_probe_steps} steps) | {probe['speedup']:.2f}x "
            f"({1000 * probe['fused_seconds']:.0f} ms vs {1000 * probe['default_seconds']:.0f} ms) | measured |"
        )
    if "train_speedup_fused" in summary:
        lines.append(
            f"| training samples/s, qa-lab fused AdamW / qa-lab | {summary['train_speedup_fused']:.2f}x "
            f"(F1 {summary['f1_qa_lab_fused'] - summary['f1_qa_lab']:+.2f}) | measured |"
        )
    return lines + [
        *(
            f"| postprocessing + metric, seeds / qa-lab (same logits, {timings['questions']} questions, {timings['windows']} windows) | "
            f"{_seconds(timings, 'reference') / _seconds(timings, 'qa_lab'):.1f}x ({1000 * _seconds(timings, 'reference'):.0f} ms vs "
            f"{1000 * _seconds(timings, 'qa_lab'):.1f} ms; identical predictions: {timings['identical_predictions']}) | {target} |"
            for timings, target in ((search["benchmark"], "measured"), (search["dev_scale"], ">= 20x, identical"))
        ),
        f"| feature cache hit / first preparation | {summary['cache_prep_ratio']:.1%} ({prep['cache_hit']:.2f} s vs {prep['first']:.2f} s; "
        f"the seeds' preparation: {prep['reference']:.2f} s, Trainer's (run_qa.py's `map`): {prep['trainer']:.2f} s) | <= 5% |",
    ]


def rounded(value: Any) -> Any:
    """Floats of the JSON line to 4 decimals (in lists and dicts too); infinities as they are."""
    if isinstance(value, list):
        return [rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    return round(value, 4) if isinstance(value, float) and math.isfinite(value) else value
