"""Every Redis key, stream and group name of the bot, and how long each lives.

These names are interface: the README documents them, dashboards and runbooks use them, and
a rolling upgrade has old and new processes share them. Change one only with a migration.
"""

from __future__ import annotations

from instruct_lab_bot.core.jobs import Job

PREFIX = "ilab-bot:"

# -- streams and their consumer groups ------------------------------------------------
EVENTS_STREAM = PREFIX + "events"  # verified webhook intents: server → dispatchers
JOBS_STREAM = PREFIX + "jobs"  # queued jobs: dispatchers → workers
DEAD_STREAM = PREFIX + "dead"  # jobs that used up their attempts
DISPATCH_GROUP = "dispatchers"
WORKER_GROUP = "workers"
STREAM_MAXLEN = 100_000
SCHEMA_VERSION = "1"  # the `v` field of every stream entry

# -- lifetimes (seconds) ----------------------------------------------------------------
DELIVERY_TTL = 7 * 24 * 3600
HISTORY_TTL = 30 * 24 * 3600  # default for job records; settings override it
ACTIVE_TTL = 3 * 24 * 3600  # safety net: an active-job claim never outlives a stuck job
REDELIVERY_MARK_TTL = 4 * 24 * 3600  # > GitHub's 3-day redelivery window

# -- indexes and singletons -------------------------------------------------------------
ALL_JOBS_KEY = PREFIX + "jobs-by-time"  # zset: job id → created_at (status page, history)
WORKERS_KEY = PREFIX + "workers"  # zset: worker name → last heartbeat (registry)
RECONCILER_LOCK = PREFIX + "reconciler:lock"


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def delivery_key(delivery_id: str) -> str:
    return f"{PREFIX}delivery:{delivery_id}"


def comment_key(owner: str, repo: str, comment_id: int) -> str:
    """Marks a comment whose commands were stored: a replayed body under a new delivery id
    finds it and is not stored again (lives as long as a delivery mark)."""
    return f"{PREFIX}comment:{owner}/{repo}:{comment_id}"


def once_key(marker: str) -> str:
    return f"{PREFIX}once:{marker}"


def memo_key(name: str) -> str:
    """A remembered result (e.g. a validation report), so repeated work is skipped."""
    return f"{PREFIX}memo:{name}"


def pr_jobs_key(owner: str, repo: str, pr_number: int) -> str:
    return f"{PREFIX}pr:{owner}/{repo}#{pr_number}"


def worker_key(name: str) -> str:
    """A live worker's registration (host, pid, version, current jobs); expires unless renewed."""
    return f"{PREFIX}worker:{name}"


def active_key(job: Job) -> str:
    """One live job per (repo, PR, head sha, command): a second request links to it."""
    return f"{PREFIX}active:{job.owner}/{job.repo}#{job.pr_number}:{job.head_sha}:{job.command}"


def github_writes_key(installation_id: int) -> str:
    """Sliding window (zset of grant times) of one installation's GitHub writes."""
    return f"{PREFIX}gh:writes:{installation_id}"


def github_pause_key(installation_id: int) -> str:
    """Set while GitHub has told us to hold this installation's writes (rate limited)."""
    return f"{PREFIX}gh:pause:{installation_id}"


def redelivered_key(guid: str) -> str:
    """Marks a webhook delivery (by GUID) the reconciler asked GitHub to redeliver."""
    return f"{PREFIX}redelivered:{guid}"
