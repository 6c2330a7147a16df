"""`python -m qa_lab.bench [--quick]`: qa-lab against the seeds' pipeline, side by side in one process.

Both run on the same backbone, data (XQuAD split by article), windows, batch size, number of optimiser
steps and seeds (conf/bench/default.yaml). Measured: data preparation (qa-lab's first build and its cache
hit), training samples/s, non-padding tokens/s and model FLOP utilisation against this machine's
matrix-product peak (measured here), evaluation time, postprocessing + metric on the same logits (and
whether the answers are identical), peak resident memory, EM/F1 after the same steps, and what bf16
autocast does to training speed. Ratios, not absolute times, are the point: both sides share the machine
and its load. Writes BENCHMARKS.md and prints one JSON line last.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import logging
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import psutil
import torch
import transformers
from omegaconf import DictConfig, ListConfig, OmegaConf
from transformers import PretrainedConfig

from qa_lab import provenance, reference
from qa_lab.config import register_resolvers
from qa_lab.data import clean_examples, read_examples, split_by_context
from qa_lab.batching import Collator
from qa_lab.features import Windows, WindowSpec, cached_windows
from qa_lab.metrics import squad_v1
from qa_lab.model import load_config, load_model, load_tokenizer
from qa_lab.postprocess import postprocess, postprocess_reference
from qa_lab.runs import read_jsonl
from qa_lab.settings import CONF_DIR, conf_file

log = logging.getLogger("qa_lab.bench")
MB = 2**20


def peak_gflops(size: int, dtype: torch.dtype, repeats: int) -> float:
    """This machine's dense matrix-product rate (GFLOP/s) through `linear`, the operation the model's layers
    use (a CPU without bf16 instructions runs bf16 far slower than fp32): the denominator of model FLOP
    utilisation. The fastest of `repeats` products, so a moment of load from elsewhere does not lower it."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.nn.functional.linear(a, b)  # warm-up
    fastest = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        torch.nn.functional.linear(a, b)
        fastest = min(fastest, time.perf_counter() - started)
    return 2 * size**3 / fastest / 1e9


def release_free_memory() -> None:
    """Hand the memory earlier phases freed back to the system: glibc keeps freed heap pages resident, and
    a later run would reuse them unmeasured (its peak above its start would look smaller)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        log.debug("no glibc malloc_trim here: memory peaks include what earlier phases left")


@contextmanager
def peak_memory(interval: float) -> Iterator[dict[str, float]]:
    """Samples the resident memory in a thread; yields a dict whose "peak_mb" (the highest resident memory
    above the one at the start, so earlier phases of the process do not count) is set on exit."""
    release_free_memory()
    process, result, done = psutil.Process(), {"peak_mb": 0.0}, threading.Event()
    baseline = process.memory_info().rss / MB

    def sample() -> None:
        while not done.is_set():
            result["peak_mb"] = max(result["peak_mb"], process.memory_info().rss / MB - baseline)
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()


def train_flops_per_token(config: PretrainedConfig, sequence_length: float) -> float:
    """6 x non-embedding parameters + attention (12 x layers x hidden x sequence length), as in the PaLM paper."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    per_layer = 4 * hidden * hidden + 2 * hidden * config.intermediate_size  # attention projections + MLP weights
    return 6 * layers * per_layer + 12 * layers * hidden * sequence_length


def run_qa_lab(settings: DictConfig, seed: int, train_file: Path, validation_file: Path, work: Path, mixed_precision: str) -> dict[str, Any]:
    """qa-lab's own `train` (the command `python run.py` runs) for `steps` optimiser steps, then its evaluation."""
    from accelerate.state import AcceleratorState
    from hydra import compose, initialize_config_dir

    from qa_lab.train import train

    AcceleratorState._reset_state(reset_partial_state=True)  # each run chooses its own mixed precision
    out = work / f"qa-lab-{mixed_precision}-{seed}"
    overrides = [
        f"model={settings.model}", "data=local", f"data.train_file={train_file}", f"data.validation_file={validation_file}",
        f"data.max_length={settings.max_length}", f"data.stride={settings.stride}",
        f"trainer.batch_size={settings.batch_size}", f"trainer.eval_batch_size={settings.eval_batch_size}",
        f"trainer.lr={settings.lr}", f"trainer.seed={seed}", f"trainer.max_steps={settings.steps}",
        "trainer.epochs=100",
        # the seeds' optimisation recipe (no warm-up, no clipping), so that only padding and batching differ
        "trainer.warmup_ratio=0", "trainer.max_grad_norm=null", f"trainer.mixed_precision={mixed_precision}",
        "trainer.checkpoint.keep_last=0", "logger=none", f"paths.output_dir={out}", f"paths.cache_dir={work / 'cache'}",
        f"postprocess.n_best={settings.n_best}", f"postprocess.max_answer_length={settings.max_answer_length}",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose("config", overrides=overrides)
    with peak_memory(settings.memory_sample_seconds) as memory:
        train(cfg)
    epochs, _ = read_jsonl(out / "metrics.jsonl")
    # the steps may end inside an epoch: add the epochs up
    seconds = sum(epoch["train_seconds"] for epoch in epochs)
    return {
        "samples_per_second": sum(epoch["train_samples_per_second"] * epoch["train_seconds"] for epoch in epochs) / seconds,
        "tokens_per_second": sum(epoch["train_tokens_per_second"] * epoch["train_seconds"] for epoch in epochs) / seconds,
        "train_seconds": seconds,
        "eval_seconds": epochs[-1]["eval_seconds"],
        "exact_match": epochs[-1]["exact_match"],
        "f1": epochs[-1]["f1"],
        "peak_mb": memory["peak_mb"],
    }


def autocast_probe(settings: DictConfig, backbone: DictConfig, hub_timeout: float, windows: Windows, pad_token_id: int) -> dict[str, float]:
    """What bf16 autocast does to qa-lab's training speed here: the same forward + backward passes over the
    first `bf16_probe_batches` batches of qa-lab windows (dynamically padded), in fp32 and under autocast."""
    model = load_model(backbone, hub_timeout, settings.seeds[0])
    model.train()
    collate = Collator(windows, pad_token_id, pad_left=False, with_labels=True)
    size = settings.batch_size
    batches = [collate(list(range(i * size, (i + 1) * size))) for i in range(settings.bf16_probe_batches)]
    inputs = [{key: value for key, value in batch.items() if key != "window_index"} for batch in batches]

    def seconds(bf16: bool) -> float:
        started = time.perf_counter()
        for batch in inputs:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            loss.backward()
            model.zero_grad()
        return time.perf_counter() - started

    seconds(False)  # warm-up: first-call allocations
    fp32, bf16 = seconds(False), seconds(True)
    return {"fp32_seconds": fp32, "bf16_seconds": bf16, "speedup": fp32 / bf16}


def run_reference(settings: DictConfig, seed: int, backbone: DictConfig, hub_timeout: float, train_features, eval_features, validation, references) -> dict[str, Any]:
    """The seeds' pipeline from loading the model (as qa-lab's run does) to its score."""
    with peak_memory(settings.memory_sample_seconds) as memory:
        model = load_model(backbone, hub_timeout, seed)  # the starting weights of qa-lab's run
        torch.manual_seed(seed)  # dropout
        stats = reference.train(model, train_features, settings.batch_size, settings.lr, settings.steps, seed)
        started = time.perf_counter()
        start, end = reference.predict(model, eval_features, settings.eval_batch_size)
        answers = postprocess_reference(
            start, end, eval_features.offsets, eval_features.example_index, validation["context"].tolist(), settings.n_best, settings.max_answer_length
        )
        scores = reference.squad_v1(dict(zip(validation["id"], answers)), references)
        eval_seconds = time.perf_counter() - started
    return {
        "samples_per_second": stats.samples / stats.seconds,
        "tokens_per_second": stats.tokens / stats.seconds,
        "train_seconds": stats.seconds,
        "eval_seconds": eval_seconds,
        **scores,
        "peak_mb": memory["peak_mb"],
        "logits": (start, end),
    }


def span_search_timings(settings: DictConfig, logits, eval_features, validation, references) -> dict[str, Any]:
    """Both span searches and metrics on the same logits (the reference model's)."""
    start, end = logits
    contexts, ids = validation["context"].tolist(), validation["id"].tolist()
    arguments = (start, end, eval_features.offsets, eval_features.example_index, contexts, settings.n_best, settings.max_answer_length)
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    reference_answers = postprocess_reference(*arguments)
    timings["reference_postprocess_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    reference.squad_v1(dict(zip(ids, reference_answers)), references)
    timings["reference_metric_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    answers = postprocess(*arguments).answers
    timings["qa_lab_postprocess_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    squad_v1(dict(zip(ids, answers)), references)
    timings["qa_lab_metric_seconds"] = time.perf_counter() - started
    timings["identical_predictions"] = answers == reference_answers
    return timings


def over_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One pipeline's row: speeds, times and scores averaged over the seeds, memory the highest; F1 of each seed kept."""
    keys = ("samples_per_second", "tokens_per_second", "train_seconds", "eval_seconds", "exact_match", "f1")
    combined: dict[str, Any] = {key: sum(run[key] for run in per_seed) / len(per_seed) for key in keys}
    combined["peak_mb"] = max(run["peak_mb"] for run in per_seed)
    combined["f1_per_seed"] = [run["f1"] for run in per_seed]
    return combined


def benchmark(settings: DictConfig) -> dict[str, Any]:
    peaks = {name: peak_gflops(settings.peak_matrix_size, dtype, settings.peak_repeats) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    log.info("peak: %.0f GFLOP/s fp32, %.0f GFLOP/s bf16", peaks["fp32"], peaks["bf16"])
    frame, _ = clean_examples(read_examples(settings.data_file), settings.data_file, training=True)
    train_frame, validation = split_by_context(frame, settings.validation_fraction, settings.split_seed, by="title")
    validation = validation.iloc[: settings.eval_questions]  # None: all of them
    references = dict(zip(validation["id"], (answers["text"] for answers in validation["answers"])))
    # the model group `python run.py model=...` uses; both pipelines start from the same weights (load_model's seed)
    backbone, hub_timeout = conf_file("model", f"{settings.model}.yaml"), float(conf_file("config.yaml").hub_timeout)
    tokenizer = load_tokenizer(backbone, hub_timeout)
    data = conf_file("data", "_common.yaml")
    spec = WindowSpec(settings.max_length, settings.stride, data.max_question_tokens, data.preprocessing_batch_size)
    results: dict[str, Any] = {"peak_gflops": peaks, "train_examples": len(train_frame), "validation_examples": len(validation)}

    with tempfile.TemporaryDirectory(prefix="qa-lab-bench-") as folder:
        work = Path(folder)
        prep = {}
        for attempt in ("first", "cache_hit"):
            started = time.perf_counter()
            train_windows, _ = cached_windows(tokenizer, train_frame, spec, False, work / "cache")
            cached_windows(tokenizer, validation, spec, True, work / "cache")
            prep[attempt] = time.perf_counter() - started
        started = time.perf_counter()
        train_features = reference.prepare(tokenizer, train_frame, settings.max_length, settings.stride, training=True)
        eval_features = reference.prepare(tokenizer, validation, settings.max_length, settings.stride, training=False)
        prep["reference"] = time.perf_counter() - started
        results["data_preparation_seconds"] = prep
        log.info("data preparation: qa-lab %.2f s, cache hit %.2f s; seeds %.2f s", prep["first"], prep["cache_hit"], prep["reference"])
        results["windows"] = {"train": len(train_windows), "mean_train_tokens": float(train_windows.lengths.mean())}

        train_file, validation_file = work / "train.jsonl", work / "validation.jsonl"
        train_frame.to_json(train_file, orient="records", lines=True)
        validation.to_json(validation_file, orient="records", lines=True)
        per_seed: dict[str, list[dict[str, Any]]] = {"qa_lab": [], "reference": []}
        for seed in settings.seeds:
            per_seed["qa_lab"].append(run_qa_lab(settings, seed, train_file, validation_file, work, "no"))
            per_seed["reference"].append(run_reference(settings, seed, backbone, hub_timeout, train_features, eval_features, validation, references))
            for name, runs_so_far in per_seed.items():
                run = runs_so_far[-1]
                log.info("seed %d, %s: %.2f samples/s, eval %.1f s, F1 %.2f", seed, name, run["samples_per_second"], run["eval_seconds"], run["f1"])
        if settings.bf16:
            probe = results["bf16_probe"] = autocast_probe(settings, backbone, hub_timeout, train_windows, tokenizer.pad_token_id)
            log.info("bf16 autocast: %.2fx the fp32 training speed", probe["speedup"])
            if probe["speedup"] > 1:  # faster: whole runs show whether F1 holds
                per_seed["qa_lab_bf16"] = [run_qa_lab(settings, seed, train_file, validation_file, work, "bf16") for seed in settings.seeds]
    logits = [run.pop("logits") for run in per_seed["reference"]][0]
    runs = {name: over_seeds(seed_runs) for name, seed_runs in per_seed.items()}
    results["span_search"] = span_search_timings(settings, logits, eval_features, validation, references)
    flops_per_token = train_flops_per_token(load_config(backbone, hub_timeout), results["windows"]["mean_train_tokens"])
    for name, run in runs.items():
        # model FLOPs of the useful (non-padding) tokens, against the peak of the precision used
        run["mfu"] = run["tokens_per_second"] * flops_per_token / (peaks["bf16" if name.endswith("bf16") else "fp32"] * 1e9)
    results["runs"] = runs
    return results


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    runs, search, prep = results["runs"], results["span_search"], results["data_preparation_seconds"]
    summary = {
        "train_speedup": runs["qa_lab"]["samples_per_second"] / runs["reference"]["samples_per_second"],
        "postprocess_speedup": (search["reference_postprocess_seconds"] + search["reference_metric_seconds"])
        / (search["qa_lab_postprocess_seconds"] + search["qa_lab_metric_seconds"]),
        "cache_prep_ratio": prep["cache_hit"] / prep["first"],
        "f1_qa_lab": runs["qa_lab"]["f1"],
        "f1_reference": runs["reference"]["f1"],
        "f1_qa_lab_per_seed": runs["qa_lab"]["f1_per_seed"],
        "f1_reference_per_seed": runs["reference"]["f1_per_seed"],
        "identical_predictions": search["identical_predictions"],
    }
    if "bf16_probe" in results:
        summary["bf16_autocast_speedup"] = results["bf16_probe"]["speedup"]
    if "qa_lab_bf16" in runs:
        summary["train_speedup_bf16"] = runs["qa_lab_bf16"]["samples_per_second"] / runs["reference"]["samples_per_second"]
        summary["f1_qa_lab_bf16"] = runs["qa_lab_bf16"]["f1"]
    return summary


def markdown(settings: DictConfig, results: dict[str, Any], summary: dict[str, Any], quick: bool) -> str:
    runs, search, prep = results["runs"], results["span_search"], results["data_preparation_seconds"]
    described = provenance.describe()
    versions = ", ".join(f"{name} {described['versions'][name]}" for name in ("torch", "transformers", "accelerate", "numpy"))
    names = [name for name in ("qa_lab", "qa_lab_bf16", "reference") if name in runs]
    heading = {"qa_lab": "qa-lab", "qa_lab_bf16": "qa-lab, bf16 autocast", "reference": "seeds' pipeline"}
    rows = [
        ("training samples/s", "samples_per_second", "{:.2f}"),
        ("non-padding tokens/s", "tokens_per_second", "{:.0f}"),
        ("model FLOP utilisation", "mfu", "{:.1%}"),
        ("training seconds", "train_seconds", "{:.1f}"),
        ("evaluation seconds (predict + postprocess + metric)", "eval_seconds", "{:.1f}"),
        ("peak resident memory above the run's start (MB)", "peak_mb", "{:.0f}"),
        ("EM", "exact_match", "{:.2f}"),
        ("F1", "f1", "{:.2f}"),
    ]
    lines = [
        "# Benchmark: qa-lab against the seeds' pipeline",
        "",
        f"`python -m qa_lab.bench{' --quick' if quick else ''}` on {date.today().isoformat()}: {described['machine']['platform']}, "
        f"{described['machine']['cpu_threads']} CPU threads, measured peak {results['peak_gflops']['fp32']:.0f} GFLOP/s fp32 and "
        f"{results['peak_gflops']['bf16']:.0f} GFLOP/s bf16 ({settings.peak_matrix_size}x{settings.peak_matrix_size} matrix product); "
        f"{versions}; qa-lab {described['git_commit']}.",
        "",
        f"`model={settings.model}` on {Path(settings.data_file).name}, split by article: {results['train_examples']} training and "
        f"{results['validation_examples']} evaluation questions; windows of {settings.max_length} tokens, stride "
        f"{settings.stride}, batch {settings.batch_size}, {settings.steps} optimiser steps at lr {settings.lr}; "
        f"seeds {', '.join(map(str, settings.seeds))} (speeds, times and scores are their means, memory the highest). "
        f"Both start from the same weights and train with the seeds' recipe (AdamW, linear decay without warm-up, no gradient clipping). "
        f"Training windows hold {results['windows']['mean_train_tokens']:.0f} tokens on average; the seeds pad all to {settings.max_length}.",
        "",
        "| | " + " | ".join(heading[name] for name in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [f"| {label} | " + " | ".join(fmt.format(runs[name][key]) for name in names) + " |" for label, key, fmt in rows]
    lines += [
        "",
        "| ratio | value | target |",
        "|---|---|---|",
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
    lines += [
        f"| postprocessing + metric, seeds / qa-lab (same logits) | {summary['postprocess_speedup']:.1f}x "
        f"({1000 * (search['reference_postprocess_seconds'] + search['reference_metric_seconds']):.0f} ms vs "
        f"{1000 * (search['qa_lab_postprocess_seconds'] + search['qa_lab_metric_seconds']):.1f} ms; identical predictions: "
        f"{search['identical_predictions']}) | >= 20x, identical |",
        f"| feature cache hit / first preparation | {summary['cache_prep_ratio']:.1%} ({prep['cache_hit']:.2f} s vs {prep['first']:.2f} s; "
        f"the seeds' preparation: {prep['reference']:.2f} s) | <= 5% |",
        "",
    ]
    return "\n".join(lines)


def bench_settings(quick: bool, overrides: list[str]) -> DictConfig:
    """conf/bench/default.yaml, its `quick` block when asked, then KEY=VALUE overrides, checked against the
    defaults' keys and types so a typo fails here rather than minutes into a run."""
    defaults = conf_file("bench", "default.yaml")
    settings = OmegaConf.merge(defaults, defaults.quick if quick else {})
    for override in overrides:
        key, equals, _ = override.partition("=")
        if not equals or key not in defaults or key == "quick":
            raise ValueError(f"'{override}': expected KEY=VALUE with KEY one of {', '.join(k for k in defaults if k != 'quick')}")
        value, default = OmegaConf.from_dotlist([override])[key], defaults[key]
        if default is not None and value is not None and not isinstance(value, type(default)) and not (isinstance(default, float) and isinstance(value, int)):
            kind = "list" if isinstance(default, ListConfig) else type(default).__name__
            raise ValueError(f"'{override}': {key} takes {kind} values (default {default})")
        settings[key] = value
    if not settings.seeds or not all(isinstance(seed, int) for seed in settings.seeds):
        raise ValueError(f"seeds={settings.seeds}: give a non-empty list of integers, e.g. seeds=[42,43]")
    return settings


def rounded(value: Any) -> Any:
    """Floats of the JSON line to 4 decimals (lists too); infinities as they are."""
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return round(value, 4) if isinstance(value, float) and math.isfinite(value) else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa_lab.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run in a few minutes (too few steps for F1 to mean anything)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings of conf/bench/default.yaml, e.g. steps=20 out=bench.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    transformers.utils.logging.set_verbosity_error()  # the backbone's load report (a fresh span head) is expected
    register_resolvers()
    try:
        settings = bench_settings(args.quick, args.overrides)
    except ValueError as error:
        parser.error(str(error))
    results = benchmark(settings)
    summary = ratios(results)
    Path(settings.out).write_text(markdown(settings, results, summary, args.quick), encoding="utf-8")
    print(json.dumps({key: rounded(value) for key, value in summary.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
