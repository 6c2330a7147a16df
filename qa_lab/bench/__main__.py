"""`python -m qa_lab.bench [--quick] [KEY=VALUE ...]`: qa-lab against Hugging Face Trainer and the seeds'
pipeline, side by side in one process (benchmark.py); writes BENCHMARKS.md and prints one JSON line last.

`python -m qa_lab.bench device [--weights DIR] [--data FILE] [--out FILE] [KEY=VALUE ...]`: qa-lab's
training step on this machine's accelerator, and MiniLM's EM/F1 in bf16 against fp32 (device.py).

`python -m qa_lab.bench workers [KEY=VALUE ...]`: a study of unequal trials with qa-lab's asynchronous
workers and with Hydra's batch-synchronous pattern, wall time and idle share (workers.py); prints its table and one JSON line last. Each imports only what it
needs: the device benchmark runs where Hydra, datasets and W&B are not installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import transformers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    transformers.utils.logging.set_verbosity_error()  # the backbone's load report (a fresh span head) is expected
    commands = {"device": device_main, "workers": workers_main}
    return commands[argv[0]](argv[1:]) if argv[:1] and argv[0] in commands else peers_main(argv)


def peers_main(argv: list[str]) -> int:
    import datasets

    from qa_lab.bench.benchmark import benchmark
    from qa_lab.bench.report import markdown, ratios, rounded
    from qa_lab.bench.settings import bench_settings
    from qa_lab.core.conf import register_resolvers
    from qa_lab.core.errors import exit_on_user_error

    parser = argparse.ArgumentParser(prog="python -m qa_lab.bench", description="qa-lab against Hugging Face Trainer and the seeds' pipeline, side by side in one process")
    parser.add_argument("--quick", action="store_true", help="a smoke run in a few minutes (too few steps for F1 to mean anything)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings of conf/bench/default.yaml, e.g. steps=20 out=bench.md")
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()  # Trainer's preprocessing (Dataset.map) would draw one per pass
    register_resolvers()
    try:
        settings = bench_settings(args.quick, args.overrides)
    except ValueError as error:
        parser.error(str(error))
    with exit_on_user_error():  # a data file that is missing or unusable, steps too few for one question: what, where, the fix
        results = benchmark(settings)
    summary = ratios(results)
    Path(settings.out).write_text(markdown(settings, results, summary, args.quick), encoding="utf-8")
    print(json.dumps({key: rounded(value) for key, value in summary.items()}))
    return 0


def device_main(argv: list[str]) -> int:
    import torch

    from qa_lab.bench.device import device_benchmark, device_markdown, device_settings, device_summary, minilm_folder
    from qa_lab.bench.report import rounded
    from qa_lab.core.errors import exit_on_user_error
    from qa_lab.core.public_data import locate

    parser = argparse.ArgumentParser(prog="python -m qa_lab.bench device", description="qa-lab's training step on this machine's accelerator")
    parser.add_argument("--weights", type=Path, help="a MiniLM folder (save_pretrained; a half-precision copy will do): its config, weights and tokenizer")
    parser.add_argument("--data", type=Path, help="the SQuAD-format file MiniLM's EM/F1 are measured on (default: quality_data, XQuAD-en)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings of conf/bench/device.yaml, e.g. steps=50")
    args = parser.parse_args(argv)
    try:
        settings = device_settings(args.overrides, gpu=torch.cuda.is_available())
        folder = minilm_folder(args.weights)
    except ValueError as error:
        parser.error(str(error))
    with exit_on_user_error():  # a data file that is missing or unusable: what, where and the fix, exit status 2
        results = device_benchmark(settings, folder, args.data or locate(settings["quality_data"]))
    table = device_markdown(settings, results)
    if args.out:
        args.out.write_text(table, encoding="utf-8")
    print(table)
    print(json.dumps(rounded(device_summary(results))))
    return 0


def workers_main(argv: list[str]) -> int:
    from qa_lab.bench.report import rounded
    from qa_lab.bench.settings import settings_file
    from qa_lab.bench.workers import workers_benchmark, workers_markdown

    parser = argparse.ArgumentParser(prog="python -m qa_lab.bench workers", description="qa-lab's asynchronous sweep workers against Hydra's batches")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings of conf/bench/workers.yaml, e.g. n_jobs=2")
    args = parser.parse_args(argv)
    try:
        settings = settings_file("workers.yaml", args.overrides)
        results = workers_benchmark(settings)
    except ValueError as error:
        parser.error(str(error))
    table = workers_markdown(settings, results)
    if settings.out:
        Path(settings.out).write_text(table, encoding="utf-8")
    print(table)
    print(json.dumps(rounded(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
