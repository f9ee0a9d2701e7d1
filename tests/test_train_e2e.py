"""`train` through the real harness: a signed webhook → server → Redis → dispatcher → worker →
GitHub emulator. The gate: no generate on the head, another PR's generate job, one training per
PR at a time."""

from __future__ import annotations

import asyncio

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import RepoRef
from testkit.harness import run_bot
from tests.fixtures.bot import MENTION
from tests.fixtures.world import World

OWNER, REPO, PR = "instructlab", "taxonomy", 7
PULL = RepoRef(OWNER, REPO).pull(PR)


async def reply_to(world: World, body: str, timeout: float = 30) -> str:
    """Comment `body` and wait for the bot's answer to it."""
    before = {c["id"] for c in world.bot_comments()}
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot, body))[0] == 202
        async with asyncio.timeout(timeout):
            await world.gh.wait_for(
                lambda: any(c["id"] not in before for c in world.bot_comments())
            )
    (new,) = [c["body"] for c in world.bot_comments() if c["id"] not in before]
    return str(new)


def train_check_runs(world: World) -> list[object]:
    runs = world.gh.check_runs(OWNER, REPO, head_sha=world.remote.head_sha)
    return [r for r in runs if r["name"] == "instruct-lab-bot/train"]


async def store_job(world: World, job: Job) -> None:
    queue = Queue.from_url(world.settings.redis_url)
    try:
        await queue.create_job(job)
    finally:
        await queue.aclose()


def generate_job(job_id: str, pr: int, head_sha: str) -> Job:
    return Job(
        id=job_id,
        command="generate",
        installation_id=1,
        owner=OWNER,
        repo=REPO,
        pr_number=pr,
        requester="maintainer-mo",
        head_sha=head_sha,
        state=State.SUCCEEDED,
    )


async def test_train_without_a_generate_says_to_run_generate_first(world: World) -> None:
    text = await reply_to(world, f"{MENTION} train")
    assert f"run `{MENTION} generate` first" in text
    assert train_check_runs(world) == []


async def test_train_from_another_prs_generate_job_is_refused(world: World) -> None:
    await store_job(world, generate_job("gen-of-pr-8", 8, world.remote.head_sha))
    text = await reply_to(world, f"{MENTION} train --from gen-of-pr-8")
    assert "must name a successful `generate` job of **this** pull request" in text
    assert train_check_runs(world) == []


async def test_one_training_per_pr_at_a_time(world: World) -> None:
    await store_job(world, generate_job("gen-1", PR, world.remote.head_sha))
    running = generate_job("train-running", PR, world.remote.head_sha)
    await store_job(world, running.evolve(id="train-running", command="train", state=State.RUNNING))
    text = await reply_to(world, f"{MENTION} train --from gen-1")
    assert "A training of this PR is already running (job `train-running`" in text
    assert train_check_runs(world) == []
