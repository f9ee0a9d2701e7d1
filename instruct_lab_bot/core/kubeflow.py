"""The Kubeflow training backend, the pure part: what a pipeline run is asked (its parameters),
how the in-cluster steps fill in their own paths, the progress document the training step
writes for the bot to read, and what a run's state means for the job.

The pipeline has three steps (`services/kubeflow/pipeline.py`): `fetch-data` (the generate
job's training file from the object store), `train-model` (`ilab model train`, its output lines
mirrored to `PROGRESS_NAME` under the train job's prefix as it goes) and `publish-model` (the
model's files and `model.json` under `<train job prefix>model/`, the pipeline's output location
that the bot picks the model up from).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DATA_SLOT",
    "MAX_PROGRESS_LINES",
    "PROGRESS_NAME",
    "STEP_NAMES",
    "WORK_SLOT",
    "Progress",
    "RunPhase",
    "data_job_of",
    "fill_slots",
    "kubeflow_problems",
    "parse_k8s_name",
    "parse_k8s_quantity",
    "parse_node_selector",
    "parse_progress",
    "progress_document",
    "run_phase",
    "step_states",
]

#: Written by the argv builder in place of the pod's own folders; `fill_slots` swaps them in.
DATA_SLOT = "{data}"
WORK_SLOT = "{work}"
#: Under the train job's artifact prefix: the training step's last output lines.
PROGRESS_NAME = "kfp/progress.json"
MAX_PROGRESS_LINES = 400
_MAX_LINE = 4096
#: The pipeline's tasks, as KFP names them (a component's function name, `_` → `-`).
STEP_NAMES = ("fetch-data", "train-model", "publish-model")

RunPhase = Literal["waiting", "running", "succeeded", "failed", "canceled"]
_PHASES: dict[str, RunPhase] = {
    "PENDING": "waiting",
    "RUNTIME_STATE_UNSPECIFIED": "waiting",
    "PAUSED": "waiting",
    "RUNNING": "running",
    "CANCELING": "running",
    "SUCCEEDED": "succeeded",
    "SKIPPED": "failed",
    "FAILED": "failed",
    "CANCELED": "canceled",
}


def run_phase(state: str) -> RunPhase:
    """A KFP v2beta1 `RuntimeState` as the bot sees it; an unknown one counts as running."""
    return _PHASES.get(state, "running")


def step_states(tasks: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Each pipeline step's state from a run's (task name, state) pairs, in step order. KFP
    lists more than the steps (the root DAG, a driver beside an executor under the same
    name): only `STEP_NAMES` count, and several entries of one step read as the worst one."""
    rank = ("FAILED", "CANCELED", "CANCELING", "RUNNING", "PENDING", "SUCCEEDED", "SKIPPED")
    states: dict[str, str] = {}
    for step in STEP_NAMES:
        found = [state for name, state in tasks if name == step]
        if found:
            states[step] = min(found, key=lambda s: rank.index(s) if s in rank else 3)
    return states


def fill_slots(argv: Sequence[str], data_dir: str, work_dir: str) -> list[str]:
    """The argv with the pod's data and work folders in place of `DATA_SLOT`/`WORK_SLOT`."""
    return [arg.replace(DATA_SLOT, data_dir).replace(WORK_SLOT, work_dir) for arg in argv]


@dataclass(frozen=True)
class Progress:
    """The training step's output so far: `lines` are lines number `first`, `first + 1`, …
    (older ones are dropped: only the last `MAX_PROGRESS_LINES` are kept); `done` once the
    step has finished writing."""

    first: int
    lines: tuple[tuple[str, str], ...]
    done: bool = False

    @property
    def end(self) -> int:
        """The number of the line after the last one."""
        return self.first + len(self.lines)

    def after(self, seen: int) -> list[tuple[str, str]]:
        """The (stream, line) pairs numbered `seen` and later."""
        return list(self.lines[max(0, seen - self.first) :])


def progress_document(first: int, lines: Sequence[tuple[str, str]], *, done: bool) -> bytes:
    """The progress document for the last `MAX_PROGRESS_LINES` lines (each cut to 4 KiB)."""
    kept = list(lines)[-MAX_PROGRESS_LINES:]
    first += len(lines) - len(kept)
    body = {"first": first, "done": done, "lines": [[s, t[:_MAX_LINE]] for s, t in kept]}
    return json.dumps(body, ensure_ascii=False).encode()


def parse_progress(data: bytes) -> Progress | None:
    """A progress document, or None when it is not one (never trusted further than that)."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, Mapping):
        return None
    first, lines = body.get("first"), body.get("lines")
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        return None
    if not isinstance(lines, list) or len(lines) > MAX_PROGRESS_LINES:
        return None
    pairs: list[tuple[str, str]] = []
    for item in lines:
        if not (
            isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
        ):
            return None
        pairs.append((item[0][:16], item[1][:_MAX_LINE]))
    return Progress(first, tuple(pairs), body.get("done") is True)


_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def parse_k8s_name(text: str) -> str:
    """A Kubernetes object name (a namespace, a Secret)."""
    if not _K8S_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a Kubernetes name (lower case, digits, '-', '.')")
    return text


_QUANTITY = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?([KMGTPE]i?)?")


def parse_k8s_quantity(text: str) -> str:
    """A memory quantity as Kubernetes writes it (`64Gi`, `80G`)."""
    if not _QUANTITY.fullmatch(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity such as 64Gi")
    return text


def parse_node_selector(text: str) -> tuple[str, str]:
    """`label=value`: the node label the training task must run on."""
    key, sep, value = text.partition("=")
    if not sep or not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
        raise ValueError("must be a node label and its value, e.g. nvidia.com/gpu.present=true")
    return key, value


def kubeflow_problems(values: Mapping[str, object]) -> list[str]:
    """What the kubeflow train backend lacks in the parsed settings (none when not chosen)."""
    if values.get("train_backend") != "kubeflow":
        return []
    problems = [
        f"ILAB_BOT_{name}: required with ILAB_BOT_TRAIN_BACKEND=kubeflow ({why})"
        for name, attr, why in (
            ("KFP_URL", "kfp_url", "the Data Science Pipelines API"),
            ("KFP_IMAGE", "kfp_image", "the training image"),
        )
        if not values.get(attr)
    ]
    if not str(values.get("artifacts_url", "")).startswith("s3://"):
        problems.append(
            "ILAB_BOT_ARTIFACTS_URL: must be s3://… with ILAB_BOT_TRAIN_BACKEND=kubeflow "
            "(the pipeline's pods fetch the data and store the model there)"
        )
    return problems


def data_job_of(data_key: str) -> str:
    """The generate job id in a data file's key (`<owner>/<repo>/pr-<n>/<sha>/<job id>/…`)."""
    parts = data_key.split("/")
    return parts[4] if len(parts) > 5 else ""
