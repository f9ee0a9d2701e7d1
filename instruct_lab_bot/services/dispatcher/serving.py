"""`serve`, `serve stop` and `chat <question>`: the PR's latest trained model, served through the
configured backend (`ChatService`), with the chat page, the proxy endpoint and answers in
comments."""

from __future__ import annotations

from typing import Any

import structlog

from instruct_lab_bot.adapters.github import GitHubError, QuotaSpent
from instruct_lab_bot.core.chat_access import ChatRecord
from instruct_lab_bot.core.command_table import CommandSpec
from instruct_lab_bot.core.comment_parser import MAX_ARGS
from instruct_lab_bot.core.job_lookup import latest_succeeded
from instruct_lab_bot.core.messages import serving as texts
from instruct_lab_bot.core.messages.commands import pull_request_closed
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.reply_limits import ReplyReason
from instruct_lab_bot.services.dispatcher.context import Deps, Request
from instruct_lab_bot.services.precheck import seeds_in_text
from instruct_lab_bot.services.serving.backend import ServingError
from instruct_lab_bot.services.serving.chat import ChatService, ColdStartTimeout

log = structlog.get_logger(__name__)

MAX_SEED_FILES = 5


class ServingCommands:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def serve(self, request: Request, spec: CommandSpec) -> None:
        chat = self.deps.chat
        if chat is None or chat.backend is None:
            await request.reply.once(request.marker, texts.SERVING_OFF, ReplyReason.SERVE)
            return
        if request.args and request.args[0].lower() == "stop":
            removed = await chat.remove(request.pull)
            text = texts.serve_stopped(removed, request.sender)
            await request.reply.once(request.marker, text, ReplyReason.SERVE)
            return
        deployed = await self._deploy(chat, request, spec)
        if deployed is None:
            return
        record, served = deployed
        pull, public = request.pull, self.deps.settings.public_url.rstrip("/")
        status_page = f"{public}/repos/{pull.owner}/{pull.name}/pulls/{pull.number}"
        links = await chat.links(record, status_page)
        settings = self.deps.settings
        idle = (
            settings.serve_retention if settings.serve_backend == "kserve" else settings.serve_idle
        )
        text = texts.serve_reply(
            settings.username, record, served, links, settings.serve_ttl, scale_down_after=idle
        )
        await request.reply.once(request.marker, text, ReplyReason.SERVE)

    async def _deploy(
        self, chat: ChatService, request: Request, spec: CommandSpec
    ) -> tuple[ChatRecord, Any] | None:
        """Deploy the PR's latest trained model; None once a reply said why not."""
        data = await request.gh.get_pull(request.pull)
        if data.get("state") != "open":
            text = pull_request_closed(spec.name)
            await request.reply.once(request.marker, text, ReplyReason.CLOSED)
            return None
        queue = self.deps.queue
        jobs = await queue.get_jobs(await queue.pr_job_ids(request.pull))
        train = latest_succeeded(jobs, "train")
        if train is None:
            text = texts.no_trained_model(self.deps.settings.username)
            await request.reply.once(request.marker, text, ReplyReason.SERVE)
            return None
        seeds = await self._seeds(request, str(data["base"]["ref"]), train.head_sha)
        try:
            return await chat.deploy(request.pull, train, seeds, request.sender)
        except ServingError as exc:
            log.warning("serve.failed", pull=str(request.pull), error=str(exc))
            text = texts.serving_failed(str(exc), exc.not_your_fault)
            await request.reply.once(request.marker, text, ReplyReason.SERVE)
            return None

    async def _seeds(self, request: Request, base: str, sha: str) -> list[str]:
        """The seed questions of the trained head's changed qna.yaml files (best effort)."""
        try:
            changes = await self.deps.validator.changed_taxonomy_files(
                request.gh, request.pull.repo, base, sha
            )
            questions: list[str] = []
            for path in [p for p in changes.files if p.endswith("qna.yaml")][:MAX_SEED_FILES]:
                found = await request.gh.file_at(request.pull.repo, path, sha)
                if found.content is not None:
                    text = found.content.decode("utf-8", "replace")
                    questions += [seed.question for seed in seeds_in_text(path, text)]
            return questions
        except QuotaSpent:
            raise  # the event waits for the reset: the seeds are read then
        except GitHubError as exc:
            log.warning("serve.seeds_unread", pull=str(request.pull), error=str(exc))
            return []

    async def chat(self, request: Request, spec: CommandSpec) -> None:
        chat, username = self.deps.chat, self.deps.settings.username
        question = " ".join(request.args).strip()
        if not question:
            text = texts.chat_needs_question(username)
            await request.reply.once(request.marker, text, ReplyReason.CHAT)
            return
        if chat is None or chat.backend is None:
            await request.reply.once(request.marker, texts.SERVING_OFF, ReplyReason.CHAT)
            return
        record = await chat.records.get(request.pull)
        gone = chat.backend is None or await chat.backend.status(request.pull) is None
        if record is None or record.closed or gone:  # not served (or removed): serve it first
            deployed = await self._deploy(chat, request, spec)
            if deployed is None:
                return
            record = deployed[0]
        try:
            answer = await chat.ask(request.pull, question)
        except ColdStartTimeout:
            timeout = self.deps.settings.chat_cold_start_timeout
            text = texts.chat_failed(texts.cold_start_timeout(timeout), False)
        except ServingError as exc:
            text = texts.chat_failed(str(exc), exc.not_your_fault)
        else:
            answer = Redactor(self.deps.settings.secrets()).redact(answer)
            chat.metrics.requests.labels(record.model_name, "ok").inc()
            text = texts.chat_answer(question, answer, record, len(request.args) >= MAX_ARGS)
        await request.reply.once(request.marker, text, ReplyReason.CHAT)
