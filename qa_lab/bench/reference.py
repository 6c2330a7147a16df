"""The seeds' pipeline, the yardstick of the benchmark (`python -m qa_lab.bench`); never optimise it.

It does what the seed scripts (the Hugging Face course recipe) do: every window padded to max_length,
labels found by a Python loop per window, a shuffled DataLoader of fixed-size tensors, the plain training
loop (no gradient clipping, no length grouping), logits collected in Python lists and concatenated, the
per-window double loop of `postprocess_reference` (the course's span search; tests check that qa-lab's
vectorised one gives the same answers), and the official SQuAD v1.1 evaluation loop (one Counter per
question and gold answer).
"""

from __future__ import annotations

import collections
import re
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset
from transformers import PreTrainedTokenizerBase, get_scheduler

from qa_lab.features.windows import NOT_CONTEXT


@dataclass
class Features:
    tensors: dict[str, torch.Tensor]  # (F, max_length) each, padded
    offsets: np.ndarray  # (F, max_length, 2), NOT_CONTEXT outside the context (eval only)
    example_index: np.ndarray  # (F,): the example of every window


def prepare(tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int, stride: int, training: bool) -> Features:
    """Windows padded to max_length; training windows labelled with a loop over their offsets."""
    encoded = tokenizer(
        [question.strip() for question in frame["question"]],
        frame["context"].tolist(),
        max_length=max_length,
        truncation="only_second",
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    example_index = np.asarray(encoded["overflow_to_sample_mapping"])
    offsets = np.full((len(example_index), max_length, 2), NOT_CONTEXT, dtype=np.int64)
    starts, ends = [], []
    for i, offset in enumerate(encoded["offset_mapping"]):
        sequence_ids = encoded.sequence_ids(i)
        context_start, context_end = context_span(sequence_ids)
        for j in range(context_start, context_end + 1):
            offsets[i, j] = offset[j]
        if training:
            start, end = answer_tokens(offset, sequence_ids, frame["answers"].iloc[example_index[i]])
            starts.append(start)
            ends.append(end)
    tensors = {key: torch.tensor(encoded[key]) for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}
    if training:
        tensors |= {"start_positions": torch.tensor(starts), "end_positions": torch.tensor(ends)}
    return Features(tensors, offsets, example_index)


def context_span(sequence_ids: Sequence[int | None]) -> tuple[int, int]:
    """The first and last context token of a window."""
    return sequence_ids.index(1), len(sequence_ids) - 1 - list(sequence_ids)[::-1].index(1)


def answer_tokens(offset: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None], answer: Mapping) -> tuple[int, int]:
    """The course's label of one window: the first answer's first and last token, (0, 0) (the CLS token)
    when the answer is not wholly inside the window's context."""
    context_start, context_end = context_span(sequence_ids)
    start_char = answer["answer_start"][0]
    end_char = start_char + len(answer["text"][0])
    if offset[context_start][0] > start_char or offset[context_end][1] < end_char:
        return 0, 0
    j = context_start
    while j <= context_end and offset[j][0] <= start_char:
        j += 1
    start = j - 1
    j = context_end
    while j >= context_start and offset[j][1] >= end_char:
        j -= 1
    return start, j + 1


@dataclass
class TrainStats:
    samples: int
    tokens: int  # non-padding tokens
    seconds: float


def train(model: torch.nn.Module, features: Features, batch_size: int, lr: float, steps: int, seed: int) -> TrainStats:
    """The course's loop: shuffled fixed-size batches, AdamW, a linear schedule without warm-up."""
    names = list(features.tensors)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(*features.tensors.values()), batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = get_scheduler("linear", optimizer=optimizer, num_warmup_steps=0, num_training_steps=steps)
    model.train()
    samples = tokens = step = 0
    started = time.perf_counter()
    while step < steps:
        for values in loader:
            batch = dict(zip(names, values))
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            samples += len(batch["input_ids"])
            tokens += int(batch["attention_mask"].sum())
            step += 1
            if step == steps:
                break
    return TrainStats(samples, tokens, time.perf_counter() - started)


@torch.no_grad()
def predict(model: torch.nn.Module, features: Features, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of every padded window, gathered in lists and concatenated at the end."""
    model.eval()
    inputs = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in features.tensors]
    loader = DataLoader(TensorDataset(*(features.tensors[key] for key in inputs)), batch_size=batch_size)
    start_logits, end_logits = [], []
    for values in loader:
        outputs = model(**dict(zip(inputs, values)))
        start_logits.append(outputs.start_logits.numpy())
        end_logits.append(outputs.end_logits.numpy())
    return np.concatenate(start_logits), np.concatenate(end_logits)


def _normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction: str, gold: str) -> float:
    prediction_tokens, gold_tokens = _normalize_answer(prediction).split(), _normalize_answer(gold).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_v1(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """The official v1.1 evaluation loop (a question without a prediction scores 0)."""
    exact = f1 = 0.0
    for qid, golds in references.items():
        if qid not in predictions:
            continue
        exact += max(float(_normalize_answer(predictions[qid]) == _normalize_answer(gold)) for gold in golds)
        f1 += max(_f1(predictions[qid], gold) for gold in golds)
    return {"exact_match": 100.0 * exact / len(references), "f1": 100.0 * f1 / len(references)}


def postprocess_reference(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    example_index: np.ndarray,
    contexts: Sequence[str],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> list[str]:
    """The seeds' loop (Hugging Face course): per example, per window, a 20x20 Python double loop."""
    windows_of: dict[int, list[int]] = {}
    for window, example in enumerate(example_index):
        windows_of.setdefault(int(example), []).append(window)
    answers = []
    for example, context in enumerate(contexts):
        candidates = []
        for window in windows_of.get(example, []):
            start_logit, end_logit, offset = start_logits[window], end_logits[window], offsets[window]
            start_indexes = np.argsort(start_logit)[-1 : -n_best - 1 : -1].tolist()
            end_indexes = np.argsort(end_logit)[-1 : -n_best - 1 : -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if offset[start_index][0] == NOT_CONTEXT or offset[end_index][0] == NOT_CONTEXT:
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    candidates.append(
                        {
                            "text": context[offset[start_index][0] : offset[end_index][1]],
                            "logit_score": start_logit[start_index] + end_logit[end_index],
                        }
                    )
        answers.append(max(candidates, key=lambda c: c["logit_score"])["text"] if candidates else "")
    return answers
