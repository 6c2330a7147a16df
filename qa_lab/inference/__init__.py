"""Inference with a trained (or any) model: a data file answered the way a run evaluates (predict.py), and
transformers' question-answering pipeline with the same windows and span search (pipeline.py)."""
