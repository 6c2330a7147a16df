"""Evaluation: the logits of every window (logits.py), answer spans from them (spans.py), the official SQuAD
v1.1/v2.0 scores (squad.py), one model's evaluation from logits to scores (scoring.py), and the settings a
saved model is evaluated with (settings.py)."""
