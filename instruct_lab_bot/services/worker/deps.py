"""What the worker's units share, and the ports a test replaces with in-memory fakes.

`WorkerDeps` carries the long-lived parts (settings, queue, GitHub, store, metrics); `JobTools`
the two steps that start processes (git checkout, the `ilab` run), so the job flow can be
tested without subprocesses. The GitHub ports name only the calls the worker makes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from instruct_lab_bot.adapters.git import CheckoutRequest, CheckoutResult, checkout_pull_request
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.runner import RunProcess, run_streaming
from instruct_lab_bot.adapters.storage import ArtifactStore, SigningKey
from instruct_lab_bot.core.ilab import PROFILES, IlabRelease
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.metrics import WorkerMetrics
from instruct_lab_bot.services.train_backends import open_train_backend
from instruct_lab_bot.services.worker.train_backend import TrainBackendFactory


class JobGitHub(Protocol):
    """The GitHub calls a job makes on its installation."""

    async def update_check_run(
        self,
        repo: RepoRef,
        check_run_id: int,
        payload: dict[str, Any],
        *,
        droppable: bool = False,
    ) -> bool: ...

    async def create_comment(self, pull: PullRequestRef, body: str) -> int: ...

    async def has_comment_with(self, pull: PullRequestRef, marker: str) -> bool: ...

    async def comments_with(self, pull: PullRequestRef, marker: str) -> list[int]: ...

    async def delete_comment(self, repo: RepoRef, comment_id: int) -> None: ...


class WorkerGitHub(Protocol):
    """The GitHub App as the worker uses it (`GitHubApp` is one)."""

    def installation(self, installation_id: int) -> JobGitHub: ...

    async def token(self, installation_id: int) -> str: ...


#: Check out a job's PR into `dest` (with an installation token for HTTP remotes).
FetchPullRequest = Callable[[Settings, Job, Path, str | None], Awaitable[CheckoutResult]]


async def fetch_pull_request(
    settings: Settings, job: Job, dest: Path, token: str | None
) -> CheckoutResult:
    """The real checkout: `git fetch` of the base branch and the PR head, detached at the head."""
    return await checkout_pull_request(
        CheckoutRequest(
            git_url_base=settings.github_git_url,
            pull=job.pull_request,
            base_branch=job.base_branch,
            expected_head_sha=job.head_sha,
            dest=dest,
            token=token,
            timeout=settings.git_timeout,
        )
    )


@dataclass(frozen=True)
class JobTools:
    """The process-starting steps of a job; the defaults are the real ones."""

    fetch: FetchPullRequest = fetch_pull_request
    run: RunProcess = run_streaming
    #: Where a `train` job trains (`ILAB_BOT_TRAIN_BACKEND`); a test passes its own.
    train: TrainBackendFactory = open_train_backend


@dataclass(frozen=True)
class WorkerDeps:
    """Everything a worker's units use, built once by `open_worker`."""

    settings: Settings
    queue: Queue
    github: WorkerGitHub
    store: ArtifactStore
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    tools: JobTools = field(default_factory=JobTools)
    #: Signs stable links (`ILAB_BOT_STABLE_LINKS`); b"": the store's expiring links only.
    link_key: SigningKey = b""
    #: The `ilab` found at start-up (`open_worker`); a hand-built worker assumes the oldest line.
    ilab: IlabRelease = field(default_factory=lambda: IlabRelease.tested(PROFILES[0]))

    @cached_property
    def redactor(self) -> Redactor:
        """The one redactor with this deployment's secrets: applied to every text the worker
        sends out (ilab.log, check runs, comments, stored errors, precheck answers)."""
        return Redactor(self.settings.secrets())
