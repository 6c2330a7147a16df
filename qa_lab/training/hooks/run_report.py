"""The block a run ends with: how it ended, its best epoch and scores, what it was scored on, how long it
took, where its files are and the commands that come next, so nobody has to dig through the run folder."""

from __future__ import annotations

import logging
import time
from typing import Any

from qa_lab.core.formatting import duration
from qa_lab.core.records import THRESHOLD_KEY
from qa_lab.training.context import Run
from qa_lab.training.hooks.epoch_log import score_parts
from qa_lab.training.hooks import Hook

log = logging.getLogger(__name__)

# the run folder's main files, with what each holds (those that exist are listed)
MAIN_FILES = (
    ("summary.json", "status, best epoch, versions"),
    ("metrics.jsonl", "every epoch's scores"),
    ("predictions.json", "the best epoch's answers"),
    ("best", "the best model, with qa_lab.json and its model card README.md"),
    ("run.log", "this log"),
)


class RunReport(Hook):
    def on_run_end(self, run: Run, status: str) -> None:
        log.info("\n".join(report_lines(run, status)))


def report_lines(run: Run, status: str) -> list[str]:
    """The end-of-run block, line by line."""
    best, splits = run.state.best, run.data.splits
    wall = duration(time.perf_counter() - run.started)
    ended = f"pruned after epoch {run.stop.epoch}" if status == "pruned" and run.stop else status
    lines = [f"run {ended} in {wall}: {run.name}"]
    if best is not None and best["epoch"] == 0:
        lines.append(f"  evaluated without training (trainer.epochs=0): {_scores(best)}")
    elif best is not None:
        lines.append(f"  best epoch {best['epoch']} of {len(run.state.history)}: {_scores(best)}")
    lines.append(f"  validation: {splits.sources['validation']}, {len(splits.validation):,} questions "
                 f"({len(run.data.eval_windows):,} windows), SQuAD v{'2.0' if run.data.version_2 else '1.1'} scoring")
    lines.append(f"  run folder: {run.folder}")
    lines += [f"    {name}{'/' if (run.folder / name).is_dir() else ''}: {what}" for name, what in MAIN_FILES if (run.folder / name).exists()]
    lines += _next_commands(run, status, best is not None)
    return lines


def _scores(record: dict[str, Any]) -> str:
    parts = score_parts(record)
    if THRESHOLD_KEY in record:
        parts.append(f"null threshold {record[THRESHOLD_KEY]:.3f}")
    return " | ".join(parts)


def _next_commands(run: Run, status: str, has_model: bool) -> list[str]:
    commands = [f"the error is above, and in {run.folder / 'run.log'}"] if status == "failed" else []
    commands.append(f"qa-lab compare {run.folder}")
    if has_model and (run.folder / "best").is_dir():
        commands.append(f"qa-lab predict --model {run.folder / 'best'} --data <questions file> --out answers.json")
    push = run.facts.get("push", {})
    if push.get("state") == "pushed":
        commands.append(f"the model is at {push['url']}")
    elif has_model:
        commands.append(f"qa-lab push {run.folder} --repo-id <user/name>"
                        + (f"  (hub.push failed: {push['error']})" if push.get("state") == "failed" else ""))
    commands += [tracker["view"] for tracker in run.facts.get("trackers", {}).values() if tracker.get("view")]
    return ["  next:", *(f"    {command}" for command in commands)]
