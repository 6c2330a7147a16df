"""qa-lab against the seeds' pipeline (reference.py), side by side in one process.

Both run on the same backbone, data (XQuAD split by article), windows, batch size, number of optimiser
steps and seeds (conf/bench/default.yaml). Measured: data preparation (qa-lab's first build and its cache
hit), training samples/s, non-padding tokens/s and model FLOP utilisation against this machine's
matrix-product peak (measured here), evaluation time, postprocessing + metric on the same logits (and
whether the answers are identical) on the benchmark's questions and on them repeated to SQuAD-dev scale,
peak resident memory, EM/F1 after the same steps, and what bf16 autocast does to training speed. Ratios,
not absolute times, are the point: both sides share the machine and its load.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from qa_lab.bench import reference
from qa_lab.bench.measure import fresh_accelerator_state, peak_gflops, peak_memory, train_flops_per_token
from qa_lab.bench.reference import postprocess_reference
from qa_lab.bench.trainer_peer import run_qa_features, run_trainer
from qa_lab.core.conf import CONF_DIR, conf_file
from qa_lab.core.errors import require
from qa_lab.core.records import read_jsonl
from qa_lab.data.cleaning import clean_examples
from qa_lab.data.sources import read_examples
from qa_lab.data.splits import split_by_context
from qa_lab.evaluation.spans import postprocess
from qa_lab.evaluation.squad import squad_v1
from qa_lab.features.batching import Collator
from qa_lab.features.cache import cached_windows
from qa_lab.features.windows import Windows, WindowSpec
from qa_lab.model.backbone import load_config, load_model, load_tokenizer
from qa_lab.model.compiling import dynamo_plugin
from qa_lab.training.optim import ADAMW_OPTIONS

log = logging.getLogger("qa_lab.bench")


def variant_overrides(settings: DictConfig, variant: str) -> tuple[str, ...]:
    """The trainer overrides of each of qa-lab's runs (its name is its column in the report)."""
    return {
        "qa_lab": (),
        "qa_lab_padded": (f"trainer.pad_to_multiple_of={settings.max_length}",),  # the collator never pads past max_length
        "qa_lab_bf16": ("trainer.mixed_precision=bf16",),
        "qa_lab_fused": ("trainer.adamw=fused",),
        "qa_lab_compiled": ("trainer.compile=true", f"trainer.compile_backend={settings.compile_backend}"),
    }[variant]


def run_qa_lab(settings: DictConfig, seed: int, train_file: Path, validation_file: Path, work: Path, variant: str) -> dict[str, Any]:
    """qa-lab's own `train` (the command `python run.py` runs) for `steps` optimiser steps, then its evaluation;
    `variant` names its overrides (variant_overrides)."""
    from hydra import compose, initialize_config_dir

    from qa_lab.training.recipe import train

    fresh_accelerator_state()
    out = work / f"{variant}-{seed}"
    overrides = [
        f"model={settings.model}", "data=local", f"data.train_file={train_file}", f"data.validation_file={validation_file}",
        f"data.max_length={settings.max_length}", f"data.stride={settings.stride}",
        f"trainer.batch_size={settings.batch_size}", f"trainer.eval_batch_size={settings.eval_batch_size}",
        f"trainer.lr={settings.lr}", f"trainer.seed={seed}", f"trainer.max_steps={settings.steps}",
        "trainer.epochs=100",
        # the seeds' optimisation recipe (no warm-up, no clipping), so that only padding and batching differ
        "trainer.warmup_ratio=0", "trainer.max_grad_norm=null",
        "trainer.checkpoint.keep_last=0", "logger=none", f"paths.output_dir={out}", f"paths.cache_dir={work / 'cache'}",
        f"postprocess.n_best={settings.n_best}", f"postprocess.max_answer_length={settings.max_answer_length}",
        *variant_overrides(settings, variant),
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


def probe_batches(settings: DictConfig, windows: Windows, pad_token_id: int, pad_multiple: int = 1) -> list[dict[str, torch.Tensor]]:
    """The first `probe_batches` training batches of qa-lab windows, padded as a run pads them, as model inputs."""
    collate = Collator(windows, pad_token_id, pad_left=False, with_labels=True, pad_multiple=pad_multiple)
    size = settings.batch_size
    batches = [collate(list(range(i * size, (i + 1) * size))) for i in range(settings.probe_batches)]
    return [{key: value for key, value in batch.items() if key != "window_index"} for batch in batches]


def forward_backward_seconds(model: torch.nn.Module, inputs: list[dict[str, torch.Tensor]], bf16: bool = False) -> float:
    """Seconds of training forward + backward passes over `inputs` (no optimiser step)."""
    started = time.perf_counter()
    for batch in inputs:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        model.zero_grad()
    return time.perf_counter() - started


def autocast_probe(settings: DictConfig, backbone: DictConfig, hub_timeout: float, windows: Windows, pad_token_id: int) -> dict[str, float]:
    """What bf16 autocast does to qa-lab's training speed here: the same forward + backward passes over the
    probe batches (dynamically padded), in fp32 and under autocast."""
    model = load_model(backbone, hub_timeout, settings.seeds[0])
    model.train()
    inputs = probe_batches(settings, windows, pad_token_id)
    forward_backward_seconds(model, inputs)  # warm-up: first-call allocations
    fp32, bf16 = forward_backward_seconds(model, inputs), forward_backward_seconds(model, inputs, bf16=True)
    return {"fp32_seconds": fp32, "bf16_seconds": bf16, "speedup": fp32 / bf16}


def compile_probe(settings: DictConfig, backbone: DictConfig, hub_timeout: float, windows: Windows, pad_token_id: int) -> dict[str, float]:
    """What trainer.compile does to qa-lab's training speed here: forward + backward over the probe batches,
    eager as a default run pads them (to their longest window) and compiled as a trainer.compile run does
    (Accelerate's options; widths in whole compile buckets). The compilation itself, the first pass, is
    timed apart: a long run pays it once per bucket."""
    trainer = conf_file("trainer", "default.yaml")
    model = load_model(backbone, hub_timeout, settings.seeds[0])
    model.train()
    eager_inputs = probe_batches(settings, windows, pad_token_id)
    forward_backward_seconds(model, eager_inputs)  # warm-up: first-call allocations
    eager = forward_backward_seconds(model, eager_inputs)
    torch._dynamo.reset()
    options = dynamo_plugin(trainer.compile_recompile_limit, settings.compile_backend).to_kwargs()
    compiled_model = torch.compile(model, **options)
    bucketed = probe_batches(settings, windows, pad_token_id, trainer.compile_bucket)
    compiling = forward_backward_seconds(compiled_model, bucketed)
    compiled = forward_backward_seconds(compiled_model, bucketed)
    torch._dynamo.reset()  # the graphs would otherwise stay in this process for the runs after it
    return {"eager_seconds": eager, "compiled_seconds": compiled, "compile_seconds": compiling, "speedup": eager / compiled}


def adamw_probe(settings: DictConfig, backbone: DictConfig, hub_timeout: float) -> dict[str, float]:
    """Seconds per AdamW step on the backbone's parameters (random gradients), with torch's default for this
    device (what `trainer.adamw=auto` uses on a CPU) and fused: whether fused is worth a whole run here."""
    model = load_model(backbone, hub_timeout, settings.seeds[0])
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter)
    seconds = {}
    for name, choice in (("default_seconds", None), ("fused_seconds", "fused")):
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, **ADAMW_OPTIONS[choice])
        optimizer.step()  # warm-up: the moment estimates are allocated
        started = time.perf_counter()
        for _ in range(settings.adamw_probe_steps):
            optimizer.step()
        seconds[name] = (time.perf_counter() - started) / settings.adamw_probe_steps
    return seconds | {"speedup": seconds["default_seconds"] / seconds["fused_seconds"]}


def run_reference(settings: DictConfig, seed: int, backbone: DictConfig, hub_timeout: float, train_features, evaluation: tuple) -> dict[str, Any]:
    """The seeds' pipeline from loading the model (as qa-lab's run does) to its score (`evaluation`: the
    padded evaluation windows, the contexts, question ids and gold answers)."""
    eval_features, contexts, ids, references = evaluation
    with peak_memory(settings.memory_sample_seconds) as memory:
        model = load_model(backbone, hub_timeout, seed)  # the starting weights of qa-lab's run
        torch.manual_seed(seed)  # dropout
        stats = reference.train(model, train_features, settings.batch_size, settings.lr, settings.steps, seed)
        started = time.perf_counter()
        start, end = reference.predict(model, eval_features, settings.eval_batch_size)
        answers = postprocess_reference(
            start, end, eval_features.offsets, eval_features.example_index, contexts, settings.n_best, settings.max_answer_length
        )
        scores = reference.squad_v1(dict(zip(ids, answers)), references)
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


def tiled(copies: int, logits, eval_features, validation, references) -> tuple:
    """The evaluation windows, their logits and questions repeated `copies` times (question ids made
    unique): the span search and metric at the scale users evaluate, on the same logits for both."""
    start, end = (np.tile(side, (copies, 1)) for side in logits)
    offsets = np.tile(eval_features.offsets, (copies, 1, 1))
    example_index = np.concatenate([eval_features.example_index + copy * len(validation) for copy in range(copies)])
    ids = [f"{qid}#{copy}" for copy in range(copies) for qid in validation["id"]]
    golds = list(references.values()) * copies
    return (start, end), offsets, example_index, validation["context"].tolist() * copies, ids, dict(zip(ids, golds))


def run_peer(settings: DictConfig, seed: int, backbone: DictConfig, hub_timeout: float, tokenizer, train, evaluation, dynamic: bool, work: Path) -> dict[str, Any]:
    """Hugging Face Trainer (trainer_peer.py) from the same starting weights, with its defaults or its best flags."""
    fresh_accelerator_state()
    weight_decay = conf_file("trainer", "default.yaml").weight_decay  # qa-lab's, on the same parameters
    with peak_memory(settings.memory_sample_seconds) as memory:
        model = load_model(backbone, hub_timeout, seed)
        run = run_trainer(model, tokenizer, train, evaluation, settings, seed, weight_decay, dynamic, work)
    return run | {"peak_mb": memory["peak_mb"]}


def span_search_timings(settings: DictConfig, logits, offsets, example_index, contexts, ids, references) -> dict[str, Any]:
    """Both span searches and metrics on the same logits (the reference model's), each the fastest of
    `span_search_repeats` timings."""
    start, end = logits
    arguments = (start, end, offsets, example_index, contexts, settings.n_best, settings.max_answer_length)
    pipelines = {
        "reference": (lambda: postprocess_reference(*arguments), reference.squad_v1),
        "qa_lab": (lambda: postprocess(*arguments).answers, squad_v1),
    }
    timings: dict[str, Any] = {"questions": len(contexts), "windows": len(start)}
    answers = {}
    for name, (search, metric) in pipelines.items():
        timings[f"{name}_postprocess_seconds"] = timings[f"{name}_metric_seconds"] = math.inf
        for _ in range(settings.span_search_repeats):
            started = time.perf_counter()
            answers[name] = search()
            searched = time.perf_counter()
            metric(dict(zip(ids, answers[name])), references)
            timings[f"{name}_postprocess_seconds"] = min(timings[f"{name}_postprocess_seconds"], searched - started)
            timings[f"{name}_metric_seconds"] = min(timings[f"{name}_metric_seconds"], time.perf_counter() - searched)
    timings["identical_predictions"] = answers["qa_lab"] == answers["reference"]
    return timings


def over_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One pipeline's row: speeds, times and scores averaged over the seeds, memory the highest; F1 of each seed kept."""
    keys = ("samples_per_second", "tokens_per_second", "train_seconds", "eval_seconds", "exact_match", "f1")
    combined: dict[str, Any] = {key: sum(run[key] for run in per_seed) / len(per_seed) for key in keys}
    combined["peak_mb"] = max(run["peak_mb"] for run in per_seed)
    combined["f1_per_seed"] = [run["f1"] for run in per_seed]
    return combined


def prepared(settings: DictConfig, tokenizer, train_frame, validation, spec: WindowSpec, work: Path) -> tuple:
    """Every pipeline's windows, timed: qa-lab's (first build, then its cache hit), the seeds' padded
    features (training and evaluation), and Trainer's (padded and dynamic; their mean time)."""
    def build() -> tuple[Windows, float]:
        started = time.perf_counter()
        windows, _ = cached_windows(tokenizer, train_frame, spec, False, work / "cache")
        cached_windows(tokenizer, validation, spec, True, work / "cache")
        return windows, time.perf_counter() - started

    train_windows, first = build()
    # the hit is a few tens of milliseconds: its fastest of a few, so that a moment of load does not decide the ratio
    prep = {"first": first, "cache_hit": min(build()[1] for _ in range(settings.cache_hit_repeats))}
    started = time.perf_counter()
    features = tuple(reference.prepare(tokenizer, frame, settings.max_length, settings.stride, training) for frame, training in ((train_frame, True), (validation, False)))
    prep["reference"] = time.perf_counter() - started
    started = time.perf_counter()
    peer_windows = {dynamic: run_qa_features(tokenizer, train_frame, settings.max_length, settings.stride, dynamic) for dynamic in (False, True)}
    prep["trainer"] = (time.perf_counter() - started) / 2
    return prep, train_windows, features, peer_windows


def one_epoch(example_index: np.ndarray, slots: int) -> int:
    """How many of the first training questions have windows that fill at most `slots` (steps x batch size)
    places: trained on those, the steps are one epoch, and every pipeline sees the same windows once."""
    return int(np.searchsorted(np.cumsum(np.bincount(example_index)), slots, side="right"))


def trained_on(settings: DictConfig, tokenizer, train_frame, validation, spec: WindowSpec, work: Path, results: dict[str, Any]) -> tuple:
    """The training questions and every pipeline's windows: `prepared` on the whole split, where the cache's
    fixed cost is a small part (its timings go to `results`), then, with one_epoch, again on the first
    training questions, those whose windows make the steps one epoch."""
    prep, *windows = prepared(settings, tokenizer, train_frame, validation, spec, work)
    results["data_preparation_seconds"] = prep
    log.info("data preparation: qa-lab %.2f s, cache hit %.2f s; seeds %.2f s", prep["first"], prep["cache_hit"], prep["reference"])
    if settings.one_epoch:
        slots = settings.steps * settings.batch_size
        kept = one_epoch(windows[0].example_index, slots)
        require(kept > 0, "one_epoch", f"steps x batch_size = {slots} windows are fewer than the first training question's, so one epoch would hold none",
                "raise steps or batch_size, or set one_epoch=false")
        results["one_epoch_of"], results["train_examples"] = len(train_frame), kept
        train_frame = train_frame.iloc[:kept]
        _, *windows = prepared(settings, tokenizer, train_frame, validation, spec, work)
    return train_frame, *windows


def every_seed(
    settings: DictConfig, backbone: DictConfig, hub_timeout: float, tokenizer, files: tuple[Path, Path], train_features, evaluation: tuple,
    peer_windows: dict, work: Path,
) -> dict[str, list[dict[str, Any]]]:
    """Every pipeline once per seed, seed after seed (so a drift in the machine's speed touches them all alike):
    qa-lab (and, with padded_control, qa-lab padding every batch to max_length), the seeds' pipeline and
    Trainer with its defaults and its best flags."""
    variants = ("qa_lab", "qa_lab_padded") if settings.padded_control else ("qa_lab",)
    per_seed: dict[str, list[dict[str, Any]]] = {name: [] for name in (*variants, "reference", "trainer_default", "trainer_best")}
    for seed in settings.seeds:
        for variant in variants:
            per_seed[variant].append(run_qa_lab(settings, seed, *files, work, variant))
        per_seed["reference"].append(run_reference(settings, seed, backbone, hub_timeout, train_features, evaluation))
        for name, dynamic in (("trainer_default", False), ("trainer_best", True)):
            per_seed[name].append(run_peer(settings, seed, backbone, hub_timeout, tokenizer, peer_windows[dynamic], evaluation, dynamic, work))
        for name, runs_so_far in per_seed.items():
            run = runs_so_far[-1]
            log.info("seed %d, %s: %.2f samples/s, eval %.1f s, F1 %.2f", seed, name, run["samples_per_second"], run["eval_seconds"], run["f1"])
    return per_seed


def probed(
    settings: DictConfig, backbone: DictConfig, hub_timeout: float, pad_token_id: int, train_windows: Windows, files: tuple[Path, Path],
    work: Path, results: dict[str, Any],
) -> dict[str, list[dict[str, Any]]]:
    """Each probe times what one setting does to qa-lab's training here (its result goes to `results`); a
    setting that is faster also trains whole runs, one per seed, which show its speed and whether F1 holds."""
    probes = {
        "qa_lab_bf16": ("bf16_probe", settings.bf16, lambda: autocast_probe(settings, backbone, hub_timeout, train_windows, pad_token_id)),
        "qa_lab_fused": ("adamw_probe", settings.adamw_probe_steps > 0, lambda: adamw_probe(settings, backbone, hub_timeout)),
        "qa_lab_compiled": ("compile_probe", settings.compile_probe, lambda: compile_probe(settings, backbone, hub_timeout, train_windows, pad_token_id)),
    }
    per_seed = {}
    for variant, (key, wanted, probe) in probes.items():
        if not wanted:
            continue
        results[key] = probe()
        log.info("%s: %.2fx the default's speed", key, results[key]["speedup"])
        if results[key]["speedup"] > 1:
            per_seed[variant] = [run_qa_lab(settings, seed, *files, work, variant) for seed in settings.seeds]
    return per_seed


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
        train_frame, train_windows, (train_features, eval_features), peer_windows = trained_on(settings, tokenizer, train_frame, validation, spec, work, results)
        results["windows"] = {"train": len(train_windows), "mean_train_tokens": float(train_windows.lengths.mean())}

        files = (work / "train.jsonl", work / "validation.jsonl")  # qa-lab's runs read them as data=local does
        for frame_to_write, file in zip((train_frame, validation), files):
            frame_to_write.to_json(file, orient="records", lines=True)
        evaluation = (eval_features, validation["context"].tolist(), validation["id"].tolist(), references)
        per_seed = every_seed(settings, backbone, hub_timeout, tokenizer, files, train_features, evaluation, peer_windows, work)
        per_seed |= probed(settings, backbone, hub_timeout, tokenizer.pad_token_id, train_windows, files, work, results)
    logits = [run.pop("logits") for run in per_seed["reference"]][0]
    runs = {name: over_seeds(seed_runs) for name, seed_runs in per_seed.items()}
    copies = math.ceil(settings.span_search_questions / len(validation))
    _, contexts, ids, _ = evaluation
    results["span_search"] = {
        "benchmark": span_search_timings(settings, logits, eval_features.offsets, eval_features.example_index, contexts, ids, references),
        "dev_scale": span_search_timings(settings, *tiled(copies, logits, eval_features, validation, references)),
    }
    flops_per_token = train_flops_per_token(load_config(backbone, hub_timeout), results["windows"]["mean_train_tokens"])
    for name, run in runs.items():
        # model FLOPs of the useful (non-padding) tokens, against the peak of the precision used
        run["mfu"] = run["tokens_per_second"] * flops_per_token / (peaks["bf16" if name.endswith("bf16") else "fp32"] * 1e9)
    results["runs"] = runs
    return results
