"""The model: a backbone with a span head and its tokenizer, from a Hub id or a folder (backbone.py), and
the checks that a window geometry fits them (checks.py)."""
