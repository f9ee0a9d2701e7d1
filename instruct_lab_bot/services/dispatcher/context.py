"""What every part of the dispatcher shares, and the one request a handler acts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.permissions import Policy
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.repo_config import LoadedConfig
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.dispatcher.prefetch import PullPrefetch
from instruct_lab_bot.services.dispatcher.replies import Replies, ReplyGuard
from instruct_lab_bot.services.dispatcher.repo_configs import RepoConfigs
from instruct_lab_bot.services.metrics import ServerMetrics
from instruct_lab_bot.services.serving.chat import ChatService
from instruct_lab_bot.services.validator import Validator


@dataclass(frozen=True)
class Deps:
    """The dispatcher's configuration and the services its parts call."""

    settings: Settings
    queue: Queue
    metrics: ServerMetrics
    policy: Policy
    validator: Validator
    configs: RepoConfigs
    chat: ChatService | None = None  # serving PR models (`serve`, `chat`); None: not set up

    @property
    def reply_guard(self) -> ReplyGuard:
        return ReplyGuard(self.settings.reply_limits, self.metrics)


@dataclass(frozen=True)
class Request:
    """One thing asked of the bot on one PR: through which installation, by whom, where its
    answer goes (`marker` keys the one reply within the delivery) and which job id it gets."""

    gh: Installation
    pull: PullRequestRef
    sender: str
    reply: Replies
    marker: str
    job_id: str
    comment_id: int = 0  # the comment that asked (0: a check-run button)
    args: tuple[str, ...] = ()  # the command's arguments as typed
    config: LoadedConfig = field(default_factory=LoadedConfig)  # the repository's own
    prefetch: PullPrefetch | None = None  # the PR and its files, asked once per delivery
    #: Ids of the live jobs this delivery's commands repeated (shared by its requests).
    duplicates: list[str] = field(default_factory=list)

    @property
    def delivery_id(self) -> str:
        return self.reply.delivery_id

    async def pull_data(self) -> dict[str, Any]:
        """GitHub's view of the PR: the delivery's prefetched one, else asked now."""
        if self.prefetch is not None:
            return await self.prefetch.pull_data()
        return await self.gh.get_pull(self.pull)
