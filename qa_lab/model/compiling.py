"""torch.compile through Accelerate (trainer.compile, and the device benchmark's bf16+compile): static shapes,
with batch widths bucketed by the collator, and a count of the graphs compiled so far."""

from __future__ import annotations

import torch
from accelerate.utils import DynamoBackend, TorchDynamoPlugin


def compile_backends() -> list[str]:
    """The torch.compile backends Accelerate's plugin takes, by the names the settings use: a settings check
    names them before any work, rather than the plugin refusing one when compiling begins."""
    return sorted(backend.value.lower() for backend in DynamoBackend if backend is not DynamoBackend.NO)


def dynamo_plugin(recompile_limit: int, backend: str = "inductor") -> TorchDynamoPlugin:
    """Accelerate's plugin for torch.compile with static shapes (each width bucket compiles once, then runs
    without guards on dynamic sizes); `recompile_limit` graphs per function before torch falls back to
    eager, above the number of buckets so that it is never reached."""
    torch._dynamo.config.cache_size_limit = recompile_limit
    return TorchDynamoPlugin(backend=backend, dynamic=False)


def compiled_graphs() -> int:
    """The graphs torch.compile has made in this process."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
