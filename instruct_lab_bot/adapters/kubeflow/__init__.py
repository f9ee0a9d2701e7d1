"""Kubeflow Pipelines (the Data Science Pipelines API of OpenShift AI): submit, follow and
terminate training runs."""

from instruct_lab_bot.adapters.kubeflow.client import (
    KfpClient,
    KfpConfig,
    KfpError,
    KfpUnavailable,
    RunView,
    TaskView,
)

__all__ = ["KfpClient", "KfpConfig", "KfpError", "KfpUnavailable", "RunView", "TaskView"]
