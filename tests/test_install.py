"""qa-lab as an installed, non-editable package: the wheel built from this checkout, installed into a fresh
virtual environment, finds its defaults (conf/ shipped as qa_lab/conf) from any working directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.helpers import PEER_SCORES, ROOT

# one worker runs the whole module: its tests share the module fixtures' runs (no run done twice)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("install")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The `bin` folder of a fresh virtualenv holding the built wheel; the dependencies are this environment's
    (a .pth line puts its site-packages after the wheel's own, so the checkout's editable qa-lab is not seen)."""
    root = tmp_path_factory.mktemp("install")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT), "-w", str(root / "dist")],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' build folder in the checkout
    [wheel] = (root / "dist").glob("qa_lab-*.whl")
    venv.create(root / "venv", with_pip=False)
    bin_dir = root / "venv" / "bin"
    target = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", target, str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    (Path(target) / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    entry = bin_dir / "qa-lab"  # pip --target writes no console scripts: the entry point, as pip would
    entry.write_text(f"#!{bin_dir / 'python'}\nimport sys\nfrom qa_lab.cli import main\nsys.exit(main())\n")
    entry.chmod(0o755)
    return bin_dir


def run_elsewhere(installed: Path, folder: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed / command[0]), *command[1:]], cwd=folder, capture_output=True, text=True, timeout=600)


def test_the_installed_package_reads_its_own_conf(installed, tmp_path):
    code = "import qa_lab.core.conf as c, qa_lab.core.provenance as p; print(c.CONF_DIR); print(p.git_commit())"
    done = run_elsewhere(installed, tmp_path, "python", "-c", code)
    conf_dir, commit = done.stdout.split()
    assert Path(conf_dir).is_relative_to(installed.parent) and (Path(conf_dir) / "model" / "minilm.yaml").is_file()
    assert commit == "None" and not Path(conf_dir).is_relative_to(ROOT)


def test_score_from_another_folder(installed, tmp_path, xquad_file, peer_predictions):
    done = run_elsewhere(installed, tmp_path, "qa-lab", "score", str(xquad_file), str(peer_predictions["match-lstm.json"]))
    assert done.returncode == 0, done.stderr[-3000:]
    expected = json.loads(PEER_SCORES.read_text())["scores"]["match-lstm.json"]
    assert json.loads(done.stdout) == pytest.approx(expected, rel=1e-12)


def test_predict_and_data_check_with_a_conf_model_option_from_another_folder(installed, tmp_path, xquad_file):
    squad = json.loads(xquad_file.read_text(encoding="utf-8"))
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"version": "1.1", "data": squad["data"][:1]}))
    checked = run_elsewhere(installed, tmp_path, "qa-lab", "data", "check", str(small), "--model", "minilm")
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert json.loads(checked.stdout)["usable"] is True
    predicted = run_elsewhere(
        installed, tmp_path, "qa-lab", "predict", "--model", "minilm", "--data", str(small), "--out", "predictions.json",
        "--max-length", "128", "--stride", "32",
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    result = json.loads(predicted.stdout.strip().splitlines()[-1])
    answers = json.loads((tmp_path / "predictions.json").read_text())
    assert result["examples"] == len(answers) > 0 and 0 <= result["f1"] <= 100


def test_compare_and_the_benchmark_settings_from_another_folder(installed, tmp_path):
    compared = run_elsewhere(installed, tmp_path, "qa-lab", "compare", str(tmp_path))
    assert compared.returncode == 2 and "no run directories found" in compared.stderr  # its defaults were read
    code = "from qa_lab.bench.settings import bench_settings; s = bench_settings(True, ['steps=2']); print(s.steps, s.max_length)"
    bench = run_elsewhere(installed, tmp_path, "python", "-c", code)
    assert bench.stdout.split() == ["2", "384"], bench.stderr[-3000:]
