"""Abuse of the dispatcher: a PR too big to validate quickly must not stall other PRs' commands
or be validated twice (issue 12, finding 5), and a captured comment webhook replayed under a
new delivery id must not run its commands again (finding 10).

Real parts only: redis-server, the spec-validating GitHub emulator, the bot's own server and
dispatcher (two replicas where it matters), real webhook payloads.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp

from instruct_lab_bot.adapters.redis.keys import DISPATCH_GROUP, EVENTS_STREAM
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.yamllint import run_yamllint, run_yamllint_many
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.refs import RepoRef
from testkit.github_emulator import Call, GitHubEmulator
from testkit.harness import run_bot
from testkit.redis_server import free_port
from testkit.taxonomy import SkillSeed, attribution_txt, skill_qna
from tests.fixtures.bot import MENTION, post_webhook
from tests.fixtures.redis import events_settled
from tests.fixtures.world import World

OWNER, REPO = "instructlab", "taxonomy"
BIG_PR, BIG_SHA = 8, "b1" * 20
BIG_FILES = 200
CONTENTS = "/repos/{owner}/{repo}/contents/{path}"
VALIDATE = "instruct-lab-bot/validate"


def publish_big_pull(gh: GitHubEmulator) -> None:
    """PR 8: `BIG_FILES` skills, each a `qna.yaml` with its `attribution.txt`, at `BIG_SHA`."""
    qna = skill_qna([SkillSeed(f"What is {n}+{n}?", str(2 * n)) for n in range(1, 6)])
    paths = [f"compositional_skills/bulk/n{n:03d}/qna.yaml" for n in range(BIG_FILES)]
    gh.add_pull(OWNER, REPO, BIG_PR, head_sha=BIG_SHA, head_ref="bulk", files=paths)
    for path in paths:
        gh.set_content(OWNER, REPO, path, qna, ref=BIG_SHA)
        attribution = path.replace("qna.yaml", "attribution.txt")
        gh.set_content(OWNER, REPO, attribution, attribution_txt(), ref=BIG_SHA)


def big_pr_opened(gh: GitHubEmulator, example: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(json.dumps(example))
    payload["action"] = "opened"
    payload["installation"] = {"id": gh.installation_id}
    payload["repository"].update(name=REPO, full_name=f"{OWNER}/{REPO}")
    payload["repository"]["owner"]["login"] = OWNER
    pull = payload["pull_request"]
    pull.update(number=BIG_PR, state="open", labels=[])
    pull["head"].update(sha=BIG_SHA, ref="bulk")
    pull["base"]["ref"] = "main"
    pull["user"]["login"] = "contributor"
    return payload


def big_fetches(gh: GitHubEmulator) -> list[Call]:
    return [c for c in gh.calls_matching("GET", CONTENTS) if c.query.get("ref") == BIG_SHA]


def replies_on(gh: GitHubEmulator, number: int) -> list[Call]:
    """The bot's comments on PR `number`, as the emulator received them (with their time)."""
    posted = gh.calls_matching("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    return [c for c in posted if c.path.endswith(f"/issues/{number}/comments")]


async def test_big_pr_neither_stalls_help_nor_is_validated_twice(
    world: World, webhook_example: Callable[..., dict[str, Any]]
) -> None:
    """Finding 5. Two dispatcher replicas with a 2 s stream lease; a PR with 200 `qna.yaml`
    files whose every fetch takes 60 ms (a slow GitHub), so its validation lasts well past the
    lease. While it runs, `help` on another PR is answered within 1 s of its webhook, and the
    big PR gets exactly one validate check run: its event's claim was renewed, so the other
    replica never took it over.

    The issue promises 1 s; no timing is asserted (a busy machine would make that flaky):
    what is asserted is that the help was answered while the big PR's validation was still
    running, which before the fix it never was (it waited for the whole validation, tens of
    seconds). The latency is printed.
    """
    lease = 2.0
    settings = replace(world.settings, lease_timeout=lease, validate_max_files=BIG_FILES + 50)
    world.gh.inject("GET", CONTENTS, delay=0.06, times=None)
    publish_big_pull(world.gh)
    opened = big_pr_opened(world.gh, webhook_example("pull_request", "opened"))
    other = replace(settings, port=free_port(), public_url="http://127.0.0.1:1")
    async with run_bot(settings, workers=0) as first, run_bot(other, workers=0):
        async with aiohttp.ClientSession() as session:
            status, _ = await post_webhook(session, first.webhook_url, "pull_request", opened)
        assert status == 202
        async with asyncio.timeout(90):
            await world.gh.wait_for(lambda: bool(big_fetches(world.gh)))
            began = big_fetches(world.gh)[0].timestamp
            # Two leases into the validation: an unrenewed claim would have been taken over.
            await world.gh.wait_for(lambda: big_fetches(world.gh)[-1].timestamp > began + 2 * lease)
        assert not world.gh.check_runs(OWNER, REPO, head_sha=BIG_SHA, name=VALIDATE)

        asked = time.time()
        status, _ = await world.comment(first, f"{MENTION} help")
        assert status == 202
        async with asyncio.timeout(90):
            await world.gh.wait_for(lambda: bool(replies_on(world.gh, 7)))
        (reply,) = replies_on(world.gh, 7)
        print(f"help answered {reply.timestamp - asked:.2f}s after its webhook")
        assert not world.gh.check_runs(OWNER, REPO, head_sha=BIG_SHA, name=VALIDATE), (
            "the help was only answered once validation was over"
        )

        async with asyncio.timeout(90):
            await world.gh.wait_for(
                lambda: bool(world.gh.check_runs(OWNER, REPO, head_sha=BIG_SHA, name=VALIDATE))
            )
            await events_settled(settings.redis_url)
    runs = world.gh.check_runs(OWNER, REPO, head_sha=BIG_SHA, name=VALIDATE)
    assert len(runs) == 1, f"validated {len(runs)} times"
    assert runs[0]["status"] == "completed"
    assert runs[0]["output"]["title"] != "", runs[0]
    assert len(big_fetches(world.gh)) == 2 * BIG_FILES  # each qna.yaml and attribution once


async def test_too_many_files_is_a_failure_not_a_pass(
    world: World, webhook_example: Callable[..., dict[str, Any]]
) -> None:
    """Over `validate_max_files`: one failure on the validate check run, nothing fetched."""
    settings = replace(world.settings, validate_max_files=BIG_FILES - 1)
    publish_big_pull(world.gh)
    opened = big_pr_opened(world.gh, webhook_example("pull_request", "opened"))
    async with run_bot(settings, workers=0) as bot:
        async with aiohttp.ClientSession() as session:
            status, _ = await post_webhook(session, bot.webhook_url, "pull_request", opened)
        assert status == 202
        async with asyncio.timeout(30):
            await world.gh.wait_for(
                lambda: bool(world.gh.check_runs(OWNER, REPO, head_sha=BIG_SHA, name=VALIDATE))
            )
    (run,) = world.gh.check_runs(OWNER, REPO, head_sha=BIG_SHA, name=VALIDATE)
    assert run["conclusion"] == "failure"
    assert "Too many taxonomy files" in json.dumps(world.gh.check_run_history(run["id"]))
    assert not big_fetches(world.gh)


async def test_validation_over_its_time_bound_fails_and_is_not_remembered(
    world: World, webhook_example: Callable[..., dict[str, Any]]
) -> None:
    """Files not checked within `validate_timeout` are failures, never a silent pass."""
    settings = replace(world.settings, validate_timeout=0.5, validate_max_files=BIG_FILES)
    world.gh.inject("GET", CONTENTS, delay=0.3, times=None)
    publish_big_pull(world.gh)
    opened = big_pr_opened(world.gh, webhook_example("pull_request", "opened"))
    async with run_bot(settings, workers=0) as bot:
        async with aiohttp.ClientSession() as session:
            status, _ = await post_webhook(session, bot.webhook_url, "pull_request", opened)
        assert status == 202
        async with asyncio.timeout(30):
            await world.gh.wait_for(
                lambda: bool(world.gh.check_runs(OWNER, REPO, head_sha=BIG_SHA, name=VALIDATE))
            )
            await events_settled(settings.redis_url)
    (run,) = world.gh.check_runs(OWNER, REPO, head_sha=BIG_SHA, name=VALIDATE)
    assert run["conclusion"] == "failure"
    assert "Not checked in time" in json.dumps(world.gh.check_run_history(run["id"]))
    queue = Queue.from_url(settings.redis_url)
    try:
        assert not await queue.redis.keys(queue.memo_key(f"validated:{OWNER}/{REPO}:{BIG_SHA}*"))
    finally:
        await queue.aclose()


async def pr_jobs(redis_url: str) -> list[Job]:
    queue = Queue.from_url(redis_url)
    try:
        return await queue.get_jobs(await queue.pr_job_ids(RepoRef(OWNER, REPO).pull(7)))
    finally:
        await queue.aclose()


async def test_replayed_comment_under_a_new_delivery_id_runs_nothing(world: World) -> None:
    """Finding 10: the same signed comment body sent again with another X-GitHub-Delivery is
    answered 200 (duplicate) and starts no second job; a `help` replayed gets no second reply."""
    async with run_bot(world.settings, workers=0) as bot:
        status, _ = await world.comment(bot, f"{MENTION} generate")
        assert status == 202
        payload = world.payload(
            f"{MENTION} generate",
            installation_id=world.gh.installation_id,
            comment_id=world.comment_id,
            login="maintainer-mo",
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                replayed = str(uuid.uuid4())
                status, body = await post_webhook(
                    session, bot.webhook_url, "issue_comment", payload, delivery=replayed
                )
                assert (status, body) == (200, {"message": "duplicate delivery"})
        async with asyncio.timeout(30):
            await world.gh.wait_for(lambda: bool(world.gh.check_runs(OWNER, REPO)))
            await events_settled(world.settings.redis_url)
        assert len(await pr_jobs(world.settings.redis_url)) == 1

        status, _ = await world.comment(bot, f"{MENTION} help")
        assert status == 202
        help_payload = world.payload(
            f"{MENTION} help",
            installation_id=world.gh.installation_id,
            comment_id=world.comment_id,
            login="maintainer-mo",
        )
        async with aiohttp.ClientSession() as session:
            status, _ = await post_webhook(
                session, bot.webhook_url, "issue_comment", help_payload, delivery=str(uuid.uuid4())
            )
        assert status == 200
        async with asyncio.timeout(30):
            await world.gh.wait_for(lambda: bool(replies_on(world.gh, 7)))
            await events_settled(world.settings.redis_url)
    notices = [c for c in replies_on(world.gh, 7) if "no worker can run" in str(c.json)]
    assert len(notices) == 1  # workers=0: the one generate job waits for a worker, once
    assert len(replies_on(world.gh, 7)) == 2  # and one help reply
    assert len(await pr_jobs(world.settings.redis_url)) == 1
    assert len([r for r in world.gh.check_runs(OWNER, REPO) if r["name"] != VALIDATE]) == 1


def test_one_yamllint_process_finds_what_one_per_file_finds() -> None:
    """Validation lints many files in one yamllint run: the findings are those of one run per
    file (stdin), file by file, including syntax errors and files with no findings."""
    texts = [
        "a: 1\n",
        "---\nb:   [1,2\n",
        "---\nkey: value   \n",
        "---\nx: 1\nx: 2\n",
        "",
        "é: ü\n" * 3,
    ]
    many = run_yamllint_many(texts)
    assert many is not None
    assert many == [run_yamllint(text) for text in texts]
    assert [len(found) for found in many] == [0, 3, 1, 1, 0, 2]  # (the last: duplicate keys)


async def test_a_renewed_claim_is_not_taken_over(redis_url: str) -> None:
    """The Redis side of finding 5: `renew_claims` resets the idle time of the entries a
    dispatcher still handles, so another's `claim_stale` takes only the abandoned ones; it
    never renews an entry acknowledged or taken over meanwhile."""
    queue = Queue.from_url(redis_url)
    try:
        await queue.ensure_groups()
        for delivery in ("kept", "abandoned", "done"):
            await queue.add_event(delivery, {"type": "x", "intent": "{}"})
        kept, abandoned, done = await queue.read(
            EVENTS_STREAM, DISPATCH_GROUP, "first", count=3, block_ms=100
        )
        await queue.ack(done, DISPATCH_GROUP)

        async def idle_ms() -> int:
            pending = await queue.redis.xpending_range(EVENTS_STREAM, DISPATCH_GROUP, "-", "+", 10)
            return min(int(p["time_since_delivered"]) for p in pending)

        async with asyncio.timeout(10):
            while await idle_ms() < 300:
                await asyncio.sleep(0.05)
        ids = [kept.id, abandoned.id, done.id]
        renewed = await queue.renew_claims(EVENTS_STREAM, DISPATCH_GROUP, "first", ids[::2])
        assert renewed == [kept.id]
        taken = await queue.claim_stale(EVENTS_STREAM, DISPATCH_GROUP, "second", 300)
        assert [entry.id for entry in taken] == [abandoned.id]
        assert await queue.renew_claims(EVENTS_STREAM, DISPATCH_GROUP, "first", ids) == [kept.id]
    finally:
        await queue.aclose()
