"""Composed configs: defaults are offline, bad values fail before any work with the key and the fix."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from transformers import AutoConfig

from qa_lab.config import register_resolvers, validate_for_model, validate_settings
from qa_lab.errors import ConfigError, HubUnavailableError
from qa_lab.hub import hub_reachable, load_from_hub

ROOT = Path(__file__).resolve().parents[1]
register_resolvers()


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def resolved(cfg):
    """Resolve outside a Hydra run: the run directory interpolation needs a stand-in."""
    cfg.paths.output_dir = "unused"
    return cfg


def test_defaults_are_offline(minilm_path):
    cfg = composed()
    assert cfg.model.name_or_path == minilm_path and Path(minilm_path, "model.safetensors").is_file()
    assert cfg.data.source == "synthetic"
    assert cfg.logger.name == "wandb" and cfg.logger.mode == "auto"
    assert (cfg.data.max_length, cfg.data.stride) == (384, 128)
    for key in ("max_train_samples", "max_eval_samples", "train_file", "validation_file"):
        assert key in cfg.data
    for key in ("lr", "epochs", "batch_size", "seed"):
        assert key in cfg.trainer


@pytest.mark.parametrize("model", ["distilbert", "bert-base-cased", "roberta-base", "minilm", "tiny"])
@pytest.mark.parametrize("data", ["squad", "squad_v2", "synthetic"])
def test_every_group_option_composes(model, data):
    cfg = composed(f"model={model}", f"data={data}")
    validate_settings(resolved(cfg))


def test_each_backbone_brings_its_learning_rate_and_the_command_line_wins():
    assert composed("model=minilm").trainer.lr == 3e-4
    assert composed("model=distilbert").trainer.lr == 5e-5
    assert composed("model=minilm", "trainer.lr=1e-5").trainer.lr == 1e-5
    without = composed("model=minilm", "~model.lr")
    with pytest.raises(ConfigError, match=r"trainer.lr: defaults to the backbone's model.lr, but the model config sets none"):
        validate_settings(resolved(without))
    validate_settings(resolved(composed("model=minilm", "~model.lr", "trainer.lr=1e-4")))


def test_seed_zero_is_kept():
    assert composed("trainer.seed=0").trainer.seed == 0


def test_unknown_group_option_lists_the_available_ones():
    with pytest.raises(MissingConfigException, match="Could not find 'model/gpt5'"):
        composed("model=gpt5")


def test_local_data_needs_an_existing_file(tmp_path):
    cfg = resolved(composed("data=local", f"data.train_file={tmp_path / 'missing.json'}"))
    with pytest.raises(ConfigError, match=r"data.train_file: no such file"):
        validate_settings(cfg)


def test_stride_without_room_for_new_context_is_rejected(tokenizer, minilm_path):
    cfg = resolved(composed("data.max_length=128", "data.stride=64"))
    with pytest.raises(ConfigError) as error:
        validate_for_model(cfg, tokenizer, AutoConfig.from_pretrained(minilm_path))
    message = error.value.message()
    assert message.startswith("data.stride: stride 64 leaves no new context token")
    assert "at most 61 context tokens" in message and "Fix: use data.stride=30 or less" in message
    validate_for_model(resolved(composed("data.max_length=128", "data.stride=60")), tokenizer, AutoConfig.from_pretrained(minilm_path))


def test_max_length_above_the_model_limit(tokenizer, minilm_path):
    cfg = resolved(composed("data.max_length=1024"))
    with pytest.raises(ConfigError, match=r"data.max_length: 1024 is above the limit .* \(512 tokens\)"):
        validate_for_model(cfg, tokenizer, AutoConfig.from_pretrained(minilm_path))


def test_bad_trainer_values():
    with pytest.raises(ConfigError, match="trainer.mixed_precision: unknown value 'fp8'"):
        validate_settings(resolved(composed("trainer.mixed_precision=fp8")))
    with pytest.raises(ConfigError, match="trainer.epochs: must be >= 0"):
        validate_settings(resolved(composed("trainer.epochs=-1")))


def test_hub_probe_gives_up_after_its_timeout(silent_server, monkeypatch):
    monkeypatch.setattr("qa_lab.hub.hub_endpoint", lambda: silent_server)
    began = time.monotonic()
    assert hub_reachable(timeout=0.5) is False
    assert time.monotonic() - began < 5


def closed_port() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


def test_uncached_hub_model_fails_fast_from_the_command_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": closed_port(), "HF_HOME": str(tmp_path / "hf"), "QA_LAB_OUTPUT_ROOT": str(tmp_path / "out")}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "run.py", "model=distilbert", "logger=none"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - began
    assert done.returncode == 2, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "the model 'distilbert-base-uncased' is not in the local Hugging Face cache" in output
    assert "model=minilm" in output and "data=synthetic" in output
    assert "Traceback" not in output
    assert elapsed < 30  # includes interpreter start-up and imports; the libraries alone retry for 25-50 s


def test_cached_things_still_load_when_the_hub_is_down(monkeypatch, minilm_path):
    monkeypatch.setattr("qa_lab.hub.hub_reachable", lambda timeout: False)
    monkeypatch.setattr("qa_lab.hub.go_offline", lambda: None)
    assert load_from_hub(lambda: "loaded", minilm_path, "model", 1) == "loaded"  # a local folder needs no Hub
    with pytest.raises(HubUnavailableError, match="could not be loaded: boom"):
        load_from_hub(lambda: (_ for _ in ()).throw(OSError("boom")), "some/model", "model", 1)
