"""Windows -> padded tensor batches: dynamic padding and length-grouped, seeded batch order.

Padding every window to max_length spends about half of the compute on padding for SQuAD-like data;
padding each batch to its longest window, with windows of similar length batched together, does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from qa_lab.features.windows import Windows


class WindowIndex(Dataset):
    """Items are window numbers; the collator gathers the tokens, so workers never copy the arrays."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class Collator:
    """Pads a batch of windows to its longest one (rounded up to a multiple of `pad_multiple`, at most the
    longest window of all), on the tokenizer's padding side."""

    def __init__(self, windows: Windows, pad_token_id: int, pad_left: bool, with_labels: bool, pad_multiple: int = 1) -> None:
        self.windows, self.pad_token_id, self.pad_left, self.with_labels = windows, pad_token_id, pad_left, with_labels
        self.starts, self.pad_multiple, self.widest = windows.starts, pad_multiple, int(windows.lengths.max(initial=1))

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        lengths = self.windows.lengths[index]
        width = min(-(-int(lengths.max()) // self.pad_multiple) * self.pad_multiple, self.widest)
        positions = np.arange(width)
        shift = (width - lengths)[:, None] if self.pad_left else 0
        real = (positions >= shift) & (positions < shift + lengths[:, None])
        source = np.where(real, self.starts[index][:, None] + positions - shift, 0)
        batch = {
            "input_ids": torch.from_numpy(np.where(real, self.windows.input_ids[source], self.pad_token_id).astype(np.int64)),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "window_index": torch.from_numpy(index),
        }
        if self.windows.token_type_ids is not None:
            batch["token_type_ids"] = torch.from_numpy(np.where(real, self.windows.token_type_ids[source], 0).astype(np.int64))
        if self.with_labels:
            # labels are positions in the unpadded window; left padding moves them right
            offset = shift[:, 0] if self.pad_left else 0
            batch["start_positions"] = torch.from_numpy((self.windows.start_positions[index] + offset).astype(np.int64))
            batch["end_positions"] = torch.from_numpy((self.windows.end_positions[index] + offset).astype(np.int64))
        return batch


class LengthGroupedBatches(Sampler[list[int]]):
    """Seeded shuffled batches of windows of similar length.

    Each epoch shuffles all windows, cuts them into groups of `group_size` batches, sorts every group by
    length and cuts it into batches, then shuffles the batches: little padding, random order.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, group_size: int, group_by_length: bool) -> None:
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.group_size, self.group_by_length = group_size, group_by_length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        if self.group_by_length:
            span = self.batch_size * self.group_size
            groups = [order[i : i + span] for i in range(0, len(order), span)]
            order = np.concatenate([group[np.argsort(-self.lengths[group], kind="stable")] for group in groups])
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        for batch_number in rng.permutation(len(batches)):
            yield batches[batch_number]


@dataclass(frozen=True)
class Loading:
    """How batches are made and handed to the device (trainer.loader, trainer.pad_to_multiple_of, resolved)."""

    pad_multiple: int = 1
    num_workers: int = 0
    pin_memory: bool = False


def train_loader(
    windows: Windows, batch_size: int, seed: int, pad_token_id: int, pad_left: bool, group_size: int, group_by_length: bool,
    loading: Loading = Loading(),
) -> DataLoader:
    sampler = LengthGroupedBatches(windows.lengths, batch_size, seed, group_size, group_by_length)
    collate = Collator(windows, pad_token_id, pad_left, with_labels=True, pad_multiple=loading.pad_multiple)
    # its own generator: starting an epoch then draws nothing from the global torch RNG, which dropout
    # uses, so a run resumed mid-epoch (RNG restored, then a new iterator) sees the same dropout masks
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        WindowIndex(len(windows)), batch_sampler=sampler, collate_fn=collate, generator=generator,
        num_workers=loading.num_workers, pin_memory=loading.pin_memory, persistent_workers=loading.num_workers > 0,
    )


class LongestFirstBatches(Sampler[list[int]]):
    """Evaluation batches of windows sorted by length, so each batch is padded as little as possible.

    Every batch but the last has `batch_size` windows: Accelerate then knows how many duplicates the
    even split across processes adds at the tail, and gather_for_metrics drops them.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int) -> None:
        self.order, self.batch_size = np.argsort(-lengths, kind="stable"), batch_size

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.order), self.batch_size):
            yield self.order[i : i + self.batch_size].tolist()


def eval_loader(windows: Windows, batch_size: int, pad_token_id: int, pad_left: bool, loading: Loading = Loading()) -> DataLoader:
    """Batches carry their window numbers, so logits land at their window whatever the order."""
    collate = Collator(windows, pad_token_id, pad_left, with_labels=False, pad_multiple=loading.pad_multiple)
    return DataLoader(
        WindowIndex(len(windows)), batch_sampler=LongestFirstBatches(windows.lengths, batch_size), collate_fn=collate,
        num_workers=loading.num_workers, pin_memory=loading.pin_memory,
    )
