"""The train backend ILAB_BOT_TRAIN_BACKEND names: `worker` (ilab in this worker's sandbox,
services/worker/train_backend.py) or `kubeflow` (a Kubeflow Pipelines run,
services/kubeflow/backend.py)."""

from __future__ import annotations

from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.kubeflow.backend import KubeflowTrainBackend
from instruct_lab_bot.services.worker import train_backend
from instruct_lab_bot.services.worker.train_backend import TrainBackend

__all__ = ["open_train_backend"]


def open_train_backend(settings: Settings, profile: IlabProfile) -> TrainBackend:
    """A new backend for one train job (the caller `aclose`s it)."""
    if settings.train_backend == "kubeflow":
        return KubeflowTrainBackend(settings, profile)
    return train_backend.open_worker_backend(settings, profile)
