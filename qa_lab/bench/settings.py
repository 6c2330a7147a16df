"""The benchmark's settings: conf/bench/default.yaml, its `quick` block, then KEY=VALUE overrides."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from qa_lab.core.conf import conf_file
from qa_lab.model.compiling import compile_backends


def bench_settings(quick: bool, overrides: list[str]) -> DictConfig:
    """conf/bench/default.yaml, its `quick` block when asked, then KEY=VALUE overrides."""
    settings = settings_file("default.yaml", overrides, "quick" if quick else None)
    if not settings.seeds or not all(isinstance(seed, int) for seed in settings.seeds):
        raise ValueError(f"seeds={settings.seeds}: give a non-empty list of integers, e.g. seeds=[42,43]")
    if settings.compile_backend is None:
        settings.compile_backend = conf_file("trainer", "default.yaml").compile_backend
    if str(settings.compile_backend).lower() not in compile_backends():  # before the hour of runs that precedes the compile probe
        raise ValueError(f"compile_backend={settings.compile_backend}: not a torch.compile backend; choose among {', '.join(compile_backends())}")
    return settings


def settings_file(name: str, overrides: list[str], block: str | None = None) -> DictConfig:
    """conf/bench/<name>, one of its blocks when asked, then KEY=VALUE overrides, checked against the
    defaults' keys and types so a typo fails here rather than minutes into a run."""
    defaults = conf_file("bench", name)
    settings = OmegaConf.merge(defaults, defaults[block] if block else {})
    raw = OmegaConf.to_container(defaults, resolve=False)  # types of the defaults, without fetching ${public_data:...}
    for override in overrides:
        key, equals, _ = override.partition("=")
        if not equals or key not in defaults or key == "quick":
            raise ValueError(f"'{override}': expected KEY=VALUE with KEY one of {', '.join(k for k in defaults if k != 'quick')}")
        value, default = OmegaConf.to_container(OmegaConf.from_dotlist([override]))[key], raw[key]
        if default is not None and value is not None and not isinstance(value, type(default)) and not (isinstance(default, float) and isinstance(value, int)):
            kind = "list" if isinstance(default, list) else type(default).__name__
            raise ValueError(f"'{override}': {key} takes {kind} values (default {default})")
        settings[key] = value
    return settings
