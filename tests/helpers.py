"""What tests share besides fixtures (conftest.py): where the real data is, how to run qa-lab as a user does
(`python run.py`, `qa-lab ...`) in an offline environment, composed configs, and readers of the files runs
leave (W&B offline runs, the synthetic validation set, official SQuAD JSON)."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the real data files (qa_lab/core/public_data.py) are looked for here first: beside this project's
# checkouts and in its CI, never on a user's machine (then they are fetched; see the fixtures in conftest.py)
SHARED_BESIDE = ROOT.parent / "shared" / "data"
XQUAD_NAME = "xquad-en/xquad.en.json"
PEER_SCORES = Path(__file__).parent / "evaluation" / "peer_scores.json"  # official v1.1 scores of the peer files

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


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of a `run.py` subprocess in tests: W&B offline, and no API key even if one is set."""
    env = {**os.environ, "WANDB_MODE": "offline", **extra}
    env.pop("WANDB_API_KEY", None)
    return env


def run_py(run_dir: Path, *overrides: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python run.py` writing into run_dir (the sweep folder of a multirun, `-m`); by default offline, with
    the feature cache beside run_dir."""
    folder = f"hydra.sweep.dir={run_dir}" if "-m" in overrides else f"hydra.run.dir={run_dir}"
    env = env if env is not None else offline_env(QA_LAB_CACHE_DIR=str(run_dir.parent / "cache"))
    return subprocess.run(
        [sys.executable, "run.py", folder, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def qa_lab(*arguments: str, timeout: float = 900, **options) -> subprocess.CompletedProcess:
    """The `qa-lab` command, as `python -m qa_lab.cli ...` from the checkout."""
    return subprocess.run([sys.executable, "-m", "qa_lab.cli", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=timeout, **options)


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
