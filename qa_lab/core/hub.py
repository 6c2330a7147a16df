"""Hugging Face Hub access that fails in seconds, not after the libraries' 25-50 s of retries.

Before anything is loaded from the Hub, one short probe tells whether the Hub answers. When it does
not, the process switches the Hub libraries to offline mode: what is in the local cache still loads,
and what is not fails at once with an error that names the offline alternatives.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from qa_lab.core.errors import HubUnavailableError

T = TypeVar("T")

OFFLINE_ALTERNATIVES = (
    "use the offline backbone `model=minilm` (or `model=tiny`), generated data `data=synthetic`, or your "
    "own files `data=local data.train_file=... data.validation_file=...`; a model folder on disk works "
    "as `model.name_or_path=/path/to/folder`"
)


def is_local(name_or_path: str) -> bool:
    return Path(name_or_path).expanduser().exists()


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout: float) -> bool:
    """One HEAD request with a hard timeout: any HTTP answer means the Hub is there."""
    try:
        httpx.head(hub_endpoint(), timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def offline_mode() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def go_offline() -> None:
    """Switch the Hub libraries of this process (and its children) to their offline mode."""
    import datasets.config
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True


def load_from_hub(load: Callable[[], T], name: str, kind: str, timeout: float) -> T:
    """Run `load` (which reads `name` from a folder or the Hub) with a fast, clear failure offline."""
    if is_local(name):
        return load()
    if not offline_mode() and not hub_reachable(timeout):
        go_offline()
    try:
        return load()
    except Exception as error:  # noqa: BLE001 - every library error here means "not available"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if offline_mode():
            raise HubUnavailableError(
                f"the {kind} '{name}' is not in the local Hugging Face cache and the Hub "
                f"({hub_endpoint()}) cannot be reached ({first_line})",
                fix=OFFLINE_ALTERNATIVES,
            ) from None
        raise HubUnavailableError(
            f"the {kind} '{name}' could not be loaded: {first_line}",
            fix=f"check the name on the Hub, or give a local folder; or {OFFLINE_ALTERNATIVES}",
        ) from None
