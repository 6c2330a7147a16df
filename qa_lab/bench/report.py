"""The benchmark's results as BENCHMARKS.md (tables of the pipelines and the ratios against their targets)
and as the one JSON line it prints last."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa_lab.core import provenance

if TYPE_CHECKING:  # the device benchmark imports this module where omegaconf is not installed
    from omegaconf import DictConfig

HEADINGS = {
    "qa_lab": "qa-lab",
    "qa_lab_padded": "qa-lab, padded to max_length",
    "qa_lab_bf16": "qa-lab, bf16 autocast",
    "qa_lab_fused": "qa-lab, fused AdamW",
    "qa_lab_compiled": "qa-lab, torch.compile",
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
        **_gap("f1_gap_reference", runs["qa_lab"], runs["reference"]),
    }
    for peer in PEERS:
        summary[f"{peer}_speedup"] = runs["qa_lab"]["samples_per_second"] / runs[peer]["samples_per_second"]
        summary[f"f1_{peer}"] = runs[peer]["f1"]
        summary |= _gap(f"f1_gap_{peer}", runs["qa_lab"], runs[peer])
    if "qa_lab_padded" in runs:  # what padding every batch to max_length does in qa-lab's own loop
        summary["padding_slowdown"] = runs["qa_lab"]["samples_per_second"] / runs["qa_lab_padded"]["samples_per_second"]
        summary |= _gap("f1_gap_padded", runs["qa_lab"], runs["qa_lab_padded"])
    for key, name in (("bf16_probe", "bf16_autocast_speedup"), ("adamw_probe", "adamw_fused_step_speedup"), ("compile_probe", "compile_speedup")):
        if key in results:
            summary[name] = results[key]["speedup"]
    if "qa_lab_fused" in runs:
        summary["train_speedup_fused"] = runs["qa_lab_fused"]["samples_per_second"] / runs["qa_lab"]["samples_per_second"]
        summary["f1_qa_lab_fused"] = runs["qa_lab_fused"]["f1"]
    if "qa_lab_compiled" in runs:
        summary["train_speedup_compiled"] = runs["qa_lab_compiled"]["samples_per_second"] / runs["qa_lab"]["samples_per_second"]
        summary["f1_qa_lab_compiled"] = runs["qa_lab_compiled"]["f1"]
    if "qa_lab_bf16" in runs:
        summary["train_speedup_bf16"] = runs["qa_lab_bf16"]["samples_per_second"] / runs["reference"]["samples_per_second"]
        summary["f1_qa_lab_bf16"] = runs["qa_lab_bf16"]["f1"]
    return summary


def _gap(key: str, ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """F1 of `ours` minus `theirs`: the mean over the seeds, each seed's, and the mean's standard error (the
    seeds' spread over the square root of their number; NaN with one seed), which says whether the mean
    resolves a difference of that size."""
    per_seed = np.subtract(ours["f1_per_seed"], theirs["f1_per_seed"])
    se = float(per_seed.std(ddof=1) / math.sqrt(len(per_seed))) if len(per_seed) > 1 else math.nan
    return {key: ours["f1"] - theirs["f1"], f"{key}_se": se, f"{key}_per_seed": per_seed.tolist()}


def _gap_text(summary: dict[str, Any], key: str) -> str:
    """'+1.09 ± 0.18; per seed +1.43, +0.88' (the standard error left out with one seed)."""
    se = summary[f"{key}_se"]
    return (f"{summary[key]:+.2f}" + (f" ± {se:.2f}" if math.isfinite(se) else "")
            + "; per seed " + ", ".join(f"{gap:+.2f}" for gap in summary[f"{key}_per_seed"]))


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
            f"(F1 {_gap_text(summary, f'f1_gap_{peer}')}) | >= {target}x, F1 within 1 point |"
            for peer, (label, target) in PEERS.items()
        ),
        f"| training samples/s, qa-lab / seeds | {summary['train_speedup']:.2f}x | >= 2.0x, F1 within 1 point |",
        f"| F1 qa-lab - seeds | {_gap_text(summary, 'f1_gap_reference')} | within +-1 |",
    ]
    if "padding_slowdown" in summary:
        lines.append(
            f"| training samples/s, qa-lab / qa-lab padding every batch to max_length | {summary['padding_slowdown']:.2f}x "
            f"(F1 {_gap_text(summary, 'f1_gap_padded')}) | measured |"
        )
    if "train_speedup_bf16" in summary:
        lines.append(f"| training samples/s, qa-lab bf16 / seeds | {summary['train_speedup_bf16']:.2f}x (F1 {summary['f1_qa_lab_bf16']:.2f}) | measured |")
    elif "bf16_probe" in results:
        probe = results["bf16_probe"]
        lines.append(
            f"| training with bf16 autocast / fp32 (forward + backward, {settings.probe_batches} qa-lab batches) | "
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
    if "compile_probe" in results:
        probe = results["compile_probe"]
        kept = (f"faster, so qa-lab also trained compiled: whole runs {summary['train_speedup_compiled']:.2f}x "
                f"(F1 {summary['f1_qa_lab_compiled'] - summary['f1_qa_lab']:+.2f})") if "train_speedup_compiled" in summary else "slower, so not kept and no compiled run"
        lines.append(
            f"| training with trainer.compile / eager (forward + backward, {settings.probe_batches} qa-lab batches, after "
            f"{probe['compile_seconds']:.0f} s of compiling) | {probe['speedup']:.2f}x ({probe['compiled_seconds']:.1f} s vs "
            f"{probe['eager_seconds']:.1f} s): {kept} | measured |"
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
