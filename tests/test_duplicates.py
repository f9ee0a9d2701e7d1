"""Commands that repeat a live job, or one that succeeded at the same head (issue 18, the
burst): one job, and per repetition one PR read and O(1) Redis work; no 👀, no file list, no
validation, one reply per person and job. A request that is not a repetition (another head,
another kind, the job failed or was cancelled, GitHub's "Re-run") makes a job."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from instruct_lab_bot.adapters.redis.keys import DISPATCH_GROUP, EVENTS_STREAM
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import RepoRef
from testkit.harness import RunningBot, run_bot
from testkit.taxonomy import file_at
from tests.fixtures.bot import MENTION, post_webhook
from tests.fixtures.world import MAINTAINER, World

PULL = RepoRef("instructlab", "taxonomy").pull(7)
REACTIONS = "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"


@pytest.fixture
async def queue(world: World) -> AsyncIterator[Queue]:
    queue = Queue.from_url(world.settings.redis_url)
    yield queue
    await queue.aclose()


async def handled(queue: Queue) -> None:
    """Wait until the dispatcher has handled (acknowledged) every stored event."""
    async with asyncio.timeout(60):
        while True:
            stats = await queue.stream_stats(EVENTS_STREAM, DISPATCH_GROUP)
            if stats.lag == 0 and stats.pending == 0:
                return
            await asyncio.sleep(0.05)


async def comment(world: World, bot: RunningBot, queue: Queue, body: str) -> None:
    assert (await world.comment(bot, body))[0] == 202
    await handled(queue)


async def jobs(queue: Queue) -> list[Job]:
    return await queue.get_jobs(await queue.pr_job_ids(PULL))


async def ended(queue: Queue) -> list[Job]:
    """Wait until every job of the PR is in a final state."""
    async with asyncio.timeout(60):
        while not all(j.state.terminal for j in await jobs(queue)):
            await asyncio.sleep(0.05)
    return await jobs(queue)


def reacted(world: World, comment_id: int) -> bool:
    return any(
        c.method == "POST" and c.path.endswith(f"/comments/{comment_id}/reactions")
        for c in world.gh.calls
    )


async def test_repeated_commands_make_one_job_and_cost_one_read_each(
    world: World, queue: Queue
) -> None:
    repeats = 8
    async with run_bot(world.settings, workers=0) as bot:
        await comment(world, bot, queue, f"{MENTION} generate")
        first = world.comment_id
        (job,) = await jobs(queue)
        before = len(world.gh.calls)
        for _ in range(repeats):  # one after the other: each finds the job queued
            await comment(world, bot, queue, f"{MENTION} generate")
        calls = Counter(f"{c.method} {c.route}" for c in world.gh.calls[before:])
    assert [j.id for j in await jobs(queue)] == [job.id]
    assert reacted(world, first)
    assert calls["GET /repos/{owner}/{repo}/pulls/{pull_number}"] == repeats  # the head sha
    assert calls[f"POST {REACTIONS}"] == 0  # a repetition is answered, not 👀-ed
    assert calls["GET /repos/{owner}/{repo}/pulls/{pull_number}/files"] == 0
    assert calls["POST /repos/{owner}/{repo}/check-runs"] == 0
    # one "already queued" reply for the person, whatever the number of repetitions
    assert calls["POST /repos/{owner}/{repo}/issues/{issue_number}/comments"] == 1
    (link,) = [c for c in world.bot_comments() if "already queued" in c["body"]]
    assert f"/runs/{job.check_run_id}" in link["body"]
    # nothing else: config and permission reads are cached (the branch head may be asked again)
    others = set(calls) - {
        "GET /repos/{owner}/{repo}/pulls/{pull_number}",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
        "GET /repos/{owner}/{repo}/branches/{branch}",
        "GET /repos/{owner}/{repo}/git/ref/{ref}",
    }
    assert not others, calls


async def test_a_request_that_repeats_no_live_job_makes_a_job(world: World, queue: Queue) -> None:
    remote = world.remote
    async with run_bot(world.settings, workers=0) as bot:
        await comment(world, bot, queue, f"{MENTION} generate")
        await comment(world, bot, queue, f"{MENTION} precheck")  # another kind
        assert reacted(world, world.comment_id)
        new_head = "b" * 40  # a push: the same files at a new head
        world.gh.update_pull("instructlab", "taxonomy", 7, head_sha=new_head)
        for path in remote.changed_files:
            text = file_at(remote, remote.head_sha, path)
            world.gh.set_content("instructlab", "taxonomy", path, text, ref=new_head)
        await comment(world, bot, queue, f"{MENTION} generate")
        assert reacted(world, world.comment_id)
        await comment(world, bot, queue, f"{MENTION} cancel")  # every job over
        await comment(world, bot, queue, f"{MENTION} generate")
        assert reacted(world, world.comment_id)
    made = [(j.command, j.head_sha == new_head, j.state.terminal) for j in await jobs(queue)]
    assert sorted(made) == [
        ("generate", False, True),
        ("generate", True, False),
        ("generate", True, True),
        ("precheck", False, True),
    ]


def rerun(world: World, job: Job, webhook_example: Callable[..., Any]) -> dict[str, Any]:
    """GitHub's "Re-run" on `job`'s check run, as the maintainer."""
    payload: dict[str, Any] = webhook_example("check_run", "rerequested")
    payload["check_run"].update(
        id=job.check_run_id,
        name=f"instruct-lab-bot/{job.command}",
        external_id=job.id,
        head_sha=job.head_sha,
    )
    payload["installation"] = {"id": world.gh.installation_id}
    payload["repository"].update(name=PULL.name, full_name=PULL.repo.full_name)
    payload["repository"]["owner"]["login"] = PULL.owner
    payload["sender"]["login"] = MAINTAINER
    return payload


async def test_a_repeat_of_a_job_that_succeeded_at_the_head_is_answered_with_it(
    world: World, queue: Queue, webhook_example: Callable[..., Any]
) -> None:
    repeats = 3
    async with run_bot(world.settings, workers=1) as bot:
        await comment(world, bot, queue, f"{MENTION} generate")
        (job,) = await ended(queue)
        assert job.state is State.SUCCEEDED
        before = len(world.gh.calls)
        for _ in range(repeats):
            await comment(world, bot, queue, f"{MENTION} generate")
        calls = Counter(f"{c.method} {c.route}" for c in world.gh.calls[before:])
        assert [j.id for j in await jobs(queue)] == [job.id]  # nothing new queued
        # GitHub's "Re-run" on its check run asks for it again: a new job
        async with aiohttp.ClientSession() as session:
            payload = rerun(world, job, webhook_example)
            status, _ = await post_webhook(session, bot.webhook_url, "check_run", payload)
        assert status == 202
        await handled(queue)
        again = await ended(queue)
    assert calls["GET /repos/{owner}/{repo}/pulls/{pull_number}"] == repeats  # the head sha
    assert calls[f"POST {REACTIONS}"] == 0
    assert calls["GET /repos/{owner}/{repo}/pulls/{pull_number}/files"] == 0
    assert calls["POST /repos/{owner}/{repo}/check-runs"] == 0
    assert calls["POST /repos/{owner}/{repo}/issues/{issue_number}/comments"] == 1
    (link,) = [c for c in world.bot_comments() if "already succeeded" in c["body"]]
    assert f"/runs/{job.check_run_id}" in link["body"]
    assert sorted(str(j.state) for j in again) == ["succeeded", "succeeded"]
