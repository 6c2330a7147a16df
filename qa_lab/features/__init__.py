"""Windows and batching: examples -> labelled, unpadded token windows (windows.py), cached on disk
(cache.py), padded per batch and grouped by length (batching.py)."""
