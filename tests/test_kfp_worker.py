"""A `train` job on a worker with ILAB_BOT_TRAIN_BACKEND=kubeflow: the worker's own train flow
(data verified, check run progress and loss curve, the manifest checked, the reply) with the
training as a run on the KFP API emulator, whose pods' writes are the pipeline's own step code
against a real S3 endpoint (moto). Redis is real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.storage.s3 import S3Config, S3Store
from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.kubeflow import PROGRESS_NAME, progress_document
from instruct_lab_bot.core.model_manifest import ModelManifest
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.kubeflow import steps
from instruct_lab_bot.services.kubeflow.backend import KubeflowTrainBackend
from instruct_lab_bot.services.metrics import WorkerMetrics
from instruct_lab_bot.services.worker.app import Worker
from instruct_lab_bot.services.worker.deps import JobTools, WorkerDeps
from instruct_lab_bot.services.worker.train_backend import TrainBackend
from testkit.ilab_model import write_hf_model
from testkit.kfp_emulator import EmulatedRun, KfpEmulator
from tests.fixtures.bot import make_settings
from tests.fixtures.s3 import S3Server
from tests.fixtures.worker import FakeGitHub, fetch, kind
from tests.test_train_worker import HEAD, TrainRig, bar, full_line

LINES = [
    ("stdout", "NUM EPOCHS IS: 1"),
    ("stderr", bar(0, 1, 2)),
    ("stderr", full_line(0, 1, 2.5)),
    ("stderr", bar(0, 2, 2)),
    ("stderr", full_line(0, 2, 0.5)),
]


@dataclass
class KfpRig:
    rig: TrainRig
    emulator: KfpEmulator
    backends: list[KubeflowTrainBackend]


@pytest.fixture
async def kfp_rig(
    redis_url: str,
    tmp_path: Path,
    s3_server: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[KfpRig]:
    monkeypatch.setenv("AWS_S3_ENDPOINT", s3_server.endpoint_url)  # the pods' data connection
    emulator = KfpEmulator()
    token = tmp_path / "kfp-token"
    token.write_text(emulator.token)
    server = TestServer(emulator.app(), host="127.0.0.1")
    await server.start_server()
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    settings = make_settings(
        redis_url=redis_url,
        work_dir=tmp_path / "work",
        progress_interval=0.01,
        heartbeat_interval=0.05,
        artifacts_url=f"s3://{s3_bucket}/runs",
        s3_endpoint_url=s3_server.endpoint_url,
        stable_links=False,
        train_backend="kubeflow",
        kfp_url=str(server.make_url("/")),
        kfp_token_file=str(token),
        kfp_image="quay.io/example/instruct-lab-bot-train:1",
        kfp_poll_interval=0.01,
    )
    store = S3Store(S3Config(s3_bucket, "runs", s3_server.endpoint_url, 3600))
    backends: list[KubeflowTrainBackend] = []

    def factory(settings: Settings, profile: IlabProfile) -> TrainBackend:
        backends.append(KubeflowTrainBackend(settings, profile))
        return backends[-1]

    deps = WorkerDeps(
        settings, queue, FakeGitHub(), store, WorkerMetrics(), JobTools(fetch=fetch, train=factory)
    )
    worker = Worker(deps, name="w-kfp")
    rig = TrainRig(worker, queue, deps.github, store, None)  # type: ignore[arg-type]
    try:
        yield KfpRig(rig, emulator, backends)
    finally:
        await store.aclose()
        await queue.aclose()
        await server.close()


def pods(rig: KfpRig, tmp: Path) -> Any:
    """The pipeline's pods: the training mirrors its lines, the publish step (the real code)
    stores the model."""
    store = rig.rig.store

    async def on_task(run: EmulatedRun, task: str, state: str) -> None:
        params = run.parameters
        if task == "train-model" and state in ("RUNNING", "SUCCEEDED"):
            lines = LINES if state == "SUCCEEDED" else LINES[:3]
            document = progress_document(0, lines, done=state == "SUCCEEDED")
            await store.put_bytes(params["output_key"] + PROGRESS_NAME, document, "text/plain")
        if (task, state) == ("publish-model", "RUNNING"):
            model = write_hf_model(tmp / "pod-model", name="trained")
            await asyncio.to_thread(
                steps.publish_model,
                params["store_url"],
                params["output_key"],
                params["manifest"],
                str(model),
                0.5,
            )

    return on_task


async def test_a_kubeflow_training_shows_like_a_worker_training(
    kfp_rig: KfpRig, tmp_path: Path
) -> None:
    kfp_rig.emulator.on_task = pods(kfp_rig, tmp_path)
    r = kfp_rig.rig
    await r.generate_job()
    await r.train_job()
    job = await r.process_next()

    assert job.state is State.SUCCEEDED, job.error
    (run,) = kfp_rig.emulator.runs.values()
    assert run.state == "SUCCEEDED"
    assert run.parameters["data_key"].startswith(f"o/r/pr-3/{HEAD}/gen-1/")
    progress = [u for u in r.github.checks.updates if kind(u) == "progress"]
    assert any("loss 0.5" in u["output"]["title"] for u in progress)  # parsed from the mirror
    final = r.final_check_run()
    assert final["conclusion"] == "success"
    body = r.comment()
    assert "/train-1/model/ ./model" in body
    prefix = f"o/r/pr-3/{HEAD}/train-1/model/"
    manifest = ModelManifest.from_json(await r.store.get_bytes(prefix + "model.json"))
    assert (manifest.train_job, manifest.data_job, manifest.final_loss) == ("train-1", "gen-1", 0.5)


async def test_a_failed_kubeflow_training_fails_the_job_with_the_log_tail(
    kfp_rig: KfpRig, tmp_path: Path
) -> None:
    kfp_rig.emulator.on_task = pods(kfp_rig, tmp_path)
    kfp_rig.emulator.fail_task = "train-model"
    r = kfp_rig.rig
    await r.generate_job()
    await r.train_job()
    job = await r.process_next()

    assert job.state is State.FAILED
    assert r.final_check_run()["conclusion"] == "failure"
    assert "Kubeflow task train-model: failed" in r.comment()
