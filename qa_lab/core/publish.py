"""A trained model as the Hugging Face Hub shows it: its model card (`best/README.md`, written with
huggingface_hub's card API, so the Hub reads its `model-index` results) and the upload of its folder.

The upload takes the token from huggingface_hub itself (HF_TOKEN, else the `hf auth login` file) and hands
it to no file. Without a token, or with a Hub that does not answer within the timeout, it fails at once
with one clear reason instead of huggingface_hub's retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_lab.core.artifacts import write_text
from qa_lab.core.errors import QALabError
from qa_lab.core.hub import hub_endpoint, hub_reachable
from qa_lab.core.records import THRESHOLD_KEY, flatten

CARD_FILE = "README.md"
TASK = "question-answering"
# the run settings a card lists, as (label, key under the recorded config)
SETTINGS = (
    ("max_length", "data.max_length"), ("stride", "data.stride"), ("max_question_tokens", "data.max_question_tokens"),
    ("learning rate", "trainer.lr"), ("epochs", "trainer.epochs"), ("batch size", "trainer.batch_size"),
    ("gradient accumulation steps", "trainer.gradient_accumulation_steps"), ("warm-up ratio", "trainer.warmup_ratio"),
    ("weight decay", "trainer.weight_decay"), ("mixed precision", "trainer.mixed_precision"), ("seed", "trainer.seed"),
)
# the best epoch's scores a card reports: (key of the epoch record, the Hub's metric type, its label)
SCORES = (("exact_match", "exact_match", "Exact match"), ("f1", "f1", "F1"))
V2_SCORES = (("HasAns_f1", "f1", "F1 on answerable questions"), ("NoAns_f1", "f1", "F1 on unanswerable questions"))


class PushError(QALabError):
    """A model folder that could not be uploaded to the Hub."""


@dataclass
class CardFacts:
    """What a model card says about the run that trained the model."""

    name: str  # the run's name
    base_model: str | None  # a Hub id, or None (random start, or a local folder)
    dataset: dict[str, str]  # `type` (a Hub data set id, or a name for generated and local data) and `name`
    sources: dict[str, str]  # where the train and validation questions came from
    sizes: dict[str, int]  # questions per split
    version_2: bool  # scored with the SQuAD v2.0 rules
    best: dict[str, Any]  # the best epoch's record
    config: dict[str, Any]  # the recorded (resolved, secrets masked) config
    fingerprints: dict[str, str]
    provenance: dict[str, Any]  # qa_lab.core.provenance.describe()


def write_model_card(folder: Path, facts: CardFacts) -> None:
    """`folder`/README.md: the card's metadata (model-index with the best epoch's EM and F1) and its text."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    version = "2.0" if facts.version_2 else "1.1"
    scores = SCORES + (V2_SCORES if facts.version_2 else ())
    results = [
        EvalResult(
            task_type=TASK, dataset_type=facts.dataset["type"], dataset_name=facts.dataset["name"],
            dataset_split="validation", metric_type=metric, metric_name=f"{label} (SQuAD v{version} scoring)",
            metric_value=facts.best[key],
        )
        for key, metric, label in scores
        if key in facts.best
    ]
    data = ModelCardData(
        model_name=facts.name, base_model=facts.base_model, library_name="transformers", pipeline_tag=TASK,
        tags=[TASK, "qa-lab", f"squad-v{version}"], metrics=["exact_match", "f1"], eval_results=results,
        datasets=[facts.dataset["type"]] if facts.dataset.get("hub") else None,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_card_text(facts, version, scores)}")
    write_text(folder / CARD_FILE, str(card))


def _card_text(facts: CardFacts, version: str, scores: tuple[tuple[str, str, str], ...]) -> str:
    best, config = facts.best, facts.config
    model = config["model"]
    if facts.base_model:
        start = f"`{facts.base_model}`"
    elif model.get("pretrained", True):
        start = f"`{model['name_or_path']}`"
    else:
        start = f"a randomly initialised model shaped like `{model['name_or_path']}`"
    epochs = config["trainer"]["epochs"]
    lines = [
        f"# {facts.name}",
        "",
        f"Extractive question answering (SQuAD-style: the answer is a span of the context): {start} fine-tuned "
        f"with qa-lab on {facts.sources['train']} ({facts.sizes['train']:,} questions).",
        "",
        f"## Results: {facts.sources['validation']}, {facts.sizes['validation']:,} questions, SQuAD v{version} scoring",
        "",
        f"Best of {epochs} epoch(s): epoch {best['epoch']}.",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {label} | {best[key]:.2f} |" for key, _, label in scores if key in best),
    ]
    if facts.version_2 and THRESHOLD_KEY in best:  # the threshold the answers were given with
        lines.append(f"| null score threshold | {best[THRESHOLD_KEY]:.3f} |")
    lines += ["", "## Training settings", "", "| setting | value |", "|---|---|"]
    settings = flatten(config)
    lines += [f"| {label} | {settings.get(key)} |" for label, key in SETTINGS]
    versions = facts.provenance["versions"]
    lines += [
        "",
        "## Data and provenance",
        "",
        *(f"- {split} data fingerprint: `{value}`" for split, value in facts.fingerprints.items()),
        f"- qa-lab {versions.get('qa-lab')}, commit `{facts.provenance.get('git_commit')}`; "
        f"transformers {versions.get('transformers')}, torch {versions.get('torch')}",
        "",
        "## How to use",
        "",
        "```python",
        "import qa_lab.pipeline  # noqa: F401  (pip install qa-lab: registers the question-answering pipeline)",
        "from transformers import pipeline",
        "",
        'answerer = pipeline("question-answering", model="<this repository or folder>")',
        'answerer(question="Who founded the company?", context="The company was founded in 1911 by Ada Brook.")',
        "```",
        "",
        "The folder's `qa_lab.json` holds the windows and span search the scores were computed with; "
        "`qa-lab predict --model <this folder> --data <questions> --out answers.json` answers a file of questions.",
        "",
    ]
    return "\n".join(lines)


def push_folder(folder: Path, repo_id: str, private: bool, timeout: float) -> dict[str, Any]:
    """Upload `folder` to the Hub model repository `repo_id` (created when missing); what was pushed.

    Raises PushError with the reason when there is no token, the Hub does not answer within `timeout`
    seconds, or the Hub refuses (a wrong repository name, a token without write access)."""
    from huggingface_hub import HfApi, get_token

    if not any(folder.glob("*.safetensors")):  # save_pretrained's weights: a card alone is no model
        raise PushError(f"{folder} holds no model to push", where=str(folder), fix="give a run folder whose best/ was written")
    if not get_token():
        raise PushError("no Hugging Face token", fix="set HF_TOKEN (a token with write access), or run `hf auth login`")
    if not hub_reachable(timeout):
        raise PushError(f"the Hub ({hub_endpoint()}) did not answer within {timeout:g} s",
                        fix="push later from a machine with network: qa-lab push <run folder> --repo-id <user/name>")
    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=f"qa-lab: {folder.parent.name}")
    except Exception as error:  # noqa: BLE001 - every Hub error here has one message for the user
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise PushError(f"the Hub refused the upload to {repo_id}: {first_line}",
                        fix="check the repository name (<user or org>/<name>) and that the token may write to it") from None
    return {"state": "pushed", "repo_id": repo_id, "private": private, "url": str(url), "commit": commit.oid}
