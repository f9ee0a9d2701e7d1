"""Which jobs a viewer sees, in what order: the status overview, job lists, a PR's jobs and
the live workers, built from `Job`s and worker registrations (pure; the reads are in
`services.job_status`).

A viewer who may not see private repositories gets their jobs as counts only (never a name,
sha, link or error): that rule is applied here, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from instruct_lab_bot.core.command_table import capability_of, worker_capabilities
from instruct_lab_bot.core.job_view import (
    MAX_LIMIT,
    Hidden,
    JobList,
    JobRef,
    Overview,
    PrStatus,
    ReadOptions,
    WorkerView,
    pull_request_url,
    view,
)
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import PullRequestRef


def build_overview(
    jobs: Sequence[Job],
    worker_infos: Sequence[dict[str, str]],
    options: ReadOptions,
    *,
    now: float,
    dead_letters: int = 0,
) -> Overview:
    positions = queue_positions(jobs)
    queued = sorted((j for j in jobs if j.state is State.QUEUED), key=lambda j: positions[j.id])
    running = sorted((j for j in jobs if j.state is State.RUNNING), key=lambda j: j.started_at)
    finished = sorted(
        (j for j in jobs if j.state.terminal),
        key=lambda j: j.finished_at or j.created_at,
        reverse=True,
    )[: options.finished_limit]
    shown = {
        name: tuple(
            view(j, options, now=now, position=positions.get(j.id))
            for j in group
            if options.shows(j)
        )
        for name, group in (("queued", queued), ("running", running), ("finished", finished))
    }
    return Overview(
        generated_at=now,
        queued=shown["queued"],
        running=shown["running"],
        finished=shown["finished"],
        workers=build_workers(worker_infos, jobs, options),
        hidden=Hidden(
            queued=len(queued) - len(shown["queued"]),
            running=len(running) - len(shown["running"]),
            finished=len(finished) - len(shown["finished"]),
        ),
        dead_letters=dead_letters,
    )


def build_job_list(
    jobs: Sequence[Job],
    options: ReadOptions,
    *,
    states: frozenset[State] = frozenset(),
    limit: int = 100,
    now: float,
) -> JobList:
    positions = queue_positions(jobs)
    chosen = sorted(
        (j for j in jobs if not states or j.state in states),
        key=lambda j: j.created_at,
        reverse=True,
    )[: max(1, min(limit, MAX_LIMIT))]
    shown = tuple(
        view(j, options, now=now, position=positions.get(j.id)) for j in chosen if options.shows(j)
    )
    return JobList(generated_at=now, jobs=shown, hidden=len(chosen) - len(shown))


def build_pr_status(
    pull: PullRequestRef,
    jobs: Sequence[Job],
    options: ReadOptions,
    *,
    now: float,
    positions: dict[str, int] | None = None,
) -> PrStatus:
    positions = positions or {}
    newest_first = sorted(jobs, key=lambda j: j.created_at, reverse=True)
    return PrStatus(
        owner=pull.owner,
        repo=pull.name,
        pr_number=pull.number,
        generated_at=now,
        url=pull_request_url(options.web_url, pull),
        jobs=tuple(
            view(j, options, now=now, position=positions.get(j.id))
            for j in newest_first
            if options.shows(j)
        ),
    )


def build_workers(
    infos: Sequence[dict[str, str]], jobs: Sequence[Job], options: ReadOptions
) -> tuple[WorkerView, ...]:
    result: list[WorkerView] = []
    for info in infos:
        current = _current_jobs(info, jobs)
        refs = [
            JobRef(job.id, job.owner, job.repo, job.pr_number, job.command)
            for job in current
            if options.shows(job)
        ]
        hidden = len(current) - len(refs)
        result.append(
            WorkerView(
                name=info.get("name", ""),
                host=info.get("host", ""),
                pid=_int(info.get("pid")),
                version=info.get("version", ""),
                concurrency=_int(info.get("concurrency")),
                started_at=_float(info.get("started_at")),
                heartbeat_at=_float(info.get("heartbeat_at")),
                jobs=tuple(refs),
                hidden_jobs=hidden,
                ilab_version=info.get("ilab_version", ""),
                capabilities=worker_capabilities(info),
            )
        )
    return tuple(result)


def queue_positions(jobs: Iterable[Job]) -> dict[str, int]:
    """Queued job id → place in its pool's line (1 = next), in stream order: a handed-back
    job gets a fresh stream entry, so it lines up again where its entry now is."""
    queued = sorted((j for j in jobs if j.state is State.QUEUED), key=_line_order)
    places: dict[str, int] = {}  # each pool (capability) has its own line
    positions: dict[str, int] = {}
    for job in queued:
        pool = capability_of(job.command)
        places[pool] = places.get(pool, 0) + 1
        positions[job.id] = places[pool]
    return positions


# -- helpers --------------------------------------------------------------------------


def _line_order(job: Job) -> tuple[float, int]:
    """Stream entry ids (`<ms>-<seq>`) order the line; a job without one by creation time."""
    ms, _, seq = job.stream_id.partition("-")
    if ms.isdigit() and seq.isdigit():
        return float(ms), int(seq)
    return job.created_at * 1000, 0


def _current_jobs(info: dict[str, str], jobs: Sequence[Job]) -> list[Job]:
    """A worker's current jobs: running jobs that name it. Its registration lists jobs only
    as of its last heartbeat (used to fetch ones outside the window), while a job names its
    worker the moment it starts and stops being `running` the moment it ends."""
    name = info.get("name", "")
    running = (j for j in jobs if name and j.state is State.RUNNING and j.worker == name)
    return sorted(running, key=lambda j: j.started_at)


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None
