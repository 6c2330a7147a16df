"""Padding to a multiple (tensor cores under fp16/bf16 on a GPU): batches round up, never beyond the
longest window, and the trainer's `auto` settings leave a CPU run as it was."""

from __future__ import annotations

import numpy as np
import pytest
from accelerate import Accelerator

from qa_lab.features.batching import Collator, Loading
from qa_lab.features.windows import Windows
from qa_lab.training.setup import loading
from tests.helpers import composed

pytestmark = pytest.mark.unit


def windows_of(lengths: list[int]) -> Windows:
    lengths = np.asarray(lengths, dtype=np.int32)
    total, size = int(lengths.sum()), len(lengths)
    zeros = np.zeros(size, dtype=np.int32)
    return Windows(np.arange(1, total + 1, dtype=np.int32), None, lengths, zeros, zeros, zeros, zeros, None, None)


@pytest.mark.parametrize("multiple, batch, width", [(1, [0, 1], 13), (8, [0, 1], 16), (8, [2], 24), (8, [0, 2], 24), (8, [3], 30), (64, [0], 30)])
def test_a_batch_pads_to_the_multiple_but_never_past_the_longest_window(multiple, batch, width):
    windows = windows_of([13, 9, 17, 30])
    padded = Collator(windows, pad_token_id=0, pad_left=False, with_labels=False, pad_multiple=multiple)(batch)
    assert padded["input_ids"].shape == (len(batch), width)
    assert padded["attention_mask"].sum().item() == windows.lengths[batch].sum()  # padding is masked


def test_auto_gpu_settings_are_off_on_a_cpu():
    trainer = composed("trainer.mixed_precision=bf16", hydra=False).trainer
    assert loading(trainer, Accelerator(cpu=True)) == Loading(pad_multiple=1, num_workers=0, pin_memory=False)
    trainer.pad_to_multiple_of, trainer.loader.num_workers = 8, 1
    assert loading(trainer, Accelerator(cpu=True)) == Loading(pad_multiple=8, num_workers=1, pin_memory=False)
