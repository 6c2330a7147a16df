"""Is a difference between runs real? A paired bootstrap over the questions two runs both answered, and
mean ± std over runs that repeat one config with different seeds.

A 0.3-point F1 "win" on a few hundred questions is often noise: resampling the questions shows how much
the difference would move on another draw of the same kind of questions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SEED_KEY = "trainer.seed"


@dataclass
class PairedTest:
    questions: int
    difference: float  # mean per-question difference a - b (the units of the inputs)
    low: float  # confidence interval of the difference
    high: float
    p_value: float  # two-sided, for "no difference"
    significant: bool  # p_value < 1 - confidence


def paired_bootstrap(a: np.ndarray, b: np.ndarray, samples: int, confidence: float, seed: int, chunk: int) -> PairedTest:
    """Resample the questions with replacement `samples` times and look at the mean difference.

    The interval is the percentile interval of the resampled means. The p-value asks how often the
    resampled means, shifted to be centred on 0 (no difference), lie at least as far from 0 as the
    observed mean; it is smoothed by one (never exactly 0). `chunk` resamples are drawn at a time, so
    memory stays at chunk x questions indices.
    """
    difference = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(difference)
    if n == 0:
        raise ValueError("a paired bootstrap needs at least one question")
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for begin in range(0, samples, chunk):
        size = min(chunk, samples - begin)
        means[begin : begin + size] = difference[rng.integers(0, n, size=(size, n))].mean(axis=1)
    observed = float(difference.mean())
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    p_value = float((np.count_nonzero(np.abs(means - observed) >= abs(observed)) + 1) / (samples + 1))
    return PairedTest(n, observed, float(low), float(high), p_value, p_value < alpha)


def seed_groups(parameters: dict[str, dict[str, Any]], scores: pd.DataFrame) -> pd.DataFrame:
    """Runs whose configs differ only in the seed: mean ± std (ddof 1) of their EM and F1.

    `scores`: exact_match and f1 per run (index = run); runs without scores are left out.
    """
    keys: dict[str, list[str]] = {}
    for run, params in parameters.items():
        if run in scores.index and pd.notna(scores.loc[run, "f1"]):
            rest = {key: value for key, value in params.items() if key != SEED_KEY}
            keys.setdefault(json.dumps(rest, sort_keys=True, default=str), []).append(run)
    rows = []
    for runs in keys.values():
        if len(runs) < 2:
            continue
        group = scores.loc[runs]
        rows.append(
            {
                "runs": ", ".join(runs),
                "n": len(runs),
                "seeds": ", ".join(str(parameters[run].get(SEED_KEY)) for run in runs),
                "exact_match_mean": group["exact_match"].mean(),
                "exact_match_std": group["exact_match"].std(ddof=1),
                "f1_mean": group["f1"].mean(),
                "f1_std": group["f1"].std(ddof=1),
            }
        )
    return pd.DataFrame(rows, columns=["runs", "n", "seeds", "exact_match_mean", "exact_match_std", "f1_mean", "f1_std"])
