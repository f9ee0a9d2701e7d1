"""Stopping a PR's jobs: on `cancel`, on a new push (queued jobs of the old head are
superseded) and when the PR closes. Queued jobs end now; running ones are told to stop (their
worker checks on every heartbeat, ends the process group, then reports `cancelled`)."""

from __future__ import annotations

import time

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.dispatch_rules import Stop, jobs_to_stop
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages.generate import cancelled_check_run, superseded
from instruct_lab_bot.core.refs import PullRequestRef


class JobStopper:
    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    async def cancel(self, gh: Installation, pull: PullRequestRef, login: str) -> list[Job]:
        """Every live job of the PR; returns the ones stopped."""
        stops = jobs_to_stop(await self._jobs(pull))
        return await self._carry_out(gh, login, stops, State.CANCELLED, "")

    async def supersede(
        self, gh: Installation, pull: PullRequestRef, login: str, new_sha: str
    ) -> list[Job]:
        """Queued jobs of heads other than `new_sha`; running ones finish."""
        stops = jobs_to_stop(await self._jobs(pull), new_sha=new_sha, only_queued=True)
        return await self._carry_out(gh, login, stops, State.SUPERSEDED, new_sha)

    async def _jobs(self, pull: PullRequestRef) -> list[Job]:
        ids = await self.queue.pr_job_ids(pull)
        return await self.queue.get_jobs(ids)

    async def _carry_out(
        self,
        gh: Installation,
        login: str,
        stops: list[tuple[Job, Stop]],
        state: State,
        new_sha: str,
    ) -> list[Job]:
        done: list[Job] = []
        for job, how in stops:
            if how is Stop.ASK:
                await self.queue.request_cancel(job.id, login)
                done.append(job)
                continue
            moved = await self.queue.transition(
                job.id, state, finished_at=time.time(), cancelled_by=login
            )
            if not moved.ok:
                continue
            if job.check_run_id:
                payload = (
                    superseded(job, new_sha)
                    if state is State.SUPERSEDED
                    else cancelled_check_run(job, login)
                )
                await gh.update_check_run(job.repo_ref, job.check_run_id, payload)
            done.append(job)
        return done
