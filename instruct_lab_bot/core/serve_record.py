"""What the `local` serving backend keeps per PR model in Redis (pure).

Two records per model, each with one writer, so neither overwrites the other's news: the
server process writes the `Desired` one (which train job, when it was last asked for, when a
request wanted it started) and the serve worker running it writes the `Actual` one (starting,
answering at a URL, failed and why, stopped). `served()` reads the two together.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeVar

from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.serve_names import served_name
from instruct_lab_bot.core.serving import ModelRef, ServedModel, ServeState

T = TypeVar("T")

STARTING = "starting"
ANSWERING = "answering"
STOPPED = "stopped"
FAILED = "failed"


@dataclass(frozen=True)
class Desired:
    repo: str
    number: int
    train_job: str
    model_prefix: str
    storage_uri: str
    base_model: str = ""
    data_job: str = ""
    created_at: float = 0.0
    last_request_at: float = 0.0
    wanted_at: float = 0.0  # a request wanted it running (0: never since deploy)
    cold_start_seconds: float = 0.0

    @property
    def pull(self) -> PullRequestRef:
        return RepoRef.parse(self.repo).pull(self.number)

    @property
    def key(self) -> str:
        return record_key(self.pull)

    @property
    def model(self) -> ModelRef:
        return ModelRef(
            self.pull,
            self.train_job,
            self.model_prefix,
            self.storage_uri,
            self.base_model,
            self.data_job,
        )

    def with_(self, **changes: Any) -> Desired:
        return replace(self, **changes)


@dataclass(frozen=True)
class Actual:
    """The serve worker's report: `phase` is one of STARTING, ANSWERING, STOPPED, FAILED."""

    train_job: str
    phase: str
    at: float  # when the phase began
    url: str = ""
    message: str = ""
    worker: str = ""
    for_wanted: float = 0.0  # the desired `wanted_at` this report answers (no clock compared)


def served(desired: Desired, actual: Actual | None) -> ServedModel:
    """The model as the backend reports it."""
    current = actual is not None and actual.train_job == desired.train_job
    phase = actual.phase if actual is not None and current else STOPPED
    since = actual.for_wanted if actual is not None and current else 0.0
    url, message = "", ""
    if phase == ANSWERING and desired.wanted_at <= since:
        state, url = ServeState.READY, actual.url if actual else ""
    elif phase in (STARTING, ANSWERING) or desired.wanted_at > since:
        # a request since the last report wants it started: that report (even an answering
        # URL, left by a worker that died) is older than the request; the worker that takes
        # the request reports again
        state = ServeState.DEPLOYING
    elif phase == FAILED:
        state, message = ServeState.FAILED, actual.message if actual else ""
    else:
        state = ServeState.SCALED_TO_ZERO
    return ServedModel(
        desired.pull,
        served_name(desired.pull),
        desired.train_job,
        state,
        url=url,
        message=message,
        cold_start_seconds=desired.cold_start_seconds,
        last_request_at=desired.last_request_at,
        created_at=desired.created_at,
    )


def record_key(pull: PullRequestRef) -> str:
    """A model's field in both hashes: the case-folded `owner/repo#number`."""
    return f"{pull.repo.key}#{pull.number}"


def new_desired(model: ModelRef, now: float, cold_start: float) -> Desired:
    return Desired(
        repo=model.pull.repo.full_name,
        number=model.pull.number,
        train_job=model.train_job,
        model_prefix=model.model_prefix,
        storage_uri=model.storage_uri,
        base_model=model.base_model,
        data_job=model.data_job,
        created_at=now,
        last_request_at=now,
        cold_start_seconds=cold_start,
    )


def to_json(record: Desired | Actual) -> str:
    return json.dumps(asdict(record), sort_keys=True)


def from_json(kind: type[T], text: str | bytes) -> T | None:
    """A stored record of `kind`, None when it is not one (never raises on bad data)."""
    try:
        found = json.loads(text)
        if not isinstance(found, dict):
            return None
        known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
        return kind(**{k: v for k, v in found.items() if k in known})
    except (ValueError, TypeError):
        return None
