"""Jobs: states, allowed transitions and their Redis-hash form (pure).

The Redis adapter (`queue`) applies transitions atomically; this module only decides what is
allowed, so the rules are unit-testable and the same for every process.
"""

from __future__ import annotations

import enum
import functools
import secrets
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from instruct_lab_bot.core.refs import PullRequestRef, RepoRef


class State(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        return self not in (State.QUEUED, State.RUNNING)


#: state → states it may move to. RUNNING → QUEUED hands a job back (shutdown, reclaim).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.RUNNING, State.CANCELLED, State.SUPERSEDED, State.DEAD}),
    State.RUNNING: frozenset(
        {State.SUCCEEDED, State.FAILED, State.TIMED_OUT, State.CANCELLED, State.QUEUED, State.DEAD}
    ),
    State.DEAD: frozenset({State.QUEUED}),  # an admin's `dlq requeue`
}

#: The GitHub check-run conclusion each terminal state reports.
CONCLUSIONS: dict[State, str] = {
    State.SUCCEEDED: "success",
    State.FAILED: "failure",
    State.TIMED_OUT: "timed_out",
    State.CANCELLED: "cancelled",
    State.SUPERSEDED: "cancelled",
    State.DEAD: "failure",
}


#: The longest value (characters) each free-text field of a job record keeps: what a job stores
#: never grows with what a PR, a comment or `ilab` can make long. Longer values are cut and say
#: so; `files` is cut at a file boundary and keeps at most `MAX_JOB_FILES` paths.
FIELD_LIMITS: dict[str, int] = {
    "command": 64,
    "requester": 100,
    "delivery_id": 100,
    "head_sha": 64,
    "head_ref": 256,
    "base_branch": 256,
    "worker": 200,
    "error": 2000,
    "artifact_prefix": 1024,
    "stream_id": 64,
    "check_run_url": 512,
    "stage": 200,
    "index_url": 2048,
    "files": 16_000,
    "cancel_requested": 100,
    "cancelled_by": 100,
    "traceparent": 128,
    "ilab_version": 64,
    "teacher_model": 512,
    "pipeline": 512,
    "command_line": 4000,
    "leaf_counts": 16_000,
    "artifact_names": 16_000,
    "repo_args": 256,
    "source_job": 64,
}
MAX_JOB_FILES = 200
#: What ran, recorded on the job while it runs; the result reply shows whichever are set.
RUN_FACTS = ("ilab_version", "teacher_model", "pipeline", "command_line")
_CUT = " […cut]"


def bounded_field(name: str, value: object) -> str:
    """`value` as stored in a job record: a string within the field's limit (if it has one)."""
    text = str(value)
    limit = FIELD_LIMITS.get(name)
    if limit is None or (len(text) <= limit and name != "files"):
        return text
    if name == "files":
        return bounded_files(text.split(","))
    return text[: limit - len(_CUT)] + _CUT


def bounded_files(files: list[str]) -> str:
    """Changed files, comma-separated: at most `MAX_JOB_FILES` whole paths within the limit."""
    kept: list[str] = []
    size = 0
    for path in files[:MAX_JOB_FILES]:
        size += len(path) + 1
        if size > FIELD_LIMITS["files"] + 1:
            break
        kept.append(path)
    return ",".join(kept)


def bounded_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Job-record fields as stored: strings, each within its limit."""
    return {name: bounded_field(name, value) for name, value in fields.items()}


class TransitionError(Exception):
    """A transition the state machine forbids (e.g. two workers starting one job)."""


def can_transition(current: State, new: State) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def check_transition(current: State, new: State) -> None:
    if not can_transition(current, new):
        raise TransitionError(f"job cannot go from {current} to {new}")


def new_job_id() -> str:
    """Sortable by creation time, unguessable, and safe in URLs, keys and file names."""
    return f"{int(time.time() * 1000):013x}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Job:
    """One requested command on one PR; stored as a Redis hash of strings."""

    id: str
    command: str
    installation_id: int
    owner: str
    repo: str
    pr_number: int
    requester: str
    delivery_id: str = ""
    comment_id: int = 0
    head_sha: str = ""
    head_ref: str = ""
    base_branch: str = ""
    state: State = State.QUEUED
    check_run_id: int = 0
    result_comment_id: int = 0
    attempts: int = 0
    worker: str = ""
    created_at: float = field(default_factory=time.time)
    started_at: float = 0.0
    finished_at: float = 0.0
    progress: float = 0.0
    error: str = ""
    artifact_prefix: str = ""
    stream_id: str = ""
    heartbeat_at: float = 0.0
    check_run_url: str = ""
    stage: str = ""  # what `ilab` is doing now, e.g. "Map (num_proc=8): 40% (2/5)"
    index_url: str = ""  # the artifacts' index page once uploaded
    generated: int = -1  # samples generated (-1: unknown)
    private: bool = False  # a private repository: never shown to anonymous status viewers
    files: str = ""  # changed taxonomy files (comma-separated), found when the job was made
    cancel_requested: str = ""  # who asked to cancel it while it ran
    cancelled_by: str = ""
    traceparent: str = ""
    # What ran, for the reply (set by the worker when known; "" = unknown).
    ilab_version: str = ""  # the worker's `ilab --version` (e.g. "0.26.1")
    teacher_model: str = ""  # `data generate --model`, when the bot passed one
    pipeline: str = ""  # `data generate --pipeline`
    command_line: str = ""  # the redacted argv, as at the top of ilab.log
    leaf_counts: str = ""  # JSON {leaf: samples} of a generate run, to compare the next one
    artifact_names: str = ""  # the stored files' names, one a line (for the `links` command)
    repo_args: str = ""  # ilab flags the repository's configuration chose (shlex-joined)
    # The job this one builds on: a `train` job's generate job (its data), a `test` or `serve`
    # job's train job (its model). "" for jobs that build on none.
    source_job: str = ""
    requeued: int = 0  # times an admin requeued it from the dead letters (its result's round)

    @property
    def repo_full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def repo_ref(self) -> RepoRef:
        return RepoRef(self.owner, self.repo)

    @property
    def pull_request(self) -> PullRequestRef:
        return PullRequestRef(self.repo_ref, self.pr_number)

    @property
    def duration(self) -> float:
        end = self.finished_at or time.time()
        return max(0.0, end - self.started_at) if self.started_at else 0.0

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)

    def to_fields(self) -> dict[str, str]:
        """The Redis-hash form, every field within `FIELD_LIMITS`."""
        return bounded_fields(asdict(self))

    @classmethod
    def from_fields(cls, data: dict[str, str]) -> Job:
        kwargs: dict[str, Any] = {}
        for name, kind in _field_kinds():
            if name not in data:
                continue
            raw = data[name]
            if kind == "int":
                kwargs[name] = int(raw or 0)
            elif kind == "float":
                kwargs[name] = float(raw or 0)
            elif kind == "bool":
                kwargs[name] = raw == "True"
            elif kind == "State":
                kwargs[name] = State(raw)
            else:
                kwargs[name] = raw
        return cls(**kwargs)

    def artifact_key_prefix(self) -> str:
        """`<owner>/<repo>/pr-<n>/<sha>/<job id>/`: one folder per run, grouped by PR."""
        return f"{self.owner}/{self.repo}/pr-{self.pr_number}/{self.head_sha}/{self.id}/"


@functools.cache
def _field_kinds() -> tuple[tuple[str, str], ...]:
    """`Job`'s fields and their types' names, looked up once (a worker decodes a job per run)."""
    return tuple((f.name, str(f.type)) for f in fields(Job))
