"""User-facing errors: what went wrong, where, and how to fix it, without a library traceback.

`exit_on_user_error` is the one place that turns such an error into its message and exit status 2: every
`qa-lab` command, the Hydra run wrapper and the Hydra callbacks go through it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ContextDecorator
from types import TracebackType

EXIT_INPUT_ERROR = 2  # the exit status of a run or command stopped by bad input or configuration


class QALabError(Exception):
    """An error caused by input or configuration, reported to the user as a one-paragraph message."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.message())

    def message(self) -> str:
        parts = [f"{self.where}: {self.what}" if self.where else self.what]
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        return "\n".join(parts)


class DataError(QALabError):
    """A data file or data set that cannot be used as it is."""


class ConfigError(QALabError):
    """A composed configuration that would fail later, caught before any work starts."""


class HubUnavailableError(QALabError):
    """A model or data set that is neither local, nor cached, nor reachable on the Hub."""


class StorageError(QALabError):
    """A run file that could not be written: a full disk, a used-up quota, a read-only file system."""


def _user_error(error: BaseException | None) -> QALabError | None:
    """The QALabError behind `error`: itself, or one raised in a config resolver (`${public_data:...}`), which
    OmegaConf wraps in its own error."""
    if error is None or isinstance(error, QALabError):
        return error
    try:
        from omegaconf.errors import InterpolationResolutionError
    except ImportError:  # the device benchmark runs where omegaconf may not be installed: no resolvers there
        return None
    if isinstance(error, InterpolationResolutionError):
        while error is not None and not isinstance(error, QALabError):
            error = error.__cause__ or error.__context__
    return error if isinstance(error, QALabError) else None


def require(condition: bool, where: str, what: str, fix: str) -> None:
    """The config check's one step: a ConfigError naming the key, what is wrong and a value that works."""
    if not condition:
        raise ConfigError(what, where=where, fix=fix)


def print_message(error: QALabError) -> None:
    print(error.message(), file=sys.stderr)


class exit_on_user_error(ContextDecorator):  # noqa: N801 - used as a decorator and a `with` block, named as one
    """A QALabError raised inside becomes `show(error)` and SystemExit(EXIT_INPUT_ERROR); anything else passes.

    `show` says how the message reaches the user (stderr by default; the run log, or a JSON object, elsewhere).
    With `reraise` true the error is raised on after being shown instead: a Hydra multirun records the job
    as failed and goes on, where SystemExit would end the whole sweep.
    """

    def __init__(self, show: Callable[[QALabError], None] = print_message, reraise: Callable[[], bool] = lambda: False) -> None:
        self.show, self.reraise = show, reraise

    def __enter__(self) -> exit_on_user_error:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> bool:
        error = _user_error(error)
        if error is None:
            return False
        self.show(error)
        if self.reraise():
            return False
        raise SystemExit(EXIT_INPUT_ERROR) from None
