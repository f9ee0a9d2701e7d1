"""The earlier job a command builds on (`CommandSpec.builds_on`): `test` needs a trained model
of the PR. Found before the job is recorded; without one the requester is told what to run
first and nothing is queued."""

from __future__ import annotations

from instruct_lab_bot.core.command_table import CommandSpec
from instruct_lab_bot.core.job_lookup import latest_succeeded
from instruct_lab_bot.core.messages.model_test import no_model
from instruct_lab_bot.core.model_test import NoModel, model_argument, model_to_test
from instruct_lab_bot.core.reply_limits import ReplyReason
from instruct_lab_bot.services.dispatcher.context import Deps, Request


async def source_job(deps: Deps, request: Request, spec: CommandSpec) -> str | None:
    """The id of the job `spec` builds on ("" when it builds on none); None once the
    requester has been told there is none."""
    if spec.builds_on is None:
        return ""
    jobs = await deps.queue.get_jobs(await deps.queue.pr_job_ids(request.pull))
    if spec.builds_on == "train":
        found = model_to_test(jobs, request.args)
    else:
        found = latest_succeeded(jobs, spec.builds_on) or NoModel.NONE_TRAINED
    if not isinstance(found, NoModel):
        return found.id
    text = no_model(found, deps.settings.username, model_argument(request.args) or "")
    await request.reply.once(request.marker, text, ReplyReason.NO_SOURCE)
    return None
