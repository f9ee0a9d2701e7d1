"""Every Redis key, stream and group name of the bot, and how long each lives.

These names are interface: the README documents them, dashboards and runbooks use them, and
a rolling upgrade has old and new processes share them. Change one only with a migration.
"""

from __future__ import annotations

from instruct_lab_bot.core.command_table import CAPABILITIES, capability_of
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef

# One hash tag for every key: on a Redis Cluster all of them hash to one slot. A tag per
# installation would not do: the streams and their consumer groups are global, and the scripts
# that end a job touch the job's hash, its installation's claims and the global jobs stream in
# one step. So a Cluster buys failover and managed-service compatibility, not sharding (one
# primary holds everything; `docs/deploy.md`).
HASH_TAG = "{ilab-bot}"
PREFIX = HASH_TAG + ":"
LEGACY_PREFIX = "ilab-bot:"  # before the hash tag (migrated at start by `migrate_prefix`)

# -- streams and their consumer groups ------------------------------------------------
EVENTS_STREAM = PREFIX + "events"  # verified webhook intents: server → dispatchers
# Queued jobs, dispatchers → workers: one stream per capability (worker pool), each with its
# own `workers` group, so a long train never holds up a generate (`jobs_stream`).
JOBS_STREAM_PREFIX = PREFIX + "jobs:"
LEGACY_JOBS_STREAM = PREFIX + "jobs"  # the one stream before pools (`migrate_jobs_stream`)
DEAD_STREAM = PREFIX + "dead"  # jobs that used up their attempts
DISPATCH_GROUP = "dispatchers"
WORKER_GROUP = "workers"
# Streams are trimmed on every append, by length (approximately, `MAXLEN ~`) and by age
# (exactly, `XTRIM MINID`): an entry older than its stream's age bound was handled or given up
# on long ago (GitHub's redelivery window is 3 days; a job that waited a week is not coming).
STREAM_MAXLEN = 100_000
STREAM_MAX_AGE = 7 * 24 * 3600  # events and jobs streams (seconds)
DEAD_STREAM_MAX_AGE = 30 * 24 * 3600  # dead letters: as long as job records live by default
SCHEMA_VERSION = "1"  # the `v` field of every stream entry

# -- lifetimes (seconds) ----------------------------------------------------------------
DELIVERY_TTL = 7 * 24 * 3600
HISTORY_TTL = 30 * 24 * 3600  # default for job records; settings override it
ACTIVE_TTL = 3 * 24 * 3600  # safety net: an active-job claim never outlives a stuck job
REDELIVERY_MARK_TTL = 4 * 24 * 3600  # > GitHub's 3-day redelivery window
OUTBOX_TTL = 7 * 24 * 3600  # a final result GitHub would not take for a week is given up

# -- indexes and singletons -------------------------------------------------------------
ALL_JOBS_KEY = PREFIX + "jobs-by-time"  # zset: job id → created_at (status page, history)
WORKERS_KEY = PREFIX + "workers"  # zset: worker name → last heartbeat (registry)
RECONCILER_LOCK = PREFIX + "reconciler:lock"
LINK_KEY = PREFIX + "link-signing-key"  # hex; generated once, shared by every process, no TTL
OUTBOX_KEY = PREFIX + "outbox"  # zset: job id → when its final result is next due (ms)
OUTBOX_ENTRY_PREFIX = PREFIX + "outbox:"
CHAT_CLOSED_TTL = 30 * 24 * 3600  # a closed PR's record is kept this long (its links answer 410)


def jobs_stream(capability: str) -> str:
    """The jobs stream of one worker pool, e.g. `{ilab-bot}:jobs:generate`."""
    return JOBS_STREAM_PREFIX + capability


def job_stream(job: Job) -> str:
    """The jobs stream a job is queued on: its capability's (its kind's) pool."""
    return jobs_stream(capability_of(job.command))


def all_jobs_streams() -> list[str]:
    """Every pool's jobs stream, in the command table's order."""
    return [jobs_stream(capability) for capability in CAPABILITIES]


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def outbox_entry_key(job_id: str) -> str:
    """A job's final result still to be posted (payload, attempts, owner of the claim)."""
    return OUTBOX_ENTRY_PREFIX + job_id


def result_claim_key(job_id: str) -> str:
    """Set once a job's final result is recorded (its value: the end state it reports), so a
    re-run or a second report records nothing more."""
    return once_key(f"result:{job_id}")


def delivery_key(delivery_id: str) -> str:
    return f"{PREFIX}delivery:{delivery_id}"


def comment_key(repo: RepoRef, comment_id: int) -> str:
    """Marks a comment whose commands were stored: a replayed body under a new delivery id
    finds it and is not stored again (lives as long as a delivery mark)."""
    return f"{PREFIX}comment:{repo.full_name}:{comment_id}"


def once_key(marker: str) -> str:
    return f"{PREFIX}once:{marker}"


def memo_key(name: str) -> str:
    """A remembered result (e.g. a validation report), so repeated work is skipped."""
    return f"{PREFIX}memo:{name}"


def pr_jobs_key(pull: PullRequestRef) -> str:
    return f"{PREFIX}pr:{pull.repo.full_name}#{pull.number}"


def worker_key(name: str) -> str:
    """A live worker's registration (host, pid, version, current jobs); expires unless renewed."""
    return f"{PREFIX}worker:{name}"


def active_key(job: Job) -> str:
    """One live job per (repo, PR, head sha, command): a second request links to it."""
    return active_key_at(job.pull_request, job.head_sha, job.command)


def active_key_at(pull: PullRequestRef, head_sha: str, command: str) -> str:
    """`active_key` of the job a request for `command` at `head_sha` would make."""
    return f"{PREFIX}active:{pull.repo.full_name}#{pull.number}:{head_sha}:{command}"


def github_writes_key(installation_id: int) -> str:
    """Sliding window (zset of grant times) of one installation's GitHub writes."""
    return f"{PREFIX}gh:writes:{installation_id}"


def github_reply_writes_key(installation_id: int) -> str:
    """Sliding window of one installation's replies to commands (their own share)."""
    return f"{PREFIX}gh:reply-writes:{installation_id}"


def github_pause_key(installation_id: int) -> str:
    """Set while GitHub has told us to hold this installation's writes (rate limited)."""
    return f"{PREFIX}gh:pause:{installation_id}"


def github_quota_key(installation_id: int) -> str:
    """Set while this installation's hourly quota is spent: holds the reset (epoch seconds)
    GitHub named, and expires then."""
    return f"{PREFIX}gh:quota:{installation_id}"


def redelivered_key(guid: str) -> str:
    """Marks a webhook delivery (by GUID) the reconciler asked GitHub to redeliver."""
    return f"{PREFIX}redelivered:{guid}"


def user_replies_key(login: str) -> str:
    """Sliding window (zset of reply times) of the limited replies written to one person."""
    return f"{PREFIX}replies:user:{login.lower()}"


def pr_replies_key(pull: PullRequestRef) -> str:
    """Sliding window of the limited replies written on one pull request."""
    return f"{PREFIX}replies:pr:{pull.repo.full_name}#{pull.number}".lower()


def chat_user_window_key(user: str) -> str:
    """Sliding window (zset of request times) of one person's chat requests."""
    return f"{PREFIX}chat-rate:user:{user}"


def chat_model_window_key(pull: PullRequestRef) -> str:
    """Sliding window of the chat requests to one PR's model."""
    return f"{PREFIX}chat-rate:model:{pull.repo.key}#{pull.number}"


def chat_key(pull: PullRequestRef) -> str:
    """A PR's chat record (`core.chat_access.ChatRecord`): its serving, what the page shows."""
    return f"{PREFIX}chat:{pull.repo.key}#{pull.number}"
