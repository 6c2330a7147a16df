"""best/README.md beside the best model: the Hub's model card, with the best epoch's EM and F1 in its
`model-index`, the training settings, the data fingerprints and the provenance (qa_lab/core/publish.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qa_lab.core import provenance
from qa_lab.core.hub import is_local
from qa_lab.core.publish import CardFacts, write_model_card
from qa_lab.training.context import EpochEnd, Run
from qa_lab.training.hooks import Hook

SYNTHETIC_DATASET = "qa-lab-synthetic"  # the card's data set id for generated data (no Hub data set)


class ModelCard(Hook):
    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        if epoch.improved:  # best/ was just written (hooks.best_model runs before this hook)
            write_model_card(run.folder / "best", card_facts(run, epoch.record))


def card_facts(run: Run, best: dict[str, Any]) -> CardFacts:
    model, splits = run.config["model"], run.data.splits
    # the Hub id the weights came from: the model option's hub_id (a backbone shipped as a folder), else its name
    base = model.get("hub_id") or (model["name_or_path"] if model.get("pretrained") and not is_local(model["name_or_path"]) else None)
    return CardFacts(
        name=run.name, base_model=base, dataset=_dataset(run.config["data"]), sources=splits.sources,
        sizes={"train": len(splits.train), "validation": len(splits.validation)}, version_2=run.data.version_2,
        best=best, config=run.config, fingerprints=run.data.fingerprints, provenance=provenance.describe(),
    )


def _dataset(data: dict[str, Any]) -> dict[str, Any]:
    """The data set as a card names it: a Hub data set by its id, generated data and local files by a name."""
    if data["source"] == "hub":
        name = data["name"] + (f" ({data['config_name']})" if data.get("config_name") else "")
        return {"type": data["name"], "name": name, "hub": True}
    if data["source"] == "synthetic":
        return {"type": SYNTHETIC_DATASET, "name": f"qa-lab synthetic data (seed {data['synthetic']['seed']})"}
    file = Path(data.get("validation_file") or data["train_file"]).name
    return {"type": file, "name": file}
