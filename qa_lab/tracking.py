"""Where a run's numbers go: metrics.jsonl in the run directory always, Weights & Biases when enabled.

W&B runs online when an API key is configured and the server answers, offline otherwise (files under the
run directory, uploaded later with `wandb sync`). A W&B failure never stops training.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from omegaconf import DictConfig, OmegaConf

from qa_lab.artifacts import write_jsonl
from qa_lab.evaluation import THRESHOLD_KEY, V2_KEYS
from qa_lab.secrets import mask_text, redact

log = logging.getLogger(__name__)

# per-epoch keys logged under eval/ (with the SQuAD v2 scores), the rest under epoch/
EVAL_KEYS = ("exact_match", "f1", "eval_seconds", *V2_KEYS, THRESHOLD_KEY)


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as W&B stores it: secrets masked (qa_lab/secrets.py)."""
    return redact(OmegaConf.to_container(cfg, resolve=True))


class Tracker:
    """metrics.jsonl plus an optional W&B run with per-epoch metrics against an `epoch` axis."""

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        enabled: bool,
        extra_config: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        wandb_id: str | None = None,
    ) -> None:
        """`history`: the epoch records of the run so far (a resumed run's), metrics.jsonl starts from them;
        `wandb_id`: the W&B run to continue."""
        self.enabled = enabled
        self.metrics_path = run_dir / "metrics.jsonl"
        self.history = list(history or [])
        self.wandb_run = None
        self.wandb_mode = "disabled"  # online | offline | failed (W&B did not start) | disabled (logger=none)
        if enabled:
            write_jsonl(self.metrics_path, self.history)
        if enabled and cfg.logger.name == "wandb":
            self.wandb_run = self._start_wandb(cfg, run_dir, extra_config or {}, wandb_id)

    @property
    def wandb_id(self) -> str | None:
        return self.wandb_run.id if self.wandb_run is not None else None

    def _start_wandb(self, cfg: DictConfig, run_dir: Path, extra_config: dict[str, Any], run_id: str | None):
        settings = cfg.logger
        mode = settings.mode if settings.mode != "auto" else ("online" if _wandb_online(settings.probe_timeout) else "offline")
        try:
            import wandb

            with _masked_command_line():  # W&B saves the command line (its `args`) with the run
                run = wandb.init(
                    project=settings.project,
                    entity=settings.entity,
                    group=settings.group,
                    job_type=settings.job_type,
                    tags=list(settings.tags),
                    name=f"{cfg.run_name}-{run_dir.name}",
                    config=plain_config(cfg) | extra_config,
                    dir=str(run_dir),
                    mode=mode,
                    id=run_id,
                    resume="allow" if run_id else None,
                    settings=wandb.Settings(quiet=True, console="off"),
                )
            run.define_metric("epoch")
            run.define_metric("eval/*", step_metric="epoch")
            run.define_metric("epoch/*", step_metric="epoch")
            run.define_metric("eval/f1", step_metric="epoch", summary="max")
            run.define_metric("eval/exact_match", step_metric="epoch", summary="max")
            run.define_metric("eval/HasAns_f1", step_metric="epoch", summary="max")
            run.define_metric("eval/NoAns_f1", step_metric="epoch", summary="max")
            run.define_metric("train/step")
            run.define_metric("train/*", step_metric="train/step")
        except Exception as error:  # noqa: BLE001 - tracking must never cost the run
            log.warning(
                "W&B did not start (%s: %s); the run goes on without it, metrics are in %s "
                "(logger.mode=offline keeps W&B's files in the run folder, logger=none turns W&B off)",
                type(error).__name__, error, self.metrics_path,
            )
            self.wandb_mode = "failed"
            return None
        self.wandb_mode = mode
        log.info("W&B run %s (%s mode) in %s", run.id, mode, run.dir)
        return run

    def log_step(self, step: int, values: dict[str, float]) -> None:
        if self.wandb_run is not None:
            self.wandb_run.log({"train/step": step, **{f"train/{k}": v for k, v in values.items()}})

    def log_epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.history.append(record)
        write_jsonl(self.metrics_path, self.history)
        if self.wandb_run is not None:
            scores = {f"eval/{key}": record[key] for key in EVAL_KEYS if key in record}
            training = {f"epoch/{key}": value for key, value in record.items() if key not in EVAL_KEYS and key != "epoch"}
            self.wandb_run.log({"epoch": record["epoch"], **scores, **training})

    def finish(self, summary: dict[str, Any] | None, failed: bool, pruned_at: int | None = None) -> None:
        if self.wandb_run is None:
            return
        try:
            if summary:
                self.wandb_run.summary.update({f"best/{k}": v for k, v in summary.items() if isinstance(v, (int, float, str))})
            if pruned_at is not None:
                self.wandb_run.summary["pruned_at_epoch"] = pruned_at
            self.wandb_run.finish(exit_code=1 if failed else 0)
        except Exception as error:  # noqa: BLE001
            log.warning("W&B did not close cleanly (%s); run files may be incomplete", error)
        self.wandb_run = None


@contextmanager
def _masked_command_line() -> Iterator[None]:
    """sys.argv with secrets masked (qa_lab/secrets.py) for as long as the block runs."""
    argv = sys.argv
    sys.argv = [argv[0], *(mask_text(argument) for argument in argv[1:])]
    try:
        yield
    finally:
        sys.argv = argv


def _wandb_online(timeout: float) -> bool:
    """Online only with a key and a server that answers; otherwise offline, without waiting on retries."""
    has_key = bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb()
    if not has_key or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return False
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    try:
        httpx.head(base, timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def _netrc_has_wandb() -> bool:
    import netrc

    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)
