"""Everything a training run does besides training and evaluating: each side effect is one hook in this
folder, listed in conf/hooks/ in the order it runs.

A hook overrides the events it cares about: the run's start, an optimiser step's end, an epoch's end, the
run's end. The loop calls every hook at every event and knows none of them, so a new tracker or epoch-end
action is one new file here and one entry in conf/hooks/default.yaml (a tracker: one option in conf/logger/).
"""

from __future__ import annotations

from typing import ClassVar

from hydra.utils import instantiate
from omegaconf import DictConfig

from qa_lab.training.context import EpochEnd, Run, Step

HOOK_MODULES = ("qa_lab.training.hooks.*",)  # what a hook entry may instantiate


class Hook:
    """One side effect of a training run. Every event is a no-op unless the hook overrides it."""

    # most hooks write files or log: only the main process of a multi-process run calls them
    main_process_only: ClassVar[bool] = True

    def on_run_start(self, run: Run) -> None:
        """Before the first step (of a resumed run: the first step still to train)."""

    def on_step_end(self, run: Run, step: Step) -> None:
        """After each optimiser step."""

    def on_epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        """After each epoch's evaluation."""

    def on_run_end(self, run: Run, status: str) -> None:
        """Once, whether the run is complete, pruned or failed (`status`); also when it raised."""


class Hooks:
    """The hooks of one process, called in order at each event."""

    def __init__(self, hooks: list[Hook], is_main: bool) -> None:
        self.hooks = [hook for hook in hooks if is_main or not hook.main_process_only]

    def run_start(self, run: Run) -> None:
        for hook in self.hooks:
            hook.on_run_start(run)

    def step_end(self, run: Run, step: Step) -> None:
        for hook in self.hooks:
            hook.on_step_end(run, step)

    def epoch_end(self, run: Run, epoch: EpochEnd) -> None:
        for hook in self.hooks:
            hook.on_epoch_end(run, epoch)

    def run_end(self, run: Run, status: str) -> None:
        for hook in self.hooks:
            hook.on_run_end(run, status)


def build_hooks(configs: DictConfig, is_main: bool) -> Hooks:
    """The `hooks` config, in order: each entry with a `_target_` is one hook, an entry without one is a
    group of hooks (`trackers`: one per logger option, none for logger=none), and one set to null is off."""
    entries = []
    for config in configs.values():
        if config is not None and "_target_" not in config:
            entries.extend(config.values())
        else:
            entries.append(config)
    hooks = [instantiate(config, _convert_="all", _execution_whitelist_=HOOK_MODULES) for config in entries if config is not None]
    return Hooks(hooks, is_main)
