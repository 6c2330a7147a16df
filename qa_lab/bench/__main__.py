"""`python -m qa_lab.bench [--quick] [KEY=VALUE ...]`: qa-lab against the seeds' pipeline, side by side in one
process (benchmark.py). Writes BENCHMARKS.md and prints one JSON line last."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import datasets
import transformers

from qa_lab.bench.benchmark import benchmark
from qa_lab.bench.report import markdown, ratios, rounded
from qa_lab.bench.settings import bench_settings
from qa_lab.core.conf import register_resolvers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa_lab.bench", description="qa-lab against the seeds' pipeline, side by side in one process")
    parser.add_argument("--quick", action="store_true", help="a smoke run in a few minutes (too few steps for F1 to mean anything)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings of conf/bench/default.yaml, e.g. steps=20 out=bench.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    transformers.utils.logging.set_verbosity_error()  # the backbone's load report (a fresh span head) is expected
    datasets.disable_progress_bars()  # Trainer's preprocessing (Dataset.map) would draw one per pass
    register_resolvers()
    try:
        settings = bench_settings(args.quick, args.overrides)
    except ValueError as error:
        parser.error(str(error))
    results = benchmark(settings)
    summary = ratios(results)
    Path(settings.out).write_text(markdown(settings, results, summary, args.quick), encoding="utf-8")
    print(json.dumps({key: rounded(value) for key, value in summary.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
