"""What must hold once the faults stop: for every command exactly one job, in a final state,
one completed `generate` check run and one result comment; nothing left pending anywhere."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from instruct_lab_bot.adapters.redis.keys import (
    DISPATCH_GROUP,
    EVENTS_STREAM,
    OUTBOX_KEY,
    WORKER_GROUP,
    all_jobs_streams,
)
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.refs import RepoRef

from ..github_emulator import GitHubEmulator
from .world import GENERATE_CHECK, OWNER, REPO

RESULT_MARKER = "<!-- instruct-lab-bot:result:"

ONE_JOB = "exactly one job per command"
FINAL = "job in a final state"
SUCCEEDED = "job succeeded"
ONE_CHECK = "exactly one generate check run, completed"
ONE_RESULT = "exactly one result comment"
NOTHING_PENDING = "nothing pending (events, jobs, outbox), no dead letters"
SPEC_VALID = "every GitHub request valid against the OpenAPI description"
GUARANTEES = (ONE_JOB, FINAL, SUCCEEDED, ONE_CHECK, ONE_RESULT, NOTHING_PENDING, SPEC_VALID)


@dataclass
class Verdict:
    """Per guarantee: how many times it was checked and how many of those held."""

    checked: Counter[str] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    attempts: Counter[int] = field(default_factory=Counter)  # job attempts → jobs

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checked[name] += 1
        self.held[name] += int(ok)
        if not ok and len(self.problems) < 40:
            self.problems.append(f"{name}: {detail}")

    @property
    def ok(self) -> bool:
        return all(self.held[g] == self.checked[g] > 0 for g in GUARANTEES)


def result_comments(gh: GitHubEmulator, number: int) -> list[dict[str, Any]]:
    comments = gh.comments(OWNER, REPO, number)
    return [c for c in comments if c["user"]["type"] == "Bot" and RESULT_MARKER in c["body"]]


async def settle(gh: GitHubEmulator, queue: Queue, numbers: list[int], limit: float) -> float:
    """Wait until every PR has its result and Redis holds nothing pending; the seconds it
    took. `limit` only bounds a run that will never settle (the checks then say what is off)."""
    started = time.monotonic()
    with_result = lambda: all(result_comments(gh, n) for n in numbers)  # noqa: E731
    try:
        async with asyncio.timeout(limit):
            await gh.wait_for(with_result)
            while True:
                if await _quiet(queue):
                    break
                await asyncio.sleep(0.2)
    except TimeoutError:
        pass
    return time.monotonic() - started


async def _quiet(queue: Queue) -> bool:
    """Nothing pending or undelivered in the events stream or any pool's jobs stream, nothing
    in the outbox. Undelivered is read from the ids (XINFO's `lag` can stay stale after a
    failover)."""
    streams = [(EVENTS_STREAM, DISPATCH_GROUP)]
    streams += [(stream, WORKER_GROUP) for stream in all_jobs_streams()]
    for stream, group in streams:
        stats = await queue.stream_stats(stream, group)
        if stats.pending or await _undelivered(queue, stream, group):
            return False
    return int(await queue.redis.zcard(OUTBOX_KEY)) == 0


async def _undelivered(queue: Queue, stream: str, group: str) -> bool:
    info: Any = await queue.redis.xinfo_stream(stream)
    groups: Any = await queue.redis.xinfo_groups(stream)
    delivered = next(str(g["last-delivered-id"]) for g in groups if g["name"] == group)
    return _id(str(info["last-generated-id"])) > _id(delivered)


def _id(entry: str) -> tuple[int, int]:
    millis, _, seq = entry.partition("-")
    return int(millis), int(seq or 0)


async def verify(
    gh: GitHubEmulator, queue: Queue, heads: dict[int, str], numbers: list[int]
) -> Verdict:
    verdict = Verdict()
    repo = RepoRef(OWNER, REPO)
    for number in numbers:
        job_ids = await queue.pr_job_ids(repo.pull(number))
        verdict.check(ONE_JOB, len(job_ids) == 1, f"PR {number} has jobs {job_ids}")
        jobs = [j for j in [await queue.get_job(i) for i in job_ids] if j is not None]
        for job in jobs:
            _check_job(verdict, number, job)
        runs = gh.check_runs(OWNER, REPO, head_sha=heads[number], name=GENERATE_CHECK)
        states = [r["status"] for r in runs]
        verdict.check(ONE_CHECK, states == ["completed"], f"PR {number}: check runs {states}")
        results = result_comments(gh, number)
        verdict.check(ONE_RESULT, len(results) == 1, f"PR {number}: {len(results)} results")
    quiet = await _quiet(queue) and await queue.dead_letter_count() == 0
    verdict.check(NOTHING_PENDING, quiet, "entries pending, in the outbox or dead-lettered")
    problems = gh.violations + gh.emulator_errors
    verdict.check(SPEC_VALID, not problems, "; ".join(problems[:3]))
    return verdict


def _check_job(verdict: Verdict, number: int, job: Job) -> None:
    verdict.attempts[job.attempts] += 1
    verdict.check(FINAL, job.state.terminal, f"PR {number}: job {job.id} is {job.state}")
    verdict.check(SUCCEEDED, job.state.value == "succeeded", f"PR {number}: {job.state}")
