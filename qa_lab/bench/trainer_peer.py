"""Hugging Face `Trainer`, run the way `run_qa.py` runs it: the peer a researcher would pick instead of qa-lab.

Its preprocessing is run_qa.py's kind: `datasets.Dataset.map` over batches of questions, windows labelled
by the course's loop (reference.answer_tokens), every window padded to max_length unless `dynamic`.
`Trainer` then trains with `report_to="none"` and its own defaults, except what the benchmark holds equal
for every pipeline: backbone and starting weights, windows, batch size, steps, learning rate, schedule
(linear, no warm-up), no gradient clipping and qa-lab's weight decay. `dynamic` is run_qa.py's best
flags: `--pad_to_max_length False` (DataCollatorWithPadding) and length grouping
(`train_sampling_strategy="group_by_length"`, the old `--group_by_length`). Its F1 comes from its
predictions on the seeds' padded evaluation windows, scored by qa-lab's span search and metric (which
give the course loop's answers, tests/evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase, PrinterCallback, Trainer, TrainingArguments, default_data_collator

from qa_lab.bench.reference import Features, answer_tokens
from qa_lab.evaluation.spans import postprocess
from qa_lab.evaluation.squad import squad_v1

INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def run_qa_features(tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int, stride: int, dynamic: bool) -> datasets.Dataset:
    """Labelled training windows as run_qa.py makes them: one batched `map` over the questions."""

    def windows(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(
            [question.lstrip() for question in batch["question"]],
            batch["context"],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False if dynamic else "max_length",
        )
        labels = [
            answer_tokens(offset, encoded.sequence_ids(i), batch["answers"][example])
            for i, (offset, example) in enumerate(zip(encoded["offset_mapping"], encoded["overflow_to_sample_mapping"]))
        ]
        kept = {key: encoded[key] for key in INPUTS if key in encoded}
        return kept | {"start_positions": [start for start, _ in labels], "end_positions": [end for _, end in labels]}

    examples = datasets.Dataset.from_pandas(frame[["question", "context", "answers"]], preserve_index=False)
    return examples.map(windows, batched=True, remove_columns=examples.column_names)


class TokenCounter:
    """The collator, counting the non-padding tokens of the first `batches` batches it makes (the ones the
    steps train on): Trainer reports samples/s but not tokens."""

    def __init__(self, collate: Callable[[list[dict]], dict[str, torch.Tensor]], batches: int) -> None:
        self.collate, self.batches, self.made, self.tokens = collate, batches, 0, 0

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collate(features)
        if self.made < self.batches:
            self.tokens += int(batch["attention_mask"].sum())
        self.made += 1
        return batch


def predict_in_order(trainer: Trainer, features: Features) -> tuple[np.ndarray, np.ndarray]:
    """Trainer's start and end logits of the windows, in the windows' order. With length grouping, Trainer
    also orders evaluation and prediction batches by length (transformers' `_get_eval_sampler`), and
    `predict` returns the logits in that order: scored against the windows in theirs, as run_qa.py's
    postprocessing does, the answers would be other windows' spans. So the trained Trainer predicts with
    sequential order."""
    trainer.args.train_sampling_strategy = "random"  # the evaluation sampler is then sequential
    inputs = {key: value.numpy() for key, value in features.tensors.items() if key in INPUTS}
    start, end = trainer.predict(datasets.Dataset.from_dict(inputs)).predictions
    return np.asarray(start, dtype=np.float32), np.asarray(end, dtype=np.float32)


def run_trainer(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train: datasets.Dataset,
    evaluation: tuple[Features, list[str], list[str], dict],
    settings: Any,
    seed: int,
    weight_decay: float,
    dynamic: bool,
    work: Path,
) -> dict[str, Any]:
    """Trainer for `settings.steps` steps, then its predictions on the seeds' padded evaluation windows
    (`evaluation`: those features, the contexts, question ids and gold answers), scored."""
    arguments = TrainingArguments(
        output_dir=str(work / f"trainer-{'best' if dynamic else 'default'}-{seed}"),
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        learning_rate=settings.lr,
        max_steps=settings.steps,
        lr_scheduler_type="linear",
        warmup_steps=0,
        max_grad_norm=0.0,  # no clipping, as the other pipelines
        weight_decay=weight_decay,
        seed=seed,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        train_sampling_strategy="group_by_length" if dynamic else "random",
    )
    counter = TokenCounter(DataCollatorWithPadding(tokenizer) if dynamic else default_data_collator, settings.steps)
    trainer = Trainer(model=model, args=arguments, train_dataset=train, data_collator=counter, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # its metrics dict on stdout would precede the benchmark's JSON line
    metrics = trainer.train().metrics

    eval_features, contexts, ids, references = evaluation
    started = time.perf_counter()
    start, end = predict_in_order(trainer, eval_features)
    answers = postprocess(start, end, eval_features.offsets, eval_features.example_index, contexts, settings.n_best, settings.max_answer_length).answers
    scores = squad_v1(dict(zip(ids, answers)), references)
    return {
        "samples_per_second": metrics["train_samples_per_second"],
        "tokens_per_second": counter.tokens / metrics["train_runtime"],
        "train_seconds": metrics["train_runtime"],
        "eval_seconds": time.perf_counter() - started,
        "exact_match": scores["exact_match"],
        "f1": scores["f1"],
    }
