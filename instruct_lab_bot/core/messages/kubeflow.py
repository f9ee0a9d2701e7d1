"""Texts of the Kubeflow train backend (pure): the lines it adds to the training log (and so
to the check run's log tail) and the reasons a run failed outside `ilab` itself."""

from __future__ import annotations

from urllib.parse import urlsplit

_STATES = {
    "PENDING": "waiting for its pod",
    "RUNNING": "running",
    "SUCCEEDED": "done",
    "FAILED": "failed",
    "SKIPPED": "skipped",
    "CANCELING": "being cancelled",
    "CANCELED": "cancelled",
}


def submitted(run_id: str, api_url: str) -> str:
    host = urlsplit(api_url).hostname or "the pipelines server"
    return f"Kubeflow Pipelines run {run_id} submitted to {host}"


def following(run_id: str) -> str:
    return f"following Kubeflow Pipelines run {run_id}, submitted earlier for this job"


def task_state(task: str, state: str, error: str = "") -> str:
    text = f"Kubeflow task {task}: {_STATES.get(state, state.lower())}"
    return f"{text}: {error[:300]}" if error else text


def lines_skipped(count: int) -> str:
    return f"… {count} lines of training output not shown (they came faster than they were read)"


def terminate_failed(run_id: str) -> str:
    return f"could not terminate Kubeflow Pipelines run {run_id}: an admin should stop it"


def submit_failed(error: Exception) -> str:
    return (
        "the training could not be submitted to Kubeflow Pipelines "
        f"({type(error).__name__}); an admin can find why in the worker's log"
    )


def run_failed(task: str) -> str:
    where = f"its `{task}` step" if task else "the run"
    return f"the Kubeflow Pipelines run failed in {where}, outside ilab's training"


def canceled_elsewhere() -> str:
    return "the Kubeflow Pipelines run was cancelled outside the bot"


def run_gone(run_id: str) -> str:
    return f"the Kubeflow Pipelines run {run_id} is gone (deleted while it was followed)"
