"""conf/, composed as `python run.py` composes it: the defaults run offline, every shipped option composes and
passes the config check, each backbone brings its learning rate, and `--model <option>` resolves through it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from qa_lab.core.conf import CONF_DIR
from qa_lab.core.errors import ConfigError
from qa_lab.model.backbone import model_settings
from qa_lab.training.checks import check_settings
from qa_lab.training.hooks import HOOK_MODULES, Hook, build_hooks
from tests.helpers import composed, resolvable

pytestmark = pytest.mark.unit


def test_defaults_are_offline(minilm_path):
    cfg = composed()
    assert cfg.model.name_or_path == minilm_path and Path(minilm_path, "model.safetensors").is_file()
    assert cfg.data.source == "synthetic"
    assert list(cfg.logger) == ["wandb"] and cfg.logger.wandb.mode == "auto"
    assert (cfg.data.max_length, cfg.data.stride) == (192, 64)  # the generated data's short paragraphs
    squad = composed("data=squad").data
    assert (squad.max_length, squad.stride) == (384, 128)  # every other data option: the SQuAD scripts' windows
    for key in ("max_train_samples", "max_eval_samples", "train_file", "validation_file"):
        assert key in cfg.data
    for key in ("lr", "epochs", "batch_size", "seed"):
        assert key in cfg.trainer


@pytest.mark.parametrize("model", ["distilbert", "bert-base-cased", "roberta-base", "minilm", "tiny"])
@pytest.mark.parametrize("data", ["squad", "squad_v2", "synthetic"])
def test_every_group_option_composes(model, data):
    cfg = composed(f"model={model}", f"data={data}")
    check_settings(resolvable(cfg))


def test_each_backbone_brings_its_learning_rate_and_the_command_line_wins():
    assert composed("model=minilm").trainer.lr == 3e-4
    assert composed("model=distilbert").trainer.lr == 5e-5
    assert composed("model=minilm", "trainer.lr=1e-5").trainer.lr == 1e-5
    without = composed("model=minilm", "~model.lr")
    with pytest.raises(ConfigError, match=r"trainer.lr: defaults to the backbone's model.lr, but the model config sets none"):
        check_settings(resolvable(without))
    check_settings(resolvable(composed("model=minilm", "~model.lr", "trainer.lr=1e-4")))


def test_seed_zero_is_kept():
    assert composed("trainer.seed=0").trainer.seed == 0


def test_unknown_group_option_lists_the_available_ones():
    with pytest.raises(MissingConfigException, match="Could not find 'model/gpt5'"):
        composed("model=gpt5")


@pytest.mark.parametrize(
    ("logger", "trackers"),
    [("wandb", ["WandbTracker"]), ("none", []), ("[mlflow,tensorboard]", ["MlflowTracker", "TensorBoardTracker"]),
     ("[wandb,mlflow]", ["WandbTracker", "MlflowTracker"])],
)
def test_every_hook_entry_instantiates_with_one_tracker_per_logger_option(logger, trackers):
    cfg = resolvable(composed(f"logger={logger}"))
    built = build_hooks(cfg.hooks, is_main=True).hooks
    names = [type(hook).__name__ for hook in built]
    run_hooks = ["DataReport", "ProgressLog", "MetricsFile", "EpochLog", "BestModel", "ModelCard", "TrialReport",
                 "Checkpoints", "HubPush", "Summary", "RunReport"]
    assert names == run_hooks + trackers
    assert all(isinstance(hook, Hook) for hook in built)
    targets = [entry._target_ for entry in [*cfg.hooks.values(), *cfg.logger.values()] if "_target_" in entry]
    assert len(targets) == len(built) and all(target.startswith(HOOK_MODULES[0].rstrip("*")) for target in targets)


def test_a_hook_can_be_turned_off_from_the_command_line():
    cfg = resolvable(composed("hooks.checkpoints=null"))
    assert "Checkpoints" not in [type(hook).__name__ for hook in build_hooks(cfg.hooks, is_main=True).hooks]


def test_on_other_processes_only_the_collective_hooks_run():
    built = build_hooks(resolvable(composed()).hooks, is_main=False).hooks
    assert [type(hook).__name__ for hook in built] == ["Checkpoints"]


def test_a_hook_outside_the_hooks_package_is_refused():
    cfg = resolvable(composed("+hooks.rogue._target_=os.system"))
    with pytest.raises(Exception, match="os.system"):
        build_hooks(cfg.hooks, is_main=True)


@pytest.mark.parametrize("option", sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml")))
def test_a_model_option_on_the_command_line_resolves_through_conf(option):
    """`qa-lab predict --model minilm` reads conf/model/minilm.yaml: no special case in code."""
    from_command_line = OmegaConf.to_container(model_settings(option))
    assert from_command_line == OmegaConf.to_container(composed(f"model={option}").model, resolve=True)


def test_a_model_name_that_is_no_option_is_a_hub_id_or_a_folder(tmp_path):
    assert model_settings(str(tmp_path)).name_or_path == str(tmp_path)
    assert model_settings("bert-base-uncased").pretrained is True


@pytest.mark.parametrize(("logger", "module"), [("mlflow", "mlflow"), ("tensorboard", "torch.utils.tensorboard")])
def test_a_tracker_without_its_package_stops_the_run_before_any_work(monkeypatch, logger, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed: importing it raises ImportError
    cfg = resolvable(composed(f"logger={logger}"))
    with pytest.raises(ConfigError) as raised:
        build_hooks(cfg.hooks, is_main=True)
    assert raised.value.where == "logger" and f"logger={logger} needs the" in raised.value.what
    assert raised.value.fix == "pip install 'qa-lab[trackers]'"
