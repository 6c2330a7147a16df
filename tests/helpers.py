"""What tests share besides fixtures (conftest.py): where the real data is, how to run qa-lab as a user does
(`python run.py`, `qa-lab ...`) in an offline environment, composed configs, and readers of the files runs
leave (W&B offline runs, the synthetic validation set, official SQuAD JSON)."""

from __future__ import annotations

import atexit
import glob
import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the real data files (qa_lab/core/public_data.py) are looked for here first: beside this project's
# checkouts and in its CI, never on a user's machine (then they are fetched; see the fixtures in conftest.py)
SHARED_BESIDE = ROOT.parent / "shared" / "data"
XQUAD_NAME = "xquad-en/xquad.en.json"
PEER_SCORES = Path(__file__).parent / "evaluation" / "peer_scores.json"  # official v1.1 scores of the peer files
# screenshots of the browser tests, kept for a person to look at
ARTIFACTS = Path(os.environ.get("QA_LAB_TEST_ARTIFACTS", ROOT / "outputs" / "test-artifacts"))

# a run of the tiny random model on a little synthetic data: seconds, and every run file
TINY_RUN = [
    "model=tiny",
    "data.max_length=128",
    "data.stride=32",
    "data.synthetic.num_train=96",
    "data.synthetic.num_validation=32",
    "trainer.epochs=2",
    "trainer.batch_size=16",
    "trainer.lr=1e-3",
]


# OpenMP threads that wait for work spin on their core by default: with two workers' processes on two cores,
# the spinning takes the time the other process needed. Read when torch is imported.
THREADS_WAIT_PASSIVELY = {"OMP_WAIT_POLICY": "PASSIVE"}


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): for a server to start on, or to stay closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def core_share() -> int:
    """The cores one pytest worker may use: torch processes that each take every core slow each other down
    several times over when pytest-xdist runs two workers."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of a qa-lab command in tests: W&B offline, no API key even if one is set, and this
    worker's share of the cores."""
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": str(core_share()), **THREADS_WAIT_PASSIVELY, **extra}
    env.pop("WANDB_API_KEY", None)
    return env


# --- running commands ------------------------------------------------------------------------------------
# Every command runs in a process of its own. By default that process is forked from tests/zygote.py, which
# has imported the libraries once (about 8 s a command saved); a command whose environment differs in what
# libraries read at import time, or that asks for it, gets a fresh interpreter instead.
IMPORT_TIME_ENV = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "PYTHON")


class Command:
    """A running command: like subprocess.Popen, with its output in files (stdout, and stderr unless merged)."""

    def __init__(self, zygote: Zygote | None, process: subprocess.Popen | None, request: dict) -> None:
        self.zygote, self.process, self.request = zygote, process, request
        self.pid = process.pid if process else zygote.started(request["id"])

    def wait(self, timeout: float) -> int:
        if self.process is not None:
            return self.process.wait(timeout)
        return self.zygote.ended(self.request["id"], timeout)

    def kill(self, signal_number: int = signal.SIGKILL) -> None:
        os.kill(self.pid, signal_number)

    def output(self) -> tuple[str, str]:
        read = lambda path: Path(path).read_text(errors="replace") if path and Path(path).is_file() else ""  # noqa: E731
        return read(self.request["stdout"]), read(self.request["stderr"])

    def lines(self, poll: float = 0.2) -> Iterator[str]:
        """The output's lines as they are written, until the command ends."""
        offset, partial = 0, ""
        while True:
            ended = self.poll() is not None
            with open(self.request["stdout"], errors="replace") as handle:
                handle.seek(offset)
                chunk = handle.read()
                offset = handle.tell()
            *complete, partial = (partial + chunk).split("\n")
            yield from complete
            if ended:
                return
            time.sleep(poll)

    def poll(self) -> int | None:
        if self.process is not None:
            return self.process.poll()
        return self.zygote.ended(self.request["id"], timeout=0, wait=False)

    def communicate(self, timeout: float) -> subprocess.CompletedProcess:
        """Wait for the end; the output files are read and removed."""
        returncode = self.wait(timeout)
        stdout, stderr = self.output()
        shutil.rmtree(Path(self.request["stdout"]).parent, ignore_errors=True)
        return subprocess.CompletedProcess(self.request["argv"], returncode, stdout, stderr)


class Zygote:
    """The client of tests/zygote.py (one per pytest worker, started on first use)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("zygote.py"))], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=offline_env(),
        )
        self.events: dict[str, dict] = {}
        self.changed = threading.Condition()
        self.writing = threading.Lock()  # tests start commands from several threads
        threading.Thread(target=self._read, daemon=True).start()
        self._await("ready", "ready", timeout=300)
        atexit.register(self.process.stdin.close)

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            with self.changed:
                self.events.setdefault(message.get("id", "ready"), {}).update(message)
                self.changed.notify_all()

    def _await(self, key: str, field: str, timeout: float | None, wait: bool = True):
        with self.changed:
            ok = self.changed.wait_for(lambda: field in self.events.get(key, {}) or self.process.poll() is not None, timeout) if wait else True
            if field not in self.events.get(key, {}):
                if not wait:
                    return None
                if self.process.poll() is not None:
                    raise RuntimeError("tests/zygote.py ended: see its output above")
                raise subprocess.TimeoutExpired(key, timeout)
            return self.events[key][field] if ok else None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path, merge: bool) -> Command:
        request = {"id": uuid.uuid4().hex, "argv": argv, "env": env, "cwd": str(cwd), **_output_files(merge)}
        with self.writing:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        return Command(self, None, request)

    def started(self, identifier: str) -> int:
        return self._await(identifier, "pid", timeout=120)

    def ended(self, identifier: str, timeout: float, wait: bool = True) -> int | None:
        return self._await(identifier, "returncode", timeout, wait)


def _output_files(merge: bool) -> dict[str, str | None]:
    """Empty files for a command's stdout and stderr (None: stderr merged into stdout), there before it starts."""
    folder = Path(tempfile.mkdtemp(prefix="qa-lab-command-"))
    files = {"stdout": str(folder / "stdout"), "stderr": None if merge else str(folder / "stderr")}
    for path in filter(None, files.values()):
        Path(path).touch()
    return files


_zygote: Zygote | None = None
_zygote_starting = threading.Lock()


def start(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, merge: bool = False, fresh: bool = False) -> Command:
    """`python <argv>` (`run.py ...`, `-m qa_lab.cli ...`) as a process of its own; `merge`: stderr into stdout;
    `fresh`: a new interpreter, not a child of the zygote."""
    global _zygote
    env = env if env is not None else offline_env()
    changed = {key for key in set(env) | set(os.environ) if env.get(key) != os.environ.get(key)}
    if fresh or any(key.startswith(IMPORT_TIME_ENV) for key in changed):
        request = {"id": "", "argv": argv, **_output_files(merge)}
        with open(request["stdout"], "a") as stdout, open(request["stderr"] or os.devnull, "a") as stderr:
            process = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=stdout, stderr=subprocess.STDOUT if merge else stderr)
        return Command(None, process, request)  # the child holds its own copies of the files
    with _zygote_starting:
        if _zygote is None:
            _zygote = Zygote()
    return _zygote.start(argv, env, cwd, merge)


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 900, fresh: bool = False) -> subprocess.CompletedProcess:
    """`start`, then wait for it: stdout, stderr and the exit status, as subprocess.run gives them."""
    return start(argv, env, cwd, fresh=fresh).communicate(timeout)


def run_py(run_dir: Path, *overrides: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python run.py` writing into run_dir (the sweep folder of a multirun, `-m`); by default offline, with
    the feature cache beside run_dir."""
    folder = f"hydra.sweep.dir={run_dir}" if "-m" in overrides else f"hydra.run.dir={run_dir}"
    env = env if env is not None else offline_env(QA_LAB_CACHE_DIR=str(run_dir.parent / "cache"))
    return run(["run.py", folder, *overrides], env=env, timeout=timeout)


def qa_lab(*arguments: str, timeout: float = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The `qa-lab` command, as `python -m qa_lab.cli ...` from the checkout."""
    return run(["-m", "qa_lab.cli", *arguments], env=env, timeout=timeout)


def last_json_line(done: subprocess.CompletedProcess) -> dict:
    """The JSON object a command printed last, after checking it succeeded."""
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def composed(*overrides: str, hydra: bool = True):
    """conf/ composed as `python run.py <overrides>` would (not resolved), with the Hydra config under `hydra`
    unless told otherwise (the config a run's code sees has none)."""
    from hydra import compose, initialize_config_dir

    from qa_lab.core.conf import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def resolvable(cfg):
    """A composed config that resolves outside a Hydra run: the run directory interpolation needs a stand-in."""
    cfg.paths.output_dir = "unused"
    return cfg


def synthetic_validation(run_dir: Path, out: Path):
    """The synthetic validation set a run used, regenerated from its saved config and written to `out`
    as JSONL; returns the table."""
    from omegaconf import OmegaConf

    from qa_lab.data.synthetic import make_synthetic

    options = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml").data.synthetic)
    frame = make_synthetic(**options)["validation"]
    frame.to_json(out, orient="records", lines=True)
    return frame


def inspect_wandb(run_dir: Path) -> tuple[dict, dict]:
    """The one W&B offline run under a run folder, read with `wandb leet inspect`: its summary view
    (state, summary, config) and its run record (display name, group)."""
    [run] = glob.glob(str(run_dir / "wandb" / "offline-run-*"))
    wandb = shutil.which("wandb", path=str(Path(sys.executable).parent))
    summary = subprocess.run([wandb, "leet", "inspect", "--summary", "--json", run], capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr
    records = subprocess.run([wandb, "leet", "inspect", "--json", run], capture_output=True, text=True, timeout=120, check=True)
    [record] = [json.loads(line)["run"] for line in records.stdout.splitlines() if '"type":"run"' in line]
    return json.loads(summary.stdout), record


def mlflow_in(folder: Path) -> list[str]:
    """Overrides that put logger=mlflow's database (and artifact folder) in `folder`, not in outputs/."""
    return [f"logger.mlflow.tracking_uri=sqlite:///{folder}/mlflow.db", f"logger.mlflow.artifact_location={folder}/mlflow-artifacts"]


def mlflow_runs(database: Path, experiment: str | None = None) -> list:
    """The runs of an MLflow SQLite database, read with MLflow's own client: of every experiment, or of one."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{database}")
    experiments = [client.get_experiment_by_name(experiment)] if experiment else client.search_experiments()
    return client.search_runs([found.experiment_id for found in experiments], order_by=["attributes.start_time ASC"])


def mlflow_f1(database: Path, run_id: str) -> list[tuple[int, float]]:
    """An MLflow run's eval/f1 history as (epoch, F1), in epoch order."""
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri=f"sqlite:///{database}").get_metric_history(run_id, "eval/f1")
    return sorted((point.step, point.value) for point in history)


def tensorboard_events(folder: Path):
    """A run's TensorBoard events, read with TensorBoard's own EventAccumulator (every event file in the folder)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})  # 0: keep every value
    events.Reload()
    return events


def tensorboard_hparams(events) -> tuple[dict, str]:
    """The HParams view's record of a run: its parameters (protobuf values) and its end status."""
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = {tag: HParamsPluginData.FromString(data) for tag, data in events.PluginTagToContent("hparams").items()}
    status = Status.Name(content["_hparams_/session_end_info"].session_end_info.status)
    return dict(content["_hparams_/session_start_info"].session_start_info.hparams), status


def read_squad_answers(path: Path) -> dict[str, list[str]]:
    """{question id: gold answer texts} from official SQuAD v1.1 JSON."""
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    return {
        qa["id"]: [answer["text"] for answer in qa["answers"]]
        for article in articles
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def official_normalize(s: str) -> str:
    """The official SQuAD evaluate scripts' normalize_answer, in plain Python: the yardstick of the metrics."""

    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


# sweeps (`python run.py -m`): the tiny model on 64 synthetic questions, one epoch, W&B off
SWEEP_FAST = ["debug=fast"]
NO_PRUNING = "hydra/sweeper/pruner=none"
DIVERGING_LR = "1e6"  # the tiny model's loss becomes NaN at optimiser step 3 with it


def sweep(root: Path, *overrides: str, env_extra: dict | None = None, wait: bool = True):
    """A sweep command writing under `root`; with wait=False the running command (output merged into stdout)."""
    env = offline_env(**(env_extra or {}))
    command = ["run.py", "-m", f"paths.output_root={root}", *SWEEP_FAST, *overrides]
    if not wait:
        return start(command, env=env, merge=True)
    return run(command, env=env, timeout=600)


def study(root: Path, name: str, storage: str | None = None):
    """The Optuna study `name`, by default from the sweep's SQLite file under `root`."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage or f"sqlite:///{root}/optuna/{name}.db")
