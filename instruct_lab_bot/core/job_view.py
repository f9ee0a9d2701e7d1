"""The status read model's views: one job, one worker, one PR, as a viewer may see them (pure).

The status page, its JSON API and the `status` PR command all show these objects, so they show
the same truth. Every error and stage text is scrubbed by the one `Redactor` before any viewer
gets it; which jobs a viewer may see at all is `ReadOptions.shows` (see `core.job_overview`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, urlsplit

from instruct_lab_bot.core.jobs import CONCLUSIONS, Job, State
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
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

    @cached_property
    def redactor(self) -> Redactor:
        """The one redactor, with this deployment's secret values."""
        return Redactor(self.secrets)

    def shows(self, job: Job) -> bool:
        """The privacy rule: private repositories only for a viewer who may see them."""
        return self.show_private or not job.private

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
    ilab_version: str = ""  # the `ilab` release the worker found at start-up
    capabilities: tuple[str, ...] = ()  # the job kinds (pools) it takes

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
            "ilab_version": self.ilab_version,
            "capabilities": list(self.capabilities),
        }


@dataclass(frozen=True)
class PoolView:
    """One worker pool (capability = job kind): its jobs stream's backlog and live workers.
    Counts only, so every viewer sees them (they name no repository)."""

    capability: str
    waiting: int  # on the stream, not yet taken by a worker
    running: int  # taken by a worker, not yet finished (or a dead worker's, to reclaim)
    oldest_wait: float  # seconds the oldest waiting job has waited (0.0: none waits)
    workers: int  # live workers that take this pool's jobs

    @property
    def stranded(self) -> bool:
        """Jobs wait and no live worker can run them."""
        return self.waiting > 0 and self.workers == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "capability": self.capability,
            "waiting": self.waiting,
            "running": self.running,
            "oldest_wait_seconds": round(self.oldest_wait, 3),
            "workers": self.workers,
            "stranded": self.stranded,
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
    pools: tuple[PoolView, ...] = ()


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
    def pull(self) -> PullRequestRef:
        return PullRequestRef(RepoRef(self.owner, self.repo), self.pr_number)

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
        stage=options.redactor.redact(job.stage)[:300] if job.state is State.RUNNING else "",
        generated=job.generated if job.generated >= 0 else None,
        error=options.redactor.redact(job.error)[:ERROR_LIMIT] if job.state.terminal else "",
        links=Links(
            pull_request=pull_request_url(options.web_url, job.pull_request),
            check_run=check_run_url(options.web_url, job) if job.check_run_id else None,
            artifacts=artifacts,
            artifacts_expire_at=link_expires_at(artifacts) if artifacts else None,
        ),
    )


# -- helpers --------------------------------------------------------------------------


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


def pull_request_url(web_url: str, pull: PullRequestRef) -> str:
    """The PR on GitHub."""
    return f"{_web_host(web_url)}/{pull.repo.full_name}/pull/{pull.number}"


def check_run_url(web_url: str, job: Job) -> str:
    """Where GitHub shows the job's check run."""
    return f"{_web_host(web_url)}/{job.owner}/{job.repo}/runs/{job.check_run_id}"


def _web_host(web_url: str) -> str:
    """`ILAB_BOT_GITHUB_GIT_URL` is the web host too, unless it is not http(s) (a file://
    mirror in tests): then github.com."""
    return web_url if web_url.startswith(("http://", "https://")) else "https://github.com"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_url(url: str) -> str | None:
    return url if url.startswith(("http://", "https://")) else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
