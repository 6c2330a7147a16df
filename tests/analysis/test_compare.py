"""`qa-lab compare` over real run folders of the tiny model (complete, pruned and failed trials, a seed
multirun), its statistics on known and real per-question scores, and report.html in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qa_lab.analysis.breakdown import question_categories
from qa_lab.analysis.significance import paired_bootstrap, seed_groups
from qa_lab.evaluation.squad import question_scores
from tests.helpers import (
    ARTIFACTS,
    PEER_SCORES,
    free_port,
    offline_env,
    qa_lab,
    read_squad_answers,
    run,
)

# one worker runs the whole module: the report tests share the runs of `runs_root` (no run done twice)
pytestmark = pytest.mark.xdist_group("compare")

STUDY = "lr-tiny-synthetic"
BOOTSTRAP = {"samples": 4000, "confidence": 0.95, "seed": 0, "chunk": 500}


# --- statistics on known numbers ---------------------------------------------------------------------

@pytest.mark.unit
def test_a_constant_difference_has_a_point_interval_and_is_significant():
    test = paired_bootstrap(np.full(50, 80.0), np.full(50, 79.7), **BOOTSTRAP)
    assert (test.questions, test.difference) == (50, pytest.approx(0.3))
    assert test.low == pytest.approx(0.3) and test.high == pytest.approx(0.3)
    assert test.p_value == pytest.approx(1 / 4001) and test.significant


@pytest.mark.unit
def test_symmetric_noise_gives_the_normal_interval_and_is_not_significant():
    # per-question differences of +1 and -1, 400 of each: mean 0, sd 1, so the mean of 800 has sd 1/sqrt(800)
    a = np.tile([1.0, 0.0], 400)
    b = np.tile([0.0, 1.0], 400)
    test = paired_bootstrap(a, b, **BOOTSTRAP)
    half_width = 1.96 / np.sqrt(800)
    assert test.difference == 0.0
    assert test.low == pytest.approx(-half_width, rel=0.1) and test.high == pytest.approx(half_width, rel=0.1)
    assert test.p_value == 1.0 and not test.significant


@pytest.mark.unit
def test_a_real_difference_is_significant_and_a_reshuffled_one_is_noise(xquad_file, peer_predictions):
    """Published systems on XQuAD's questions. BERT ensemble vs Match-LSTM: ~20 F1 points, real.
    Two mixtures of them (BERT on odd questions and Match-LSTM on even ones, and the other way round)
    are equally good systems; the small gap between them is noise."""
    references = read_squad_answers(xquad_file)
    bert = json.loads(peer_predictions["bert-ensemble.json"].read_text(encoding="utf-8"))
    lstm = json.loads(peer_predictions["match-lstm.json"].read_text(encoding="utf-8"))
    expected = json.loads(PEER_SCORES.read_text())["scores"]
    f1 = {name: 100 * question_scores(predictions, references)[1] for name, predictions in (("bert", bert), ("lstm", lstm))}
    real = paired_bootstrap(f1["bert"], f1["lstm"], **BOOTSTRAP)
    assert real.difference == pytest.approx(expected["bert-ensemble.json"]["f1"] - expected["match-lstm.json"]["f1"], rel=1e-9)
    assert real.low > 10 and real.significant and real.p_value < 0.001
    odd = np.arange(len(references)) % 2 == 1
    mixed = np.where(odd, f1["bert"], f1["lstm"]), np.where(odd, f1["lstm"], f1["bert"])
    noise = paired_bootstrap(*mixed, **BOOTSTRAP)
    assert 0 < abs(noise.difference) < 3  # a "win" of a point or two ...
    assert noise.low < 0 < noise.high and noise.p_value > 0.05 and not noise.significant  # ... that is noise


@pytest.mark.unit
def test_seed_groups_are_configs_that_differ_only_in_the_seed():
    parameters = {
        "a": {"trainer.lr": 1e-3, "trainer.seed": 1},
        "b": {"trainer.lr": 1e-3, "trainer.seed": 2},
        "c": {"trainer.lr": 1e-3, "trainer.seed": 3},
        "d": {"trainer.lr": 2e-3, "trainer.seed": 1},
    }
    scores = pd.DataFrame({"exact_match": [10.0, 20.0, 30.0, 50.0], "f1": [20.0, 22.0, 27.0, 60.0]}, index=list("abcd"))
    [group] = seed_groups(parameters, scores).to_dict("records")
    assert (group["runs"], group["n"], group["seeds"]) == ("a, b, c", 3, "1, 2, 3")
    assert group["f1_mean"] == pytest.approx(23.0) and group["f1_std"] == pytest.approx(np.std([20, 22, 27], ddof=1))
    assert group["exact_match_std"] == pytest.approx(10.0)


@pytest.mark.unit
def test_question_types_and_length_buckets():
    rows = [
        ("How many games did the Broncos win?", "Ten", "x " * 40),
        ("Whose car was it?", "Ada's red car", "x " * 120),
        ("In which year did it open?", "in the year 1990 or so", "x " * 300),
        ("Name the stadium.", "Levi's Stadium", "x " * 10),
        ("Why did it fail?", "", "x " * 10),
    ]
    frame = pd.DataFrame(
        [{"id": str(i), "question": q, "context": c, "answers": {"text": [a] if a else [], "answer_start": [0] if a else []}} for i, (q, a, c) in enumerate(rows)]
    )
    categories = question_categories(frame, [1, 2, 3, 5], [100, 150, 250])
    assert categories["question_type"].astype(str).tolist() == ["how many", "who", "which", "other", "why"]
    assert categories["answer_length"].astype(str).tolist() == ["1", "3", "6+", "2", "no answer"]
    assert categories["context_length"].astype(str).tolist() == ["1-100", "101-150", "251+", "1-100", "1-100"]


# --- real run folders ----------------------------------------------------------------------------------

def succeeded(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = run(command, env=offline_env(**(env or {})))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    """A grid sweep (two complete trials, one whose loss diverges), a pruned trial of another study, and
    a two-seed multirun of the first trial's config: tiny model, 64 synthetic questions, W&B offline."""
    root = tmp_path_factory.mktemp("compare")
    env = {"QA_LAB_CACHE_DIR": str(root / "cache")}
    python = ["run.py", "-m", "debug=fast", "trainer.epochs=2"]
    succeeded([*python, f"paths.output_root={root}/a", "sweep=lr", "hydra/sweeper/pruner=none", "hydra/sweeper/sampler=grid",
         "hydra.sweeper.max_failure_rate=0.5", "trainer.lr=choice(1e-3,1e6,3e-3)", "logger=wandb"], env=env)
    succeeded([*python, f"paths.output_root={root}/b", "sweep=lr", "hydra.sweeper.n_trials=1", "trainer.epochs=3",
         "hydra/sweeper/pruner=none", "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
         "+hydra.sweeper.pruner.lower=101"], env=env)
    succeeded([*python, f"hydra.sweep.dir={root}/seeds", "trainer.lr=1e-3", "trainer.seed=1,2"], env=env)
    return root


def compare(*arguments: str) -> subprocess.CompletedProcess:
    return succeeded(["-m", "qa_lab.cli", "compare", *arguments])


@pytest.fixture(scope="module")
def compared(runs_root) -> tuple[Path, subprocess.CompletedProcess]:
    out = runs_root / "report"
    done = compare(str(runs_root / "a" / "sweeps"), str(runs_root / "b"), f"{runs_root}/seeds/*", "--out", str(out), "--bootstrap-samples", "2000")
    return out, done


@pytest.mark.e2e
def test_the_table_matches_every_runs_own_summary(runs_root, compared):
    out, done = compared
    table = pd.read_csv(out / "runs.csv", index_col="run")
    assert len(table) == 6
    assert table["f1"].dropna().tolist() == sorted(table["f1"].dropna(), reverse=True)  # best F1 first
    for run_name, row in table.iterrows():
        summary_file = Path(row["path"]) / "summary.json"
        if row["status"] == "failed":
            assert not summary_file.exists() and "training loss became nan" in row["note"]
            continue
        summary = json.loads(summary_file.read_text())
        assert row["f1"] == summary["best"]["f1"] and row["exact_match"] == summary["best"]["exact_match"]
        assert row["best_epoch"] == summary["best_epoch"] and row["wall_seconds"] == pytest.approx(summary["wall_seconds"])
    statuses = table["status"].value_counts().to_dict()
    assert statuses == {"complete": 4, "pruned": 1, "failed": 1}
    pruned = table[table["status"] == "pruned"].iloc[0]
    assert (pruned["epochs"], pruned["epochs_run"], pruned["note"]) == (3, 1, "pruned after epoch 1")
    printed = done.stdout.splitlines()
    assert printed[0].split()[:3] == ["status", "backbone", "max_length"]
    assert f"{table['f1'].iloc[0]:.2f}" in printed[2]  # the first run printed is the best


@pytest.mark.e2e
def test_seeds_are_grouped_and_the_best_run_is_tested_against_the_others(runs_root, compared):
    out, _ = compared
    table = pd.read_csv(out / "runs.csv", index_col="run")
    report = (out / "report.html").read_text()
    # trial 0 of the grid (lr 1e-3, seed 42) and the two seeds share every other setting
    members = [run for run in table.index if run.startswith("seeds/") or table.loc[run, "path"].endswith("trial-0") and "/a/" in table.loc[run, "path"]]
    assert len(members) == 3
    mean = table.loc[members, "f1"].mean()
    assert f"{mean:.4g}" in report and "Same config, different seeds" in report
    # every other run with an evaluation is paired with the best one (all share the validation set)
    assert report.count("<td class='significant'>") + report.count("<td class='noise'>") == 4


@pytest.mark.e2e
def test_the_study_is_found_from_the_trials_or_given(runs_root, compared):
    _, done = compared
    assert "come from 2 studies" in done.stderr  # two sweeps, two studies: no study view unless asked
    out = runs_root / "report-a"
    alone = compare(str(runs_root / "a" / "sweeps"), "--out", str(out))
    assert "Optuna study lr-tiny-synthetic" in (out / "report.html").read_text()
    storage = f"sqlite:///{runs_root}/a/optuna/{STUDY}.db"
    given = compare(str(runs_root / "b"), "--out", str(runs_root / "report-b"), "--study-storage", storage, "--study-name", STUDY)
    assert "Optuna study lr-tiny-synthetic" in (runs_root / "report-b" / "report.html").read_text()
    assert "come from" not in alone.stderr + given.stderr


@pytest.mark.e2e
def test_a_path_without_runs_is_a_clear_error(tmp_path):
    done = qa_lab("compare", str(tmp_path))
    assert done.returncode == 2 and "no run directories found" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.e2e
@pytest.mark.browser
def test_report_renders_in_chromium_with_curves_importances_and_significance(runs_root):
    from playwright.sync_api import sync_playwright

    out = runs_root / "report-a"
    if not (out / "report.html").exists():
        compare(str(runs_root / "a" / "sweeps"), "--out", str(out))
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make test` installs it"
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: problems.append(f"network: {request.url}") if not request.url.startswith(("file:", "data:", "blob:")) else None)
        page.goto((out / "report.html").as_uri())
        page.wait_for_selector("#curves-figure .main-svg")
        rendered = {
            name: page.locator(f"#{name} .main-svg").count()
            for name in ("curves-figure", "study-history", "study-intermediate", "study-importances", "param-0", "breakdown-question_type")
        }
        curves = page.locator("#curves-figure .scatterlayer .trace").count()
        significance_rows = page.locator("#significance table tbody tr").count()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "compare-report.png"), full_page=True)
        browser.close()
    assert problems == []
    assert all(count > 0 for count in rendered.values()), rendered
    assert curves == 4  # two complete trials x (EM, F1); the failed one has no epoch
    assert significance_rows == 1
    assert (ARTIFACTS / "compare-report.png").stat().st_size > 50_000


@pytest.mark.e2e
@pytest.mark.browser
def test_optuna_dashboard_serves_the_sweeps_study(runs_root):
    port = free_port()
    dashboard = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    server = subprocess.Popen(
        [dashboard, f"sqlite:///{runs_root}/a/optuna/{STUDY}.db", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.loads(response.read())["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert studies is not None, "optuna-dashboard did not answer"
        assert [study["study_name"] for study in studies] == [STUDY]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.e2e
def test_an_unknown_study_is_a_clear_error(runs_root):
    storage = f"sqlite:///{runs_root}/a/optuna/{STUDY}.db"
    done = qa_lab("compare", str(runs_root / "b"), "--study-storage", storage, "--study-name", "no-such-study")
    assert done.returncode == 2 and "cannot open study 'no-such-study'" in done.stderr and "Traceback" not in done.stderr
