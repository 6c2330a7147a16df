"""Where qa-lab's files are: the checkout or the installed package, and its conf/. No config library
here, so that the device benchmark (a machine with little more than torch) can find conf/ too."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def checkout_root() -> Path | None:
    """The qa-lab checkout this code runs from (also under an editable install), or None for an installed package."""
    root = PACKAGE_DIR.parent
    return root if (root / "conf" / "config.yaml").is_file() and (root / "pyproject.toml").is_file() else None


# a checkout reads conf/ where it is; an installed package its copy, qa_lab/conf (pyproject.toml ships it)
CONF_DIR = (checkout_root() or PACKAGE_DIR) / "conf"
