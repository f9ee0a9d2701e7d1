"""The train backend contract (pure): what a backend is asked to train and what it answers.

A `train` job runs through one `TrainBackend` (`services/worker/train_backend.py`): the
`worker` backend runs `ilab model train` in the worker's sandbox, the `kubeflow` backend submits
a Kubeflow Pipelines run. Both get the same `TrainRequest` and answer a `TrainRunResult`; the
worker then finds the model (`final_model_dir`), uploads it and writes the manifest.
"""

from __future__ import annotations

import enum
import fnmatch
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
    "ILAB_DEFAULT_BASE_MODEL",
    "TRAIN_DATA_PATTERNS",
    "Hyperparameters",
    "TrainDecision",
    "TrainLayout",
    "TrainOutcome",
    "TrainRefusal",
    "TrainRequest",
    "TrainRunResult",
    "checkpoint_dirs",
    "final_model_dir",
    "folders_matching",
    "from_job_id",
    "live_trainings",
    "pick_training_file",
    "train_decision",
    "train_verdict",
    "training_files",
]

TrainOutcome = Literal["exited", "timed_out", "cancelled"]
#: `--model-path` when ILAB_BOT_TRAIN_BASE_MODEL is empty: ilab's own default (train.model_path).
ILAB_DEFAULT_BASE_MODEL = "instructlab/granite-7b-lab"

#: The generate outputs a train job can learn from, best first: the mixed messages sets
#: (accelerated/full pipelines) then the legacy `train_*` file (`simple` / 0.18 legacy).
TRAIN_DATA_PATTERNS = (
    re.compile(r"(?:^|/)skills_train_msgs_[^/]*\.jsonl$"),
    re.compile(r"(?:^|/)knowledge_train_msgs_[^/]*\.jsonl$"),
    re.compile(r"(?:^|/)train_[^/]*\.jsonl$"),
)
_JOB_ID = re.compile(r"[0-9a-zA-Z_-]{1,64}")
_DIGITS = re.compile(r"\d+")
_WEIGHTS = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


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
    epochs_done: int = 0  # of the resumed checkpoint: a resumed run trains the rest

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


@dataclass(frozen=True)
class TrainLayout:
    """Where a local backend's training writes, relative to the job's folder (globs): the
    checkpoint folders to upload as they appear, the final model folder (the highest-numbered
    match), files outside it that belong to the model (the `simple` pipeline's GGUF) and how a
    taken-over job resumes: "model-path" (train from the last `hf_format/samples_*`),
    "full-state" (restore the training state folders, run the same command), "restart"."""

    checkpoint_globs: tuple[str, ...] = ()
    model_glob: str = ""
    model_extras: tuple[str, ...] = ()
    resume: str = "model-path"


def pick_training_file(names: Iterable[str]) -> str | None:
    """The generate output to train on (the newest of the best kind), None if there is none."""
    listed = sorted(names)
    for pattern in TRAIN_DATA_PATTERNS:
        found = [name for name in listed if pattern.search(name)]
        if found:
            return found[-1]
    return None


def _number(folder: str) -> int:
    """The last number in a folder's name (`samples_120` → 120; none → -1)."""
    digits = _DIGITS.findall(folder.rsplit("/", 1)[-1])
    return int(digits[-1]) if digits else -1


def folders_matching(names: Iterable[str], pattern: str) -> list[str]:
    """The folders matching the glob `pattern` (`checkpoints/hf_format/samples_*`) that hold at
    least one of the files `names` (relative, `/`-separated), lowest number first."""
    depth = pattern.count("/") + 1
    found = {
        "/".join(parts[:depth])
        for name in names
        if len(parts := name.split("/")) > depth
        and fnmatch.fnmatchcase("/".join(parts[:depth]), pattern)
    }
    return sorted(found, key=lambda f: (_number(f), f))


def final_model_dir(names: Iterable[str], pattern: str) -> str | None:
    """The highest-numbered folder matching `pattern` that holds weights (`.safetensors`,
    `.bin`, `.gguf`, …); None when no model was written (0.18 can exit 0 after failing)."""
    listed = list(names)
    with_weights = [
        folder
        for folder in folders_matching(listed, pattern)
        if any(n.startswith(folder + "/") and n.endswith(_WEIGHTS) for n in listed)
    ]
    return with_weights[-1] if with_weights else None


def checkpoint_dirs(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The checkpoint folders written so far, per pattern lowest number first."""
    listed = list(names)
    return [folder for pattern in patterns for folder in folders_matching(listed, pattern)]


_EPOCH_STATE = re.compile(r"(?:^|/)full_state/epoch_(\d+)$")
_SAMPLES = re.compile(r"(?:^|/)hf_format/samples_(\d+)$")


def checkpoint_epochs(folder: str, folders: Sequence[str]) -> int:
    """Whole epochs a checkpoint folder holds, read from the folders themselves (not from the
    console, whose lines can lag behind the files): `full_state/epoch_<e>` holds e + 1;
    ilab saves `hf_format/samples_<N>` once per epoch, so the k-th lowest N holds k. 0 when
    the name says nothing."""
    state = _EPOCH_STATE.search(folder)
    if state:
        return int(state.group(1)) + 1
    mine = _SAMPLES.search(folder)
    if not mine:
        return 0
    seen = sorted({int(m.group(1)) for f in folders if (m := _SAMPLES.search(f))})
    return sum(1 for n in seen if n <= int(mine.group(1)))


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
