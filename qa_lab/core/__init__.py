"""The runtime core every layer may use: user-facing errors, atomic run files, the records runs write and read
back, Hub access that fails fast, model cards and Hub uploads (publish.py), secrets, provenance, how
durations are written (formatting.py), conf/ access and Hydra's callbacks.

Nothing here knows about training, evaluation or analysis; nothing here imports torch at module level.
"""
