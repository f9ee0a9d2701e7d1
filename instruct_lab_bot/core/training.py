"""The train backend contract (pure): what a backend is asked to train and what it answers.

A `train` job runs through one `TrainBackend` (`services/worker/train_backend.py`): the
`worker` backend runs `ilab model train` in the worker's sandbox, the `kubeflow` backend submits
a Kubeflow Pipelines run. Both get the same `TrainRequest` and answer a `TrainRunResult`; the
worker then finds the model (`final_model_dir`), uploads it and writes the manifest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "TRAIN_DATA_PATTERNS",
    "Hyperparameters",
    "TrainOutcome",
    "TrainRequest",
    "TrainRunResult",
    "checkpoint_dirs",
    "final_model_dir",
    "pick_training_file",
]

TrainOutcome = Literal["exited", "timed_out", "cancelled"]

#: The generate outputs a train job can learn from, best first: the mixed messages sets
#: (accelerated/full pipelines) then the legacy `train_*` file (`simple` / 0.18 legacy).
TRAIN_DATA_PATTERNS = (
    re.compile(r"(?:^|/)skills_train_msgs_[^/]*\.jsonl$"),
    re.compile(r"(?:^|/)knowledge_train_msgs_[^/]*\.jsonl$"),
    re.compile(r"(?:^|/)train_[^/]*\.jsonl$"),
)
_SAMPLES = re.compile(r"(?:^|/)hf_format/(samples_(\d+)|last_epoch)/")


@dataclass(frozen=True)
class Hyperparameters:
    """What the admin set (ILAB_BOT_TRAIN_*); None/"" leaves ilab's (profile's) default."""

    epochs: int | None = None
    effective_batch_size: int | None = None
    learning_rate: float | None = None
    device: str = ""
    pipeline: str = ""

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.effective_batch_size is not None and self.effective_batch_size < 1:
            raise ValueError("effective batch size must be at least 1")
        if self.learning_rate is not None and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise ValueError("learning rate must be a positive number")

    def as_dict(self) -> dict[str, str]:
        """The values set, as text (the manifest's `hyperparameters`)."""
        values = {
            "epochs": self.epochs,
            "effective_batch_size": self.effective_batch_size,
            "learning_rate": self.learning_rate,
            "device": self.device,
            "pipeline": self.pipeline,
        }
        return {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in values.items() if v}


@dataclass(frozen=True)
class TrainRequest:
    """One training run.

    `data_path` is the local `.jsonl` file (the worker backend; already checksum-verified) and
    `data_key` the same file's artifact key (a remote backend fetches it itself). Checkpoints
    and the final model are written under `output_dir` (`--ckpt-output-dir`); a remote backend
    puts them under `output_key` in the artifact store instead. `resume_from` is the local
    folder of the last uploaded checkpoint when the job was taken over (`resume_key` its
    artifact prefix), trained on as the base model.
    """

    job_id: str
    data_path: Path
    data_key: str
    base_model: str
    hyperparameters: Hyperparameters
    output_dir: Path
    output_key: str
    workspace: Path
    timeout: float
    resume_from: Path | None = None
    resume_key: str = ""

    @property
    def model_path(self) -> str:
        """What ilab trains from: the resumed checkpoint, else the base model."""
        return str(self.resume_from) if self.resume_from is not None else self.base_model


@dataclass(frozen=True)
class TrainRunResult:
    """How a training run ended. `exit_code` None = killed by a signal or never reaped;
    `error` a contributor-safe reason when the backend itself failed (e.g. a rejected run).

    A local backend leaves the model under `request.output_dir` (the worker finds it with
    `final_model_dir`, uploads it and writes the manifest). A remote backend that stored the
    model itself sets `remote_model`: its files and `model.json` are already under
    `<request.output_key>model/`, and the worker only checks the manifest."""

    outcome: TrainOutcome
    exit_code: int | None
    duration: float
    error: str = ""
    remote_model: bool = False


def pick_training_file(names: Iterable[str]) -> str | None:
    """The generate output to train on (the newest of the best kind), None if there is none."""
    listed = sorted(names)
    for pattern in TRAIN_DATA_PATTERNS:
        found = [name for name in listed if pattern.search(name)]
        if found:
            return found[-1]
    return None


def final_model_dir(names: Iterable[str]) -> str | None:
    """The folder (relative, `/`-separated) of the final model among the files training wrote
    (relative to the output dir): the `hf_format/samples_<N>` with the largest N, or
    `hf_format/last_epoch`. None when no model was written (0.18 can exit 0 after failing)."""
    best: tuple[int, str] | None = None
    for name in names:
        match = _SAMPLES.search(name)
        if match is None or not name.endswith((".safetensors", ".bin", ".gguf")):
            continue
        rank = int(match.group(2)) if match.group(2) else 1 << 62
        folder = name[: match.end() - 1]
        if best is None or rank > best[0]:
            best = (rank, folder)
    return best[1] if best else None


def checkpoint_dirs(names: Iterable[str]) -> list[str]:
    """Complete checkpoint folders among the written files, oldest first: each
    `hf_format/samples_<N>` holding weights and a `config.json`."""
    weights: dict[str, int] = {}
    configs: set[str] = set()
    for name in names:
        match = _SAMPLES.search(name)
        if match is None or not match.group(2):
            continue
        folder = name[: match.end() - 1]
        if name.endswith("/config.json"):
            configs.add(folder)
        elif name.endswith((".safetensors", ".bin")):
            weights[folder] = int(match.group(2))
    return sorted((f for f in weights if f in configs), key=lambda f: weights[f])
