"""End to end on the `kserve` backend: `serve` on a PR creates its InferenceService in the
Kubernetes API emulator (checked against KServe's schema), `chat` is answered through the
InferenceService's URL (a real OpenAI-compatible server), and closing the PR deletes it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from instruct_lab_bot.adapters.kubernetes import open_kube
from instruct_lab_bot.core import serve_names as names
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.serving import ModelRef
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.serving import isvc_options
from instruct_lab_bot.services.serving.backend import ServingBackend
from instruct_lab_bot.services.serving.kserve import KServeBackend
from testkit.fake_teacher import Teacher
from testkit.harness import run_bot
from testkit.k8s_emulator import K8sEmulator
from testkit.kserve_schema import ensure_kserve_schema
from tests.fixtures.bot import MENTION
from tests.fixtures.world import World
from tests.test_commands_e2e import (
    OWNER,
    PR,
    REPO,
    comment_as,
    event,
    pr_event,
    settled,
    wait_replies,
)
from tests.test_serve_commands import PULL, seed_train_job

REPO_ROOT = Path(__file__).resolve().parent.parent
KServe = Callable[[Settings], contextlib.AbstractAsyncContextManager[ServingBackend]]


@pytest.fixture
async def emulator() -> AsyncIterator[K8sEmulator]:
    """The Kubernetes API emulator with KServe's schema, closed after the test."""
    emulator = K8sEmulator(ensure_kserve_schema(REPO_ROOT / ".cache"))
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.close()


@pytest.fixture
def kserve(emulator: K8sEmulator, tmp_path: Path) -> KServe:
    """The bot's `serving` factory: a KServe backend on the emulator."""
    kubeconfig = emulator.kubeconfig(tmp_path / "kubeconfig")

    @contextlib.asynccontextmanager
    async def backend_for(settings: Settings) -> AsyncIterator[ServingBackend]:
        kube = await open_kube(str(kubeconfig))
        backend = KServeBackend(kube, isvc_options(settings), poll_interval=0.01)
        try:
            yield backend
        finally:
            await backend.aclose()

    return backend_for


async def test_serve_chat_and_close_on_kserve(
    world: World,
    tmp_path: Path,
    webhook_example: Callable[..., Any],
    emulator: K8sEmulator,
    kserve: KServe,
) -> None:
    name = names.served_name(PULL)
    namespace = world.settings.serve_namespace
    with Teacher(model="pr-model") as model_server:
        emulator.model_url = model_server.url
        async with run_bot(world.settings, workers=0, serving=kserve) as bot:
            train = await seed_train_job(world, tmp_path / "artifacts")
            after = await comment_as(world, bot, "maintainer-mo", f"{MENTION} serve")
            (reply,) = await wait_replies(world, 1, after)
            assert f"train job `{train.id}`" in reply
            isvc = emulator.isvcs[(namespace, name)].obj
            assert isvc["metadata"]["annotations"][names.ANNOTATION_TRAIN_JOB] == train.id
            assert isvc["spec"]["predictor"]["minReplicas"] == 0
            assert emulator.refused == []

            after = await comment_as(world, bot, "maintainer-mo", f"{MENTION} chat Hello")
            (answer,) = await wait_replies(world, 1, after)
            assert "answer to: Hello" in answer and train.id in answer

            world.gh.update_pull(OWNER, REPO, PR, state="closed")
            closed = pr_event(world, "closed", webhook_example("pull_request", "closed"),
                              state="closed")  # fmt: skip
            assert await event(bot, "pull_request", closed) == 202
            await settled(world)
            assert emulator.deleted == [name] and emulator.isvcs == {}


async def test_the_server_removes_orphans_at_start(
    world: World, emulator: K8sEmulator, kserve: KServe
) -> None:
    """Models left from before a restart: the closed PR's and the deleted repository's go (asked
    of GitHub), so does one that never became ready (its PR is told why); the open PR's stays."""
    closed = RepoRef(OWNER, REPO).pull(PR + 1)
    stuck = RepoRef(OWNER, REPO).pull(PR + 2)
    gone = RepoRef(OWNER, "deleted-repo").pull(3)
    world.gh.add_pull(OWNER, REPO, closed.number, head_sha="b" * 40, head_ref="old",
                      state="closed")  # fmt: skip
    world.gh.add_pull(OWNER, REPO, stuck.number, head_sha="c" * 40, head_ref="stuck")
    async with kserve(world.settings) as backend:
        for pull in (PULL, closed, gone):
            await backend.deploy(ModelRef(pull, "train-1", "p/model/", "s3://b/p/model/"))
        emulator.faults.never_ready = True
        assert isinstance(backend, KServeBackend)
        backend.clock = lambda: time.time() - 2 * world.settings.serve_ready_timeout
        await backend.deploy(ModelRef(stuck, "train-2", "q/model/", "s3://b/q/model/"))
    async with run_bot(world.settings, workers=0, serving=kserve):
        async with asyncio.timeout(60):
            while len(emulator.deleted) < 3 or not world.gh.comments(OWNER, REPO, stuck.number):
                await asyncio.sleep(0.01)
        removed = sorted(names.served_name(p) for p in (closed, gone, stuck))
        assert sorted(emulator.deleted) == removed
        assert [key[1] for key in emulator.isvcs] == [names.served_name(PULL)]
        [notice] = world.gh.comments(OWNER, REPO, stuck.number)
        assert "did not become ready within 15m 00s" in notice["body"]
        assert world.gh.comments(OWNER, REPO, closed.number) == []
