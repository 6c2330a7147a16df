"""Answer every question of a data file with a model, with the windows and span search it was scored with
(its best/qa_lab.json) unless told otherwise: what `qa-lab predict` does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accelerate import Accelerator

from qa_lab.core.conf import conf_file
from qa_lab.data.cleaning import clean_examples
from qa_lab.data.examples import unanswerable
from qa_lab.data.sources import read_examples
from qa_lab.evaluation import settings
from qa_lab.evaluation.logits import predict_logits
from qa_lab.evaluation.scoring import Evaluation, SpanSearch, score
from qa_lab.features import batching
from qa_lab.features.windows import WindowSpec, tokenize_windows
from qa_lab.model.backbone import (
    load_config,
    load_model,
    load_tokenizer,
    model_settings,
)
from qa_lab.model.checks import check_window_fit


@dataclass
class Prediction:
    evaluation: Evaluation  # answers, null odds, n-best lists, and scores when the data has gold answers
    examples: int
    windows: int
    version_2: bool
    labelled: bool  # some question has a gold answer: the scores mean something


def predict_file(model_name: str, data_file: str, chosen: dict[str, Any], batch_size: int | None, hub_timeout: float) -> Prediction | None:
    """`chosen`: the resolved settings (settings.for_model); `batch_size` None: conf's trainer.eval_batch_size.
    None on processes other than the main one (they only predict their share of the windows)."""
    trainer = conf_file("trainer", "default.yaml")
    model_config = model_settings(model_name)
    spec = WindowSpec(**{key: chosen[key] for key in settings.WINDOW_KEYS})
    examples, _ = clean_examples(read_examples(data_file), data_file, training=False)
    tokenizer = load_tokenizer(model_config, hub_timeout)
    check_window_fit(spec, tokenizer, load_config(model_config, hub_timeout), model_config.name_or_path)
    # a model without a trained span head (e.g. `minilm`) gets one drawn from the default seed
    model = load_model(model_config, hub_timeout, seed=trainer.seed)
    windows = tokenize_windows(tokenizer, examples, spec, keep_offsets=True)
    accelerator = Accelerator()
    pad_left = tokenizer.padding_side == "left"
    loader = batching.eval_loader(windows, batch_size or trainer.eval_batch_size, tokenizer.pad_token_id, pad_left)
    model, loader = accelerator.prepare(model, loader)
    start, end = predict_logits(model, loader, accelerator, windows, pad_left)
    if not accelerator.is_main_process:
        return None
    answered = ~unanswerable(examples)
    # not given and not saved with the model: SQuAD v2 for labelled data with unanswerable questions
    version_2 = chosen[settings.VERSION_KEY]
    if version_2 is None:
        version_2 = bool(answered.any() and not answered.all())
    search = SpanSearch(chosen["n_best"], chosen["max_answer_length"], chosen["null_score_diff_threshold"])
    evaluation = score(start, end, windows, examples, search, version_2)
    return Prediction(evaluation, len(examples), len(windows), version_2, bool(answered.any()))
