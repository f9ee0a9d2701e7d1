"""`train` through the real harness: a signed webhook → server → Redis → dispatcher → worker →
GitHub emulator. The gate: no generate on the head, another PR's generate job, one training per
PR at a time."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.model_manifest import ModelManifest
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.settings import Settings
from testkit.harness import run_bot
from testkit.ilab_model import write_hf_model
from tests.fixtures.bot import MENTION, WorkerProcess
from tests.fixtures.world import World

StartWorker = Callable[..., WorkerProcess]


async def download(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


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


T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = 60) -> T:
    """Poll `check` until it returns something (conditions outside the emulator's view)."""
    async with asyncio.timeout(timeout):
        while (found := await check()) is None:
            await asyncio.sleep(0.05)
    return found


async def train_job(queue: Queue) -> Job | None:
    jobs = await queue.get_jobs(await queue.pr_job_ids(PULL))
    return next((j for j in jobs if j.command == "train"), None)


async def done_checkpoint(folder: Path) -> Path | None:
    return next(iter(folder.glob("**/checkpoint.json")), None)


# -- generate → train with the `ilab` stand-in ----------------------------------------------


def train_settings(world: World, tmp_path: Path, **changes: Any) -> Settings:
    """0.26's `full` pipeline on CPU (checkpoints per epoch, resumed by model path), from a
    base model folder the sandbox may read."""
    base = write_hf_model(tmp_path / "base-model")
    world.settings = replace(
        world.settings,
        train_base_model=str(base),
        train_pipeline="full",
        train_device="cpu",
        train_epochs=3,
        progress_interval=0.3,
        sandbox_readable=(*world.settings.sandbox_readable, base),
        **changes,
    )
    return world.settings


def check_run_of(world: World, name: str) -> dict[str, Any]:
    runs = world.gh.check_runs(OWNER, REPO, head_sha=world.remote.head_sha)
    (found,) = [r for r in runs if r["name"] == f"instruct-lab-bot/{name}"]
    return dict(found)


async def train_results(world: World, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        await world.gh.wait_for(lambda: len(world.result_comments()) >= count)
    return world.result_comments()


async def test_generate_then_train_stashes_a_verified_model(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = train_settings(world, tmp_path)
    monkeypatch.setenv("ILAB_STANDIN_TRAIN_STEP_SECONDS", "0.4")
    async with run_bot(settings) as bot:
        assert (await world.comment(bot))[0] == 202
        await train_results(world, 1)
        assert (await world.comment(bot, f"{MENTION} train"))[0] == 202
        _, trained = await train_results(world, 2)
        body = trained["body"]
        rows = re.findall(r"\| \[([^\]]+)\]\((http[^)\s]+)\) \|", body)
        links = {name.replace("\\", ""): url for name, url in rows}  # names are escaped
        manifest_url = re.findall(r"\[`model\.json`\]\((http[^)\s]+)\)", body)[0]
        status, manifest_bytes = await download(manifest_url)
        assert status == 200
        manifest = ModelManifest.from_json(manifest_bytes)
        downloads = {entry.name: await download(links[entry.name]) for entry in manifest.files}
        run = check_run_of(world, "train")
        final = world.gh.check_run_history(run["id"])[-1]["output"]
        picture = await download(final["images"][0]["image_url"])

    # the reply: how to get and run the model, what comes next
    assert "✅ `train` succeeded" in body
    assert "ilab model chat --model ./model" in body and "curl -fSL" in body
    assert f"`{MENTION} test`" in body and "final loss **" in body, body
    # every file downloads with the manifest's size and sha256
    assert {"pytorch_model.bin", "config.json", "pytorch_model.gguf"} <= set(links)
    for entry in manifest.files:
        status, data = downloads[entry.name]
        assert status == 200 and len(data) == entry.size
        assert hashlib.sha256(data).hexdigest() == entry.sha256
    assert manifest.hyperparameters["pipeline"] == "full" and manifest.final_loss is not None
    # the check run: queued → in progress with epoch/step/loss and the loss picture → success
    history = world.gh.check_run_history(run["id"])
    assert history[0]["status"] == "queued"
    progress = [
        h["output"] for h in history[1:-1] if "Epoch" in h.get("output", {}).get("title", "")
    ]
    assert progress, [h.get("output", {}).get("title") for h in history]
    assert any("loss" in p["title"] and p.get("images") for p in progress)
    assert picture[0] == 200 and picture[1].startswith(b"\x89PNG")
    assert run["conclusion"] == "success"
    # the argv: the generate job's data file, the base model, the configured hyperparameters
    (call,) = [e for e in world.record.entries() if e.get("command") == "model train"]
    argv = call["argv"]
    assert argv[argv.index("--model-path") + 1] == settings.train_base_model
    assert Path(argv[argv.index("--data-path") + 1]).name.startswith("skills_train_msgs_")
    assert argv[argv.index("--num-epochs") + 1] == "3"


async def test_kill_9_mid_training_resumes_from_the_last_checkpoint_once(
    world: World, tmp_path: Path, worker_processes: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = train_settings(
        world,
        tmp_path,
        heartbeat_interval=0.5,
        lease_timeout=2.0,
        shutdown_grace=0.5,
        kill_grace=1.0,
    )
    release = world.record.path.parent / "release-training"  # writable in the sandbox
    monkeypatch.setenv("ILAB_STANDIN_TRAIN_HOLD", str(release))
    queue = Queue.from_url(settings.redis_url)
    try:
        async with run_bot(settings, workers=0) as bot:
            first = worker_processes(settings)
            assert (await world.comment(bot))[0] == 202
            await train_results(world, 1)
            assert (await world.comment(bot, f"{MENTION} train"))[0] == 202
            job = await until(lambda: train_job(queue))
            prefix = job.artifact_key_prefix() + "checkpoints/"
            root = tmp_path / "artifacts"
            # the condition: a whole checkpoint is stored (its checkpoint.json comes last);
            # the first `ilab` holds after it until killed
            await until(lambda: done_checkpoint(root / prefix), timeout=120)
            first.signal(signal.SIGKILL)
            for entry in world.record.entries():  # the dead worker's orphaned `ilab`
                if entry.get("command") == "model train":
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(int(entry["pid"]), signal.SIGKILL)
            release.touch()  # the resumed run goes to the end
            second = worker_processes(settings)
            _, trained = await train_results(world, 2, timeout=120)
            done = await queue.get_job(job.id)
    finally:
        await queue.aclose()
    assert done is not None and done.state is State.SUCCEEDED and done.attempts == 2
    assert "Resumed from checkpoint" in trained["body"]
    assert len([c for c in world.result_comments() if "`train`" in c["body"]]) == 1
    trains = [e for e in world.record.entries() if e.get("command") == "model train"]
    assert len(trains) == 2  # cut short once, then resumed
    resumed = trains[1]["argv"]
    assert "/checkpoints/hf_format/samples_" in resumed[resumed.index("--model-path") + 1]
    assert int(resumed[resumed.index("--num-epochs") + 1]) < 3
    # the completed check run says so too (progress while resuming: tests/test_train_worker.py)
    final = world.gh.check_run_history(check_run_of(world, "train")["id"])[-1]
    assert final["conclusion"] == "success"
    assert "Resumed from checkpoint" in final["output"]["summary"]
    assert [e for e in second.events() if e.get("event") == "job.taken_over"]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("nan", "the training loss became NaN"), ("no-checkpoint", "without writing a model")],
)
async def test_a_training_that_goes_wrong_says_why_on_the_pr_and_the_check_run(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, reason: str
) -> None:
    settings = train_settings(world, tmp_path)
    monkeypatch.setenv("ILAB_STANDIN_TRAIN_MODE", mode)
    async with run_bot(settings) as bot:
        assert (await world.comment(bot))[0] == 202
        await train_results(world, 1)
        assert (await world.comment(bot, f"{MENTION} train"))[0] == 202
        _, failed = await train_results(world, 2)
    assert "❌ `train` failed" in failed["body"] and reason in failed["body"]
    run = check_run_of(world, "train")
    assert run["conclusion"] == "failure" and reason in run["output"]["title"]
    assert "model.json" not in failed["body"]


async def test_cancel_stops_a_running_training(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = train_settings(world, tmp_path)
    monkeypatch.setenv("ILAB_STANDIN_TRAIN_MODE", "hang")
    monkeypatch.setenv("ILAB_STANDIN_TRAIN_FAIL_AT", "0")
    queue = Queue.from_url(settings.redis_url)
    try:
        async with run_bot(settings) as bot:
            assert (await world.comment(bot))[0] == 202
            await train_results(world, 1)
            assert (await world.comment(bot, f"{MENTION} train"))[0] == 202
            await until(lambda: running_train(queue))
            assert (await world.comment(bot, f"{MENTION} cancel"))[0] == 202
            _, cancelled = await train_results(world, 2)
    finally:
        await queue.aclose()
    assert "🛑 `train` was cancelled" in cancelled["body"]
    assert check_run_of(world, "train")["conclusion"] == "cancelled"


async def running_train(queue: Queue) -> Job | None:
    found = await train_job(queue)
    return found if found is not None and found.state is State.RUNNING else None


async def test_retry_of_a_failed_training_trains_on_the_same_generate_job(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = train_settings(world, tmp_path)
    monkeypatch.setenv("ILAB_STANDIN_TRAIN_MODE", "fail")
    queue = Queue.from_url(settings.redis_url)
    try:
        async with run_bot(settings) as bot:
            assert (await world.comment(bot))[0] == 202
            await train_results(world, 1)
            assert (await world.comment(bot, f"{MENTION} train"))[0] == 202
            await train_results(world, 2)
            monkeypatch.setenv("ILAB_STANDIN_TRAIN_MODE", "ok")
            assert (await world.comment(bot, f"{MENTION} retry"))[0] == 202
            _, _, retried = await train_results(world, 3)
            jobs = await queue.get_jobs(await queue.pr_job_ids(PULL))
    finally:
        await queue.aclose()
    assert "✅ `train` succeeded" in retried["body"]
    generate = next(j for j in jobs if j.command == "generate")
    trains = [j for j in jobs if j.command == "train"]
    assert [j.state for j in trains] == [State.FAILED, State.SUCCEEDED]
    assert {j.source_job for j in trains} == {generate.id}
