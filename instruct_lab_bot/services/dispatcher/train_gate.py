"""The dispatcher's gate for `train`: which generate job it trains on, or a reply saying why
nothing was queued (the rules are `core.training.train_decision`)."""

from __future__ import annotations

from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages.train import train_refused
from instruct_lab_bot.core.reply_limits import ReplyReason
from instruct_lab_bot.core.training import live_trainings, train_decision
from instruct_lab_bot.services.dispatcher.context import Deps, Request

#: How many of the newest jobs (of every repository) are searched for the repository's live
#: trainings: far more than can be queued or running at once.
RECENT_JOBS = 2000


async def train_source(deps: Deps, request: Request, head_sha: str) -> Job | None:
    """The generate job to train on; None once the refusal was replied."""
    queue = deps.queue
    pr_jobs = await queue.get_jobs(await queue.pr_job_ids(request.pull))
    recent = await queue.get_jobs(await queue.recent_job_ids(RECENT_JOBS))
    limit = deps.settings.train_max_per_repo
    decision = train_decision(
        request.args,
        pr_jobs,
        live_trainings(recent, request.pull.repo),
        head_sha=head_sha,
        max_per_repo=limit,
    )
    if decision.source is None:
        text = train_refused(decision, deps.settings.username, limit)
        await request.reply.once(request.marker, text, ReplyReason.TRAIN_REFUSED)
    return decision.source
