"""Which replies a stranger can make the bot write, and how many it writes (pure).

Anyone who can comment on a PR can ask the bot for help, name an unknown command or ask for a
command they may not run; each such reply is a GitHub write. These replies are counted per
person and per pull request over a sliding window (kept in Redis by
`adapters.redis.reply_limits`); past either limit the bot stays silent, and each silenced
reply is counted in the `replies_silenced` metric. Replies that report what a permitted
request did (a cancel, a job already running, nothing to retry) are not limited.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ReplyReason(enum.StrEnum):
    """Why the bot answers a comment (a bounded metric label)."""

    DENIED = "denied"  # not allowed to run the command
    UNKNOWN = "unknown"  # unknown command (with a "did you mean")
    TRUNCATED = "truncated"  # more commands in one comment than are run
    NOT_A_PR = "not_a_pr"  # a command on a plain issue
    CLOSED = "closed"  # a job asked for on a closed PR
    LABELS = "labels"  # the PR lacks a required label
    NO_CHANGE = "no_change"  # the PR changes no taxonomy file
    INVALID = "invalid"  # the taxonomy change does not validate
    HELP = "help"
    STATUS = "status"
    ALREADY_RUNNING = "already_running"
    NOTHING_TO_RETRY = "nothing_to_retry"
    CANCELLED = "cancelled"
    LINKS = "links"
    FORMER_NAME = "former_name"  # addressed by the bot's old name: a one-line note
    DISABLED = "disabled"  # the repository's configuration switched the command off
    NO_WORKER = "no_worker"  # queued for a worker pool that has no live worker
    TRAIN_REFUSED = "train_refused"  # `train` without data to train on, or over a limit
    SERVE = "serve"  # `serve` / `serve stop`: what was deployed or removed
    CHAT = "chat"  # `chat <question>`: the model's answer
    NO_SOURCE = "no_source"  # the job it builds on is missing (`test` before any `train`)


#: Answers to a permitted request's action: never silenced (they follow a permission check
#: for the restricted commands, and each reports something the bot did).
UNLIMITED = frozenset(
    {
        ReplyReason.ALREADY_RUNNING,
        ReplyReason.NOTHING_TO_RETRY,
        ReplyReason.CANCELLED,
        ReplyReason.NO_WORKER,
        ReplyReason.TRAIN_REFUSED,
        ReplyReason.SERVE,
        ReplyReason.CHAT,
        ReplyReason.NO_SOURCE,
    }
)


def is_limited(reason: ReplyReason) -> bool:
    """Whether this reply counts against the per-person and per-PR reply limits."""
    return reason not in UNLIMITED


class Silenced(enum.StrEnum):
    """Which limit silenced a reply (a bounded metric label)."""

    USER = "user"
    PULL_REQUEST = "pull_request"
    BUDGET = "budget"  # the replies' share of the GitHub write budget was spent
    REPEAT = "repeat"  # the same answer to the same person moments ago (a repeated command)


@dataclass(frozen=True)
class ReplyLimits:
    """At most `per_user` limited replies to one person and `per_pull_request` on one PR
    within any `window` seconds."""

    per_user: int = 20
    per_pull_request: int = 40
    window: float = 3600.0
