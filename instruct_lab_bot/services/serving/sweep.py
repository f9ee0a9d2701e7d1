"""Nothing served that no PR owns: the sweep every backend shares.

Run at start-up (the orphan reconciler after a restart) and then periodically, it removes a
served model whose PR is closed, merged or gone, one that failed, one that did not become
ready within the ready timeout, and one with no request for `ILAB_BOT_SERVE_TTL`. It returns
what it removed and why, so the caller can tell the PR (`core/messages/serving_backend.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from instruct_lab_bot.adapters.github.app import GitHubApp
from instruct_lab_bot.adapters.github.errors import GitHubError
from instruct_lab_bot.core.messages import serving_backend as texts
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.serving import ServedModel, ServeState
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.serving.backend import ServingBackend, ServingError

log = structlog.get_logger(__name__)

IsOpen = Callable[[PullRequestRef], Awaitable[bool]]


class Why(enum.StrEnum):
    PR_CLOSED = "pr_closed"
    FAILED = "failed"
    NEVER_READY = "never_ready"
    IDLE = "idle"


@dataclass(frozen=True)
class Removed:
    model: ServedModel
    why: Why


def why_remove(
    model: ServedModel, *, is_open: bool, now: float, ttl: float, ready_timeout: float
) -> Why | None:
    """Why `model` must go now, None when it stays."""
    if not is_open:
        return Why.PR_CLOSED
    if model.state is ServeState.FAILED:
        return Why.FAILED
    # Deploying since its creation (kserve) or the request that woke it (local).
    since = max(model.created_at, model.last_request_at)
    if model.state is ServeState.DEPLOYING and now - since > ready_timeout:
        return Why.NEVER_READY
    if now - max(model.last_request_at, model.created_at) > ttl:
        return Why.IDLE
    return None


async def sweep(
    backend: ServingBackend,
    is_open: IsOpen,
    *,
    now: float,
    ttl: float,
    ready_timeout: float,
) -> list[Removed]:
    """Remove what no open PR needs; one model's failure does not stop the others."""
    removed: list[Removed] = []
    for model in await backend.list_served():
        try:
            why = why_remove(
                model,
                is_open=await is_open(model.pull),
                now=now,
                ttl=ttl,
                ready_timeout=ready_timeout,
            )
            if why is not None and await backend.remove(model.pull):
                removed.append(Removed(model, why))
                log.info("serving.swept", name=model.name, why=str(why))
        except (ServingError, OSError) as exc:
            log.warning("serving.sweep_failed", name=model.name, error=str(exc)[:300])
    return removed


def github_is_open(github: GitHubApp) -> IsOpen:
    """Whether GitHub says the PR is open: False when it is closed, merged or gone (404: the
    repository deleted, the App uninstalled); True when GitHub cannot tell now, so a passing
    outage removes nothing."""

    async def is_open(pull: PullRequestRef) -> bool:
        where = {"owner": pull.owner, "repo": pull.name}
        try:
            found = await github.app_request(
                "find the App's installation", "GET", "/repos/{owner}/{repo}/installation", where
            )
            data = await github.installation(int(found["id"])).get_pull(pull)
        except GitHubError as exc:
            if exc.status == 404:
                return False
            log.warning("serving.sweep_pr_unknown", pull=str(pull), error=str(exc)[:300])
            return True
        return data.get("state") == "open"

    return is_open


def pr_notifier(
    github: GitHubApp, settings: Settings, redactor: Redactor
) -> Callable[[Removed], Awaitable[None]]:
    """Tells the PR why its model went (not when the PR itself closed); best effort."""

    async def notify(item: Removed) -> None:
        if item.why is Why.PR_CLOSED:
            return
        pull = item.model.pull
        seconds = settings.serve_ttl if item.why is Why.IDLE else settings.serve_ready_timeout
        body = texts.removed_notice(str(item.why), item.model.message, seconds)
        where = {"owner": pull.owner, "repo": pull.name}
        try:
            found = await github.app_request(
                "find the App's installation", "GET", "/repos/{owner}/{repo}/installation", where
            )
            await github.installation(int(found["id"])).create_comment(pull, redactor.redact(body))
        except GitHubError as exc:
            log.warning("serving.notify_failed", pull=str(pull), error=str(exc)[:300])

    return notify


class ServingSweeper:
    """Sweeps at start (the orphan reconciler after a restart), then every `interval`."""

    def __init__(
        self,
        backend: ServingBackend,
        is_open: IsOpen,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        on_removed: Callable[[Removed], Awaitable[None]] | None = None,
    ) -> None:
        self.backend = backend
        self.is_open = is_open
        self.settings = settings
        self.clock = clock
        self.on_removed = on_removed
        self.interval = max(min(settings.serve_ready_timeout / 3, 300.0), 1.0)

    async def sweep_once(self) -> list[Removed]:
        removed = await sweep(
            self.backend,
            self.is_open,
            now=self.clock(),
            ttl=self.settings.serve_ttl,
            ready_timeout=self.settings.serve_ready_timeout,
        )
        for item in removed:
            if self.on_removed is not None:
                await self.on_removed(item)
        return removed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except (ServingError, GitHubError, OSError) as exc:
                log.warning("serving.sweep_failed", error=str(exc)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
