"""The training loop makes the host wait for the device at the logging cadence, not at every step: the
host reads of tensors (Tensor.item and friends) made while training are counted on a tiny in-process run.

Left out of the count, as NOT_DEVICE_WAITS says: reads of tensors that live on the host on a GPU too, and
one read inside transformers that qa-lab cannot avoid (README, "On a GPU")."""

from __future__ import annotations

import sys

import pytest
import torch

from qa_lab.training import loop
from qa_lab.training.recipe import train
from tests.helpers import composed

pytestmark = pytest.mark.unit

READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")
STEPS = 12
NOT_DEVICE_WAITS = (
    "torch/optim/adamw.py", "torch/optim/adam.py", "torch/optim/optimizer.py",  # AdamW's step counters: host tensors unless fused
    "torch/utils/data/dataloader.py",  # the loader's base seed, drawn on the host once per epoch
    # the SDPA attention asks `padding_mask.all()` once per forward to skip the mask when nothing is padded
    "transformers/masking_utils.py",
)
TINY = [
    "model=tiny", "logger=tensorboard", "data.max_length=128", "data.stride=32", "data.synthetic.num_train=64",
    "data.synthetic.num_validation=16", "trainer.batch_size=4", "trainer.epochs=1", f"trainer.max_steps={STEPS}",
    "trainer.checkpoint.keep_last=0", "trainer.progress_every_seconds=null",
]


def reads_while_training(tmp_path, monkeypatch, log_every: int, *overrides: str) -> int:
    """Host reads of tensors made inside the loop's training batches of one run, outside torch.optim."""
    count, training = [0], [False]
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if training[0] and not sys._getframe(1).f_code.co_filename.endswith(NOT_DEVICE_WAITS):
                count[0] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    train_batches = loop._train_batches

    def watched(*args, **kwargs):
        training[0] = True
        try:
            return train_batches(*args, **kwargs)
        finally:
            training[0] = False

    monkeypatch.setattr(loop, "_train_batches", watched)
    cfg = composed(*TINY, f"trainer.log_every_n_steps={log_every}", f"paths.output_dir={tmp_path / str(log_every)}",
                   f"paths.cache_dir={tmp_path / 'cache'}", *overrides, hydra=False)
    train(cfg)
    return count[0]


def test_the_loss_is_read_at_the_logging_cadence_not_at_every_step(tmp_path, monkeypatch):
    # the tracker logs (and so reads) the loss every 4 steps; the run's last step is one of them
    assert reads_while_training(tmp_path, monkeypatch, log_every=4) == STEPS // 4
    # the counter sees reads: logging every step reads at every step
    assert reads_while_training(tmp_path, monkeypatch, log_every=1) == STEPS
    assert reads_while_training(tmp_path, monkeypatch, 1, "logger=none") == 1  # nothing logs: the epoch's end alone


def test_a_non_finite_loss_is_caught_at_the_next_read(tmp_path, monkeypatch):
    forward = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda *a, **k: forward(*a, **k) * float("nan"))
    cfg = composed(*TINY, "trainer.log_every_n_steps=4", f"paths.output_dir={tmp_path / 'run'}",
                   f"paths.cache_dir={tmp_path / 'cache'}", hydra=False)
    with pytest.raises(loop.NonFiniteLossError, match=r"the training loss became nan at optimiser step 4 or in the 3 batch"):
        train(cfg)
