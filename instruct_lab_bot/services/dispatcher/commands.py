"""Comment commands: each is looked up in the command table and routed to the handler its
row names. A new command is a table row, a handler here and its texts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from instruct_lab_bot.adapters.github import GitHubError, Installation
from instruct_lab_bot.core.command_table import CommandSpec, Handler
from instruct_lab_bot.core.comment_parser import Command, suggest
from instruct_lab_bot.core.dispatch_rules import job_id_for
from instruct_lab_bot.core.job_view import ReadOptions
from instruct_lab_bot.core.messages.commands import (
    cancelled,
    former_name_note,
    help_text,
    not_a_pull_request,
    too_many_commands,
    unknown_command,
)
from instruct_lab_bot.core.messages.repo_config import command_disabled, config_status
from instruct_lab_bot.core.messages.status import status_reply
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.reply_limits import ReplyReason
from instruct_lab_bot.core.repo_config import enabled, enabled_commands, policy, required_labels
from instruct_lab_bot.core.webhooks import CommandIntent
from instruct_lab_bot.services.dispatcher.access import Gatekeeper
from instruct_lab_bot.services.dispatcher.context import Deps, Request
from instruct_lab_bot.services.dispatcher.jobs import JobOrigin, JobStarter
from instruct_lab_bot.services.dispatcher.prefetch import PullPrefetch
from instruct_lab_bot.services.dispatcher.replies import Replies
from instruct_lab_bot.services.dispatcher.serving import ServingCommands
from instruct_lab_bot.services.dispatcher.stopping import JobStopper
from instruct_lab_bot.services.job_links import links_text
from instruct_lab_bot.services.job_status import pr_status

log = structlog.get_logger(__name__)

CommandHandler = Callable[[Request, CommandSpec], Awaitable[None]]


class CommandHandlers:
    def __init__(
        self, deps: Deps, gatekeeper: Gatekeeper, starter: JobStarter, stopper: JobStopper
    ) -> None:
        self.deps = deps
        self.gatekeeper = gatekeeper
        self.starter = starter
        self.stopper = stopper
        serving = ServingCommands(deps)
        #: Every `Handler` of the command table, mapped to the method that acts on it.
        self.handlers: dict[Handler, CommandHandler] = {
            Handler.HELP: self.help,
            Handler.STATUS: self.status,
            Handler.START_JOB: self.start_job,
            Handler.RETRY: self.retry,
            Handler.CANCEL: self.cancel,
            Handler.LINKS: self.links,
            Handler.SERVE: serving.serve,
            Handler.CHAT: serving.chat,
        }

    async def comment(self, gh: Installation, delivery_id: str, intent: CommandIntent) -> None:
        """Acknowledge the comment, then act on each of its commands in order. The reaction
        and GitHub's view of the PR are asked for at once, while the configuration loads.

        A comment that likely repeats live or succeeded jobs (a Redis hint) waits for the
        answer instead: a repeat is acknowledged by its "already running" or "already
        succeeded" reply, not by a 👀 too, and its PR's files are not read (a burst of
        repeats costs one PR read each)."""
        pull = PullRequestRef(RepoRef(intent.owner, intent.repo), intent.pr_number)
        repeat = await self._likely_repeat(pull, intent)
        reaction = None if repeat else asyncio.create_task(self._react(gh, pull, intent))
        prefetch: PullPrefetch | None = None
        if intent.on_pull_request and any(_needs_pull(c) for c in intent.commands):
            prefetch = PullPrefetch(gh, pull, self.deps.validator)
            prefetch.start(files=not repeat)
        duplicates: list[str] = []
        try:
            await self._act(gh, delivery_id, intent, pull, prefetch, duplicates)
        finally:
            if prefetch is not None:
                await prefetch.aclose()
            if reaction is not None:
                await reaction
        if reaction is None and len(duplicates) < len(intent.commands):  # not a repeat
            await self._react(gh, pull, intent)

    async def _likely_repeat(self, pull: PullRequestRef, intent: CommandIntent) -> bool:
        """Whether every command asks, without arguments, for a job of a kind the PR has
        queued, running or succeeded."""
        kinds = [c.spec.job_kind if c.spec and not c.args else None for c in intent.commands]
        if not intent.on_pull_request or not kinds or None in kinds:
            return False
        return set(kinds) <= await self.deps.queue.repeatable_commands(pull)

    async def _react(self, gh: Installation, pull: PullRequestRef, intent: CommandIntent) -> None:
        try:
            await gh.add_reaction(pull.repo, intent.comment_id, "eyes")
        except GitHubError as exc:  # an acknowledgement only: never worth losing the job for
            log.warning("dispatcher.reaction_failed", error=str(exc))

    async def _act(
        self,
        gh: Installation,
        delivery_id: str,
        intent: CommandIntent,
        pull: PullRequestRef,
        prefetch: PullPrefetch | None,
        duplicates: list[str],
    ) -> None:
        reply = Replies(
            self.deps.queue, gh, pull, delivery_id, intent.sender, self.deps.reply_guard
        )
        username = self.deps.settings.username
        if not intent.on_pull_request:
            await reply.once("not-a-pr", not_a_pull_request(username), ReplyReason.NOT_A_PR)
            return
        if intent.truncated:
            text = too_many_commands(len(intent.commands))
            await reply.once("truncated", text, ReplyReason.TRUNCATED)
        former = next((c for c in intent.commands if c.legacy), None)
        if former is not None:  # still obeyed, once told the new name
            note = former_name_note(username, self.deps.settings.legacy_usernames)
            await reply.once("former-name", note, ReplyReason.FORMER_NAME)
        config = await self.deps.configs.load(gh, pull.repo, intent.default_branch)
        for command in intent.commands:
            request = Request(
                gh,
                pull,
                intent.sender,
                reply,
                marker=f"{command.name}:{command.line}",
                job_id=job_id_for(delivery_id, command.line),
                comment_id=intent.comment_id,
                args=command.args,
                config=config,
                prefetch=prefetch,
                duplicates=duplicates,
            )
            await self.command(request, command)

    async def command(self, request: Request, command: Command) -> None:
        """Unknown → a suggestion; not allowed → a polite refusal; else its row's handler."""
        spec = command.spec
        if spec is None:
            self.deps.metrics.commands.labels("unknown", "unknown").inc()
            name = command.name
            text = unknown_command(self.deps.settings.username, name, suggest(name))
            await request.reply.once(request.marker, text, ReplyReason.UNKNOWN)
            return
        if not enabled(request.config, spec):
            self.deps.metrics.commands.labels(spec.name, "disabled").inc()
            text = command_disabled(spec.name, request.config.path)
            await request.reply.once(request.marker, text, ReplyReason.DISABLED)
            return
        if not await self.gatekeeper.allowed(request, spec.name):
            return
        self.deps.metrics.commands.labels(spec.name, "accepted").inc()
        await self.handlers[spec.handler](request, spec)

    async def help(self, request: Request, spec: CommandSpec) -> None:
        settings, config = self.deps.settings, request.config
        text = help_text(
            settings.username,
            policy(config, self.deps.policy),
            required_labels(config, settings),
            enabled_commands(config),
        )
        await request.reply.once(request.marker, text, ReplyReason.HELP)

    async def status(self, request: Request, spec: CommandSpec) -> None:
        """The same read model as the status page; PR commenters see their private repo."""
        settings, pull = self.deps.settings, request.pull
        options = ReadOptions.from_settings(settings, show_private=True)
        pr = await pr_status(self.deps.queue, pull, options)
        page = f"{settings.public_url}/repos/{pull.owner}/{pull.name}/pulls/{pull.number}"
        text = status_reply(pr, page) + "\n\n" + config_status(request.config)
        await request.reply.once(request.marker, text, ReplyReason.STATUS)

    async def start_job(self, request: Request, spec: CommandSpec) -> None:
        assert spec.job_kind is not None, f"{spec.name} names no job kind"
        origin = JobOrigin(request.delivery_id, request.comment_id)
        await self.starter.start(request, spec.job_kind, origin)

    async def retry(self, request: Request, spec: CommandSpec) -> None:
        await self.starter.retry(request)

    async def cancel(self, request: Request, spec: CommandSpec) -> None:
        stopped = await self.stopper.cancel(request.gh, request.pull, request.sender)
        text = cancelled(stopped, request.sender)
        await request.reply.once(request.marker, text, ReplyReason.CANCELLED)

    async def links(self, request: Request, spec: CommandSpec) -> None:
        """Fresh links to the files of the PR's latest job with files, or of a named one."""
        wanted = request.args[0] if request.args else ""
        text = await links_text(self.deps.settings, self.deps.queue, request.pull, wanted)
        await request.reply.once(request.marker, text, ReplyReason.LINKS)


def _needs_pull(command: Command) -> bool:
    """Whether acting on `command` may read the PR and its files (starting or retrying a job)."""
    spec = command.spec
    return spec is not None and spec.handler in (Handler.START_JOB, Handler.RETRY)
