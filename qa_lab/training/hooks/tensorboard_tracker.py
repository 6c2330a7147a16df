"""TensorBoard as a tracker hook (`logger=tensorboard`, conf/logger/tensorboard.yaml): event files in the run
folder, written with torch's SummaryWriter, so `tensorboard --logdir outputs/` shows every run, and a sweep's
trials side by side under their study's folder. The config goes to the HParams view (with the best epoch's
scores as its metrics, and the run's end as its status) and, whole, to the Text view.
"""

from __future__ import annotations

import json
from typing import Any

from qa_lab.core.records import flatten
from qa_lab.training.context import Run
from qa_lab.training.hooks.tracker import BEST_KEYS, Tracker

HPARAM_TYPES = (bool, int, float, str)  # what the HParams view takes; other values are shown as text
# the run's end as the HParams view's run status, which has no "pruned": the text entry `status` says it
SESSION_STATUS = {"complete": "STATUS_SUCCESS", "failed": "STATUS_FAILURE", "pruned": "STATUS_UNKNOWN"}


class TensorBoardTracker(Tracker):
    name, title = "tensorboard", "TensorBoard"
    hint = "check that the run folder is writable, or logger=none turns tracking off"

    def __init__(self, subdir: str, **other: Any) -> None:
        """The keys of conf/logger/tensorboard.yaml; `other`: keys added on the command line, recorded only."""
        super().__init__()
        self.writer_class, self.subdir = self.library("torch.utils.tensorboard", "SummaryWriter"), subdir
        self.writer = None

    def open(self, run: Run, group: str | None, resume_id: str | None) -> tuple[str, dict[str, Any]]:
        """A resumed run appends to the same folder (a new event file beside the first)."""
        from torch.utils.tensorboard.summary import hparams

        folder = run.folder / self.subdir
        self.writer = self.writer_class(log_dir=str(folder))
        if resume_id is None:
            params = {key: value if isinstance(value, HPARAM_TYPES) else str(value) for key, value in flatten(run.config).items()}
            if run.trial is not None:
                params |= {"trial": run.trial.describe()["number"], "study": group}
            experiment, start, _ = hparams(params, {f"best/{key}": 0.0 for key in BEST_KEYS})
            for summary in (experiment, start):
                self.writer.file_writer.add_summary(summary)
            self.writer.add_text("config", f"```\n{json.dumps(run.config, indent=1)}\n```")
        return str(folder), {"state": "logged", "log_dir": str(folder), "view": f"tensorboard --logdir {folder}"}

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=step)

    def close(self, run: Run, status: str, best: dict[str, Any]) -> None:
        for key in BEST_KEYS:
            if key in best:
                self.writer.add_scalar(f"best/{key}", best[key], global_step=best["epoch"])
        self.writer.add_text("status", status + (f" at epoch {run.stop.epoch}" if status == "pruned" else ""))
        self.writer.file_writer.add_summary(_session_end(SESSION_STATUS[status]))
        self.writer.close()
        self.writer = None


def _session_end(status: str) -> Any:
    """The HParams view's end-of-run record with the run's status (torch's hparams() always says success;
    TensorBoard's own helper for it needs TensorFlow)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME, SESSION_END_INFO_TAG
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    content = HParamsPluginData(session_end_info=SessionEndInfo(status=Status.Value(status)), version=PLUGIN_DATA_VERSION)
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=metadata)])
