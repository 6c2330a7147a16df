"""Model -> start and end logits of every window, gathered across processes.

Logits are streamed into preallocated float32 arrays indexed by window number, so evaluation memory
stays bounded by the number of windows, whatever the batch order or the number of processes.
"""

from __future__ import annotations

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from qa_lab.features.windows import Windows

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, windows: Windows, pad_left: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of every window, (W, max_length) float32; -inf beyond a window's end."""
    width = windows.offsets.shape[1]
    start = np.full((len(windows), width), -np.inf, dtype=np.float32)
    end = np.full((len(windows), width), -np.inf, dtype=np.float32)
    model.eval()
    # disable=None: a bar on a terminal only, not in log files
    for batch in tqdm(loader, desc="eval", leave=False, disable=None if accelerator.is_main_process else True):
        outputs = model(**{key: value for key, value in batch.items() if key in MODEL_INPUTS})
        # ranks pad to different widths; pad to a common one before gathering, then drop the
        # duplicated samples that even sharding adds at the tail
        logits = torch.stack([outputs.start_logits, outputs.end_logits], dim=1).float()
        logits = accelerator.pad_across_processes(logits, dim=2, pad_index=float("-inf"), pad_first=pad_left)
        index, logits = accelerator.gather_for_metrics((batch["window_index"], logits))
        if accelerator.is_main_process:
            store_logits(start, end, index.cpu().numpy(), logits.cpu().numpy(), windows.lengths, pad_left)
    return start, end


def store_logits(
    start: np.ndarray, end: np.ndarray, index: np.ndarray, logits: np.ndarray, lengths: np.ndarray, pad_left: bool
) -> None:
    """Write a batch's logits at their windows' token positions (undoing left padding)."""
    window_lengths = lengths[index][:, None]
    batch_width = logits.shape[2]
    shift = batch_width - window_lengths if pad_left else np.zeros_like(window_lengths)
    positions = np.arange(batch_width)[None, :] - shift
    real = (positions >= 0) & (positions < window_lengths)
    rows = np.broadcast_to(index[:, None], real.shape)[real]
    start[rows, positions[real]] = logits[:, 0][real]
    end[rows, positions[real]] = logits[:, 1][real]
