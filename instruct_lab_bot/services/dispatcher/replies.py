"""Comments on one PR for one delivery, each posted at most once (keyed by marker)."""

from __future__ import annotations

import contextlib

from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github import GitHubError, Installation
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.refs import PullRequestRef


class Replies:
    """A redelivered or reclaimed event finds its replies claimed and posts none twice."""

    def __init__(
        self, queue: Queue, gh: Installation, pull: PullRequestRef, delivery_id: str
    ) -> None:
        self.queue = queue
        self.gh = gh
        self.pull = pull
        self.delivery_id = delivery_id

    async def once(self, marker: str, body: str) -> None:
        key = f"reply:{self.delivery_id}:{marker}"
        if not await self.queue.claim_once(key):
            return
        try:
            await self.gh.create_comment(self.pull.owner, self.pull.name, self.pull.number, body)
        except GitHubError:
            with contextlib.suppress(RedisError):
                await self.queue.release_once(key)
            raise
