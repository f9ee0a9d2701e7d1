"""Pull-request events: close cancels, a push supersedes queued jobs of the old head, a new
PR gets one welcome, and every new head has its taxonomy files validated."""

from __future__ import annotations

import contextlib

from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github import GitHubError, Installation
from instruct_lab_bot.core.dispatch_rules import pull_request_plan, wants_welcome
from instruct_lab_bot.core.messages.welcome import WELCOME_MARKER, welcome
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.repo_config import (
    enabled_commands,
    policy,
    required_labels,
    welcome_enabled,
    welcome_text,
)
from instruct_lab_bot.core.webhooks import PullRequestIntent
from instruct_lab_bot.services.dispatcher.context import Deps
from instruct_lab_bot.services.dispatcher.stopping import JobStopper

WELCOME_TTL = 365 * 24 * 3600  # seconds a welcome claim is kept


class PullRequestEvents:
    def __init__(self, deps: Deps, stopper: JobStopper) -> None:
        self.deps = deps
        self.stopper = stopper

    async def handle(self, gh: Installation, intent: PullRequestIntent) -> None:
        pull = PullRequestRef(RepoRef(intent.owner, intent.repo), intent.pr_number)
        plan = pull_request_plan(intent.action)
        if plan.cancel:
            await self.stopper.cancel(gh, pull, intent.sender)
            if self.deps.chat is not None:  # its served model goes; its links answer 410
                await self.deps.chat.pull_closed(pull)
        if plan.supersede:
            await self.stopper.supersede(gh, pull, intent.sender, intent.head_sha)
        if plan.welcome:
            await self._welcome(gh, pull, intent)
        if plan.validate:
            validator = self.deps.validator
            changes = await validator.changed_taxonomy_files(
                gh, pull.repo, intent.base_branch, intent.head_sha
            )
            if changes.files:
                await validator.validate(gh, pull.repo, intent.head_sha, changes)

    async def _welcome(
        self, gh: Installation, pull: PullRequestRef, intent: PullRequestIntent
    ) -> None:
        """One welcome per PR, even under redelivery or a wiped Redis (hidden marker)."""
        settings = self.deps.settings
        config = await self.deps.configs.load(gh, pull.repo, intent.default_branch)
        wanted = required_labels(config, settings)
        if not wants_welcome(welcome_enabled(config, settings), wanted, intent.labels):
            return
        key = f"welcome:{pull}"  # welcome:owner/repo#number
        queue = self.deps.queue
        if not await queue.claim_once(key, ttl=WELCOME_TTL):
            return
        try:
            if await gh.has_comment_with(pull, WELCOME_MARKER):
                return
            text = welcome(
                settings.username,
                intent.author,
                policy(config, self.deps.policy),
                wanted,
                welcome_text(config),
                enabled_commands(config),
            )
            await gh.create_comment(pull, text)
        except GitHubError:
            with contextlib.suppress(RedisError):
                await queue.release_once(key)
            raise
