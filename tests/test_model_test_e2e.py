"""`test` end to end: real Redis, the moto S3 server, the GitHub emulator and the `ilab`
stand-in's `model serve`. A trained model is seeded the way a train job leaves it (its model
folder and `model/model.json` under the job's artifact prefix, a succeeded `train` job record),
then `@bot test` must answer with the table: the trained model (which learned the seeds)
closer than the base model (which did not)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aioboto3
import pytest

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.model_manifest import (
    MANIFEST_NAME,
    MODEL_DIR,
    ModelFile,
    ModelManifest,
)
from instruct_lab_bot.core.refs import RepoRef
from testkit.harness import run_bot
from testkit.ilab_model import write_hf_model
from testkit.taxonomy import SkillSeed, leaf_files, skill_qna
from tests.fixtures.bot import MENTION, processes_with_env
from tests.fixtures.s3 import S3Server
from tests.fixtures.taxonomy import PR_SKILL_DIR, TaxonomyFactory
from tests.fixtures.world import World, publish_pull

OWNER, REPO, PR = "instructlab", "taxonomy", 7
SEEDS = [
    SkillSeed(question="What colour is the sky on a clear day?", answer="The sky is blue."),
    SkillSeed(question="How many legs does a spider have?", answer="A spider has eight legs."),
    SkillSeed(question="Which planet is called the red planet?", answer="Mars is the red planet."),
    SkillSeed(question="What do bees make?", answer="Bees make honey from nectar."),
    SkillSeed(question="At what temperature does water boil?", answer="At 100 degrees Celsius."),
]  # five: the taxonomy's schema asks a skill for at least five seed examples


@pytest.fixture
async def test_world(
    world: World,
    taxonomy_remote: TaxonomyFactory,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    """The PR changes one skill with SEEDS; artifacts go to S3; a base model is on disk."""
    remote = taxonomy_remote(repo="taxonomy", pr_files=leaf_files(PR_SKILL_DIR, skill_qna(SEEDS)))
    world.remote = remote
    publish_pull(world.gh, remote)
    base = write_hf_model(tmp_path / "models" / "base-model")
    world.settings = replace(
        world.settings,
        artifacts_url=f"s3://{s3_bucket}/runs",
        s3_endpoint_url=s3_server.endpoint_url,
        test_base_model=str(base),
        sandbox_readable=(*world.settings.sandbox_readable, tmp_path / "models"),
    )
    # Every process of a run carries this (the allow-listed ILAB_STANDIN_* passes the sandbox).
    monkeypatch.setenv("ILAB_STANDIN_TAG", uuid.uuid4().hex)
    return world


async def seed_trained_model(
    world: World, s3: S3Server, bucket: str, tmp: Path, *, tamper: bool = False
) -> Job:
    """What a successful train job leaves: its record, its model folder and model.json."""
    job = Job(
        id=f"train-{uuid.uuid4().hex[:8]}",
        command="train",
        installation_id=world.gh.installation_id,
        owner=OWNER,
        repo=REPO,
        pr_number=PR,
        requester="maintainer-mo",
        head_sha=world.remote.head_sha,
        base_branch="main",
        source_job="generate-1",
    )
    queue = Queue.from_url(world.settings.redis_url)
    try:
        await queue.create_job(job)
        await queue.transition(job.id, State.RUNNING)
        assert (await queue.transition(job.id, State.SUCCEEDED)).status == "ok"
    finally:
        await queue.aclose()
    folder = write_hf_model(tmp / job.id, [(s.question, s.answer) for s in SEEDS])
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = ModelManifest(
        train_job=job.id,
        data_job="generate-1",
        base_model=world.settings.test_base_model,
        ilab_version="0.26.1",
        files=tuple(
            ModelFile(
                str(p.relative_to(folder)),
                p.stat().st_size,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
            for p in files
        ),
    )
    prefix = f"runs/{job.artifact_key_prefix()}{MODEL_DIR}"
    async with aioboto3.Session().client("s3", endpoint_url=s3.endpoint_url) as client:
        for path in files:
            data = path.read_bytes()
            if tamper and path.name == "model.safetensors":
                data = data[:-1] + b"\x01"  # same size, other bytes
            await client.put_object(
                Bucket=bucket, Key=prefix + str(path.relative_to(folder)), Body=data
            )
        await client.put_object(
            Bucket=bucket, Key=prefix + MANIFEST_NAME, Body=manifest.to_json().encode()
        )
    return job


SeedModel = Callable[..., Awaitable[Job]]


@pytest.fixture
def seed_model(test_world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> SeedModel:
    """`seed_trained_model` into this test's world and bucket (`tamper=True` as there)."""

    async def seed(*, tamper: bool = False) -> Job:
        return await seed_trained_model(test_world, s3_server, s3_bucket, tmp_path, tamper=tamper)

    return seed


async def ask_test(world: World) -> str:
    """`@bot test` with a worker running; the body of the result comment."""
    async with run_bot(world.settings) as bot:
        await world.comment(bot, f"{MENTION} test")
        comment = await world.result_comment(timeout=120)
    return str(comment["body"])


async def first_reply(world: World) -> str:
    async with asyncio.timeout(60):
        while not world.bot_comments():
            await asyncio.sleep(0.05)
    return str(world.bot_comments()[0]["body"])


def stray_servers() -> list[int]:
    return processes_with_env(f"ILAB_STANDIN_TAG={os.environ['ILAB_STANDIN_TAG']}")


@pytest.mark.parametrize("release", ["0.26.1", "0.18.4"])  # 0.18 takes its port from a config
async def test_test_answers_with_the_table(
    test_world: World,
    seed_model: SeedModel,
    s3_server: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    release: str,
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_VERSION", release)
    world = test_world
    train = await seed_model()
    body = await ask_test(world)
    print("\n" + body)
    assert "### ✅ `test` succeeded" in body, body
    assert "**Trained model closer on 5 of 5 questions.**" in body
    assert f"ilab {release}" in body
    assert "| Question | Contributor's answer | Base model | Trained model |" in body
    for seed in SEEDS:
        assert seed.answer in body
    assert f"train job `{train.id}`" in body
    assert "test.json" in body and "test.html" in body
    (run,) = world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/test")
    assert run["conclusion"] == "success"
    assert run["output"]["title"].startswith("Trained model closer on 5 of 5")
    async with aioboto3.Session().client("s3", endpoint_url=s3_server.endpoint_url) as client:
        listing = await client.list_objects_v2(Bucket=s3_bucket, Prefix="runs/")
        key = next(o["Key"] for o in listing["Contents"] if o["Key"].endswith("/test.json"))
        stored = json.loads(
            await (await client.get_object(Bucket=s3_bucket, Key=key))["Body"].read()
        )
    assert stored["summary"]["trained_closer"] == 5
    assert all(a["trained_rouge_l"] == 1.0 for a in stored["answers"])
    assert stray_servers() == []
    queue = Queue.from_url(world.settings.redis_url)
    try:
        jobs = await queue.get_jobs(await queue.pr_job_ids(RepoRef(OWNER, REPO).pull(PR)))
    finally:
        await queue.aclose()
    (test_job,) = [j for j in jobs if j.command == "test"]
    assert test_job.source_job == train.id


async def test_without_a_trained_model_it_says_to_train_first(test_world: World) -> None:
    world = test_world
    async with run_bot(world.settings, workers=0) as bot:
        await world.comment(bot, f"{MENTION} test")
        reply = await first_reply(world)
    assert "no trained model for this pull request yet" in reply and f"{MENTION} train" in reply
    assert world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/test") == []


async def test_a_model_of_another_pr_is_refused(test_world: World, seed_model: SeedModel) -> None:
    world = test_world
    await seed_model()
    async with run_bot(world.settings, workers=0) as bot:
        await world.comment(bot, f"{MENTION} test --model train-of-pr-8")
        reply = await first_reply(world)
    assert "`train-of-pr-8` is not a successful `train` job of this pull request" in reply
    assert world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/test") == []


async def test_a_model_that_does_not_match_its_manifest_is_not_served(
    test_world: World, seed_model: SeedModel
) -> None:
    world = test_world
    await seed_model(tamper=True)
    body = await ask_test(world)
    assert "### ❌ `test` failed" in body
    assert "do not match its manifest" in body and "model.safetensors" in body
    assert serve_runs(world) == []


async def test_a_server_that_never_answers_is_stopped_and_reported(
    test_world: World, seed_model: SeedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = test_world
    world.settings = replace(world.settings, test_ready_timeout=3.0)
    monkeypatch.setenv("ILAB_STANDIN_SERVE_MODE", "never-ready")
    await seed_model()
    body = await ask_test(world)
    assert "### ❌ `test` failed" in body
    assert "could not be served" in body and "did not answer within 3 s" in body
    assert stray_servers() == []


async def test_cancel_while_the_models_start_stops_both_servers(
    test_world: World, seed_model: SeedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = test_world
    monkeypatch.setenv("ILAB_STANDIN_SERVE_MODE", "never-ready")
    await seed_model()
    async with run_bot(world.settings) as bot:
        await world.comment(bot, f"{MENTION} test")
        async with asyncio.timeout(60):  # both servers started, and the check run says so
            while len(serve_runs(world)) < 2 or "Starting the models" not in titles(world):
                await asyncio.sleep(0.05)
        await world.comment(bot, f"{MENTION} cancel")
        comment = await world.result_comment(timeout=120)
    assert "### 🛑 `test` was cancelled" in comment["body"]
    (run,) = world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/test")
    assert run["conclusion"] == "cancelled"
    assert stray_servers() == []


def serve_runs(world: World) -> list[dict[str, object]]:
    return [e for e in world.record.entries() if e.get("command") == "model serve"]


def titles(world: World) -> list[str]:
    """Every title the `test` check run has shown, oldest first."""
    runs = world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/test")
    history = world.gh.check_run_history(runs[0]["id"]) if runs else []
    return [str(p.get("output", {}).get("title", "")) for p in history]


@pytest.mark.timeout(600)  # three jobs one after the other, on a loaded machine
async def test_generate_then_train_then_test_on_one_pr(test_world: World) -> None:
    """The whole loop on the stand-in: the trained model learned the seeds from the generated
    data, so `test` finds it closer than the base model."""
    world = test_world
    world.settings = replace(world.settings, train_base_model=world.settings.test_base_model)
    async with run_bot(world.settings) as bot:
        for command in ("generate", "train", "test"):
            await world.comment(bot, f"{MENTION} {command}")
            async with asyncio.timeout(180):
                while not [c for c in world.result_comments() if f"`{command}`" in c["body"]]:
                    await asyncio.sleep(0.1)
            (result,) = [c for c in world.result_comments() if f"`{command}`" in c["body"]]
            assert f"### ✅ `{command}` succeeded" in result["body"], result["body"]
    print("\n" + result["body"])
    assert "Trained model closer on" in result["body"]


async def test_with_a_judge_it_adds_the_branch_evaluation(
    test_world: World, seed_model: SeedModel, tmp_path: Path
) -> None:
    world = test_world
    judge = write_hf_model(tmp_path / "models" / "judge")
    world.settings = replace(world.settings, test_judge_model=str(judge))
    await seed_model()
    body = await ask_test(world)
    print("\n" + body)
    assert "### ✅ `test` succeeded" in body
    assert "**`ilab model evaluate --benchmark mt_bench_branch`**" in body
    assert "| trained model |" in body and "| base model |" in body
    (run,) = [e for e in world.record.entries() if e.get("command") == "model evaluate"]
    assert run["benchmark"] == "mt_bench_branch"


async def test_an_evaluation_that_fails_is_reported_beside_the_table(
    test_world: World, seed_model: SeedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = test_world
    monkeypatch.setenv("ILAB_STANDIN_EVAL_MODE", "fail")
    judge = write_hf_model(tmp_path / "models" / "judge")
    world.settings = replace(world.settings, test_judge_model=str(judge))
    await seed_model()
    body = await ask_test(world)
    print("\n" + body)
    assert "### ✅ `test` succeeded" in body  # the answers are there; the judge's part is not
    assert "Trained model closer on 5 of 5 questions" in body
    assert "⚠️" in body and "judge model server" in body
