"""End to end, every part real but the cluster and the GPU: a trained model as a train job
leaves it (job record + `model/model.json` in the store) → `@bot serve` on the PR (GitHub
emulator, real Redis, the server's dispatcher) → the `kserve` backend creates a scale-to-zero
InferenceService in the Kubernetes API emulator (checked against KServe's schemas; its
controller reports the stand-in model server as `status.url`) → the chat page answers in headless
Chromium, streamed token by token through the bot's proxy → the PR is closed → the
InferenceService is deleted and the link answers 410. The same with the `local` backend: a serve
worker starts the model server on the first `chat`, and stops it when the PR is closed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from instruct_lab_bot.adapters.kubernetes import open_kube
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.serving import isvc_options, serve_records
from instruct_lab_bot.services.serving.backend import ServingBackend
from instruct_lab_bot.services.serving.chat_app import ServingFactory
from instruct_lab_bot.services.serving.kserve import KServeBackend
from instruct_lab_bot.services.serving.local import LocalBackend
from instruct_lab_bot.services.serving.local_worker import LocalLimits, LocalServeWorker
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
from tests.test_serve_commands import LINK, seed_train_job
from tests.test_serving_local import TeacherLauncher, models_at
from tests.test_status_browser import (  # noqa: F401 - the session's browser fixture
    browser,
    open_page,
    screenshot,
)

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "models"


def kserve_factory(kubeconfig: Path) -> ServingFactory:
    """The real `kserve` backend on the emulator (polling it fast: the emulator's controller
    answers in milliseconds)."""

    @contextlib.asynccontextmanager
    async def factory(settings: Settings) -> AsyncIterator[ServingBackend | None]:
        backend = KServeBackend(
            await open_kube(str(kubeconfig)), isvc_options(settings), poll_interval=0.01
        )
        try:
            yield backend
        finally:
            await backend.aclose()

    return factory


@pytest.fixture
async def emulator_and_model(tmp_path: Path) -> AsyncIterator[tuple[K8sEmulator, Teacher]]:
    with Teacher(model="pr-model") as teacher:
        emulator = K8sEmulator(ensure_kserve_schema(ROOT / ".cache"), model_url=teacher.url)
        await emulator.start()
        try:
            yield emulator, teacher
        finally:
            await emulator.close()


async def test_train_serve_chat_in_chromium_then_close(
    world: World,
    browser: Browser,  # noqa: F811
    emulator_and_model: tuple[K8sEmulator, Teacher],
    tmp_path: Path,
    webhook_example: Callable[..., Any],
) -> None:
    emulator, teacher = emulator_and_model
    teacher.state.pause_stream = threading.Event()
    settings = replace(world.settings, serve_backend="kserve", serve_namespace=NAMESPACE)
    train = await seed_train_job(world, tmp_path / "artifacts")
    kubeconfig = emulator.kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
    async with run_bot(settings, workers=0, serving=kserve_factory(kubeconfig)) as bot:
        await comment_as(world, bot, "maintainer-mo", f"{MENTION} serve")
        (reply,) = await wait_replies(world, 1)
        link = LINK.search(reply)
        assert link is not None, reply
        ((namespace, name),) = emulator.isvcs  # one InferenceService, valid against KServe's
        isvc = emulator.isvcs[(namespace, name)].obj
        assert namespace == NAMESPACE and train.id in str(isvc)
        assert isvc["spec"]["predictor"]["minReplicas"] == 0  # scale to zero

        page, problems = await open_page(browser)
        response = await page.goto(link["url"])
        assert response is not None and response.status == 200
        assert train.id in await page.locator("header").inner_text()
        await page.locator("#seeds button").first.click()
        answer = page.locator(".msg.assistant").last
        await answer.filter(has_text="The").wait_for()  # the first token, alone
        assert (await answer.inner_text()).strip() == "The"
        teacher.state.pause_stream.set()
        await page.locator(
            ".msg.assistant", has_text="The stand-in teacher's answer to:"
        ).wait_for()
        await screenshot(page, tmp_path, "chat-e2e-desktop", full_page=False)

        world.gh.update_pull(OWNER, REPO, PR, state="closed")
        closed = pr_event(world, "closed", webhook_example("pull_request", "closed"),
                          state="closed")  # fmt: skip
        assert await event(bot, "pull_request", closed) == 202
        await settled(world)
        assert emulator.isvcs == {} and name in emulator.deleted
        gone = await page.goto(link["url"])
        assert gone is not None and gone.status == 410
        assert "closed or merged" in await page.locator("body").inner_text()
        assert [p for p in problems if "410" not in p] == []
        await page.context.close()


@contextlib.asynccontextmanager
async def local_serving(settings: Settings) -> AsyncIterator[TeacherLauncher]:
    """The `local` backend's serve worker beside the bot (its servers: stand-in models)."""
    records = serve_records(settings)
    launcher = TeacherLauncher()
    worker = LocalServeWorker(records, launcher, LocalLimits(600, 2, 30), name="serve-1")
    worker.check_every = 0.01
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield launcher
    finally:
        stop.set()
        await task
        await records.redis.aclose()


def local_factory(
    settings: Settings,
) -> contextlib.AbstractAsyncContextManager[ServingBackend | None]:
    """The real `local` backend (`open_serving_backend`), polling fast."""

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[ServingBackend | None]:
        records = serve_records(settings)
        try:
            yield LocalBackend(records, poll_interval=0.01)
        finally:
            await records.redis.aclose()

    return opened()


async def test_local_backend_serve_chat_then_close_stops_the_server(
    world: World, tmp_path: Path, webhook_example: Callable[..., Any]
) -> None:
    settings = replace(world.settings, serve_backend="local")
    train = await seed_train_job(world, tmp_path / "artifacts")
    async with local_serving(settings) as launcher, run_bot(
        settings, workers=0, serving=local_factory
    ) as bot:  # fmt: skip
        after = await comment_as(world, bot, "maintainer-mo", f"{MENTION} chat Hello there")
        (answer,) = await wait_replies(world, 1, after)
        assert "answer to: Hello there" in answer and train.id in answer
        (url,) = launcher.live  # the serve worker started one model server, on demand
        assert await models_at(url) == [train.id]

        world.gh.update_pull(OWNER, REPO, PR, state="closed")
        closed = pr_event(world, "closed", webhook_example("pull_request", "closed"),
                          state="closed")  # fmt: skip
        assert await event(bot, "pull_request", closed) == 202
        await settled(world)
        async with asyncio.timeout(30):  # the serve worker stops the PR's server
            while await models_at(url) is not None:
                await asyncio.sleep(0.02)
