"""Worker pools through a real redis-server: each capability (job kind) has its own jobs
stream and group, a worker reads only its capabilities' streams, a busy pool never holds up
another, the registry answers which pools have a live worker, dead letters go back to their
pool, and the jobs stream from before pools is migrated once, without loss or duplicates."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from instruct_lab_bot.adapters.redis.keys import (
    LEGACY_JOBS_STREAM,
    WORKER_GROUP,
    job_key,
    jobs_stream,
)
from instruct_lab_bot.adapters.redis.migrate import migrate_jobs_stream
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import StreamEntry
from instruct_lab_bot.cli import main
from instruct_lab_bot.core.command_table import CAPABILITIES
from instruct_lab_bot.core.job_view import Overview, PoolView
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.pages.status_html import render_overview
from instruct_lab_bot.core.settings import SettingsError, parse_settings
from instruct_lab_bot.services.metrics import WorkerMetrics
from instruct_lab_bot.services.worker.consumer import Consumer
from instruct_lab_bot.services.worker.deps import WorkerDeps
from tests.fixtures.bot import make_settings

GENERATE = jobs_stream("generate")
PRECHECK = jobs_stream("precheck")


def make_job(job_id: str, command: str = "generate") -> Job:
    """A job of its own PR (one live job per PR head and command)."""
    return Job(
        id=job_id,
        command=command,
        installation_id=1,
        owner="o",
        repo="r",
        pr_number=sum(map(ord, job_id)),
        requester="alice",
        head_sha="c" * 40,
    )


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[Queue]:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()  # as a dispatcher does: every pool's stream and group
    yield queue
    await queue.aclose()


async def queued(queue: Queue, job: Job) -> Job:
    await queue.create_job(job)
    stream_id = await queue.enqueue_job(job)
    await queue.update_job(job.id, stream_id=stream_id)
    return job.evolve(stream_id=stream_id)


@dataclasses.dataclass
class Pool:
    """A running `Consumer` with `capabilities` whose job body waits for `release`."""

    consumer: Consumer
    stop: asyncio.Event
    task: asyncio.Task[None]
    taken: list[StreamEntry]
    took: asyncio.Condition
    release: asyncio.Event

    async def wait_for(self, count: int) -> None:
        async with self.took:
            await self.took.wait_for(lambda: len(self.taken) >= count)

    def jobs(self) -> list[str]:
        return [entry.fields["job"] for entry in self.taken]

    async def close(self) -> None:
        self.release.set()
        self.stop.set()
        await self.task


def start_pool(queue: Queue, name: str, capabilities: tuple[str, ...]) -> Pool:
    settings = make_settings(worker_capabilities=capabilities, heartbeat_interval=1.0)
    deps = WorkerDeps(settings, queue, cast(Any, None), cast(Any, None), WorkerMetrics())
    taken: list[StreamEntry] = []
    took = asyncio.Condition()
    release = asyncio.Event()

    async def handle(entry: StreamEntry, takeover: bool) -> None:
        async with took:
            taken.append(entry)
            took.notify_all()
        await release.wait()
        await queue.ack(entry, WORKER_GROUP)

    consumer = Consumer(deps, name, 1, handle)
    stop = asyncio.Event()
    return Pool(consumer, stop, asyncio.create_task(consumer.run(stop)), taken, took, release)


async def test_each_capability_has_its_own_stream(queue: Queue) -> None:
    for capability in CAPABILITIES:
        groups: Any = await queue.redis.xinfo_groups(jobs_stream(capability))
        assert [g["name"] for g in groups] == [WORKER_GROUP]
    await queued(queue, make_job("g1"))
    await queued(queue, make_job("p1", "precheck"))
    assert [await queue.redis.xlen(s) for s in (GENERATE, PRECHECK)] == [1, 1]
    stored = await queue.get_job("p1")
    assert stored is not None and stored.stream_id
    assert await queue.redis.xrange(PRECHECK, stored.stream_id, stored.stream_id)
    assert not await queue.redis.exists(LEGACY_JOBS_STREAM)


async def test_a_busy_pool_never_holds_up_another(queue: Queue) -> None:
    """A precheck-only worker busy with a long job; a generate-only worker still takes every
    generate job, and never a precheck one (the second precheck waits for its own pool)."""
    slow = start_pool(queue, "precheck-worker", ("precheck",))
    fast = start_pool(queue, "generate-worker", ("generate",))
    try:
        await queued(queue, make_job("p1", "precheck"))
        await slow.wait_for(1)
        await queued(queue, make_job("p2", "precheck"))
        for number in range(3):
            await queued(queue, make_job(f"g{number}"))
        fast.release.set()  # generate jobs finish at once; the precheck one does not
        await fast.wait_for(3)
        assert sorted(fast.jobs()) == ["g0", "g1", "g2"]
        assert slow.jobs() == ["p1"]
        stats = await queue.stream_stats(PRECHECK, WORKER_GROUP)
        assert (stats.pending, stats.lag) == (1, 1)  # p1 running, p2 waiting
        slow.release.set()
        await slow.wait_for(2)
        assert slow.jobs() == ["p1", "p2"]
    finally:
        await slow.close()
        await fast.close()


async def test_one_worker_reads_all_its_pools_in_turn(queue: Queue) -> None:
    both = start_pool(queue, "both", ("generate", "precheck"))
    both.release.set()
    try:
        for number in range(3):
            await queued(queue, make_job(f"g{number}"))
            await queued(queue, make_job(f"p{number}", "precheck"))
        await both.wait_for(6)
        assert sorted(both.jobs()) == ["g0", "g1", "g2", "p0", "p1", "p2"]
    finally:
        await both.close()


async def test_the_registry_knows_which_pools_have_a_live_worker(queue: Queue) -> None:
    assert await queue.live_capabilities() == dict.fromkeys(CAPABILITIES, 0)
    await queue.register_worker("w1", {"name": "w1", "capabilities": "precheck"}, ttl=60)
    await queue.register_worker("w2", {"name": "w2", "capabilities": "generate,precheck"}, 60)
    live = await queue.live_capabilities()
    assert (live["generate"], live["precheck"]) == (1, 2)
    await queue.register_worker("old", {"name": "old"}, ttl=60)  # before pools: every one
    assert all(count >= 1 for count in (await queue.live_capabilities()).values())
    await queue.unregister_worker("old")
    await queue.unregister_worker("w2")
    assert (await queue.live_capabilities())["generate"] == 0


async def test_a_read_over_several_pools_takes_one_entry(queue: Queue) -> None:
    """One XREADGROUP over two streams returns an entry of each (`count` is per stream), so
    `read_one` asks each in turn and takes the first it finds; the other stays for any worker."""
    await queued(queue, make_job("g1"))
    await queued(queue, make_job("p1", "precheck"))
    both = await queue.read([GENERATE, PRECHECK], WORKER_GROUP, "w0", count=1, block_ms=None)
    assert sorted(e.fields["job"] for e in both) == ["g1", "p1"]  # what `read_one` avoids
    await queued(queue, make_job("g2"))
    await queued(queue, make_job("p2", "precheck"))
    entry = await queue.read_one([PRECHECK, GENERATE], WORKER_GROUP, "w1", block_ms=100)
    assert entry is not None and entry.fields["job"] == "p2"
    assert (await queue.stream_stats(GENERATE, WORKER_GROUP)).lag == 1
    assert await queue.read_one([PRECHECK], WORKER_GROUP, "w1", block_ms=10) is None
    entry = await queue.read_one([PRECHECK, GENERATE], WORKER_GROUP, "w2", block_ms=100)
    assert entry is not None and entry.fields["job"] == "g2"


async def test_release_of_an_extra_entry_requeues_it_once(queue: Queue) -> None:
    await queued(queue, make_job("g1"))
    (taken,) = await queue.read(GENERATE, WORKER_GROUP, "w1", block_ms=None)
    again = await queue.release_entry(taken, WORKER_GROUP, "w1")
    assert again and await queue.release_entry(taken, WORKER_GROUP, "w1") is None
    stats = await queue.stream_stats(GENERATE, WORKER_GROUP)
    assert (stats.pending, stats.lag) == (0, 1)
    stored = await queue.get_job("g1")
    assert stored is not None and stored.stream_id == again


async def test_a_requeued_dead_letter_goes_back_to_its_pool(queue: Queue) -> None:
    await queued(queue, make_job("p1", "precheck"))
    (entry,) = await queue.read(PRECHECK, WORKER_GROUP, "w1", block_ms=None)
    job = await queue.get_job("p1")
    assert job is not None
    assert await queue.dead_letter(entry, job, "kept killing its worker")
    (dead,) = await queue.dead_letters()
    assert await queue.requeue_dead(dead.id) is not None
    assert (await queue.stream_stats(PRECHECK, WORKER_GROUP)).lag == 1
    assert (await queue.stream_stats(GENERATE, WORKER_GROUP)).length == 0


async def legacy_entry(queue: Queue, job: Job) -> str:
    await queue.create_job(job)
    fields = {"v": "1", "job": job.id, "traceparent": ""}
    entry_id = str(await queue.redis.xadd(LEGACY_JOBS_STREAM, cast(Any, fields)))
    await queue.update_job(job.id, stream_id=entry_id)
    return entry_id


async def test_the_jobs_stream_from_before_pools_is_migrated_once(redis_url: str) -> None:
    """What still waits moves to its pool, once, even with several dispatchers at it: a queued
    job, and a running one whose worker's lease lapsed (queued again, for a takeover). A job an
    old worker still runs keeps its entry until that worker ends it; acknowledged entries,
    ended or expired jobs and duplicates are dropped. Then the legacy stream is gone."""
    queue = Queue.from_url(redis_url)
    try:
        await queue.ensure_groups()
        await queue.redis.xgroup_create(LEGACY_JOBS_STREAM, WORKER_GROUP, id="0", mkstream=True)
        await legacy_entry(queue, make_job("done"))
        await legacy_entry(queue, make_job("running", "precheck"))
        await legacy_entry(queue, make_job("stale"))
        await queue.redis.xreadgroup(WORKER_GROUP, "old-worker", {LEGACY_JOBS_STREAM: ">"}, count=3)
        await queue.update_job("done", state="succeeded")
        now = time.time()
        await queue.update_job("running", state="running", worker="old", heartbeat_at=now)
        await queue.update_job("stale", state="running", worker="gone", heartbeat_at=now - 600)
        waiting = await legacy_entry(queue, make_job("waiting"))
        await legacy_entry(queue, make_job("expired"))
        await queue.redis.delete(job_key("expired"))  # its record lapsed: nothing to run
        await legacy_entry(queue, make_job("waiting"))  # a second entry of the same job
        await queue.update_job("waiting", stream_id=waiting)

        dispatchers = [Queue.from_url(redis_url) for _ in range(4)]
        moved = await asyncio.gather(*(d.migrate_jobs(lease=60) for d in dispatchers))
        for dispatcher in dispatchers:
            await dispatcher.aclose()
        assert sum(moved) == 2

        generate: Any = await queue.redis.xrange(GENERATE)
        assert sorted(e[1]["job"] for e in generate) == ["stale", "waiting"]
        assert (await queue.stream_stats(GENERATE, WORKER_GROUP)).lag == 2
        for entry_id, fields in generate:
            stored = await queue.get_job(fields["job"])
            assert stored is not None and stored.state is State.QUEUED
            assert (stored.stream_id, stored.worker) == (entry_id, "")
        held: Any = await queue.redis.xrange(LEGACY_JOBS_STREAM)
        assert [e[1]["job"] for e in held] == ["running"]  # its worker is still at it
        assert await queue.migrate_jobs(lease=60) == 0

        await queue.transition("running", State.SUCCEEDED)  # the old worker ends it
        await queue.redis.xack(LEGACY_JOBS_STREAM, WORKER_GROUP, held[0][0])
        assert await migrate_jobs_stream(queue.redis, WORKER_GROUP, 1000, 60) == 0
        assert not await queue.redis.exists(LEGACY_JOBS_STREAM)
        assert await queue.redis.xlen(PRECHECK) == 0
    finally:
        await queue.aclose()


def test_worker_command_refuses_an_unknown_capability(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["worker", "--capabilities", "generate,gpu"])
    assert exited.value.code == 2
    assert "unknown capability gpu" in capsys.readouterr().err


def test_the_status_page_shows_each_pool_and_a_stranded_one() -> None:
    pools = (PoolView("generate", 0, 1, 0.0, 2), PoolView("precheck", 2, 0, 90.0, 0))
    page = render_overview(Overview(0.0, (), (), (), (), pools=pools))
    assert '<tr class="pool" id="pool-generate" data-stranded="false">' in page
    stranded = page[page.index('id="pool-precheck" data-stranded="true"') :]
    assert "queued; no worker can run `precheck` right now" in stranded[: stranded.index("</tr>")]
    assert pools[1].to_json()["stranded"] is True


def test_the_capabilities_setting() -> None:
    def parse(value: str) -> tuple[str, ...]:
        env = {"ILAB_BOT_WORKER_CAPABILITIES": value}
        return parse_settings(env, require_github=False, require_secret=False).worker_capabilities

    default = parse_settings({}, require_github=False, require_secret=False)
    assert parse("") == CAPABILITIES == default.worker_capabilities
    assert parse("precheck") == ("precheck",)
    with pytest.raises(SettingsError, match=r"WORKER_CAPABILITIES.*unknown capability gpu"):
        parse("gpu")
