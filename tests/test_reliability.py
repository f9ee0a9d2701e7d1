"""Nothing lost, nothing doubled: fault injection with real worker processes and real Redis.

Workers run as `instruct-lab-bot worker` processes (signals and crashes are what is tested);
the server and dispatcher run in the test's loop; GitHub is the spec-validating emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from instruct_lab_bot.adapters.redis.keys import DEAD_STREAM, EVENTS_STREAM, jobs_stream
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import sign
from instruct_lab_bot.services.app_keys import QUEUE
from testkit.harness import run_bot
from testkit.redis_server import RedisServer
from tests.fixtures.bot import MENTION, WEBHOOK_SECRET, WorkerProcess, post_webhook, settings_env
from tests.fixtures.taxonomy import TaxonomyFactory
from tests.fixtures.world import MAINTAINER, World, publish_pull

GENERATE_STREAM = jobs_stream("generate")  # the generate pool's jobs stream

StartWorker = Callable[..., WorkerProcess]


def fast(world: World, **changes: Any) -> Settings:
    """Short leases and intervals so that each scenario takes seconds."""
    base: dict[str, Any] = {
        "heartbeat_interval": 0.5,
        "lease_timeout": 2.0,
        "shutdown_grace": 0.5,
        "kill_grace": 1.0,
        "progress_interval": 1.0,
    }
    base.update(changes)
    world.settings = replace(world.settings, **base)
    return world.settings


async def until(predicate: Callable[[], bool], timeout: float | None = 30, what: str = "") -> None:
    """Wait until `predicate()`; `timeout=None` for a wait only the test's own timeout bounds
    (one that spans starting a process, which a loaded machine can stretch past any guess)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def the_job(settings: Settings, pr: int = 7, repo: str = "taxonomy") -> Job:
    """The PR's one job, once it reached an end state (the result comment comes just before
    the state is stored)."""
    queue = Queue.from_url(settings.redis_url)
    try:
        (job_id,) = await queue.pr_job_ids(RepoRef("instructlab", repo).pull(pr))
        async with asyncio.timeout(30):
            while True:
                job = await queue.get_job(job_id)
                assert job is not None
                if job.state.terminal:
                    return job
                await asyncio.sleep(0.05)
    finally:
        await queue.aclose()


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def titles(world: World) -> list[str]:
    history = world.gh.check_run_history(world.check_run()["id"])
    return [str((h.get("output") or {}).get("title", "")) for h in history]


async def test_kill_9_mid_job_recovers_on_another_worker_once(
    world: World, worker_processes: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fast(world)
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "4")
    async with run_bot(settings, workers=0) as bot:
        first = worker_processes(settings)
        await first.registered(settings.redis_url)
        assert (await world.comment(bot))[0] == 202
        await until(lambda: len(world.record.entries()) == 1, what="ilab started")
        second = worker_processes(settings)
        first.signal(signal.SIGKILL)
        killed_at = time.time()
        kill_group(world.record.entries()[0]["pid"])  # the orphaned `ilab` of the dead worker
        comment = await world.result_comment(timeout=60)
        job = await the_job(settings)
    recovery = job.started_at - killed_at
    print(f"\nrecovery after kill -9: {recovery:.2f}s (bound {settings.recovery_bound:.1f}s)")
    assert recovery > 0  # started again after the kill (no timing bound: CI may be busy)
    assert "succeeded" in comment["body"]
    assert world.check_run()["conclusion"] == "success"  # one check run, reused
    assert len(world.result_comments()) == 1
    assert job.state is State.SUCCEEDED and job.attempts == 2
    assert len(world.record.entries()) == 2  # ran twice in all: once cut short, once to the end
    started = [e for e in second.events() if e.get("event") == "job.taken_over"]
    assert len(started) == 1


async def test_sigterm_hands_the_job_back_at_once(
    world: World, worker_processes: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lease far longer than the test: only a hand-back can explain the quick restart.
    settings = fast(world, lease_timeout=600.0)
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "4")
    async with run_bot(settings, workers=0) as bot:
        first = worker_processes(settings)
        await first.registered(settings.redis_url)
        assert (await world.comment(bot))[0] == 202
        await until(lambda: len(world.record.entries()) == 1, what="ilab started")
        second = worker_processes(settings)
        first.signal(signal.SIGTERM)
        assert await first.wait() == 0
        comment = await world.result_comment(timeout=60)
        job = await the_job(settings)
    assert "succeeded" in comment["body"] and len(world.result_comments()) == 1
    assert job.attempts == 1  # a hand-back is not a failed attempt
    assert "Waiting for another worker" in titles(world)
    assert any(e.get("event") == "job.handed_back" for e in first.events())
    assert any(e.get("event") == "job.finished" for e in second.events())


async def test_poison_job_goes_to_dead_letters_after_max_deliveries(
    world: World, worker_processes: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unsandboxed on purpose: the stand-in takes its worker down by SIGKILLing its parent,
    # which the sandbox stops (tests/security/test_sandbox.py); a real poison job would do it
    # another way (the kernel's OOM killer, a driver fault).
    settings = fast(world, max_deliveries=3, sandbox="off")
    monkeypatch.setenv("ILAB_STANDIN_MODE", "crash-parent")
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "0.5")
    workers: list[WorkerProcess] = []
    async with run_bot(settings, workers=0) as bot:
        assert (await world.comment(bot))[0] == 202
        async with asyncio.timeout(90):
            while not world.result_comments():
                if all(w.process.poll() is not None for w in workers):
                    workers.append(worker_processes(settings))  # a supervisor restarting it
                await asyncio.sleep(0.1)
        job = await the_job(settings)
        queue = Queue.from_url(settings.redis_url)
        dead = await queue.redis.xlen(DEAD_STREAM)
        await queue.aclose()
    assert job.state is State.DEAD and dead == 1
    assert len(world.record.entries()) == 3  # three deliveries, then no more GPU time
    assert world.check_run()["conclusion"] == "failure"
    (comment,) = world.result_comments()
    assert "stopped after 3 attempts" in comment["body"]
    assert "dlq requeue" in comment["body"]
    # the admin's view: list it, then requeue it with fresh attempts
    listed = dlq(settings, "list")
    assert job.id in listed.stdout
    entry = listed.stdout.split()[0]
    assert job.id in dlq(settings, "show", entry).stdout
    assert f"requeued job {job.id}" in dlq(settings, "requeue", entry).stdout
    queue = Queue.from_url(settings.redis_url)
    requeued = await queue.get_job(job.id)
    assert await queue.dead_letters() == []
    await queue.aclose()
    # a live worker may already have started it again: fresh attempts either way
    assert requeued is not None and requeued.state in (State.QUEUED, State.RUNNING)
    assert requeued.attempts <= 1


def dlq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`instruct-lab-bot dlq ...` as an admin runs it, configured by the environment."""
    command = [str(Path(sys.executable).with_name("instruct-lab-bot")), "dlq", *args]
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done


async def test_duplicate_deliveries_and_requests_make_one_job(world: World) -> None:
    async with run_bot(world.settings, workers=0) as bot:
        delivery = str(uuid.uuid4())
        answers = await asyncio.gather(*(world.comment(bot, delivery=delivery) for _ in range(10)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] * 9 + [202]
        for _ in range(3):  # three deliveries of the same command while the job is queued
            assert (await world.comment(bot))[0] == 202
        queue = Queue.from_url(world.settings.redis_url)
        async with asyncio.timeout(30):  # every delivery handled
            while True:
                stats = await queue.stream_stats(EVENTS_STREAM, "dispatchers")
                if not (stats.lag or stats.pending):
                    break
                await asyncio.sleep(0.05)
        jobs = await queue.pr_job_ids(RepoRef("instructlab", "taxonomy").pull(7))
        queued = await queue.redis.xlen(GENERATE_STREAM)
        await queue.aclose()
    assert len(jobs) == 1 and queued == 1
    replies = [c["body"] for c in world.bot_comments()]
    (notice,) = [body for body in replies if "no worker can run `generate` right now" in body]
    replies.remove(notice)  # workers=0: the one job's notice, then one link for the person
    assert len(replies) == 1 and "already queued" in replies[0] and "/runs/" in replies[0]
    assert (
        len(world.gh.check_runs("instructlab", "taxonomy", name="instruct-lab-bot/generate")) == 1
    )


# -- Redis restarts ---------------------------------------------------------------------


async def ready(server: RedisServer) -> None:
    client = aioredis.Redis.from_url(server.url)
    try:
        async with asyncio.timeout(20):
            while True:
                with contextlib.suppress(aioredis.ConnectionError, OSError):
                    if await client.ping():
                        return
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis with AOF fsynced on every write, that the test kills and restarts."""
    server = RedisServer(tmp_path / "aof", appendonly=True, appendfsync="always")
    server.start()
    yield server
    server.stop()


async def test_redis_restart_loses_nothing(
    world: World,
    aof_redis: RedisServer,
    worker_processes: StartWorker,
    taxonomy_remote: TaxonomyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = fast(world, redis_url=aof_redis.url, lease_timeout=600.0)
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "3")
    second = taxonomy_remote(repo="skills")
    publish_pull(world.gh, second)
    async with run_bot(settings, workers=0) as bot:
        worker_processes(settings)  # one worker: one job runs while the other waits
        assert (await world.comment(bot))[0] == 202
        payload = world.payload(
            installation_id=world.gh.installation_id,
            repo="skills",
            login=MAINTAINER,
            comment_id=world.gh.add_comment("instructlab", "skills", 7, f"{MENTION} generate")[
                "id"
            ],
        )
        async with aiohttp.ClientSession() as session:
            status, _ = await post_webhook(session, bot.webhook_url, "issue_comment", payload)
            assert status == 202
            await until(lambda: len(world.record.entries()) == 1, what="first job running")
            aof_redis.kill()
            status, body = await post_webhook(session, bot.webhook_url, "issue_comment", payload)
            assert status == 503 and "redeliver" in body["error"]
            async with session.get(f"{bot.url}/readyz") as response:
                assert response.status == 503
            await asyncio.sleep(1.5)  # the running job's heartbeats and progress fail meanwhile
            await asyncio.to_thread(aof_redis.start)  # same port, same AOF: everything back
        await until(
            lambda: (
                len(world.result_comments()) == 1
                and len(
                    [
                        c
                        for c in world.gh.comments("instructlab", "skills", 7)
                        if c["body"].startswith("### ")
                    ]
                )
                == 1
            ),
            timeout=60,
            what="both results",
        )
    assert len(world.record.entries()) == 2  # each job ran once
    for repo in ("taxonomy", "skills"):
        job = await the_job(settings, repo=repo)
        assert job.state is State.SUCCEEDED and job.attempts == 1


# -- a burst from a separate load process ---------------------------------------------


LOADGEN = Path(__file__).with_name("loadgen.py")


async def test_burst_of_webhooks_enqueues_each_command_once(
    world: World, webhook_example: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    requests: list[dict[str, Any]] = []
    gh = world.gh

    def add(event: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload)
        requests.append(
            {
                "event": event,
                "delivery": str(uuid.uuid4()),
                "body": body,
                "signature": sign(body.encode(), WEBHOOK_SECRET.encode()),
            }
        )

    for number in range(1, 201):  # 200 commands, one per PR
        publish_pull(gh, world.remote, number=1000 + number, head_sha=f"{number:040x}")
        comment = gh.add_comment("instructlab", "taxonomy", 1000 + number, f"{MENTION} generate")
        add(
            "issue_comment",
            world.payload(
                login=MAINTAINER,
                installation_id=gh.installation_id,
                pr_number=1000 + number,
                comment_id=comment["id"],
            ),
        )
    noise = [
        ("pull_request", webhook_example("pull_request", "unlabeled")),
        ("pull_request", webhook_example("pull_request", "ready_for_review")),
        ("check_suite", webhook_example("check_suite", "completed")),
        ("check_run", webhook_example("check_run", "completed")),
        ("issue_comment", webhook_example("issue_comment", "created")),  # a plain issue
        ("issue_comment", world.payload("thanks, looks good")),
        ("issue_comment", {**world.payload(), "action": "edited"}),
        ("ping", webhook_example("ping")),
    ]
    for number in range(800):
        event, payload = noise[number % len(noise)]
        add(event, payload)
    random_order = sorted(requests, key=lambda r: r["delivery"])
    plan = tmp_path / "burst.jsonl"
    plan.write_text("".join(json.dumps(r) + "\n" for r in random_order))

    async with run_bot(world.settings, workers=0) as bot:
        # A live generate worker that takes nothing: the jobs stay on the stream to be
        # counted, and none is answered "no worker can run" (not what this test is about).
        idle = {"name": "idle-worker", "capabilities": "generate"}
        await bot.app[QUEUE].register_worker("idle-worker", idle, ttl=600)
        load = await asyncio.create_subprocess_exec(
            sys.executable,
            str(LOADGEN),
            bot.webhook_url,
            str(plan),
            "--concurrency",
            "32",
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await asyncio.wait_for(load.communicate(), 120)
        statuses: dict[str, int] = json.loads(output)
        queue = Queue.from_url(world.settings.redis_url)
        try:
            events = await queue.redis.xlen(EVENTS_STREAM)

            async def jobs() -> int:
                return int(await queue.redis.xlen(GENERATE_STREAM))

            async with asyncio.timeout(120):
                while await jobs() < 200:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            job_entries: Any = await queue.redis.xrange(GENERATE_STREAM)
        finally:
            await queue.aclose()
    print(
        f"\nburst of {len(requests)}: {statuses}, events stored {events}, jobs {len(job_entries)}"
    )
    assert not [s for s in statuses if s.startswith("5")], statuses
    assert sum(statuses.values()) == 1000
    assert statuses.get("202", 0) == 1000 - statuses.get("200", 0)
    assert events == 200
    assert len({fields["job"] for _id, fields in job_entries}) == len(job_entries) == 200
