"""What produced a run: package versions, code revision, machine; saved with every summary."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from qa_lab.core.paths import checkout_root

PACKAGES = ("qa-lab", "torch", "transformers", "datasets", "accelerate", "tokenizers", "optuna", "hydra-core", "wandb", "numpy", "pandas")


def git_commit() -> str | None:
    """The commit of the qa-lab checkout (with '-dirty' when it has uncommitted changes); None for an installed
    package, whose folder may lie inside another project's repository."""
    root = checkout_root()
    if root is None:
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def describe() -> dict[str, Any]:
    """Versions, commit, Python and machine: what summary.json and the benchmark record."""
    import torch

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "versions": versions,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()},
    }
