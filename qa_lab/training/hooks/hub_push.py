"""hub.push=true: best/ (model, tokenizer, qa_lab.json, model card) uploaded to the Hub at the end of a
complete run. A push that fails (no token, no network, a refusal) is one warning and `push: failed` in
summary.json; the run's files are complete either way, and `qa-lab push <run folder>` retries later."""

from __future__ import annotations

import logging
import time

from qa_lab.core.publish import PushError, push_folder
from qa_lab.training.context import Run
from qa_lab.training.hooks import Hook

log = logging.getLogger(__name__)


class HubPush(Hook):
    def __init__(self, push: bool, repo_id: str | None, private: bool, timeout: float) -> None:
        """The keys of `hub` in conf/config.yaml; `timeout`: hub_timeout."""
        self.push, self.repo_id, self.private, self.timeout = push, repo_id, private, timeout

    def on_run_end(self, run: Run, status: str) -> None:
        if not self.push:
            return
        if status != "complete" or run.state.best is None:
            run.facts["push"] = {"state": "skipped", "repo_id": self.repo_id, "reason": f"the run is {status}"}
            return
        started = time.perf_counter()
        try:
            pushed = push_folder(run.folder / "best", self.repo_id, self.private, self.timeout)
            log.info("pushed %s to %s", run.folder / "best", pushed["url"])
        except PushError as error:
            log.warning("hub.push failed: %s; the run's files are complete, push them later with "
                        "`qa-lab push %s --repo-id %s`", error.message().replace("\n", " "), run.folder, self.repo_id)
            pushed = {"state": "failed", "repo_id": self.repo_id, "error": error.what}
        run.facts["push"] = pushed | {"seconds": time.perf_counter() - started}
