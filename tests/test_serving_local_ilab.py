"""The `local` backend end to end on a serve worker: the model fetched from the store and
checked against its manifest, the stand-in's `ilab model serve` in the real sandbox (ready only
when `/v1/models` answers), stopped after the idle period (the test's clock), started again on
the next request without a second download, and no process left afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from instruct_lab_bot.adapters.ilab_serve import ask_model
from instruct_lab_bot.adapters.redis.serving import ServeRecords
from instruct_lab_bot.adapters.storage.local import LocalStore
from instruct_lab_bot.core.ilab import nearest_profile
from instruct_lab_bot.core.ilab.versions import IlabVersion
from instruct_lab_bot.core.model_manifest import MANIFEST_NAME, ModelFile, ModelManifest
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.serving import ModelRef, ServeState
from instruct_lab_bot.services.serving.backend import ServingError
from instruct_lab_bot.services.serving.ilab_launcher import IlabLauncher
from instruct_lab_bot.services.serving.local import LocalBackend
from instruct_lab_bot.services.serving.local_worker import LocalLimits, LocalServeWorker
from testkit.ilab_model import write_hf_model
from testkit.ilab_profiles import DEFAULT_VERSION as STANDIN_VERSION
from tests.fixtures.bot import make_settings, processes_with_env

PULL = RepoRef("instructlab", "taxonomy").pull(5)
PREFIX = "instructlab/taxonomy/pr-5/sha/train-5/model/"
BOUND = 120.0


class Clock:
    now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(LocalStore):
    gets = 0

    async def get_file(self, key: str, path: Path) -> int:
        self.gets += 1
        return await super().get_file(key, path)


@pytest.fixture
def tag(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    value = uuid.uuid4().hex
    monkeypatch.setenv("ILAB_STANDIN_TAG", value)
    yield value
    assert processes_with_env(f"ILAB_STANDIN_TAG={value}") == []


async def _upload(store: LocalStore, source: Path) -> None:
    files = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        data = path.read_bytes()
        name = path.relative_to(source).as_posix()
        await store.put_bytes(PREFIX + name, data, "application/octet-stream")
        files.append(ModelFile(name, len(data), hashlib.sha256(data).hexdigest()))
    manifest = ModelManifest("train-5", "gen-5", "base", STANDIN_VERSION, tuple(files))
    await store.put_bytes(PREFIX + MANIFEST_NAME, manifest.to_json().encode(), "application/json")


@pytest.fixture
async def world(
    redis_url: str, ilab_standin: str, tmp_path: Path, tag: str
) -> AsyncIterator[tuple[LocalBackend, LocalServeWorker, CountingStore, Clock]]:
    settings = make_settings(ilab_command=(ilab_standin,), work_dir=tmp_path / "work")
    store = CountingStore(tmp_path / "store", "http://127.0.0.1:1", b"k" * 32, 3600)
    write_hf_model(tmp_path / "src", [("What does the PR teach?", "It teaches serving.")])
    await _upload(store, tmp_path / "src")
    major, minor, patch = (int(n) for n in STANDIN_VERSION.split("."))
    profile = nearest_profile(IlabVersion(major, minor, patch))
    client = aioredis.Redis.from_url(redis_url)
    records = ServeRecords(client)
    clock = Clock()
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        launcher = IlabLauncher(settings, store, profile, session)
        worker = LocalServeWorker(records, launcher, LocalLimits(60, 1, 60), name="w", clock=clock)
        worker.check_every = 0.02
        task = asyncio.create_task(worker.run(stop))
        try:
            yield LocalBackend(records, clock=clock, poll_interval=0.01), worker, store, clock
        finally:
            stop.set()
            await task
    await client.aclose()


async def _ask(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/v1/models") as answer:
            model_id = (await answer.json())["data"][0]["id"]
        return await ask_model(session, url, model_id, "What does the PR teach?", within=30)


async def _scaled_to_zero(backend: LocalBackend) -> bool:
    status = await backend.status(PULL)
    return status is not None and status.state is ServeState.SCALED_TO_ZERO


async def _down(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url + "/v1/models"):
            return False
    except aiohttp.ClientConnectionError:
        return True


async def test_serve_idle_stop_and_restart(
    world: tuple[LocalBackend, LocalServeWorker, CountingStore, Clock],
) -> None:
    backend, worker, store, clock = world
    await backend.deploy(ModelRef(PULL, "train-5", PREFIX, f"file:///{PREFIX}"))
    url = await backend.ready_url(PULL, within=BOUND)
    assert await _ask(url) == "It teaches serving."
    downloads = store.gets
    assert downloads >= 2  # every file of the model
    clock.now += 61
    async with asyncio.timeout(BOUND):
        while not await _scaled_to_zero(backend):
            await asyncio.sleep(0.02)
    assert await _down(url)
    again = await backend.ready_url(PULL, within=BOUND)
    assert await _ask(again) == "It teaches serving."
    assert store.gets == downloads and worker.starts == 2  # the files were kept


async def test_a_model_that_does_not_match_its_manifest_fails_clearly(
    world: tuple[LocalBackend, LocalServeWorker, CountingStore, Clock],
) -> None:
    backend, _worker, store, _clock = world
    await store.put_bytes(PREFIX + "config.json", b"{}", "application/json")
    await backend.deploy(ModelRef(PULL, "train-5", PREFIX, ""))
    with pytest.raises(ServingError, match="files are not usable"):
        await backend.ready_url(PULL, within=BOUND)
