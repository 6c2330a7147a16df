"""Model -> logits of every window -> answers -> SQuAD scores.

Logits are streamed into preallocated float32 arrays indexed by window number, so evaluation memory
stays bounded by the number of windows, whatever the batch order or the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from qa_lab.features import Windows
from qa_lab.metrics import squad_v1, squad_v2
from qa_lab.postprocess import Postprocessed, postprocess

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# SQuAD v2 scores logged beside exact_match and f1 (official names); the threshold the answers used
V2_KEYS = ("HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh")
THRESHOLD_KEY = "null_threshold"


@dataclass
class Evaluation:
    metrics: dict[str, float]  # exact_match and f1 (v1: none for unlabelled data); V2_KEYS and null_threshold for v2
    answers: dict[str, str]  # {question id: answer text}, the official predictions format
    null_odds: dict[str, float]  # {question id: null score - best span score}, what SQuAD v2 thresholds
    spans: Postprocessed
    ids: list[str]

    @property
    def nbest(self) -> dict[str, list[dict]]:
        """{question id: its n-best spans}, built when asked for (only files need it)."""
        return dict(zip(self.ids, self.spans.nbest))


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, windows: Windows, pad_left: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of every window, (W, max_length) float32; -inf beyond a window's end."""
    width = windows.offsets.shape[1]
    start = np.full((len(windows), width), -np.inf, dtype=np.float32)
    end = np.full((len(windows), width), -np.inf, dtype=np.float32)
    model.eval()
    # disable=None: a bar on a terminal only, not in log files
    for batch in tqdm(loader, desc="eval", leave=False, disable=None if accelerator.is_main_process else True):
        outputs = model(**{key: value for key, value in batch.items() if key in MODEL_INPUTS})
        # ranks pad to different widths; pad to a common one before gathering, then drop the
        # duplicated samples that even sharding adds at the tail
        logits = torch.stack([outputs.start_logits, outputs.end_logits], dim=1).float()
        logits = accelerator.pad_across_processes(logits, dim=2, pad_index=float("-inf"), pad_first=pad_left)
        index, logits = accelerator.gather_for_metrics((batch["window_index"], logits))
        if accelerator.is_main_process:
            store_logits(start, end, index.cpu().numpy(), logits.cpu().numpy(), windows.lengths, pad_left)
    return start, end


def store_logits(
    start: np.ndarray, end: np.ndarray, index: np.ndarray, logits: np.ndarray, lengths: np.ndarray, pad_left: bool
) -> None:
    """Write a batch's logits at their windows' token positions (undoing left padding)."""
    window_lengths = lengths[index][:, None]
    batch_width = logits.shape[2]
    shift = batch_width - window_lengths if pad_left else np.zeros_like(window_lengths)
    positions = np.arange(batch_width)[None, :] - shift
    real = (positions >= 0) & (positions < window_lengths)
    rows = np.broadcast_to(index[:, None], real.shape)[real]
    start[rows, positions[real]] = logits[:, 0][real]
    end[rows, positions[real]] = logits[:, 1][real]


def score(
    start: np.ndarray,
    end: np.ndarray,
    windows: Windows,
    examples: pd.DataFrame,
    n_best: int,
    max_answer_length: int,
    version_2: bool = False,
    null_threshold: float = 0.0,
    tune_threshold: bool = False,
) -> Evaluation:
    """Answers from logits, then the official SQuAD scores against the examples' gold answers.

    SQuAD v2: an answer is "" when its null odds exceed `null_threshold`, or, with `tune_threshold`, the
    threshold that maximises F1 on these examples. The best-threshold search runs over the best spans
    and their null odds (not over answers already cut at a threshold).
    """
    result: Postprocessed = postprocess(
        start, end, windows.offsets, windows.example_index, examples["context"].tolist(), n_best, max_answer_length,
        windows.cls_index,
    )
    ids = examples["id"].tolist()
    references = dict(zip(ids, (a["text"] for a in examples["answers"])))
    null_odds = dict(zip(ids, result.null_odds.tolist()))
    spans = dict(zip(ids, result.answers))  # the best span of every question
    if not version_2:
        # SQuAD v1.1 cannot score a question without a gold answer (e.g. unlabelled data): no metrics then
        metrics = squad_v1(spans, references) if all(len(golds) for golds in references.values()) else {}
        return Evaluation(metrics=metrics, answers=spans, null_odds=null_odds, spans=result, ids=ids)
    official = squad_v2(spans, references, null_odds, null_threshold)
    if tune_threshold:
        null_threshold = official["best_f1_thresh"]
        official = squad_v2(spans, references, null_odds, null_threshold)
    metrics = {
        "exact_match": official["exact"],
        "f1": official["f1"],
        **{key: official[key] for key in V2_KEYS if key in official},  # HasAns_/NoAns_ only when there are some
        THRESHOLD_KEY: float(null_threshold),
    }
    answers = dict(zip(ids, result.answers_at(null_threshold)))
    return Evaluation(metrics=metrics, answers=answers, null_odds=null_odds, spans=result, ids=ids)
