"""`transformers.pipeline("question-answering", model=<run dir>/best)`, with qa-lab's windows and span search.

transformers 5.3 dropped its question-answering pipeline. `register()` (which `import qa_lab.pipeline` calls)
puts qa-lab's implementation under that task name, so a saved model answers questions the way it was
evaluated: the same windowing, the same n-best span search.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForQuestionAnswering, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from qa_lab.evaluation import settings
from qa_lab.evaluation.logits import MODEL_INPUTS, store_logits
from qa_lab.evaluation.spans import postprocess
from qa_lab.features.batching import Collator
from qa_lab.features.windows import WindowSpec, tokenize_windows

TASK = "question-answering"


class QuestionAnsweringPipeline(Pipeline):
    """pipeline(question=..., context=...) -> {"answer", "score", "start", "end"}.

    `score` is the probability of the answer among the n-best spans (softmax of their start+end logits),
    and for a SQuAD v2 model also the null answer (answer "", start and end -1) when its null odds exceed
    the model's null_score_diff_threshold.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __call__(self, question: str | list[str], context: str | list[str], **kwargs: Any):
        if isinstance(question, str):
            return super().__call__({"question": question, "context": context}, **kwargs)
        return super().__call__([{"question": q, "context": c} for q, c in zip(question, context)], **kwargs)

    def _sanitize_parameters(self, **kwargs: Any):
        """Keyword arguments > the settings the model was saved with > the conf/ defaults."""
        chosen = settings.for_model(self.model.name_or_path, kwargs)
        search = {key: chosen[key] for key in (*settings.SEARCH_KEYS, settings.VERSION_KEY)}
        return {key: chosen[key] for key in settings.WINDOW_KEYS}, {}, search

    def preprocess(self, inputs: dict[str, str], **window: int) -> dict[str, Any]:
        frame = pd.DataFrame(
            [{"id": "0", "title": "", "question": inputs["question"].strip(), "context": inputs["context"], "answers": {"text": [], "answer_start": []}}]
        )
        windows = tokenize_windows(self.tokenizer, frame, WindowSpec(**window), keep_offsets=True)
        pad_left = self.tokenizer.padding_side == "left"
        batch = Collator(windows, self.tokenizer.pad_token_id, pad_left, with_labels=False)(list(range(len(windows))))
        return {"batch": batch, "windows": windows, "context": inputs["context"], "pad_left": pad_left}

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        batch = model_inputs["batch"]
        with torch.no_grad():
            outputs = self.model(**{key: value for key, value in batch.items() if key in MODEL_INPUTS})
        logits = torch.stack([outputs.start_logits, outputs.end_logits], dim=1).float()
        return {**model_inputs, "logits": logits}

    def postprocess(self, model_outputs: dict[str, Any], **search: Any) -> dict[str, Any]:
        windows = model_outputs["windows"]
        start = np.full(windows.offsets.shape[:2], -np.inf, dtype=np.float32)
        end = np.full(windows.offsets.shape[:2], -np.inf, dtype=np.float32)
        index = model_outputs["batch"]["window_index"].cpu().numpy()
        store_logits(start, end, index, model_outputs["logits"].cpu().numpy(), windows.lengths, model_outputs["pad_left"])
        result = postprocess(
            start, end, windows.offsets, windows.example_index, [model_outputs["context"]],
            search["n_best"], search["max_answer_length"], windows.cls_index,
        )
        scores = np.array([c["score"] for c in result.nbest[0]], dtype=np.float64)
        version_2 = bool(search[settings.VERSION_KEY])
        no_answer = version_2 and result.null_odds[0] > search["null_score_diff_threshold"]
        if version_2:
            scores = np.append(scores, result.null_scores[0])  # the null answer competes in the softmax
        if len(scores) == 0:
            return {"answer": "", "score": 0.0, "start": -1, "end": -1}
        probabilities = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        if no_answer:
            return {"answer": "", "score": float(probabilities[-1]), "start": -1, "end": -1}
        return {"answer": result.answers[0], "score": float(probabilities[0]), "start": int(result.start_char[0]), "end": int(result.end_char[0])}


def register() -> None:
    """Make `pipeline("question-answering")` build qa-lab's pipeline."""
    from transformers import pipelines

    getattr(pipelines, "REMOVED_TASKS", {}).pop(TASK, None)  # transformers >= 5.3 rejects the task name
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=QuestionAnsweringPipeline, pt_model=AutoModelForQuestionAnswering)
