"""`python -m qa_lab.bench workers [KEY=VALUE ...]`: qa-lab's asynchronous sweep workers against Hydra's
batch-synchronous pattern, on one study of unequal trials (conf/bench/workers.yaml), one after the other.

Each trial's span comes from its own run folder (its summary.json: written when the run ends, with the
run's wall_seconds), the same way for both sweeps. A worker's idle share is the part of the trial phase
(first trial's start to last trial's end) in which it ran no trial; "idle while trials remained" counts only
the time before the last trial started, when a free worker could have taken one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from qa_lab.core.paths import checkout_root
from qa_lab.studies.workers import split_machine

SWEEPS = {  # name -> how the sweep is asked for, on top of the shared overrides
    "qa-lab": ["hydra/sweeper=qa_lab", "hydra/sweeper/pruner=none"],
    "hydra": ["hydra/sweeper=optuna", "hydra/launcher=joblib"],
}
HEADINGS = {"qa-lab": "qa-lab, asynchronous workers", "hydra": "Hydra's Optuna sweeper, batches on joblib"}


@dataclass(frozen=True)
class Span:
    worker: int
    start: float
    end: float


def sweep_command(settings: DictConfig, name: str, folder: Path) -> list[str]:
    """`python run.py -m ...` for one of the two sweeps, writing under `folder`."""
    run_py = (checkout_root() or Path()) / "run.py"
    if not run_py.is_file():
        raise ValueError("the workers benchmark runs `python run.py -m`: run it from a qa-lab checkout")
    n = settings.n_jobs
    return [
        sys.executable, str(run_py), "-m", *SWEEPS[name], *settings.overrides,
        f"hydra.sweeper.n_jobs={n}", *([f"hydra.launcher.n_jobs={n}"] if name == "hydra" else []),
        "hydra/sweeper/sampler=grid", f"hydra.sweeper.sampler.seed={settings.grid_seed}", "hydra.sweeper.direction=maximize",
        f"hydra.sweeper.n_trials={len(settings.epochs) * len(settings.seeds)}", f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.storage=sqlite:///{folder}/study.db", f"hydra.sweep.dir={folder}", "hydra.sweep.subdir=${hydra.job.num}",
        f"trainer.epochs=choice({','.join(map(str, settings.epochs))})", f"trainer.seed=choice({','.join(map(str, settings.seeds))})",
        f"paths.output_root={folder}",
    ]


def run_sweep(settings: DictConfig, name: str, folder: Path) -> dict[str, Any]:
    """One sweep as a process of its own; its wall time and its trials' spans."""
    threads = str(_threads(settings))
    env = os.environ | {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "WANDB_MODE": "offline"}
    folder.mkdir(parents=True)  # the official sweeper does not create its SQLite file's folder
    started = time.perf_counter()
    done = subprocess.run(sweep_command(settings, name, folder), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the {name} sweep failed (exit status {done.returncode}):\n{done.stderr[-3000:]}")
    return {"wall_seconds": wall, "spans": trial_spans(folder, settings.n_jobs)}


def _threads(settings: DictConfig) -> int:
    """Each worker's threads: the split qa-lab's owner makes itself, given to the batch sweep's workers too."""
    return split_machine(settings.n_jobs, [], "auto")[0].threads


def trial_spans(folder: Path, n_jobs: int) -> list[Span]:
    """Every trial's worker and span: the end is when its summary.json was written, the start its wall time
    before. qa-lab's trials name their worker; a batch sweep's job k runs in slot k mod n_jobs of its batch."""
    spans = []
    for summary_file in folder.glob("*/summary.json"):
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        end = summary_file.stat().st_mtime
        worker = summary.get("trial", {}).get("worker", int(summary_file.parent.name) % n_jobs)
        spans.append(Span(worker, end - summary["wall_seconds"], end))
    return sorted(spans, key=lambda span: span.start)


def idle(spans: list[Span]) -> dict[int, dict[str, float]]:
    """Per worker: seconds busy, the idle share of the trial phase, and seconds idle while trials remained."""
    first, last_start, last_end = min(s.start for s in spans), max(s.start for s in spans), max(s.end for s in spans)
    result = {}
    for worker in sorted({s.worker for s in spans}):
        own = [s for s in spans if s.worker == worker]
        busy = sum(s.end - s.start for s in own)
        busy_before = sum(max(min(s.end, last_start) - s.start, 0.0) for s in own)
        result[worker] = {
            "busy_seconds": busy,
            "idle_share": 1 - busy / (last_end - first),
            "idle_while_trials_remained_seconds": max(last_start - first - busy_before, 0.0),
        }
    return result


def workers_benchmark(settings: DictConfig) -> dict[str, Any]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="qa-lab-bench-workers-") as work:
        for name in SWEEPS:
            run = run_sweep(settings, name, Path(work) / name)
            spans = run["spans"]
            results[name] = {
                "wall_seconds": run["wall_seconds"], "trials": len(spans), "workers": idle(spans),
                "trial_phase_seconds": max(s.end for s in spans) - min(s.start for s in spans),  # without the processes' start
            }
    results["speedup"] = results["hydra"]["wall_seconds"] / results["qa-lab"]["wall_seconds"]
    results["trial_phase_speedup"] = results["hydra"]["trial_phase_seconds"] / results["qa-lab"]["trial_phase_seconds"]
    return results


def workers_markdown(settings: DictConfig, results: dict[str, Any]) -> str:
    """The table BENCHMARKS.md takes: wall time and, per worker, busy time and idle."""
    trials = len(settings.epochs) * len(settings.seeds)
    lines = [
        f"`python -m qa_lab.bench workers`: {trials} trials ({' '.join(settings.overrides)}, trainer.epochs in "
        f"{list(settings.epochs)} x trainer.seed in {list(settings.seeds)}, a seeded grid: the same trials in the same order), "
        f"{settings.n_jobs} workers of {_threads(settings)} thread(s) each.",
        "",
        "| | " + " | ".join(HEADINGS[name] for name in SWEEPS) + " |",
        "|---|" + "---|" * len(SWEEPS),
        "| wall time | " + " | ".join(f"{results[name]['wall_seconds']:.0f} s" for name in SWEEPS) + " |",
        "| trial phase (first trial's start to last trial's end) | "
        + " | ".join(f"{results[name]['trial_phase_seconds']:.0f} s" for name in SWEEPS) + " |",
    ]
    for worker in range(settings.n_jobs):
        cells = [results[name]["workers"].get(worker) for name in SWEEPS]
        lines.append(
            f"| worker {worker}: busy, idle share, idle while trials remained | "
            + " | ".join(f"{c['busy_seconds']:.0f} s, {c['idle_share']:.0%}, {c['idle_while_trials_remained_seconds']:.0f} s" if c else "-" for c in cells)
            + " |"
        )
    lines.append(f"| batches / asynchronous: wall time, trial phase | {results['speedup']:.2f}x, {results['trial_phase_speedup']:.2f}x | |")
    return "\n".join([*lines, ""])
