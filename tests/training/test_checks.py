"""The config check before any work (training/checks.py): bad values fail with the key and the fix."""

from __future__ import annotations

import pytest

from qa_lab.core.errors import ConfigError
from qa_lab.training.checks import check_settings
from tests.helpers import composed, resolvable

pytestmark = pytest.mark.unit


def test_local_data_needs_an_existing_file(tmp_path):
    cfg = resolvable(composed("data=local", f"data.train_file={tmp_path / 'missing.json'}"))
    with pytest.raises(ConfigError, match=r"data.train_file: no such file"):
        check_settings(cfg)


def test_bad_trainer_values():
    with pytest.raises(ConfigError, match="trainer.mixed_precision: unknown value 'fp8'"):
        check_settings(resolvable(composed("trainer.mixed_precision=fp8")))
    with pytest.raises(ConfigError, match="trainer.epochs: must be >= 0"):
        check_settings(resolvable(composed("trainer.epochs=-1")))


@pytest.mark.parametrize("override, message", [
    ("trainer.adamw=fast", "trainer.adamw: unknown value 'fast'"),
    ("trainer.loader.num_workers=-1", "trainer.loader.num_workers: takes auto or a whole number >= 0, got -1"),
    ("trainer.pad_to_multiple_of=0", "trainer.pad_to_multiple_of: takes auto or a whole number >= 1, got 0"),
    ("trainer.loader.pin_memory=maybe", "trainer.loader.pin_memory: takes auto, true or false, got 'maybe'"),
    ("trainer.compile=yes", "trainer.compile: takes true or false, got 'yes'"),
    ("trainer.compile_bucket=0", "trainer.compile_bucket: takes a whole number >= 1, got 0"),
    ("trainer.compile_backend=indcutor", "trainer.compile_backend: takes a torch.compile backend's name, got 'indcutor'"),
])
def test_bad_gpu_settings(override, message):
    with pytest.raises(ConfigError, match=message):
        check_settings(resolvable(composed(override)))
