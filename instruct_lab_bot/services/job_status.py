"""The status read model's reads: what waits, what runs where, what finished, which workers
are alive, built only from `Queue` reads so the status page, its JSON API and the `status` PR
command show the same truth. The views and the privacy rule are pure, in `core.job_view` and
`core.job_overview`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace

from instruct_lab_bot.adapters.redis.keys import WORKER_GROUP, jobs_stream
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.command_table import CAPABILITIES
from instruct_lab_bot.core.job_overview import (
    build_job_list,
    build_overview,
    build_pr_status,
    build_workers,
    queue_positions,
)
from instruct_lab_bot.core.job_view import (
    JobList,
    JobView,
    Overview,
    PoolView,
    PrStatus,
    ReadOptions,
    WorkerView,
    view,
)
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import PullRequestRef


async def overview(queue: Queue, options: ReadOptions, *, now: float | None = None) -> Overview:
    """Everything the front page shows, from the newest `options.window` jobs."""
    infos = await queue.live_workers()
    jobs = await _recent_jobs(queue, options, infos)
    dead = await queue.dead_letter_count()
    built = build_overview(jobs, infos, options, now=_now(now), dead_letters=dead)
    return replace(built, pools=await pools(queue))


async def pools(queue: Queue) -> tuple[PoolView, ...]:
    """Each worker pool's backlog and live workers (counts only: no repository named)."""
    live = await queue.live_capabilities()
    found: list[PoolView] = []
    for capability in CAPABILITIES:
        stream = jobs_stream(capability)
        stats = await queue.stream_stats(stream, WORKER_GROUP)
        age = await queue.oldest_waiting_age(stream, WORKER_GROUP)
        found.append(PoolView(capability, stats.lag, stats.pending, age, live.get(capability, 0)))
    return tuple(found)


async def list_jobs(
    queue: Queue,
    options: ReadOptions,
    *,
    states: Iterable[State] = (),
    limit: int = 100,
    now: float | None = None,
) -> JobList:
    """The newest jobs (optionally only some states); private ones counted, not listed."""
    jobs = await _recent_jobs(queue, options)
    return build_job_list(jobs, options, states=frozenset(states), limit=limit, now=_now(now))


async def job_status(
    queue: Queue, job_id: str, options: ReadOptions, *, now: float | None = None
) -> JobView | None:
    """One job, or None when it does not exist or this viewer may not see it."""
    job = await queue.get_job(job_id)
    if job is None or not options.shows(job):
        return None
    positions: dict[str, int] = {}
    if job.state is State.QUEUED:
        positions = queue_positions(await _recent_jobs(queue, options))
    return view(job, options, now=_now(now), position=positions.get(job.id))


async def pr_status(
    queue: Queue,
    pull: PullRequestRef,
    options: ReadOptions | None = None,
    *,
    now: float | None = None,
) -> PrStatus:
    """One PR's jobs; the `status` PR command renders the same object.

    Anonymous viewers (the default options) get nothing of a private repository, not even
    counts: the URL names the repository, so a count would confirm it exists.
    """
    options = options or ReadOptions()
    jobs = await queue.get_jobs(await queue.pr_job_ids(pull))
    positions: dict[str, int] = {}
    if any(job.state is State.QUEUED for job in jobs):
        positions = queue_positions(await _recent_jobs(queue, options))
    return build_pr_status(pull, jobs, options, now=_now(now), positions=positions)


async def workers(queue: Queue, options: ReadOptions) -> tuple[WorkerView, ...]:
    infos = await queue.live_workers()
    return build_workers(infos, await _recent_jobs(queue, options, infos), options)


async def _recent_jobs(
    queue: Queue, options: ReadOptions, worker_infos: Sequence[dict[str, str]] = ()
) -> list[Job]:
    """The newest `options.window` jobs, plus any job a live worker names that is older."""
    jobs = await queue.get_jobs(await queue.recent_job_ids(options.window))
    known = {job.id for job in jobs}
    missing = sorted({i for info in worker_infos for i in _job_ids(info)} - known)
    return jobs + (await queue.get_jobs(missing) if missing else [])


def _job_ids(info: dict[str, str]) -> list[str]:
    return [i for i in info.get("jobs", "").split(",") if i]


def _now(now: float | None) -> float:
    return time.time() if now is None else now
