"""Real Redis topologies started by the test: a Sentinel failover with jobs in flight, and the
bot's whole path on a 3-primary Cluster with every Lua script run there.

Waits are on events and conditions (`+switch-master`, `INFO replication`, the emulator's
comments), never on sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from importlib import resources
from pathlib import Path

import aiohttp
import pytest

from instruct_lab_bot.adapters.redis.keys import (
    HASH_TAG,
    LEGACY_JOBS_STREAM,
    PREFIX,
    WORKER_GROUP,
    jobs_stream,
)
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.redelivery import RedeliveryLedger
from instruct_lab_bot.adapters.redis.scripts import source
from instruct_lab_bot.adapters.redis.write_budget import WriteBudget
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.reply_limits import ReplyLimits
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.doctor import check_redis
from testkit.harness import run_bot
from testkit.redis_topologies import (
    ClusterTopology,
    SentinelTopology,
    client,
    cluster_topology,
    sentinel_topology,
)
from tests.fixtures.bot import post_webhook
from tests.fixtures.taxonomy import TaxonomyFactory
from tests.fixtures.world import MAINTAINER, World, publish_pull

GENERATE_STREAM = jobs_stream("generate")  # the generate pool's jobs stream

REPOS = ("taxonomy", "skills", "knowledge")


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelTopology]:
    with sentinel_topology(tmp_path / "sentinel") as topology:
        yield topology


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterTopology]:
    with cluster_topology(tmp_path / "cluster") as topology:
        yield topology


async def until(predicate: Callable[[], bool], what: str, timeout: float = 90) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def command_payload(world: World, repo: str) -> dict[str, object]:
    seeded = world.gh.add_comment(
        "instructlab", repo, 7, f"@{world.settings.username} generate", user_login=MAINTAINER
    )
    return world.payload(
        f"@{world.settings.username} generate",
        installation_id=world.gh.installation_id,
        repo=repo,
        login=MAINTAINER,
        comment_id=seeded["id"],
    )


def results(world: World, repo: str) -> list[dict[str, object]]:
    comments = world.gh.comments("instructlab", repo, 7)
    return [c for c in comments if c["user"]["type"] == "Bot" and c["body"].startswith("### ")]


async def pr_jobs(settings: Settings, repo: str) -> list[Job]:
    queue = Queue.from_settings(settings)
    try:
        ids = await queue.pr_job_ids(RepoRef("instructlab", repo).pull(7))
        return await queue.get_jobs(ids)
    finally:
        await queue.aclose()


async def preflight_finds_redis(settings: Settings) -> None:
    """The start-up preflight reads the version and persistence of the primary the URL names
    (a Sentinel or Cluster URL, not only `redis://`)."""
    version, persistence = await check_redis(settings)
    assert version.ok and "unreachable" not in persistence.detail, (version, persistence)


async def test_sentinel_failover_mid_run_loses_nothing_and_runs_each_job_once(
    world: World,
    sentinels: SentinelTopology,
    taxonomy_remote: TaxonomyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = replace(
        world.settings,
        redis_url=sentinels.url,
        redis_wait_replicas=1,  # accepted deliveries and finished jobs are on the replica
        redis_wait_timeout=1.0,
        heartbeat_interval=0.5,
        lease_timeout=60.0,  # a failover is not a dead worker: no job may be taken over
        progress_interval=1.0,
    )
    await preflight_finds_redis(settings)  # what `server`/`worker` check before they start
    for repo in REPOS[1:]:
        publish_pull(world.gh, taxonomy_remote(repo=repo))
        world.gh.set_permission("instructlab", repo, MAINTAINER, "maintain")
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "4")
    async with run_bot(settings, workers=2) as bot, aiohttp.ClientSession() as session:
        for repo in REPOS[:2]:
            status, _ = await post_webhook(
                session, bot.webhook_url, "issue_comment", command_payload(world, repo)
            )
            assert status == 202
        await until(lambda: len(world.record.entries()) == 2, "both jobs running")

        old, killed_at = sentinels.primary, time.monotonic()
        new = await asyncio.to_thread(sentinels.fail_over)  # kill -9, then +switch-master
        promoted_at = time.monotonic()
        assert new.port != old.port

        # The new primary has no replica yet: a delivery cannot be confirmed durable → 503.
        late, delivery = command_payload(world, REPOS[2]), str(uuid.uuid4())
        hook = bot.webhook_url
        status, body = await post_webhook(session, hook, "issue_comment", late, delivery=delivery)
        assert status == 503 and "redeliver" in body["error"]
        await asyncio.to_thread(sentinels.restart_old_primary, old)  # rejoins as a replica
        status, _ = await post_webhook(session, hook, "issue_comment", late, delivery=delivery)
        assert status in (200, 202)  # GitHub's redelivery: stored once

        await until(lambda: all(len(results(world, r)) >= 1 for r in REPOS), "three results")
    print(
        f"\nfailover: kill -9 → new primary {promoted_at - killed_at:.2f}s; "
        f"→ all results posted {time.monotonic() - killed_at:.2f}s"
    )
    for repo in REPOS:
        assert len(results(world, repo)) == 1, repo
        (job,) = await pr_jobs(settings, repo)
        assert job.state is State.SUCCEEDED and job.attempts == 1, (repo, job)
    assert len(world.record.entries()) == 3  # each job ran once: none re-run after the failover
    runs = world.gh.check_runs("instructlab", "taxonomy", head_sha=world.remote.head_sha)
    assert [r["conclusion"] for r in runs if r["name"].endswith("/generate")] == ["success"]


def sha1(text: str) -> str:
    """How Redis names a script in its cache."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def script_names() -> list[str]:
    """Every script in `lua/` run on its own (libraries are only included in others)."""
    folder = resources.files("instruct_lab_bot.adapters.redis").joinpath("lua")
    names = sorted(p.name.removesuffix(".lua") for p in folder.iterdir() if p.name.endswith(".lua"))
    texts = "\n".join(folder.joinpath(f"{n}.lua").read_text() for n in names)
    included = set(re.findall(r"^-- include: (\w+)$", texts, re.MULTILINE))
    return [n for n in names if n not in included]


async def run_the_other_scripts(queue: Queue) -> None:
    """The scripts a successful `generate` does not need, through the bot's own calls."""
    job = Job.from_fields(
        {
            **(await queue.get_jobs(await queue.recent_job_ids()))[0].to_fields(),
            "id": "cluster-extra",
            "state": "queued",
            "head_sha": "e" * 40,
            "attempts": "0",
        }
    )
    assert (await queue.create_job(job)).status == "created"
    await queue.enqueue_job(job)
    (entry,) = await queue.read(GENERATE_STREAM, WORKER_GROUP, "w1", block_ms=1000)
    assert (await queue.start_job(job.id, "w1")).ok
    assert await queue.heartbeat(entry, job.id, "w1") == "ok"
    assert await queue.renew_claims(GENERATE_STREAM, WORKER_GROUP, "w1", [entry.id]) == [entry.id]
    assert await queue.hand_back(entry, job, "w1")
    (entry,) = await queue.read(GENERATE_STREAM, WORKER_GROUP, "w1", block_ms=1000)
    assert await queue.dead_letter(entry, job, "gave up")
    (dead,) = await queue.dead_letters()
    assert (await queue.requeue_dead(dead.id)) is not None
    (entry,) = await queue.read(GENERATE_STREAM, WORKER_GROUP, "w1", block_ms=1000)
    assert await queue.release_entry(entry, WORKER_GROUP, "w1")
    assert (await queue.transition(job.id, State.CANCELLED)).ok
    # A jobs stream from before worker pools: what it holds moves (here: is dropped) in one slot.
    await queue.redis.xgroup_create(LEGACY_JOBS_STREAM, WORKER_GROUP, id="0", mkstream=True)
    await queue.redis.xadd(LEGACY_JOBS_STREAM, {"v": "1", "job": job.id, "traceparent": ""})
    assert await queue.migrate_jobs(60.0) == 0
    assert not await queue.redis.exists(LEGACY_JOBS_STREAM)
    ledger = RedeliveryLedger(queue.redis)
    owner = await ledger.lock(5.0)
    assert owner is not None
    await ledger.unlock(owner)
    await WriteBudget(queue.redis).pause(1, 1.0)
    pull = RepoRef("instructlab", "taxonomy").pull(7)
    assert await queue.take_reply(ReplyLimits(), "someone", pull) is None


async def test_cluster_runs_the_whole_path_and_every_script_in_one_slot(
    world: World, cluster: ClusterTopology
) -> None:
    settings = replace(world.settings, redis_url=cluster.url)
    await preflight_finds_redis(settings)
    async with run_bot(settings) as bot:
        assert (await world.comment(bot, f"@{settings.username} generate"))[0] == 202
        comment = await world.result_comment(timeout=90)
        assert "succeeded" in comment["body"]
    assert world.check_run()["conclusion"] == "success"
    queue = Queue.from_settings(settings)  # the bot stopped: no worker takes this job
    try:
        await run_the_other_scripts(queue)
    finally:
        await queue.aclose()

    holders, loaded = set(), set()
    for node in cluster.nodes:
        with client(node.port) as conn:
            names = list(conn.scan_iter(count=1000))
            if names:
                holders.add(node.port)
            assert all(name.startswith(PREFIX) for name in names), names
            shas = {
                n: hashlib.sha1(source(n).encode(), usedforsecurity=False).hexdigest()
                for n in script_names()
            }
            exists = conn.script_exists(*shas.values())
            loaded |= {n for n, found in zip(shas, exists, strict=True) if found}
    assert len(holders) == 1  # every key in the slot of `{ilab-bot}` on one primary
    with client(cluster.nodes[0].port) as conn:
        slot = conn.execute_command("CLUSTER", "KEYSLOT", HASH_TAG)
        assert int(slot) == int(conn.execute_command("CLUSTER", "KEYSLOT", GENERATE_STREAM))
    assert sorted(loaded) == script_names()
