"""One mechanism turns a QALabError into its message and exit status 2 (core/errors.py), as a decorator or a
`with` block; other errors pass through, and a multirun job raises on instead of exiting."""

from __future__ import annotations

import pytest

from qa_lab.core.errors import (
    EXIT_INPUT_ERROR,
    ConfigError,
    QALabError,
    exit_on_user_error,
    require,
)

pytestmark = pytest.mark.unit


def test_a_user_error_becomes_its_message_and_exit_status_2(capsys):
    @exit_on_user_error()
    def command() -> int:
        raise ConfigError("must be positive, got -1", where="trainer.lr", fix="e.g. trainer.lr=5e-5")

    with pytest.raises(SystemExit) as stopped:
        command()
    assert stopped.value.code == EXIT_INPUT_ERROR
    assert capsys.readouterr().err == "trainer.lr: must be positive, got -1\nFix: e.g. trainer.lr=5e-5\n"


def test_other_errors_pass_and_the_message_can_go_elsewhere():
    shown: list[QALabError] = []
    with pytest.raises(ValueError):
        with exit_on_user_error(show=shown.append):
            raise ValueError("a bug, not bad input: its traceback is wanted")
    with pytest.raises(SystemExit):
        with exit_on_user_error(show=shown.append):
            require(False, "data.stride", "too long", "use data.stride=64")
    assert [error.message() for error in shown] == ["data.stride: too long\nFix: use data.stride=64"]


def test_in_a_multirun_the_error_is_shown_and_raised_on():
    shown: list[QALabError] = []
    with pytest.raises(ConfigError):
        with exit_on_user_error(show=shown.append, reraise=lambda: True):
            raise ConfigError("bad")
    assert len(shown) == 1
