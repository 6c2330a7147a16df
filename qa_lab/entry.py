"""What `python run.py` runs inside Hydra: one experiment (qa_lab/training/recipe.py), its input errors
turned into the clear message in the run log and exit status 2.

In a multirun the error is raised on instead: Hydra records the job as failed and the sweep goes on
(SystemExit would end the whole sweep).
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from qa_lab.core.errors import QALabError, exit_on_user_error

log = logging.getLogger(__name__)


def run_experiment(cfg: DictConfig) -> float:
    from qa_lab.training.recipe import (
        train,  # after Hydra's own checks: a mistyped option fails without torch
    )

    with exit_on_user_error(show=_log_error, reraise=_in_multirun):
        return train(cfg)


def _log_error(error: QALabError) -> None:
    log.error("%s", error.message())


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
