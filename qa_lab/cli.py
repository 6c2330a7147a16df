"""Command line: `qa-lab data check`, `qa-lab score` (SQuAD v1.1 and v2.0), `qa-lab predict`, `qa-lab compare`,
`qa-lab push`.
Training is `python run.py` (qa_lab/entry.py).

Errors caused by input or configuration print as one clear message (what, where, how to fix) and exit
with status 2, never as a library traceback (qa_lab.core.errors.exit_on_user_error, around every command).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from qa_lab.core.errors import DataError, QALabError, exit_on_user_error

DEFAULT_MODEL = "minilm"  # a conf/model option: the offline backbone


def data_check(args: argparse.Namespace) -> int:
    """Validate a data file and print one JSON object; non-zero exit when it cannot be used."""
    from qa_lab.data.cleaning import clean_examples
    from qa_lab.data.sources import read_examples
    from qa_lab.features.windows import tokenize_windows
    from qa_lab.model.backbone import load_config, load_tokenizer, model_settings
    from qa_lab.model.checks import check_window_fit

    def unusable(error: QALabError) -> None:
        print(json.dumps({"file": str(args.file), "usable": False, "error": error.message()}))

    with exit_on_user_error(show=unusable):
        examples, report = clean_examples(read_examples(args.file), str(args.file), training=True)
        spec = _window_spec(args)
        hub_timeout, model = _hub_timeout(args), model_settings(args.model)
        tokenizer = load_tokenizer(model, hub_timeout)
        check_window_fit(spec, tokenizer, load_config(model, hub_timeout), model.name_or_path)
        windows = tokenize_windows(tokenizer, examples, spec, keep_offsets=False)
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


def data_fetch(args: argparse.Namespace) -> int:
    """Print where each public data file is on this machine, fetching (by checksum) the ones that are not."""
    from qa_lab.core.public_data import FILES, locate

    print(json.dumps({name: str(locate(name)) for name in args.names or FILES}, indent=1))
    return 0


def score_command(args: argparse.Namespace) -> int:
    """The official SQuAD v1.1 or v2.0 evaluation script's job, for any data format qa-lab reads."""
    from qa_lab.data.examples import unanswerable
    from qa_lab.data.sources import read_examples
    from qa_lab.evaluation.squad import squad_v1, squad_v2

    examples = read_examples(args.data)
    predictions = {qid: "" if text is None else str(text) for qid, text in _read_object(args.predictions, "predictions", "{id: answer text}").items()}
    references = dict(zip(examples["id"].astype(str), (a["text"] for a in examples["answers"])))
    na_probs = _read_na_probs(args.na_prob_file) if args.na_prob_file else None
    version_2 = args.squad_version == "2.0" or (
        args.squad_version == "auto" and (na_probs is not None or bool(unanswerable(examples).any()))
    )
    if not version_2 and na_probs is not None:
        raise QALabError("--na-prob-file is a SQuAD v2.0 option", where="--squad-version 1.1", fix="drop one of the two")
    result = squad_v2(predictions, references, na_probs, args.na_prob_thresh) if version_2 else squad_v1(predictions, references)
    missing = [i for i in references if i not in predictions]
    if missing:
        print(f"warning: {len(missing)} question(s) have no prediction and score 0, e.g. {missing[:5]}", file=sys.stderr)
    print(json.dumps(result))
    return 0


def _read_object(path: str, what: str, layout: str) -> dict:
    """A JSON object file keyed by question id (ids as strings), or a clear error."""
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
    na_probs = _read_object(path, "no-answer probabilities (null odds)", "{id: number}")
    bad = [qid for qid, value in na_probs.items() if isinstance(value, bool) or not isinstance(value, (int, float))]
    if bad:
        raise DataError(f"{len(bad)} value(s) are not numbers, e.g. {bad[:5]}", where=path, fix="write {id: number}, e.g. a run's null_odds.json")
    return {qid: float(value) for qid, value in na_probs.items()}


def predict_command(args: argparse.Namespace) -> int:
    """Answer every question of a data file with a trained model; official {id: text} output."""
    from qa_lab.core.artifacts import write_json
    from qa_lab.inference.predict import predict_file

    prediction = predict_file(args.model, args.data, _settings(args), args.batch_size, _hub_timeout(args))
    if prediction is None:  # not the main process
        return 0
    evaluation = prediction.evaluation
    write_json(args.out, evaluation.answers)
    if args.nbest_out:
        write_json(args.nbest_out, evaluation.nbest)
    if args.null_odds_out:
        write_json(args.null_odds_out, evaluation.null_odds)
    result = {"examples": prediction.examples, "windows": prediction.windows, "out": str(args.out), "version_2": prediction.version_2}
    if prediction.labelled:  # labelled data: its scores too
        result |= evaluation.metrics
    print(json.dumps(result))
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """Print the runs table, write runs.csv and report.html."""
    from qa_lab.analysis.compare import compare, table_text
    from qa_lab.analysis.report import write_outputs
    from qa_lab.core.conf import conf_file

    options = conf_file("compare", "default.yaml")
    if args.bootstrap_samples is not None:
        options.bootstrap.samples = args.bootstrap_samples
    comparison = compare(args.paths, options, _hub_timeout(args), args.study_storage, args.study_name)
    csv_path, html_path = write_outputs(comparison, Path(args.out or options.out))
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


def _settings(args: argparse.Namespace) -> dict:
    """Flags given > what the model was saved with (best/qa_lab.json) > the defaults in conf/."""
    from qa_lab.evaluation import settings
    from qa_lab.model.backbone import model_settings

    given = {key: getattr(args, key, None) for key in (*settings.WINDOW_KEYS, *settings.SEARCH_KEYS)}
    if getattr(args, "squad_version", None) is not None:
        given[settings.VERSION_KEY] = args.squad_version == "2.0"
    return settings.for_model(model_settings(args.model).name_or_path, given)


def _window_spec(args: argparse.Namespace):
    from qa_lab.evaluation.settings import WINDOW_KEYS
    from qa_lab.features.windows import WindowSpec

    chosen = _settings(args)
    return WindowSpec(**{key: chosen[key] for key in WINDOW_KEYS})


def _hub_timeout(args: argparse.Namespace) -> float:
    from qa_lab.core.conf import conf_file

    return args.hub_timeout if args.hub_timeout is not None else float(conf_file("config.yaml").hub_timeout)


def _window_arguments(parser: argparse.ArgumentParser) -> None:
    """Not given = what the model was saved with (best/qa_lab.json), else the defaults in conf/."""
    parser.add_argument("--max-length", type=int, default=None, help="tokens per window (conf: data.max_length)")
    parser.add_argument("--stride", type=int, default=None, help="context tokens shared by consecutive windows (conf: data.stride)")
    parser.add_argument("--max-question-tokens", type=int, default=None, help="longer questions are cut (conf: data.max_question_tokens)")
    parser.add_argument("--hub-timeout", type=float, default=None, help="seconds to wait for the Hugging Face Hub (conf: hub_timeout)")


def _add_data_check(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="data set tools").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="validate a SQuAD-format file and report repairs, skips and label checks")
    check.add_argument("file")
    check.add_argument("--model", default=DEFAULT_MODEL, help="tokenizer: a conf/model option ('minilm', the offline default), a Hub id or a folder")
    _window_arguments(check)
    check.set_defaults(handler=data_check)
    fetch = data.add_parser("fetch", help="the public data sets qa-lab's benchmark and examples use, fetched by checksum")
    fetch.add_argument("names", nargs="*", help="files to fetch, e.g. xquad-en/xquad.en.json (default: all)")
    fetch.set_defaults(handler=data_fetch)


def _add_score(commands: argparse._SubParsersAction) -> None:
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


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="answer the questions of a data file with a trained model")
    predict.add_argument("--model", required=True, help="a run's best/ folder, a Hub id, or a conf/model option such as 'minilm'")
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


def _add_compare(commands: argparse._SubParsersAction) -> None:
    comparer = commands.add_parser("compare", help="runs side by side: table, runs.csv and an offline report.html")
    comparer.add_argument("paths", nargs="+", help="run folders, multirun/sweep folders (every run inside) or globs")
    comparer.add_argument("--out", default=None, help="where runs.csv and report.html go (conf: compare/default.yaml out)")
    comparer.add_argument("--study-storage", default=None, help="Optuna storage URL (default: the one the runs' sweep used)")
    comparer.add_argument("--study-name", default=None, help="Optuna study name (default: the runs' study)")
    comparer.add_argument("--bootstrap-samples", type=int, default=None, help="resamples of the paired bootstrap (conf: 10000)")
    comparer.add_argument("--hub-timeout", type=float, default=None, help="seconds to wait for the Hub when a run's data comes from it")
    comparer.set_defaults(handler=compare_command)


def push_command(args: argparse.Namespace) -> int:
    """Upload a finished run's best/ (model, tokenizer, qa_lab.json, model card) to a Hub model repository."""
    from qa_lab.core.publish import push_folder

    folder = Path(args.run)
    model = folder / "best" if (folder / "best").is_dir() else folder
    pushed = push_folder(model, args.repo_id, private=not args.public, timeout=_hub_timeout(args))
    print(json.dumps(pushed, indent=1))
    return 0


def _add_push(commands: argparse._SubParsersAction) -> None:
    pusher = commands.add_parser("push", help="upload a run's best model, with its model card, to the Hugging Face Hub")
    pusher.add_argument("run", help="a run folder (its best/ is pushed), e.g. the best trial's folder of a sweep; or a best/ folder")
    pusher.add_argument("--repo-id", required=True, help="<user or organisation>/<name>; created (private) when missing")
    pusher.add_argument("--public", action="store_true", help="create the repository public (default: private, as hub.private)")
    pusher.add_argument("--hub-timeout", type=float, default=None, help="seconds to wait for the Hub to answer (conf: hub_timeout)")
    pusher.set_defaults(handler=push_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa-lab", description="Extractive QA: check data, score, predict, compare and push. Train with `python run.py`.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_data_check, _add_score, _add_predict, _add_compare, _add_push):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    with exit_on_user_error():
        return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
