"""MLflow and TensorBoard beside W&B, read back with their own libraries: a tiny run logged to both at once
holds the parameters, the per-epoch scores of metrics.jsonl and its status; MLflow's UI, a tracking server
too, takes a run over HTTP and lists both in a real browser; and a tracking server that does not answer
costs one warning, not the run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ARTIFACTS, TINY_RUN, free_port, mlflow_f1, mlflow_in, mlflow_runs, run_py, tensorboard_events, tensorboard_hparams

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("trackers")]


def epochs(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trackers") / "run"
    done = run_py(run_dir, *TINY_RUN, "logger=[mlflow,tensorboard]", "trainer.log_every_n_steps=4", *mlflow_in(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_mlflow_holds_the_config_every_epochs_scores_and_the_status(tracked):
    summary = json.loads((tracked / "summary.json").read_text())
    [run] = mlflow_runs(tracked / "mlflow.db", "qa-lab")
    assert summary["trackers"]["mlflow"] == {
        "state": "logged", "tracking_uri": f"sqlite:///{tracked}/mlflow.db", "experiment": "qa-lab", "run_id": run.info.run_id,
        "view": f"mlflow ui --backend-store-uri sqlite:///{tracked}/mlflow.db",
    }
    params = run.data.params
    assert params["model.short_name"] == "tiny" and params["trainer.seed"] == str(summary["seed"])
    assert (params["data.max_length"], params["data.stride"], params["trainer.lr"]) == ("128", "32", "0.001")
    assert mlflow_f1(tracked / "mlflow.db", run.info.run_id) == [(epoch["epoch"], epoch["f1"]) for epoch in epochs(tracked)]
    assert run.info.status == "FINISHED" and run.data.tags["qa_lab.status"] == "complete"
    assert run.data.metrics["best/f1"] == summary["best"]["f1"] and run.data.metrics["train/loss"] > 0


def test_tensorboard_holds_the_same_epochs_the_steps_and_the_config(tracked):
    summary = json.loads((tracked / "summary.json").read_text())
    assert summary["trackers"]["tensorboard"] == {
        "state": "logged", "log_dir": str(tracked / "tensorboard"), "view": f"tensorboard --logdir {tracked / 'tensorboard'}"}
    events = tensorboard_events(tracked / "tensorboard")
    recorded = epochs(tracked)
    for key in ("f1", "exact_match"):  # TensorBoard keeps 32-bit floats
        assert [(point.step, point.value) for point in events.Scalars(f"eval/{key}")] == [
            (epoch["epoch"], pytest.approx(epoch[key], rel=1e-6)) for epoch in recorded
        ]
    steps = [point.step for point in events.Scalars("train/loss")]
    assert steps == sorted(steps) and len(steps) >= 2 and steps[-1] <= recorded[-1]["step"]
    assert events.Scalars("best/f1")[0].value == pytest.approx(summary["best"]["f1"], rel=1e-6)
    params, status = tensorboard_hparams(events)
    assert params["trainer.lr"].number_value == 0.001 and params["model.short_name"].string_value == "tiny"
    assert status == "STATUS_SUCCESS"
    [text] = events.Tensors("status/text_summary")
    assert text.tensor_proto.string_val == [b"complete"]


def test_an_unreachable_tracking_server_costs_one_warning_not_the_run(tmp_path):
    run_dir = tmp_path / "run"
    done = run_py(
        run_dir, *TINY_RUN, "trainer.epochs=1", "logger=mlflow", f"logger.mlflow.tracking_uri=http://127.0.0.1:{free_port()}",
        "logger.mlflow.request_timeout=2", "logger.mlflow.max_retries=0",
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    log = (run_dir / "run.log").read_text()
    assert log.count("MLflow did not start") == 1 and "the run goes on without it, metrics are in" in log
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["trackers"]["mlflow"]["state"] == "failed"
    assert len(epochs(run_dir)) == 1


# The one failed request MLflow's UI makes of its own server: who the logged-in user is, which a server
# without MLflow's auth app answers with 404 (Chromium logs it as a console error)
NO_AUTH_APP = "/ajax-api/2.0/mlflow/users/current"


@pytest.mark.browser
def test_mlflow_ui_serves_runs_logged_to_a_file_and_over_http_in_chromium(tracked, tmp_path):
    """`mlflow ui` over a copy of the tracked run's database is also a tracking server: a second run logs to it
    over HTTP (logger.mlflow.tracking_uri=http://...), and the UI lists both."""
    from playwright.sync_api import sync_playwright

    database, port = tmp_path / "mlflow.db", free_port()
    shutil.copy(tracked / "mlflow.db", database)
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    server = subprocess.Popen(
        [mlflow, "ui", "--backend-store-uri", f"sqlite:///{database}", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", server)
        over_http = tmp_path / "over-http"
        done = run_py(over_http, *TINY_RUN, "trainer.epochs=1", "logger=mlflow", f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}")
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads((over_http / "summary.json").read_text())["trackers"]["mlflow"]["state"] == "logged"
        runs = mlflow_runs(database, "qa-lab")
        assert len(runs) == 2 and mlflow_f1(database, runs[1].info.run_id) == [(1, epochs(over_http)[0]["f1"])]
        failed, problems = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: problems.append(f"network: {request.url}") if not request.url.startswith(f"http://127.0.0.1:{port}/") else None)
            page.goto(f"http://127.0.0.1:{port}/#/experiments/{runs[0].info.experiment_id}/runs")
            for run in runs:
                page.get_by_text(run.info.run_name).first.wait_for(timeout=60_000)
            listed = page.get_by_text("2 matching runs").count()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "mlflow-ui.png"), full_page=True)
            browser.close()
        assert listed == 1
        assert [url for url in failed if not url.endswith(NO_AUTH_APP)] == []
        known = "Failed to load resource: the server responded with a status of 404 (Not Found)"
        assert [problem for problem in problems if problem != known] == [] and problems.count(known) <= len(failed)
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_until_healthy(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow ui ended before it answered"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow ui did not answer at {url}")
