"""The status read model: what waits, what runs where, what finished, which workers are alive.

Built only from `Queue` reads, so the status page, its JSON API and the `status` PR command all
show the same truth. The privacy rule is applied here, once: a viewer who may not see private
repositories gets their jobs as counts only (never a name, sha, link or error), and every error
text is scrubbed of secret values and URL credentials before any viewer gets it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import CONCLUSIONS, Job, State
from instruct_lab_bot.core.messages import check_run_url
from instruct_lab_bot.core.settings import Settings

WINDOW = 500  # newest jobs read to build the overview (queue, running, recently finished)
FINISHED_LIMIT = 30
MAX_LIMIT = 500
ERROR_LIMIT = 2000


@dataclass(frozen=True)
class ReadOptions:
    """Who is looking and how to build links; `show_private` is the privacy switch."""

    show_private: bool = False
    web_url: str = "https://github.com"
    secrets: tuple[str, ...] = ()
    window: int = WINDOW
    finished_limit: int = FINISHED_LIMIT

    @classmethod
    def from_settings(cls, settings: Settings, *, show_private: bool) -> ReadOptions:
        return cls(
            show_private=show_private,
            web_url=settings.github_git_url,
            secrets=settings.secrets(),
        )


@dataclass(frozen=True)
class Links:
    pull_request: str
    check_run: str | None = None
    artifacts: str | None = None
    artifacts_expire_at: float | None = None

    def artifacts_live(self, now: float) -> bool:
        expires = self.artifacts_expire_at
        return self.artifacts is not None and (expires is None or expires > now)


@dataclass(frozen=True)
class JobView:
    """One job as a viewer may see it; times are Unix seconds, None when not reached yet."""

    id: str
    command: str
    state: State
    owner: str
    repo: str
    pr_number: int
    head_sha: str
    head_ref: str
    base_branch: str
    requester: str
    private: bool
    worker: str
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    position: int | None  # 1 = next to start; queued jobs only
    wait: float | None  # seconds from request to start (or to now while queued)
    duration: float | None  # seconds running (to now while running)
    progress: float | None  # percent, running jobs only
    stage: str
    generated: int | None
    error: str
    links: Links

    @property
    def conclusion(self) -> str | None:
        return CONCLUSIONS.get(self.state)

    @property
    def repo_full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def to_json(self) -> dict[str, Any]:
        """The API's `Job` object (docs/status-api.openapi.yaml)."""
        return {
            "id": self.id,
            "command": self.command,
            "state": self.state.value,
            "conclusion": self.conclusion,
            "owner": self.owner,
            "repo": self.repo,
            "pr_number": self.pr_number,
            "head_sha": self.head_sha,
            "head_ref": self.head_ref,
            "base_branch": self.base_branch,
            "requester": self.requester,
            "private": self.private,
            "worker": self.worker or None,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "queue_position": self.position,
            "wait_seconds": _round(self.wait),
            "duration_seconds": _round(self.duration),
            "progress": self.progress,
            "stage": self.stage or None,
            "generated": self.generated,
            "error": self.error or None,
            "links": {
                "pull_request": self.links.pull_request,
                "check_run": self.links.check_run,
                "artifacts": self.links.artifacts,
                "artifacts_expire_at": iso(self.links.artifacts_expire_at),
            },
        }


@dataclass(frozen=True)
class JobRef:
    """A job a worker is running, as shown next to the worker."""

    id: str
    owner: str
    repo: str
    pr_number: int
    command: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "repo": self.repo,
            "pr_number": self.pr_number,
            "command": self.command,
        }


@dataclass(frozen=True)
class WorkerView:
    name: str
    host: str
    pid: int | None
    version: str
    concurrency: int | None
    started_at: float | None
    heartbeat_at: float | None
    jobs: tuple[JobRef, ...] = ()
    hidden_jobs: int = 0  # running jobs of private repositories, not shown to this viewer

    @property
    def busy(self) -> int:
        return len(self.jobs) + self.hidden_jobs

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "concurrency": self.concurrency,
            "started_at": iso(self.started_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "busy": self.busy,
            "jobs": [job.to_json() for job in self.jobs],
            "hidden_jobs": self.hidden_jobs,
        }


@dataclass(frozen=True)
class Hidden:
    """How many jobs of private repositories were left out, per section."""

    queued: int = 0
    running: int = 0
    finished: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.running + self.finished

    def to_json(self) -> dict[str, int]:
        return {"queued": self.queued, "running": self.running, "finished": self.finished}


@dataclass(frozen=True)
class Overview:
    generated_at: float
    queued: tuple[JobView, ...]
    running: tuple[JobView, ...]
    finished: tuple[JobView, ...]
    workers: tuple[WorkerView, ...]
    hidden: Hidden = Hidden()
    dead_letters: int = 0


@dataclass(frozen=True)
class JobList:
    generated_at: float
    jobs: tuple[JobView, ...]
    hidden: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": iso(self.generated_at),
            "jobs": [job.to_json() for job in self.jobs],
            "hidden": self.hidden,
        }


@dataclass(frozen=True)
class PrStatus:
    """One PR's jobs, newest first: what ran, what runs, which builds can be downloaded."""

    owner: str
    repo: str
    pr_number: int
    generated_at: float
    url: str  # the PR on GitHub
    jobs: tuple[JobView, ...] = ()

    @property
    def builds(self) -> tuple[JobView, ...]:
        """Succeeded jobs whose artifact links still work, newest first."""
        return tuple(
            job
            for job in self.jobs
            if job.state is State.SUCCEEDED and job.links.artifacts_live(self.generated_at)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "repo": self.repo,
            "pr_number": self.pr_number,
            "url": self.url,
            "generated_at": iso(self.generated_at),
            "jobs": [job.to_json() for job in self.jobs],
            "builds": [job.id for job in self.builds],
        }


# -- reading (the only I/O here) ------------------------------------------------------


async def overview(queue: Queue, options: ReadOptions, *, now: float | None = None) -> Overview:
    """Everything the front page shows, from the newest `options.window` jobs."""
    infos = await queue.live_workers()
    jobs = await _recent_jobs(queue, options, infos)
    dead = await queue.dead_letter_count()
    return build_overview(jobs, infos, options, now=_now(now), dead_letters=dead)


async def list_jobs(
    queue: Queue,
    options: ReadOptions,
    *,
    states: Iterable[State] = (),
    limit: int = 100,
    now: float | None = None,
) -> JobList:
    """The newest jobs (optionally only some states); private ones counted, not listed."""
    jobs = await _recent_jobs(queue, options)
    return build_job_list(jobs, options, states=frozenset(states), limit=limit, now=_now(now))


async def job_status(
    queue: Queue, job_id: str, options: ReadOptions, *, now: float | None = None
) -> JobView | None:
    """One job, or None when it does not exist or this viewer may not see it."""
    job = await queue.get_job(job_id)
    if job is None or not _visible(job, options):
        return None
    positions: dict[str, int] = {}
    if job.state is State.QUEUED:
        positions = queue_positions(await _recent_jobs(queue, options))
    return view(job, options, now=_now(now), position=positions.get(job.id))


async def pr_status(
    queue: Queue,
    owner: str,
    repo: str,
    pr_number: int,
    options: ReadOptions | None = None,
    *,
    now: float | None = None,
) -> PrStatus:
    """One PR's jobs; the `status` PR command renders the same object.

    Anonymous viewers (the default options) get nothing of a private repository, not even
    counts: the URL names the repository, so a count would confirm it exists.
    """
    options = options or ReadOptions()
    jobs = await queue.get_jobs(await queue.pr_job_ids(owner, repo, pr_number))
    positions: dict[str, int] = {}
    if any(job.state is State.QUEUED for job in jobs):
        positions = queue_positions(await _recent_jobs(queue, options))
    return build_pr_status(
        owner, repo, pr_number, jobs, options, now=_now(now), positions=positions
    )


async def workers(queue: Queue, options: ReadOptions) -> tuple[WorkerView, ...]:
    infos = await queue.live_workers()
    return build_workers(infos, await _recent_jobs(queue, options, infos), options)


async def _recent_jobs(
    queue: Queue, options: ReadOptions, worker_infos: Sequence[dict[str, str]] = ()
) -> list[Job]:
    """The newest `options.window` jobs, plus any job a live worker names that is older."""
    jobs = await queue.get_jobs(await queue.recent_job_ids(options.window))
    known = {job.id for job in jobs}
    missing = sorted({i for info in worker_infos for i in _job_ids(info)} - known)
    return jobs + (await queue.get_jobs(missing) if missing else [])


# -- building views (pure) ------------------------------------------------------------


def build_overview(
    jobs: Sequence[Job],
    worker_infos: Sequence[dict[str, str]],
    options: ReadOptions,
    *,
    now: float,
    dead_letters: int = 0,
) -> Overview:
    positions = queue_positions(jobs)
    queued = sorted((j for j in jobs if j.state is State.QUEUED), key=lambda j: positions[j.id])
    running = sorted((j for j in jobs if j.state is State.RUNNING), key=lambda j: j.started_at)
    finished = sorted(
        (j for j in jobs if j.state.terminal),
        key=lambda j: j.finished_at or j.created_at,
        reverse=True,
    )[: options.finished_limit]
    shown = {
        name: tuple(
            view(j, options, now=now, position=positions.get(j.id))
            for j in group
            if _visible(j, options)
        )
        for name, group in (("queued", queued), ("running", running), ("finished", finished))
    }
    return Overview(
        generated_at=now,
        queued=shown["queued"],
        running=shown["running"],
        finished=shown["finished"],
        workers=build_workers(worker_infos, jobs, options),
        hidden=Hidden(
            queued=len(queued) - len(shown["queued"]),
            running=len(running) - len(shown["running"]),
            finished=len(finished) - len(shown["finished"]),
        ),
        dead_letters=dead_letters,
    )


def build_job_list(
    jobs: Sequence[Job],
    options: ReadOptions,
    *,
    states: frozenset[State] = frozenset(),
    limit: int = 100,
    now: float,
) -> JobList:
    positions = queue_positions(jobs)
    chosen = sorted(
        (j for j in jobs if not states or j.state in states),
        key=lambda j: j.created_at,
        reverse=True,
    )[: max(1, min(limit, MAX_LIMIT))]
    shown = tuple(
        view(j, options, now=now, position=positions.get(j.id))
        for j in chosen
        if _visible(j, options)
    )
    return JobList(generated_at=now, jobs=shown, hidden=len(chosen) - len(shown))


def build_pr_status(
    owner: str,
    repo: str,
    pr_number: int,
    jobs: Sequence[Job],
    options: ReadOptions,
    *,
    now: float,
    positions: dict[str, int] | None = None,
) -> PrStatus:
    positions = positions or {}
    newest_first = sorted(jobs, key=lambda j: j.created_at, reverse=True)
    return PrStatus(
        owner=owner,
        repo=repo,
        pr_number=pr_number,
        generated_at=now,
        url=pull_request_url(options.web_url, owner, repo, pr_number),
        jobs=tuple(
            view(j, options, now=now, position=positions.get(j.id))
            for j in newest_first
            if _visible(j, options)
        ),
    )


def build_workers(
    infos: Sequence[dict[str, str]], jobs: Sequence[Job], options: ReadOptions
) -> tuple[WorkerView, ...]:
    result: list[WorkerView] = []
    for info in infos:
        current = _current_jobs(info, jobs)
        refs = [
            JobRef(job.id, job.owner, job.repo, job.pr_number, job.command)
            for job in current
            if _visible(job, options)
        ]
        hidden = len(current) - len(refs)
        result.append(
            WorkerView(
                name=info.get("name", ""),
                host=info.get("host", ""),
                pid=_int(info.get("pid")),
                version=info.get("version", ""),
                concurrency=_int(info.get("concurrency")),
                started_at=_float(info.get("started_at")),
                heartbeat_at=_float(info.get("heartbeat_at")),
                jobs=tuple(refs),
                hidden_jobs=hidden,
            )
        )
    return tuple(result)


def queue_positions(jobs: Iterable[Job]) -> dict[str, int]:
    """Queued job id → place in line (1 = next), in stream order: a handed-back job gets a
    fresh stream entry, so it lines up again where its entry now is."""
    queued = sorted((j for j in jobs if j.state is State.QUEUED), key=_line_order)
    return {job.id: place for place, job in enumerate(queued, 1)}


def view(job: Job, options: ReadOptions, *, now: float, position: int | None = None) -> JobView:
    """A job as this viewer may see it (callers filter private jobs first)."""
    started = job.started_at or None
    finished = job.finished_at or None
    if job.state is State.QUEUED:
        wait: float | None = now - job.created_at
        duration: float | None = None
    else:
        wait = started - job.created_at if started else None
        end = finished or (now if job.state is State.RUNNING else None)
        duration = end - started if started and end else None
    artifacts = _http_url(job.index_url)
    return JobView(
        id=job.id,
        command=job.command,
        state=job.state,
        owner=job.owner,
        repo=job.repo,
        pr_number=job.pr_number,
        head_sha=job.head_sha,
        head_ref=job.head_ref,
        base_branch=job.base_branch,
        requester=job.requester,
        private=job.private,
        worker="" if job.state is State.QUEUED else job.worker,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=started,
        finished_at=finished,
        heartbeat_at=job.heartbeat_at or None,
        position=position if job.state is State.QUEUED else None,
        wait=None if wait is None else max(0.0, wait),
        duration=None if duration is None else max(0.0, duration),
        progress=min(100.0, max(0.0, job.progress)) if job.state is State.RUNNING else None,
        stage=redact(job.stage, options.secrets)[:300] if job.state is State.RUNNING else "",
        generated=job.generated if job.generated >= 0 else None,
        error=redact(job.error, options.secrets)[:ERROR_LIMIT] if job.state.terminal else "",
        links=Links(
            pull_request=pull_request_url(options.web_url, job.owner, job.repo, job.pr_number),
            check_run=check_run_url(options.web_url, job) if job.check_run_id else None,
            artifacts=artifacts,
            artifacts_expire_at=link_expires_at(artifacts) if artifacts else None,
        ),
    )


# -- helpers --------------------------------------------------------------------------

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@]+(?::[^/\s@]*)?@")
_TOKENS = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Untrusted tool output may echo a secret: configured secret values, GitHub tokens and
    URL credentials become `***` before anyone sees the text."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _URL_CREDENTIALS.sub("***@", text)
    return _TOKENS.sub("***", text)


def link_expires_at(url: str) -> float | None:
    """When a signed artifact link stops working: local links carry `expires=`, S3 presigned
    links `X-Amz-Date` + `X-Amz-Expires`. None if the link does not say."""
    query = parse_qs(urlsplit(url).query)
    try:
        if "expires" in query:
            return float(int(query["expires"][0]))
        if "X-Amz-Date" in query and "X-Amz-Expires" in query:
            signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
            return signed.replace(tzinfo=UTC).timestamp() + int(query["X-Amz-Expires"][0])
    except ValueError:
        return None
    return None


def pull_request_url(web_url: str, owner: str, repo: str, pr_number: int) -> str:
    """The PR on GitHub (same web-host rule as `messages.check_run_url`)."""
    if not web_url.startswith(("http://", "https://")):
        web_url = "https://github.com"
    return f"{web_url}/{owner}/{repo}/pull/{pr_number}"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _visible(job: Job, options: ReadOptions) -> bool:
    return options.show_private or not job.private


def _line_order(job: Job) -> tuple[float, int]:
    """Stream entry ids (`<ms>-<seq>`) order the line; a job without one by creation time."""
    ms, _, seq = job.stream_id.partition("-")
    if ms.isdigit() and seq.isdigit():
        return float(ms), int(seq)
    return job.created_at * 1000, 0


def _job_ids(info: dict[str, str]) -> list[str]:
    return [i for i in info.get("jobs", "").split(",") if i]


def _current_jobs(info: dict[str, str], jobs: Sequence[Job]) -> list[Job]:
    """A worker's current jobs: running jobs that name it. Its registration lists jobs only
    as of its last heartbeat (used to fetch ones outside the window), while a job names its
    worker the moment it starts and stops being `running` the moment it ends."""
    name = info.get("name", "")
    running = (j for j in jobs if name and j.state is State.RUNNING and j.worker == name)
    return sorted(running, key=lambda j: j.started_at)


def _http_url(url: str) -> str | None:
    return url if url.startswith(("http://", "https://")) else None


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _now(now: float | None) -> float:
    return time.time() if now is None else now
