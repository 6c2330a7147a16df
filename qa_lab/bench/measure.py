"""What the benchmarks measure besides the pipelines themselves: the matrix-product peak of the CPU or GPU,
the model FLOPs per token (for model FLOP utilisation), and a run's peak resident memory."""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import torch
from transformers import PretrainedConfig

log = logging.getLogger(__name__)
MB = 2**20


def peak_gflops(size: int, dtype: torch.dtype, repeats: int, device: torch.device | None = None) -> float:
    """This machine's dense matrix-product rate (GFLOP/s) through `linear`, the operation the model's layers
    use (a CPU without bf16 instructions runs bf16 far slower than fp32), on `device` (the CPU by default):
    the denominator of model FLOP utilisation. The fastest of `repeats` products, so a moment of load from
    elsewhere does not lower it."""
    device = device or torch.device("cpu")
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    torch.nn.functional.linear(a, b)  # warm-up (and, on a GPU, the library's choice of kernel)
    fastest = math.inf
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        torch.nn.functional.linear(a, b)
        synchronize(device)
        fastest = min(fastest, time.perf_counter() - started)
    return 2 * size**3 / fastest / 1e9


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously; a CPU has nothing to wait for)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh_accelerator_state() -> None:
    """Forget the Accelerate state of the run before (a process-wide singleton): each run chooses its own
    mixed precision."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


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
