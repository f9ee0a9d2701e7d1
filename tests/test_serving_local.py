"""The `local` serving backend: the server side and a serve worker agreeing through a real
Redis, with real OpenAI-compatible servers (the stand-in teacher) started on demand, stopped
when idle (the idle clock is the test's), restarted on the next request, at most N at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
import redis.asyncio as aioredis

from instruct_lab_bot.adapters.redis.serving import ServeRecords
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.serve_record import ANSWERING, Actual, new_desired, served
from instruct_lab_bot.core.serving import ModelRef, ServedModel, ServeState
from instruct_lab_bot.services.serving.backend import ServingError
from instruct_lab_bot.services.serving.local import LocalBackend
from instruct_lab_bot.services.serving.local_worker import (
    LocalLimits,
    LocalServeWorker,
    ModelServer,
)
from instruct_lab_bot.services.serving.sweep import Why, sweep, why_remove
from testkit.fake_teacher import Teacher

REPO = RepoRef("instructlab", "taxonomy")
PULL = REPO.pull(7)
BOUND = 30.0  # the most any condition below may take (it takes milliseconds)


def model(pull: PullRequestRef = PULL, job: str = "train-1") -> ModelRef:
    return ModelRef(pull, job, f"jobs/{job}/model/", f"/store/jobs/{job}/model/")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class TeacherServer:
    teacher: Teacher

    @property
    def url(self) -> str:
        return self.teacher.url

    async def stop(self) -> None:
        await asyncio.to_thread(self.teacher.__exit__)


@dataclass
class TeacherLauncher:
    """Starts a real OpenAI-compatible server per model (its model id: the train job)."""

    fail: str = ""
    live: dict[str, TeacherServer] = field(default_factory=dict)

    async def __call__(self, model: ModelRef, ready_within: float) -> ModelServer:
        if self.fail:
            raise ServingError(self.fail)
        server = TeacherServer(Teacher(model=model.train_job).__enter__())
        self.live[server.url] = server
        return server


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(BOUND):
        while not await check():
            await asyncio.sleep(0.01)


async def models_at(url: str) -> list[str] | None:
    try:
        async with aiohttp.ClientSession() as session, session.get(url + "/models") as answer:
            return [m["id"] for m in (await answer.json())["data"]]
    except aiohttp.ClientConnectionError:
        return None


@dataclass
class World:
    backend: LocalBackend
    worker: LocalServeWorker
    launcher: TeacherLauncher
    clock: Clock
    records: ServeRecords

    async def state(self, pull: PullRequestRef = PULL) -> ServeState | None:
        found = await self.backend.status(pull)
        return found.state if found else None


@pytest.fixture
async def world(redis_url: str) -> AsyncIterator[World]:
    client = aioredis.Redis.from_url(redis_url)
    records = ServeRecords(client)
    clock = Clock()
    launcher = TeacherLauncher()
    worker = LocalServeWorker(records, launcher, LocalLimits(600, 2, 30), name="w1", clock=clock)
    worker.check_every = 0.01
    backend = LocalBackend(records, clock=clock, poll_interval=0.005)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    yield World(backend, worker, launcher, clock, records)
    stop.set()
    await task
    await client.aclose()


async def test_started_on_demand_and_answering(world: World) -> None:
    served = await world.backend.deploy(model())
    assert served.state is ServeState.SCALED_TO_ZERO and not world.launcher.live
    url = await world.backend.ready_url(PULL, within=BOUND)
    assert await models_at(url) == ["train-1"]
    assert await world.state() is ServeState.READY
    assert await world.backend.ready_url(PULL, within=BOUND) == url
    assert world.worker.starts == 1


async def test_idle_stop_then_restart_on_the_next_request(world: World) -> None:
    await world.backend.deploy(model())
    url = await world.backend.ready_url(PULL, within=BOUND)
    world.clock.now += 601  # no request for longer than the idle period
    await eventually(lambda: _is(world.state(), ServeState.SCALED_TO_ZERO))
    assert await models_at(url) is None  # the server is gone
    again = await world.backend.ready_url(PULL, within=BOUND)
    assert await models_at(again) == ["train-1"]
    assert world.worker.starts == 2


async def test_at_most_n_running_least_recently_used_stops(world: World) -> None:
    world.worker.max_models = 1
    other = REPO.pull(8)
    await world.backend.deploy(model())
    await world.backend.deploy(model(other, "train-8"))
    first = await world.backend.ready_url(PULL, within=BOUND)
    world.clock.now += 1
    second = await world.backend.ready_url(other, within=BOUND)
    assert await models_at(second) == ["train-8"]
    assert await models_at(first) is None
    assert await world.state(PULL) is ServeState.SCALED_TO_ZERO
    assert await world.state(other) is ServeState.READY


async def test_a_new_train_replaces_the_running_model(world: World) -> None:
    await world.backend.deploy(model())
    old = await world.backend.ready_url(PULL, within=BOUND)
    served = await world.backend.deploy(model(job="train-2"))
    assert served.train_job == "train-2" and served.state is not ServeState.READY
    new = await world.backend.ready_url(PULL, within=BOUND)
    assert await models_at(new) == ["train-2"]
    await eventually(lambda: _gone(old))


async def test_remove_stops_the_server(world: World) -> None:
    await world.backend.deploy(model())
    url = await world.backend.ready_url(PULL, within=BOUND)
    assert await world.backend.remove(PULL)
    await eventually(lambda: _gone(url))
    assert await world.backend.status(PULL) is None
    assert not await world.backend.remove(PULL)
    with pytest.raises(ServingError) as caught:
        await world.backend.ready_url(PULL, within=BOUND)
    assert not caught.value.not_your_fault


async def test_a_server_that_fails_to_start_is_reported_then_retried(world: World) -> None:
    world.launcher.fail = "`ilab model serve` stopped before it answered (exit code 0)"
    await world.backend.deploy(model())
    with pytest.raises(ServingError, match="exit code 0"):
        await world.backend.ready_url(PULL, within=BOUND)
    assert await world.state() is ServeState.FAILED
    world.launcher.fail = ""
    url = await world.backend.ready_url(PULL, within=BOUND)
    assert await models_at(url) == ["train-1"]


async def test_two_workers_run_a_model_once(world: World) -> None:
    second = LocalServeWorker(
        world.records,
        world.launcher,
        LocalLimits(600, 2, 30),
        name="w2",
        clock=world.clock,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(second.run(stop))
    try:
        await world.backend.deploy(model())
        for _ in range(3):
            await world.backend.ready_url(PULL, within=BOUND)
            await world.records.wake("instructlab/taxonomy#7")
        assert world.worker.starts + second.starts == 1
    finally:
        stop.set()
        await task


async def test_a_dead_workers_model_starts_on_a_live_one(world: World) -> None:
    """The worker running a model dies (its server gone, its lease lapsed, its report left
    behind): the next request starts the model again instead of answering a dead URL."""
    await world.backend.deploy(model())
    assert await models_at(await world.backend.ready_url(PULL, within=BOUND)) == ["train-1"]
    running = world.worker.running.pop("instructlab/taxonomy#7")  # it dies: no clean-up
    await running.server.stop()
    await world.records.redis.delete("{ilab-bot}:serve:owner:instructlab/taxonomy#7")
    assert await world.state() is ServeState.SCALED_TO_ZERO
    again = await world.backend.ready_url(PULL, within=BOUND)
    assert await models_at(again) == ["train-1"]
    assert world.worker.starts == 2  # a new server (the port may be the dead one's again)


def test_an_answering_report_older_than_a_request_is_not_ready() -> None:
    """A dead worker's `answering at URL` is left behind; once a request wanted a start after
    it, the model is deploying until a live worker answers that request, never ready at the
    dead URL (a worker claims a model a moment before it reports `starting`)."""
    desired = new_desired(model(), now=1.0, cold_start=0.0).with_(wanted_at=5.0)
    stale = Actual("train-1", ANSWERING, at=2.0, url="http://dead:1/v1", for_wanted=3.0)
    assert served(desired, stale).state is ServeState.DEPLOYING
    answered = served(desired, replace(stale, url="http://live:2/v1", for_wanted=5.0))
    assert (answered.state, answered.url) == (ServeState.READY, "http://live:2/v1")


async def test_sweep_removes_a_closed_prs_model(world: World) -> None:
    await world.backend.deploy(model())
    url = await world.backend.ready_url(PULL, within=BOUND)

    async def is_open(pull: PullRequestRef) -> bool:
        return False

    [removed] = await sweep(
        world.backend, is_open, now=world.clock.now, ttl=3600, ready_timeout=600
    )
    assert removed.why is Why.PR_CLOSED
    await eventually(lambda: _gone(url))


async def _is(state: Awaitable[ServeState | None], wanted: ServeState) -> bool:
    return await state is wanted


async def _gone(url: str) -> bool:
    return await models_at(url) is None


def test_a_model_woken_long_after_its_deploy_is_judged_from_the_wake() -> None:
    woken = ServedModel(PULL, "n", "t", ServeState.DEPLOYING, created_at=0, last_request_at=10_000)
    assert why_remove(woken, is_open=True, now=10_100, ttl=86_400, ready_timeout=900) is None
    late = why_remove(woken, is_open=True, now=11_000, ttl=86_400, ready_timeout=900)
    assert late is Why.NEVER_READY
