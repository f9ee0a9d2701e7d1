"""The train backend contract (pure): what a backend is asked to train and what it answers.

A `train` job runs through one `TrainBackend` (`services/worker/train_backend.py`): the
`worker` backend runs `ilab model train` in the worker's sandbox, the `kubeflow` backend submits
a Kubeflow Pipelines run. Both get the same `TrainRequest` and answer a `TrainRunResult`; the
worker then finds the model (`final_model_dir`), uploads it and writes the manifest.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from instruct_lab_bot.core.job_lookup import latest_succeeded, named_job
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import RepoRef

__all__ = [
    "TRAIN_DATA_PATTERNS",
    "Hyperparameters",
    "TrainDecision",
    "TrainOutcome",
    "TrainRefusal",
    "TrainRequest",
    "TrainRunResult",
    "checkpoint_dirs",
    "final_model_dir",
    "from_job_id",
    "live_trainings",
    "pick_training_file",
    "train_decision",
    "train_verdict",
    "training_files",
]

TrainOutcome = Literal["exited", "timed_out", "cancelled"]

#: The generate outputs a train job can learn from, best first: the mixed messages sets
#: (accelerated/full pipelines) then the legacy `train_*` file (`simple` / 0.18 legacy).
TRAIN_DATA_PATTERNS = (
    re.compile(r"(?:^|/)skills_train_msgs_[^/]*\.jsonl$"),
    re.compile(r"(?:^|/)knowledge_train_msgs_[^/]*\.jsonl$"),
    re.compile(r"(?:^|/)train_[^/]*\.jsonl$"),
)
_JOB_ID = re.compile(r"[0-9a-zA-Z_-]{1,64}")
_SAMPLES = re.compile(
    r"(?:^|/)(?:hf_format/(samples_(\d+)|last_epoch)|training_results/(?:final|merged_model))/"
)


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


#: Also fetched for the `simple` pipeline, which reads `train_*` and `test_*` from a folder.
_TEST_DATA = re.compile(r"(?:^|/)test_[^/]*\.jsonl$")


def training_files(names: Iterable[str]) -> list[str]:
    """Every generate output a training may read: the newest of each kind (the mixed sets,
    the legacy `train_*` and its `test_*`), the one to train on (`pick_training_file`) first."""
    listed = sorted(names)
    first = pick_training_file(listed)
    found = [first] if first else []
    for pattern in (*TRAIN_DATA_PATTERNS, _TEST_DATA):
        newest = [name for name in listed if pattern.search(name)][-1:]
        found += [name for name in newest if name not in found]
    return found if first else []


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


# -- the dispatcher's gate for `train` ------------------------------------------------------


class TrainRefusal(enum.StrEnum):
    """Why a `train` request was turned down (each has its reply in `messages.train`)."""

    BAD_ARGS = "bad_args"  # not `train` or `train --from <job id>`
    NO_GENERATE = "no_generate"  # no successful generate on the PR's current head
    NOT_THIS_PR = "not_this_pr"  # `--from` names no successful generate job of this PR
    PR_BUSY = "pr_busy"  # a training of this PR is queued or running
    REPO_BUSY = "repo_busy"  # the repository's concurrent trainings are at the limit


@dataclass(frozen=True)
class TrainDecision:
    """The generate job to train on, or why not (`busy` is the live train job, if any)."""

    source: Job | None = None
    refusal: TrainRefusal | None = None
    busy: Job | None = None


def from_job_id(args: Sequence[str]) -> str | None:
    """The job id of `train --from <id>` ("" when no `--from`); None when the args are bad."""
    if not args:
        return ""
    if len(args) == 2 and args[0] in ("--from", "from") and _JOB_ID.fullmatch(args[1]):
        return args[1]
    if len(args) == 1 and args[0].startswith("--from=") and _JOB_ID.fullmatch(args[0][7:]):
        return args[0][7:]
    return None


def train_decision(
    args: Sequence[str],
    pr_jobs: Sequence[Job],
    repo_live_trainings: int,
    *,
    head_sha: str,
    max_per_repo: int,
) -> TrainDecision:
    """Which generate job a `train` request trains on, checked in this order: the arguments,
    one live training per PR, the repository's limit, then the data to train on."""
    wanted = from_job_id(args)
    if wanted is None:
        return TrainDecision(refusal=TrainRefusal.BAD_ARGS)
    live = next((j for j in pr_jobs if j.command == "train" and not j.state.terminal), None)
    if live is not None:
        return TrainDecision(refusal=TrainRefusal.PR_BUSY, busy=live)
    if repo_live_trainings >= max_per_repo:
        return TrainDecision(refusal=TrainRefusal.REPO_BUSY)
    if wanted:
        source = named_job(pr_jobs, wanted, "generate")
        refusal = TrainRefusal.NOT_THIS_PR
    else:
        source = latest_succeeded(pr_jobs, "generate", head_sha=head_sha)
        refusal = TrainRefusal.NO_GENERATE
    return TrainDecision(source=source) if source else TrainDecision(refusal=refusal)


def live_trainings(jobs: Iterable[Job], repo: RepoRef) -> int:
    """Train jobs of `repo` queued or running among `jobs`."""
    return sum(
        1 for j in jobs if j.command == "train" and not j.state.terminal and j.repo_ref == repo
    )


# -- how a training ended -------------------------------------------------------------------

DISK_FULL = re.compile(r"No space left on device|\[Errno 28\]")


def train_verdict(
    state: State,
    *,
    exit_code: int | None,
    logged_error: str,
    saw_nan: bool,
    disk_full: bool,
    model_found: bool,
) -> tuple[State, str]:
    """The job's end state and error from the run and what it wrote (0.18 can exit 0 after a
    failure, so success also needs the model folder)."""
    if state in (State.CANCELLED, State.TIMED_OUT):
        return state, ""
    if disk_full:
        return State.FAILED, (
            "the train worker's disk filled up (No space left on device): an admin must free "
            "space or give train workers a larger disk, then comment `retry`"
        )
    if saw_nan:
        return State.FAILED, (
            "the training loss became NaN (the run diverged): try a lower learning rate "
            "(ILAB_BOT_TRAIN_LEARNING_RATE) or look for broken samples in the generated data"
        )
    if state is State.FAILED:
        return State.FAILED, logged_error or f"`ilab model train` exited with code {exit_code}"
    if not model_found:
        return State.FAILED, (
            "`ilab model train` ended without writing a model (no `hf_format/samples_*` "
            "folder); ilab 0.18 reports some training failures only in its log: see below"
        )
    return State.SUCCEEDED, ""
