"""Check-run events: GitHub's "Re-run" on one of the bot's check runs, or its "Retry" button,
retries that job on the current head (restricted like the `retry` command)."""

from __future__ import annotations

import structlog

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.core.dispatch_rules import check_run_asks_retry, job_id_for
from instruct_lab_bot.core.webhooks import CheckRunIntent
from instruct_lab_bot.services.dispatcher.access import Gatekeeper
from instruct_lab_bot.services.dispatcher.context import Deps, Request
from instruct_lab_bot.services.dispatcher.jobs import JobStarter
from instruct_lab_bot.services.dispatcher.replies import Replies

log = structlog.get_logger(__name__)

RETRY = "retry"  # the command a re-run counts as, and its reply marker


class CheckRunEvents:
    def __init__(self, deps: Deps, gatekeeper: Gatekeeper, starter: JobStarter) -> None:
        self.deps = deps
        self.gatekeeper = gatekeeper
        self.starter = starter

    async def handle(self, gh: Installation, delivery_id: str, intent: CheckRunIntent) -> None:
        if not check_run_asks_retry(intent.action, intent.identifier):
            return
        external_id = intent.external_id
        source = await self.deps.queue.get_job(external_id) if external_id else None
        if source is None:
            log.info("check_run.unknown_job", external_id=external_id)
            return
        pull = source.pull_request
        request = Request(
            gh,
            pull,
            intent.sender,
            Replies(self.deps.queue, gh, pull, delivery_id, intent.sender, self.deps.reply_guard),
            marker=RETRY,
            job_id=job_id_for(delivery_id, "check-run"),
            config=await self.deps.configs.load(gh, pull.repo, intent.default_branch),
        )
        if await self.gatekeeper.allowed(request, RETRY):
            await self.starter.retry(request, source)
