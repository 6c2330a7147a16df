"""The best epoch so far, kept whenever an epoch beats every one before it: predictions.json (official
{id: text}), nbest_predictions.json, null_odds.json (SQuAD v2), and best/ (model, tokenizer and qa_lab.json,
the settings it was scored with), each swapped in whole."""

from __future__ import annotations

from pathlib import Path

from qa_lab.core.artifacts import write_directory, write_json
from qa_lab.core.records import THRESHOLD_KEY
from qa_lab.evaluation import settings
from qa_lab.training.context import EpochEnd, Run
from qa_lab.training.hooks import Hook


class BestModel(Hook):
    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        if not epoch.improved:
            return
        evaluation, version_2 = epoch.evaluation, run.data.version_2
        write_json(run.folder / "predictions.json", evaluation.answers)
        write_json(run.folder / "nbest_predictions.json", evaluation.nbest)
        used = settings.describe(run.windows, version_2, run.search)
        if version_2:
            write_json(run.folder / "null_odds.json", evaluation.null_odds)
            used["null_score_diff_threshold"] = evaluation.metrics[THRESHOLD_KEY]
        model = run.accelerator.unwrap_model(run.parts.model)

        def fill(folder: Path) -> None:
            model.save_pretrained(folder)
            run.tokenizer.save_pretrained(folder)
            settings.save(folder, used)

        write_directory(run.folder / "best", fill)
