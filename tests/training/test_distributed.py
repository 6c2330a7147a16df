"""Several processes on CPU (`torchrun`, gloo): training works, only the main process writes, and
evaluating one checkpoint on 2 processes gives exactly what 1 process gives (gather_for_metrics drops the
duplicates that even sharding adds at an uneven tail)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, TINY_RUN, offline_env

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("distributed")]

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
EVAL_ONLY = ["trainer.epochs=0", "model.pretrained=true"]


def launch(run_dir: Path, processes: int, *overrides: str, output_root: Path | None = None) -> subprocess.CompletedProcess:
    """`run.py` on 1 or 2 processes, in `run_dir`, or (with `output_root`) in the default timestamped folder."""
    launcher = TORCHRUN if processes == 2 else [sys.executable]
    # one thread per process, as torchrun sets: the thread count changes the last bits of a matrix product,
    # and the comparison is about processes
    env = offline_env(QA_LAB_CACHE_DIR=str(run_dir.parent / "cache"), OMP_NUM_THREADS="1")
    where = [] if output_root else [f"hydra.run.dir={run_dir}"]
    if output_root:
        env["QA_LAB_OUTPUT_ROOT"] = str(output_root)
    done = subprocess.run(
        [*launcher, "run.py", *where, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def scores(run_dir: Path) -> list[tuple[int, float, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(record["epoch"], record["exact_match"], record["f1"]) for record in records]


def assert_same_nbest(run_a: Path, run_b: Path) -> None:
    """The same n-best spans in the same order; logits equal up to float32 rounding: the windows of the
    uneven last batch share it with the duplicates Accelerate adds, so they are padded to another width."""
    a, b = (json.loads((run / "nbest_predictions.json").read_text()) for run in (run_a, run_b))
    assert list(a) == list(b)
    for qid in a:
        assert [(c["text"], c["start_char"], c["end_char"]) for c in a[qid]] == [(c["text"], c["start_char"], c["end_char"]) for c in b[qid]]
        for key in ("score", "start_logit", "end_logit"):
            assert [c[key] for c in a[qid]] == pytest.approx([c[key] for c in b[qid]], abs=1e-5)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """One epoch of the tiny model on 2 processes; 77 validation windows in batches of 5: an uneven tail."""
    root = tmp_path_factory.mktemp("ddp")
    done = launch(root / "unused", 2, *TINY_RUN, "trainer.epochs=1", "trainer.eval_batch_size=5", output_root=root / "outputs")
    # both processes composed a run folder named after their own start time: only the main one's is left
    [run_dir] = (root / "outputs" / "runs").iterdir()
    return run_dir, done


def test_training_on_two_processes_writes_once(two_process_run):
    run_dir, done = two_process_run
    assert len(scores(run_dir)) == 1
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one W&B run, from the main process
    assert (done.stdout + done.stderr).count("| EM ") == 1  # one log line per epoch, not one per process
    assert len(list((run_dir / "checkpoints").iterdir())) == 1


@pytest.mark.parametrize("processes", [1, 2])
def test_the_checkpoint_scores_the_same_on_one_and_two_processes(two_process_run, tmp_path, processes):
    run_dir, _ = two_process_run
    evaluated = tmp_path / f"eval-{processes}"
    launch(evaluated, processes, *TINY_RUN, *EVAL_ONLY, f"model.name_or_path={run_dir / 'best'}", "trainer.eval_batch_size=5")
    assert scores(evaluated) == [(0, *scores(run_dir)[0][1:])]
    assert (evaluated / "predictions.json").read_text() == (run_dir / "predictions.json").read_text()
    assert_same_nbest(evaluated, run_dir)


def test_minilm_on_xquad_evaluates_the_same_on_one_and_two_processes(tmp_path, xquad_file):
    """The pretrained backbone on real questions (with its freshly initialised, seeded span head)."""
    data = tmp_path / "xquad.json"
    shutil.copy(xquad_file, data)
    overrides = [
        "data=local", f"data.train_file={data}", f"data.validation_file={data}", "data.max_train_samples=8",
        "data.max_eval_samples=60", "trainer.eval_batch_size=7", "logger=none", *EVAL_ONLY,
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    launch(one, 1, *overrides)
    launch(two, 2, *overrides)
    assert scores(one) == scores(two)
    predictions = json.loads((one / "predictions.json").read_text())
    # an untrained span head ignores the question, but each context still gets its own span
    assert len(predictions) == 60 and len(set(predictions.values())) >= 10
    assert (one / "predictions.json").read_text() == (two / "predictions.json").read_text()
    assert_same_nbest(one, two)
