"""Starting jobs: gates (open PR, labels, a valid taxonomy change), the job record, its check
run and its place in the queue; each step recorded before the next, so a reclaimed event
resumes where it stopped."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import Any

import structlog

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.adapters.tracing import current_traceparent
from instruct_lab_bot.core.command_table import CommandSpec, capability_of, spec_for_job
from instruct_lab_bot.core.dispatch_rules import (
    Refusal,
    refusal_before_files,
    refusal_for_files,
    retry_source,
)
from instruct_lab_bot.core.job_view import check_run_url
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages.commands import (
    already_running,
    already_succeeded,
    labels_check_run,
    labels_needed,
    no_taxonomy_change,
    nothing_to_retry,
    pull_request_closed,
    validation_failed,
)
from instruct_lab_bot.core.messages.format import check_name
from instruct_lab_bot.core.messages.generate import check_run_queued
from instruct_lab_bot.core.messages.pools import no_worker_check_run, no_worker_reply
from instruct_lab_bot.core.reply_limits import ReplyReason
from instruct_lab_bot.core.repo_config import generate_args, required_labels
from instruct_lab_bot.services.dispatcher.context import Deps, Request
from instruct_lab_bot.services.dispatcher.sources import source_job
from instruct_lab_bot.services.dispatcher.train_gate import train_source
from instruct_lab_bot.services.validator import Changes

log = structlog.get_logger(__name__)

REPEAT_WINDOW = 60  # seconds: one "already running" reply per person and job in this window


@dataclass(frozen=True)
class JobOrigin:
    """The delivery and comment a job was asked for in (empty for retries)."""

    delivery_id: str = ""
    comment_id: int = 0


class JobStarter:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.queue = deps.queue

    async def start(
        self, request: Request, kind: str, origin: JobOrigin | None = None, *, again: bool = False
    ) -> Job | None:
        """Create the job (unless a redelivery did already) and queue it. `again`: asked to
        run again (`retry`, GitHub's "Re-run"): only a live job at the head makes it a repeat,
        not one that succeeded there."""
        job = await self.queue.get_job(request.job_id)
        fresh = False  # created by this call: no check run can exist for it yet
        if job is None:
            job, fresh = await self._create(request, kind, origin or JobOrigin(), again)
            if job is None:
                return None
        await self._queue(request, job, fresh=fresh)
        return job

    async def retry(self, request: Request, source: Job | None = None) -> None:
        """Run the PR's newest failed, cancelled or timed-out job again, on the current head."""
        if source is None:
            pull = request.pull
            ids = await self.queue.pr_job_ids(pull)
            source = retry_source(await self.queue.get_jobs(ids))
        if source is None:
            await request.reply.once(
                request.marker, nothing_to_retry(), ReplyReason.NOTHING_TO_RETRY
            )
            return
        if source.command == "train" and source.source_job:  # the same data again
            request = replace(request, args=("--from", source.source_job))
        await self.start(request, source.command, again=True)

    async def _create(
        self, request: Request, kind: str, origin: JobOrigin, again: bool
    ) -> tuple[Job | None, bool]:
        spec = spec_for_job(kind)
        if spec is None:
            log.warning("job.unknown_kind", kind=kind)
            return None, False
        data = await request.pull_data()
        if not request.args:  # a bare repeat, before any gate's GitHub call (with arguments,
            # e.g. `train --from`, the gates say what they refuse: they run first)
            other = await self.queue.slot_job(request.pull, str(data["head"]["sha"]), kind)
            if other is not None and other.id != request.job_id and _repeats(other, again):
                await self._duplicate(request, other)
                return None, False
        files = await self._files_past_gates(request, spec, data)
        if files is None:
            return None, False
        job = _new_job(request, kind, origin, data, files)
        if kind == "train":  # trains on a generate job of this PR (`train_gate`)
            source = await train_source(self.deps, request, job.head_sha)
            if source is None:
                return None, False
            job = job.evolve(source_job=source.id)
        built_on = await source_job(self.deps, request, spec)  # `test` needs a trained model
        if built_on is None:
            return None, False
        job = job.evolve(source_job=built_on) if built_on else job
        return await self._record(request, job)

    async def _files_past_gates(
        self, request: Request, spec: CommandSpec, data: dict[str, Any]
    ) -> list[str] | None:
        """The PR's changed taxonomy files, or None once a gate refused (and said why)."""
        head_sha = str(data["head"]["sha"])
        wanted = required_labels(request.config, self.deps.settings)
        refusal = refusal_before_files(
            spec,
            is_open=data.get("state") == "open",
            labels={str(label.get("name")) for label in data.get("labels") or ()},
            wanted=wanted,
        )
        if refusal is None:
            base = str(data["base"]["ref"])
            if request.prefetch is not None:
                changes = await request.prefetch.changes(base, head_sha)
            else:
                changes = await self.deps.validator.changed_taxonomy_files(
                    request.gh, request.pull.repo, base, head_sha
                )
            refusal = refusal_for_files(spec, changes.files)
        if refusal is not None:
            text, reason = _refusal_text(refusal, spec, wanted)
            replied = await request.reply.once(request.marker, text, reason)
            if refusal is Refusal.LABELS and replied:  # silenced: no check run either
                payload = labels_check_run(spec.name, head_sha, wanted)
                await request.gh.create_check_run(request.pull.repo, payload)
            return None
        if spec.needs_taxonomy_change and not await self._valid(request, spec, head_sha, changes):
            return None
        return changes.files

    async def _valid(
        self, request: Request, spec: CommandSpec, head_sha: str, changes: Changes
    ) -> bool:
        pull = request.pull
        report = await self.deps.validator.validate(request.gh, pull.repo, head_sha, changes)
        if report.failures:
            text = validation_failed(spec.name, report.url, report.failures)
            await request.reply.once(request.marker, text, ReplyReason.INVALID)
        return not report.failures

    async def _record(self, request: Request, job: Job) -> tuple[Job | None, bool]:
        """Store the job (and whether this call created it); a live job for the same PR head
        and command is linked instead."""
        created = await self.queue.create_job(job)
        if created.status == "active":
            other = await self.queue.get_job(created.job_id)
            if other is not None:
                await self._duplicate(request, other)
            return None, False
        if created.status == "exists":
            return await self.queue.get_job(job.id) or job, False
        return job, True

    async def _duplicate(self, request: Request, other: Job) -> None:
        """A request for a job that is already queued, running or succeeded at this head:
        linked to it, in one reply per person and job a `REPEAT_WINDOW` (a burst of the same
        command costs no more)."""
        log.info("job.duplicate", job_id=request.job_id, existing=other.id, state=other.state)
        self.deps.metrics.commands.labels(other.command, "duplicate").inc()
        request.duplicates.append(other.id)
        url = check_run_url(self.deps.settings.github_git_url, other)
        done = other.state is State.SUCCEEDED
        text = already_succeeded(other, url) if done else already_running(other, url)
        shared = f"{other.id}:{request.sender}"
        reason = ReplyReason.ALREADY_RUNNING
        await request.reply.once_across(shared, REPEAT_WINDOW, request.marker, text, reason)

    async def _queue(self, request: Request, job: Job, *, fresh: bool = False) -> None:
        """Give the job its check run, then queue it on its pool's stream; a pool without a
        live worker is named in the check run and in a reply (the job still waits there)."""
        capability = capability_of(job.command)
        idle = not job.stream_id and not (await self.queue.live_capabilities()).get(capability)
        if not job.check_run_id:
            check_run_id = await self._find_or_create_check_run(
                request.gh, job, fresh, capability if idle else ""
            )
            await self.queue.update_job(job.id, check_run_id=check_run_id)
            job = job.evolve(check_run_id=check_run_id)
        if not job.stream_id:
            stream_id = await self.queue.enqueue_job(job)
            await self.queue.update_job(job.id, stream_id=stream_id)
            log.info(
                "job.queued",
                job_id=job.id,
                command=job.command,
                sha=job.head_sha,
                pr=job.pr_number,
                stream_id=stream_id,
            )
            self.deps.metrics.jobs_enqueued.labels(job.command).inc()
        if idle:  # said once the job waits on its pool's stream
            await self._no_worker(request, job, capability)

    async def _no_worker(self, request: Request, job: Job, capability: str) -> None:
        log.warning("job.no_worker", job_id=job.id, capability=capability)
        self.deps.metrics.jobs_without_worker.labels(capability).inc()
        url = check_run_url(self.deps.settings.github_git_url, job)
        text = no_worker_reply(job, capability, url)
        await request.reply.once(request.marker, text, ReplyReason.NO_WORKER)

    async def _find_or_create_check_run(
        self, gh: Installation, job: Job, fresh: bool, no_worker_for: str = ""
    ) -> int:
        """A dispatcher that died between creating the check run and recording it must not
        leave a second one: look for ours (external_id = job id) before creating, unless this
        call created the job just now (then nobody can have made its check run).
        `no_worker_for`: the capability no live worker has (the check run says so)."""
        existing: int | None = None
        if not fresh:
            existing = await gh.find_check_run(
                job.repo_ref, job.head_sha, check_name(job.command), job.id
            )
        if existing:
            return existing
        payload = check_run_queued(job)
        if no_worker_for:
            payload = no_worker_check_run(payload, no_worker_for)
        return await gh.create_check_run(job.repo_ref, payload)


def _repeats(other: Job, again: bool) -> bool:
    """Whether a bare request for `other`'s command at its head is answered with `other`: it
    is live, or it succeeded (the same inputs, the same results: GitHub's "Re-run" or a new
    commit runs it again) and the request is not an explicit run-again. A failed, cancelled
    or timed-out one is run again."""
    return not other.state.terminal or (other.state is State.SUCCEEDED and not again)


def _refusal_text(
    refusal: Refusal, spec: CommandSpec, wanted: tuple[str, ...]
) -> tuple[str, ReplyReason]:
    if refusal is Refusal.CLOSED:
        return pull_request_closed(spec.name), ReplyReason.CLOSED
    if refusal is Refusal.LABELS:
        return labels_needed(spec.name, wanted), ReplyReason.LABELS
    return no_taxonomy_change(spec.name), ReplyReason.NO_CHANGE


def _new_job(
    request: Request, kind: str, origin: JobOrigin, data: dict[str, Any], files: list[str]
) -> Job:
    """The job record, from the request and GitHub's view of the PR (`data`)."""
    return Job(
        id=request.job_id,
        command=kind,
        installation_id=request.gh.installation_id,
        owner=request.pull.owner,
        repo=request.pull.name,
        pr_number=request.pull.number,
        requester=request.sender,
        delivery_id=origin.delivery_id,
        comment_id=origin.comment_id,
        head_sha=str(data["head"]["sha"]),
        head_ref=str(data["head"]["ref"]),
        base_branch=str(data["base"]["ref"]),
        traceparent=current_traceparent(),
        private=bool(data.get("base", {}).get("repo", {}).get("private", False)),
        files=",".join(files),
        repo_args=shlex.join(generate_args(request.config)) if kind == "generate" else "",
    )
