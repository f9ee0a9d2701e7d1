"""What the bot knows about a PR model being served (pure): names, states, and the facts the
`serve` reply, the chat page and the status page show. Backends live in `services/serving`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from instruct_lab_bot.core.refs import PullRequestRef


class ServeState(enum.StrEnum):
    DEPLOYING = "deploying"  # created, not ready yet
    READY = "ready"  # answering
    SCALED_TO_ZERO = "scaled_to_zero"  # idle: the next request starts it (a cold start)
    FAILED = "failed"  # never became ready, or the cluster refused it
    GONE = "gone"  # removed (PR closed, TTL, `serve stop`)


@dataclass(frozen=True)
class ModelRef:
    """A trained model to serve: its train job and where its files are."""

    pull: PullRequestRef
    train_job: str
    model_prefix: str  # the artifact key prefix of its `model/` folder (with trailing slash)
    storage_uri: str  # how a server reaches it (`s3://bucket/prefix/model/` or a local path)
    base_model: str = ""
    data_job: str = ""


@dataclass(frozen=True)
class ServedModel:
    """One PR's served model as a backend reports it."""

    pull: PullRequestRef
    name: str  # the backend's name for it (DNS-safe; the InferenceService's name)
    train_job: str
    state: ServeState
    url: str = ""  # base URL of its OpenAI-compatible API ("" until known)
    message: str = ""  # why it failed, in words an admin can act on
    cold_start_seconds: float = 0.0  # typical wait for the first answer after scale to zero
    last_request_at: float = 0.0
    created_at: float = 0.0
