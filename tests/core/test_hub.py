"""Hub access that fails fast (core/hub.py): a silent Hub is given up on after its timeout, an uncached
model fails in seconds from the command line, and local or cached things still load."""

from __future__ import annotations

import time

import pytest

from qa_lab.core.errors import HubUnavailableError
from qa_lab.core.hub import hub_reachable, load_from_hub
from tests.helpers import free_port, run


@pytest.mark.unit
def test_hub_probe_gives_up_after_its_timeout(silent_server, monkeypatch):
    monkeypatch.setattr("qa_lab.core.hub.hub_endpoint", lambda: silent_server)
    began = time.monotonic()
    assert hub_reachable(timeout=0.5) is False
    assert time.monotonic() - began < 5


def closed_port() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.e2e
def test_uncached_hub_model_fails_fast_from_the_command_line(tmp_path):
    """Against the same command stopped by a config error just before the Hub is asked (both in fresh
    interpreters, which the Hub libraries need: they read HF_* when imported), the Hub's failure adds seconds,
    not the 25-50 s the libraries' own retries take; compared within one test, so machine load cancels out."""
    env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": closed_port(), "HF_HOME": str(tmp_path / "hf"), "QA_LAB_OUTPUT_ROOT": str(tmp_path / "out")}

    def timed(*overrides: str) -> tuple[float, str, int]:
        began = time.monotonic()
        done = run(["run.py", "model=distilbert", "logger=none", *overrides], env=env, timeout=120, fresh=True)
        return time.monotonic() - began, done.stdout + done.stderr, done.returncode

    before_the_hub, stopped, code = timed("trainer.epochs=-1")
    assert code == 2 and "trainer.epochs: must be >= 0" in stopped
    elapsed, output, code = timed()
    assert code == 2, output[-2000:]
    assert "the model 'distilbert-base-uncased' is not in the local Hugging Face cache" in output
    assert "model=minilm" in output and "data=synthetic" in output
    assert "Traceback" not in output
    assert elapsed - before_the_hub < 15, (elapsed, before_the_hub)


@pytest.mark.unit
def test_cached_things_still_load_when_the_hub_is_down(monkeypatch, minilm_path):
    monkeypatch.setattr("qa_lab.core.hub.hub_reachable", lambda timeout: False)
    monkeypatch.setattr("qa_lab.core.hub.go_offline", lambda: None)
    assert load_from_hub(lambda: "loaded", minilm_path, "model", 1) == "loaded"  # a local folder needs no Hub
    with pytest.raises(HubUnavailableError, match="could not be loaded: boom"):
        load_from_hub(lambda: (_ for _ in ()).throw(OSError("boom")), "some/model", "model", 1)
