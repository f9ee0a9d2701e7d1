"""Which earlier job of a PR a command builds on (pure): `train` needs a generate job, `test`
and `serve` need a train job."""

from __future__ import annotations

from collections.abc import Sequence

from instruct_lab_bot.core.jobs import Job, State


def latest_succeeded(jobs: Sequence[Job], command: str, *, head_sha: str = "") -> Job | None:
    """The newest successful job of `command` among `jobs` (one PR's), on `head_sha` if given."""
    found = [
        job
        for job in jobs
        if job.command == command
        and job.state is State.SUCCEEDED
        and (not head_sha or job.head_sha == head_sha)
    ]
    return max(found, key=lambda job: (job.created_at, job.id), default=None)


def named_job(jobs: Sequence[Job], job_id: str, command: str) -> Job | None:
    """The job `job_id` of this PR if it is a successful `command` job (`train --from <id>`,
    `test --model <id>`); None for another PR's job, another command or an unfinished one."""
    job = next((j for j in jobs if j.id == job_id), None)
    if job is None or job.command != command or job.state is not State.SUCCEEDED:
        return None
    return job
