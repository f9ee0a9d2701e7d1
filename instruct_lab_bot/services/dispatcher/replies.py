"""Comments on one PR for one delivery, each posted at most once (keyed by marker), within
the reply limits (`core.reply_limits`) and the replies' share of the write budget."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github import GitHubError, Installation
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.reply_limits import ReplyLimits, ReplyReason, Silenced, is_limited
from instruct_lab_bot.services.metrics import ServerMetrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReplyGuard:
    """The limits replies are held to, and where silenced ones are counted."""

    limits: ReplyLimits
    metrics: ServerMetrics


class Replies:
    """A redelivered or reclaimed event finds its replies claimed and posts none twice."""

    def __init__(
        self,
        queue: Queue,
        gh: Installation,
        pull: PullRequestRef,
        delivery_id: str,
        sender: str = "",
        guard: ReplyGuard | None = None,
    ) -> None:
        self.queue = queue
        self.gh = gh
        self.pull = pull
        self.delivery_id = delivery_id
        self.sender = sender
        self.guard = guard

    async def once(self, marker: str, body: str, reason: ReplyReason) -> bool:
        """Post `body` unless posted already or silenced; True if it went out now."""
        key = f"reply:{self.delivery_id}:{marker}"
        if not await self.queue.claim_once(key):
            return False
        if await self._silenced(reason):
            return False  # the claim stays: a redelivery is silent too
        try:
            posted = await self.gh.reply_comment(self.pull, body)
        except GitHubError:
            with contextlib.suppress(RedisError):
                await self.queue.release_once(key)
            raise
        if posted is None:
            self._count(reason, Silenced.BUDGET)
        return posted is not None

    async def once_across(
        self, shared: str, ttl: int, marker: str, body: str, reason: ReplyReason
    ) -> bool:
        """As `once`, and at most once in `ttl` seconds for every delivery that names the same
        `shared` key: one answer to someone who repeats a command, not one per repetition."""
        if not await self.queue.claim_once(f"reply-shared:{shared}", ttl):
            self._count(reason, Silenced.REPEAT)
            return False
        try:
            return await self.once(marker, body, reason)
        except GitHubError:
            with contextlib.suppress(RedisError):
                await self.queue.release_once(f"reply-shared:{shared}")
            raise

    async def _silenced(self, reason: ReplyReason) -> bool:
        if self.guard is None or not is_limited(reason):
            return False
        limit = await self.queue.take_reply(self.guard.limits, self.sender, self.pull)
        if limit is not None:
            self._count(reason, limit)
        return limit is not None

    def _count(self, reason: ReplyReason, limit: Silenced) -> None:
        log.info("reply.silenced", reason=str(reason), limit=str(limit), user=self.sender)
        if self.guard is not None:
            self.guard.metrics.replies_silenced.labels(str(reason), str(limit)).inc()
