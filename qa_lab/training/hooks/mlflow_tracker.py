"""MLflow as a tracker hook (`logger=mlflow`, conf/logger/mlflow.yaml), through MLflow's own client against a
tracking URI: by default a SQLite database under the output root, so runs are browsable with `mlflow ui` on
localhost with no account and no network. One experiment per study in a sweep (its trials tagged with their
number and parameters), the config as the run's parameters, and the run closed as FINISHED, FAILED or, when
pruned, KILLED with the tag `qa_lab.status: pruned`.

The client API (not the fluent `mlflow.start_run`) because a run here is closed with its own status, and a
process holds no global "active run" that another tracker or a user's code could end.
"""

from __future__ import annotations

import os
import time
from itertools import islice
from typing import Any

from qa_lab.core.records import flatten
from qa_lab.training.context import Run
from qa_lab.training.hooks.tracker import EPOCH_AXIS, Tracker

STATUS = {"complete": "FINISHED", "failed": "FAILED", "pruned": "KILLED"}  # a run's end as MLflow's run status
BATCH = 100  # MLflow takes at most 100 parameters or tags per log_batch call
MAX_PARAM_CHARACTERS = 6000  # and parameter values of at most 6000 characters: longer ones are cut


class MlflowTracker(Tracker):
    name, title = "mlflow", "MLflow"
    hint = "check logger.mlflow.tracking_uri, or logger=none turns tracking off"

    def __init__(self, tracking_uri: str, experiment: str, group: str | None, artifact_location: str,
                 request_timeout: float, max_retries: int, **other: Any) -> None:
        """The keys of conf/logger/mlflow.yaml; `other`: keys added on the command line, recorded only."""
        super().__init__(group)
        self.client_class = self.library("mlflow", "MlflowClient")
        self.uri, self.experiment, self.artifact_location = tracking_uri, experiment, artifact_location
        self.http = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(request_timeout), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries)}
        self.client = self.run_id = None

    def open(self, run: Run, group: str | None, resume_id: str | None) -> tuple[str, dict[str, Any]]:
        for variable, value in self.http.items():  # read by MLflow's REST client at each request
            os.environ.setdefault(variable, value)
        self.client = self.client_class(tracking_uri=self.uri)
        experiment = group or self.experiment
        experiment_id = self._experiment_id(experiment)
        if resume_id is not None:  # the resumed run goes on in the run it started
            self.client.update_run(resume_id, status="RUNNING")
            self.run_id = resume_id
        else:
            self.run_id = self.client.create_run(experiment_id, run_name=f"{run.name}-{run.folder.name}", tags=_tags(run)).info.run_id
            _log_params(self.client, self.run_id, run.config)
        view = self.uri if self.uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {self.uri}"
        return self.run_id, {"state": "logged", "tracking_uri": self.uri, "experiment": experiment, "run_id": self.run_id, "view": view}

    def _experiment_id(self, name: str) -> str:
        """The experiment's id, created when it is new (by this process or, in a sweep, by another worker)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=self.artifact_location)
        except MlflowException:  # another worker of the study created it meanwhile
            return self.client.get_experiment_by_name(name).experiment_id

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, float(value), now, step) for key, value in values.items()])

    def close(self, run: Run, status: str, best: dict[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        step = best.get(EPOCH_AXIS, 0)
        scores = [Metric(f"best/{key}", float(value), now, step) for key, value in best.items() if isinstance(value, (int, float))]
        tags = [RunTag("qa_lab.status", status)] + ([RunTag("qa_lab.pruned_at_epoch", str(run.stop.epoch))] if status == "pruned" else [])
        self.client.log_batch(self.run_id, metrics=scores, tags=tags)
        self.client.set_terminated(self.run_id, status=STATUS[status])


def _tags(run: Run) -> dict[str, str]:
    """What finds a run among many: its folder, and in a sweep its trial's number, study and parameters."""
    tags = {"qa_lab.run_folder": str(run.folder)}
    if run.trial is not None:
        trial = run.trial.describe()
        tags |= {"trial": str(trial["number"]), "study": trial["study"]}
        tags |= {f"param.{key}": str(value) for key, value in trial["params"].items()}
    return tags


def _log_params(client: Any, run_id: str, config: dict[str, Any]) -> None:
    """The resolved config (secrets masked) as the run's parameters, with dotted keys, in MLflow's batches."""
    from mlflow.entities import Param

    params = (Param(key, str(value)[:MAX_PARAM_CHARACTERS]) for key, value in flatten(config).items())
    while batch := list(islice(params, BATCH)):
        client.log_batch(run_id, params=batch)
