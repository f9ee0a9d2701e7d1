"""`generate` then `train` with ILAB_BOT_TRAIN_BACKEND=kubeflow through the real harness: signed
webhooks → server → Redis → dispatcher → worker → the KFP API emulator, whose pods run the
pipeline's own step code (fetch the data from S3, the `ilab` stand-in's `model train`, publish
the model) → the worker picks the model up from S3 → GitHub emulator."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aioboto3
import pytest
from aiohttp.test_utils import TestServer

from instruct_lab_bot.core.model_manifest import ModelManifest
from testkit.harness import run_bot
from testkit.ilab_model import write_hf_model
from testkit.kfp_emulator import KfpEmulator
from testkit.kfp_pods import StepPods
from tests.fixtures.bot import MENTION
from tests.fixtures.s3 import S3Server
from tests.fixtures.world import World


@pytest.fixture
async def kfp(tmp_path: Path) -> AsyncIterator[tuple[KfpEmulator, StepPods, str]]:
    emulator = KfpEmulator()
    pods = StepPods(tmp_path / "pods")
    emulator.pods = pods
    server = TestServer(emulator.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield emulator, pods, str(server.make_url("/"))
    finally:
        await emulator.aclose()
        await server.close()


async def _reply(world: World, body: str) -> str:
    before = {c["id"] for c in world.bot_comments()}
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot, body))[0] == 202
        async with asyncio.timeout(120):
            await world.gh.wait_for(
                lambda: any(
                    c["id"] not in before and "<!--" in c["body"] for c in world.bot_comments()
                )
            )
    (new,) = [c["body"] for c in world.bot_comments() if c["id"] not in before]
    return str(new)


async def test_generate_then_train_on_kubeflow(
    world: World,
    kfp: tuple[KfpEmulator, StepPods, str],
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator, pods, url = kfp
    token = tmp_path / "kfp-token"
    token.write_text(emulator.token)
    monkeypatch.setenv("AWS_S3_ENDPOINT", s3_server.endpoint_url)  # the pods' data connection
    base = write_hf_model(tmp_path / "base-model")  # as the training image would hold it
    world.settings = replace(
        world.settings,
        artifacts_url=f"s3://{s3_bucket}/runs",
        s3_endpoint_url=s3_server.endpoint_url,
        stable_links=False,
        train_backend="kubeflow",
        train_base_model=str(base),
        train_device="cuda",
        train_pipeline="accelerated",
        train_epochs=1,
        kfp_url=url,
        kfp_token_file=str(token),
        kfp_image="quay.io/example/instruct-lab-bot-train:1",
        kfp_ilab_command=world.settings.ilab_command,  # the stand-in, in the "pod"
        kfp_poll_interval=0.05,
    )
    generated = await _reply(world, f"{MENTION} generate")
    assert "generate" in generated.lower()
    trained = await _reply(world, f"{MENTION} train")

    assert pods.failures == []
    (run,) = emulator.runs.values()
    assert run.state == "SUCCEEDED"
    assert "aws s3 cp --recursive s3://" in trained and "/model/ ./model" in trained
    checks = world.gh.check_runs("instructlab", "taxonomy", head_sha=world.remote.head_sha)
    (train_check,) = [c for c in checks if c["name"] == "instruct-lab-bot/train"]
    assert train_check["conclusion"] == "success"
    # the manifest the pipeline wrote holds for what a reviewer downloads
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3_server.endpoint_url) as s3:
        listing = await s3.list_objects_v2(Bucket=s3_bucket, Prefix="runs/")
        keys = [o["Key"] for o in listing.get("Contents", [])]
        (manifest_key,) = [k for k in keys if k.endswith("/model/model.json")]
        raw = await (await s3.get_object(Bucket=s3_bucket, Key=manifest_key))["Body"].read()
        manifest = ModelManifest.from_json(raw)
        assert manifest.final_loss is not None and manifest.ilab_version == "0.26.1"
        for entry in manifest.files:
            key = manifest_key.removesuffix("model.json") + entry.name
            data = await (await s3.get_object(Bucket=s3_bucket, Key=key))["Body"].read()
            assert hashlib.sha256(data).hexdigest() == entry.sha256
