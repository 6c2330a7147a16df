"""How qa-lab writes quantities for people: durations in progress lines and end-of-run summaries."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """1h02m, 4m05s or 12s."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
