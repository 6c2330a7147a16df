"""What optimises the model: AdamW with weight decay on weight matrices only, in the implementation that
suits the device. Light on purpose (torch only): the device benchmark builds qa-lab's optimiser where
Hydra and datasets are not installed."""

from __future__ import annotations

from typing import Any

import torch

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")

# torch.optim.AdamW's options for each trainer.adamw (None: torch's own default for the device)
ADAMW_OPTIONS: dict[str | None, dict[str, bool]] = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False}, None: {}}


def adamw(model: torch.nn.Module, lr: float, weight_decay: float, implementation: str, gpu: bool) -> torch.optim.Optimizer:
    """AdamW with weight decay on weight matrices only; `implementation` auto = fused on a GPU, torch's
    default elsewhere (conf/trainer/default.yaml, `adamw`)."""
    choice = ("fused" if gpu else None) if implementation == "auto" else implementation
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, **ADAMW_OPTIONS[choice])


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: not on biases and normalisation weights."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if name.endswith(NO_DECAY) else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
