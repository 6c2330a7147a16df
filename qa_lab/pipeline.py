"""`import qa_lab.pipeline` makes `transformers.pipeline("question-answering", model=<run dir>/best)` build
qa-lab's pipeline (qa_lab/inference/pipeline.py): the windows and span search the model was scored with."""

from qa_lab.inference.pipeline import QuestionAnsweringPipeline, register

register()

__all__ = ["QuestionAnsweringPipeline", "register"]
