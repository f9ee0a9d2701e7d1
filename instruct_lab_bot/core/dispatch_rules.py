"""What the dispatcher decides, apart from the GitHub and Redis calls that carry it out (pure).

Which gate refuses a job request, which job a retry re-runs, which jobs a cancel or a new push
ends, what a pull-request event sets off: rules here, unit-tested without Redis or GitHub.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from instruct_lab_bot.core.command_table import CommandSpec
from instruct_lab_bot.core.jobs import Job, State

#: States a `retry` may re-run.
RETRYABLE = (State.FAILED, State.CANCELLED, State.TIMED_OUT, State.DEAD, State.SUPERSEDED)


def job_id_for(delivery_id: str, marker: object) -> str:
    """Stable across redeliveries of one stored event, unique per command line."""
    return hashlib.sha256(f"{delivery_id}:{marker}".encode()).hexdigest()[:24]


# -- gates before a job is created --------------------------------------------------------


class Refusal(enum.StrEnum):
    """Why a job request was turned down (each has its reply in `messages`)."""

    CLOSED = "closed"
    LABELS = "labels"
    NO_CHANGE = "no_change"


def refusal_before_files(
    spec: CommandSpec, *, is_open: bool, labels: Collection[str], wanted: Sequence[str]
) -> Refusal | None:
    """The gates that need only the pull request itself, in the order they are checked."""
    if spec.needs_open_pull_request and not is_open:
        return Refusal.CLOSED
    if spec.needs_labels and wanted and not set(labels) & set(wanted):
        return Refusal.LABELS
    return None


def refusal_for_files(spec: CommandSpec, files: Sequence[str]) -> Refusal | None:
    """A command that works on the taxonomy change needs one (validation comes next)."""
    if spec.needs_taxonomy_change and not files:
        return Refusal.NO_CHANGE
    return None


# -- retry and cancel ---------------------------------------------------------------------


def retry_source(jobs: Sequence[Job]) -> Job | None:
    """The newest job of the PR (jobs oldest first) that `retry` may run again."""
    return next((job for job in reversed(jobs) if job.state in RETRYABLE), None)


class Stop(enum.StrEnum):
    END = "end"  # queued: ends now, its check run completes
    ASK = "ask"  # running: its worker is asked to stop the process group


def jobs_to_stop(
    jobs: Sequence[Job], *, new_sha: str = "", only_queued: bool = False
) -> list[tuple[Job, Stop]]:
    """Which of a PR's jobs a cancel (or, with `new_sha`, a new push) stops, and how.

    A push supersedes only queued jobs of other heads; a cancel stops everything live.
    """
    stops: list[tuple[Job, Stop]] = []
    for job in jobs:
        if job.state is State.QUEUED and (not new_sha or job.head_sha != new_sha):
            stops.append((job, Stop.END))
        elif job.state is State.RUNNING and not only_queued:
            stops.append((job, Stop.ASK))
    return stops


# -- pull request and check run events ----------------------------------------------------


@dataclass(frozen=True)
class PullRequestPlan:
    """What one pull-request event sets off, in this order."""

    cancel: bool = False  # closed: every live job ends
    supersede: bool = False  # pushed: queued jobs of the old head end
    welcome: bool = False
    validate: bool = False  # validate the changed taxonomy files of the new head


def pull_request_plan(action: str) -> PullRequestPlan:
    if action == "closed":
        return PullRequestPlan(cancel=True)
    return PullRequestPlan(
        supersede=action == "synchronize",
        welcome=action in ("opened", "reopened", "labeled"),
        validate=action in ("opened", "reopened", "synchronize"),
    )


def wants_welcome(enabled: bool, wanted: Sequence[str], labels: Sequence[str]) -> bool:
    """With required labels, a PR is welcomed once it has one of them."""
    return enabled and (not wanted or bool(set(labels) & set(wanted)))


def check_run_asks_retry(action: str, identifier: str) -> bool:
    """GitHub's "Re-run" on a check run, or its "Retry" button (no other button)."""
    return not (action == "requested_action" and identifier != "retry")
