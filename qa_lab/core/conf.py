"""conf/, the single source of every default: its files for tools outside a Hydra run, and its resolvers.

`python run.py` composes conf/ with Hydra; the `qa-lab` commands and the benchmark read single files of it
here, so a default lives in one YAML file and nowhere in code. run.py imports this module before Hydra
composes anything, so a mistyped option fails in a second: nothing here imports torch.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from qa_lab.core.errors import ConfigError
from qa_lab.core.paths import CONF_DIR



def package_path(package: str, *parts: str) -> str:
    """`${package_path:pkg,sub}`: a folder shipped inside an installed package, found at run time."""
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise ConfigError(
            f"the package '{package}' is not installed", fix=f"pip install {package.replace('_', '-')}"
        ) from None
    return str(Path(str(root)).joinpath(*parts))


def register_resolvers() -> None:
    """`${package_path:pkg,sub}` and `${public_data:name}` (a public data file, fetched by checksum when not
    on this machine: qa_lab/core/public_data.py)."""
    from qa_lab.core.public_data import locate

    OmegaConf.register_resolver("package_path", package_path, replace=True)
    OmegaConf.register_resolver("public_data", lambda name: str(locate(name)), replace=True)


def conf_file(*parts: str) -> DictConfig:
    """One file of conf/, e.g. conf_file("trainer", "default.yaml"): defaults for tools outside a Hydra run."""
    return OmegaConf.load(CONF_DIR.joinpath(*parts))


def model_option(name: str) -> DictConfig | None:
    """conf/model/<name>.yaml, resolved, when `name` is one of its options (`--model minilm`), else None
    (then `name` is a Hub id or a folder)."""
    path = CONF_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        return None
    register_resolvers()
    model = OmegaConf.load(path)
    OmegaConf.resolve(model)
    return model
