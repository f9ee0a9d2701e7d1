"""The Kubeflow train backend and its KFP client against the KFP API emulator (every request
checked against kfp-server-api's models and kfp's IR schema), with the object store a real S3
endpoint (moto): what the pods would write there is written by the emulator's task hook with
the pipeline's own step code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from instruct_lab_bot.adapters.kubeflow import KfpClient, KfpConfig, KfpError
from instruct_lab_bot.adapters.storage.s3 import S3Config, S3Store
from instruct_lab_bot.core.ilab.versions import PROFILES
from instruct_lab_bot.core.kubeflow import PROGRESS_NAME, progress_document
from instruct_lab_bot.core.model_manifest import ModelManifest
from instruct_lab_bot.core.retry import RetryPolicy
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.training import Hyperparameters, TrainRequest, TrainRunResult
from instruct_lab_bot.services.kubeflow import steps
from instruct_lab_bot.services.kubeflow.backend import KubeflowTrainBackend, run_name
from instruct_lab_bot.services.kubeflow.preflight import check_kubeflow
from testkit.kfp_emulator import EmulatedRun, KfpEmulator
from tests.fixtures.s3 import S3Server

DATA_KEY = "octo/taxonomy/pr-7/abc123/gen-1/skills_train_msgs_x.jsonl"
OUTPUT_KEY = "octo/taxonomy/pr-7/abc123/tr-1/"
TRAIN_LINES = [
    ("stderr", "INFO 2026-12-06 12:00:00,000 instructlab.model.simple_train:88: Epoch 1"),
    ("stdout", "Epoch 1: 100%|██████████| 4/4 [00:02<00:00, loss=1.234]"),
    ("stdout", "Model saved"),
]


@dataclass
class World:
    emulator: KfpEmulator
    settings: Settings
    store: S3Store
    tmp: Path

    def backend(self) -> KubeflowTrainBackend:
        return KubeflowTrainBackend(self.settings, PROFILES[1])

    def request(self, timeout: float = 3600.0) -> TrainRequest:
        return TrainRequest(
            job_id="tr-1",
            data_path=self.tmp / "data.jsonl",
            data_key=DATA_KEY,
            base_model="granite-7b-lab",
            hyperparameters=Hyperparameters(epochs=1, device="cuda", pipeline="accelerated"),
            output_dir=self.tmp / "out",
            output_key=OUTPUT_KEY,
            workspace=self.tmp,
            timeout=timeout,
        )


@pytest.fixture
async def world(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    monkeypatch.setenv("AWS_S3_ENDPOINT", s3_server.endpoint_url)  # for the step code
    emulator = KfpEmulator()
    token = tmp_path / "token"
    token.write_text(emulator.token + "\n")
    server = TestServer(emulator.app(), host="127.0.0.1")
    await server.start_server()
    settings = replace(
        Settings(),
        artifacts_url=f"s3://{s3_bucket}/bot",
        s3_endpoint_url=s3_server.endpoint_url,
        train_backend="kubeflow",
        kfp_url=str(server.make_url("/")),
        kfp_token_file=str(token),
        kfp_image="quay.io/example/instruct-lab-bot-train:1",
        kfp_s3_secret="aws-connection-training",
        kfp_poll_interval=0.01,
    )
    store = S3Store(S3Config(s3_bucket, "bot", s3_server.endpoint_url, 3600))
    try:
        yield World(emulator, settings, store, tmp_path)
    finally:
        await store.aclose()
        await server.close()


def pods(world: World) -> Callable[[EmulatedRun, str, str], Awaitable[None]]:
    """What the pipeline's pods write to the object store as their tasks run."""

    async def on_task(run: EmulatedRun, task: str, state: str) -> None:
        params = run.parameters
        key = params["output_key"] + PROGRESS_NAME
        if task == "train-model" and state == "RUNNING":
            document = progress_document(0, TRAIN_LINES[:2], done=False)
            await world.store.put_bytes(key, document, "application/json")
        elif task == "train-model" and state in ("SUCCEEDED", "FAILED"):
            document = progress_document(0, TRAIN_LINES, done=True)
            await world.store.put_bytes(key, document, "application/json")
        elif task == "publish-model" and state == "RUNNING":
            model = world.tmp / "pod-model"
            model.mkdir(exist_ok=True)
            (model / "config.json").write_text("{}")
            (model / "model.safetensors").write_bytes(b"\0" * 1000)
            await asyncio.to_thread(
                steps.publish_model,
                params["store_url"],
                params["output_key"],
                params["manifest"],
                str(model),
            )

    return on_task


class Lines:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.seen.append((stream, line))

    def of(self, stream: str) -> list[str]:
        return [line for s, line in self.seen if s == stream]


async def _train(
    world: World, cancel: asyncio.Event | None = None, **kw: float
) -> tuple[TrainRunResult, Lines]:
    lines = Lines()
    backend = world.backend()
    try:
        result = await backend.run(world.request(**kw), lines, cancel)
    finally:
        await backend.aclose()
    return result, lines


def hang_in_training(
    world: World, then: Callable[[EmulatedRun], object] = lambda run: None
) -> asyncio.Event:
    """The run's training task hangs once running; at that moment `then(run)` is called and the
    event returned is set."""
    world.emulator.hang_task = "train-model"
    running = asyncio.Event()

    async def on_task(run: EmulatedRun, task: str, state: str) -> None:
        if (task, state) == ("train-model", "RUNNING"):
            then(run)
            running.set()

    world.emulator.on_task = on_task
    return running


async def a_worker_dies_mid_training(world: World) -> None:
    """A first worker submits the run and is gone (cancelled) while it trains."""
    running = hang_in_training(world)
    first = asyncio.create_task(_train(world))
    await running.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_run_is_submitted_followed_and_its_model_picked_up(world: World) -> None:
    world.emulator.on_task = pods(world)
    result, lines = await _train(world)
    assert (result.outcome, result.exit_code, result.remote_model) == ("exited", 0, True)
    # ilab's own lines, on their own streams and in order, as the worker backend gives them
    assert [pair for pair in lines.seen if pair[0] in ("stdout", "stderr")] == TRAIN_LINES
    for task in ("fetch-data", "train-model", "publish-model"):
        assert lines.of(task)[-1] == f"Kubeflow task {task}: done"
    (run,) = world.emulator.runs.values()
    assert run.body["display_name"] == run_name("tr-1")
    assert run.state == "SUCCEEDED"
    params = run.parameters
    assert (params["data_key"], params["output_key"]) == (DATA_KEY, OUTPUT_KEY)
    assert params["store_url"] == world.settings.artifacts_url
    plan = json.loads(params["train_plan"])
    argv = plan["argv"]
    assert plan["model_glob"].startswith("checkpoints/")
    assert argv[:4] == ["ilab", "--config", "DEFAULT", "model"]
    assert "{data}/skills_train_msgs_x.jsonl" in argv and "{work}/checkpoints" in argv
    assert argv[argv.index("--device") + 1] == "cuda"
    manifest = ModelManifest.from_json(await world.store.get_bytes(OUTPUT_KEY + "model/model.json"))
    assert (manifest.train_job, manifest.data_job, manifest.base_model) == (
        "tr-1",
        "gen-1",
        "granite-7b-lab",
    )
    assert {f.name for f in manifest.files} == {"config.json", "model.safetensors"}
    assert all(
        method == "GET" or path.startswith(("/apis/v2beta1/experiments", "/apis/v2beta1/runs"))
        for method, path in world.emulator.requests
    )


async def test_a_failed_training_is_the_training_failing(world: World) -> None:
    world.emulator.on_task = pods(world)
    world.emulator.fail_task = "train-model"
    result, lines = await _train(world)
    assert (result.outcome, result.exit_code, result.remote_model) == ("exited", 1, False)
    assert lines.of("train-model")[-1] == "Kubeflow task train-model: failed"
    assert lines.of("stdout")[-1] == "Model saved"  # the log tail the reply shows


async def test_a_failed_step_outside_training_is_the_backends_failure(world: World) -> None:
    world.emulator.fail_task = "fetch-data"
    result, _ = await _train(world)
    assert result.exit_code is None and not result.remote_model
    assert "`fetch-data`" in result.error


async def test_cancel_terminates_the_run(world: World) -> None:
    cancel = hang_in_training(world)  # cancelled as soon as it trains
    result, lines = await _train(world, cancel)
    assert result.outcome == "cancelled"
    (run,) = world.emulator.runs.values()
    assert run.state == "CANCELED"
    assert ("POST", f"/apis/v2beta1/runs/{run.run_id}:terminate") in world.emulator.requests
    assert lines.of("train-model")[-1] == "Kubeflow task train-model: cancelled"


async def test_the_training_timeout_terminates_the_run(world: World) -> None:
    world.emulator.hang_task = "train-model"
    result, _ = await _train(world, timeout=0.0)
    assert result.outcome == "timed_out"
    (run,) = world.emulator.runs.values()
    assert run.state == "CANCELED"


async def test_a_taken_over_job_follows_its_run_instead_of_training_twice(world: World) -> None:
    await a_worker_dies_mid_training(world)
    world.emulator.hang_task = ""
    world.emulator.on_task = pods(world)
    result, lines = await _train(world)
    assert (result.outcome, result.exit_code, result.remote_model) == ("exited", 0, True)
    assert len(world.emulator.runs) == 1
    assert any("submitted earlier for this job" in line for line in lines.of("kfp"))


async def test_a_passing_api_outage_on_submit_is_retried(world: World) -> None:
    world.emulator.on_task = pods(world)
    world.emulator.reject_runs = 1
    result, _ = await _train(world)
    assert result.exit_code == 0
    assert len(world.emulator.runs) == 1


async def test_a_wrong_token_is_a_clear_backend_failure(world: World) -> None:
    Path(world.settings.kfp_token_file).write_text("not-the-token")
    result, _ = await _train(world)
    assert result.exit_code is None
    assert "could not be submitted to Kubeflow Pipelines" in result.error
    assert world.emulator.runs == {}


# ------------------------------------------------------------------- the emulator's checks


async def test_the_emulator_refuses_bodies_the_api_models_refuse(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.emulator.token}"}
    base = world.settings.kfp_url.rstrip("/") + "/apis/v2beta1"
    bad_bodies = [
        {"display_name": "x", "pipeline_spec": {}, "no_such_field": 1},
        {"display_name": "x", "pipeline_spec": {}, "state": "NOT_A_STATE"},
        {"display_name": "x", "runtime_config": {"parameters": "not a map"}},
        {"display_name": "x"},  # neither a pipeline spec nor a version
        {"display_name": "x", "pipeline_spec": {"root": {"dag": 5}}},  # not kfp's IR
    ]
    async with aiohttp.ClientSession(headers=headers) as session:
        for body in bad_bodies:
            async with session.post(base + "/runs", json=body) as answer:
                assert answer.status == 400, body
        async with session.get(base + "/runs/nope") as answer:
            assert answer.status == 404


async def test_the_emulator_refuses_parameters_the_pipeline_does_not_declare(
    world: World,
) -> None:
    client = KfpClient(KfpConfig(world.settings.kfp_url, world.settings.kfp_token_file))
    try:
        experiment = await client.experiment_id("x")
        assert await client.experiment_id("x") == experiment  # found, not created twice
        from instruct_lab_bot.services.kubeflow.backend import _compiled

        spec = _compiled(world.settings)
        with pytest.raises(KfpError, match="not defined by the pipeline"):
            await client.create_run("r", experiment, spec, {"store_url": "s3://b", "oops": 1})
        with pytest.raises(KfpError, match="missing"):
            await client.create_run("r", experiment, spec, {"store_url": "s3://b"})
    finally:
        await client.aclose()


async def test_doctor_checks_the_pipelines_api_with_the_workers_token(world: World) -> None:
    good = await check_kubeflow(world.settings)
    assert good.ok, good.detail
    assert "answers" in good.detail
    Path(world.settings.kfp_token_file).write_text("revoked")
    bad = await check_kubeflow(world.settings)
    assert not bad.ok and not bad.fatal
    assert "HTTP 401" in bad.detail and "ILAB_BOT_KFP_TOKEN_FILE" in bad.fix


async def test_a_run_deleted_while_followed_ends_the_job_with_that_reason(world: World) -> None:
    # someone deletes it in the dashboard while it trains
    hang_in_training(world, lambda run: world.emulator.runs.pop(run.run_id))
    result, _ = await _train(world)
    assert result.exit_code is None and "is gone" in result.error


async def test_an_unreachable_api_is_a_clear_backend_failure(world: World) -> None:
    settings = replace(world.settings, kfp_url="http://127.0.0.1:9")  # nothing listens there
    config = KfpConfig(settings.kfp_url, settings.kfp_token_file)
    client = KfpClient(replace(config, policy=RetryPolicy(max_attempts=1)))
    backend = KubeflowTrainBackend(settings, PROFILES[1], client=client)
    try:
        result = await backend.run(world.request(), Lines(), None)
    finally:
        await backend.aclose()
    assert result.exit_code is None
    assert "could not be submitted to Kubeflow Pipelines (KfpUnavailable)" in result.error


async def test_a_job_cancelled_before_it_trains_submits_nothing(world: World) -> None:
    cancel = asyncio.Event()
    cancel.set()
    result, _ = await _train(world, cancel)
    assert result.outcome == "cancelled"
    assert world.emulator.runs == {}


async def test_a_followed_run_keeps_its_own_deadline(world: World) -> None:
    """A worker that takes the job over gives the run what is left of the training timeout."""
    await a_worker_dies_mid_training(world)
    (run,) = world.emulator.runs.values()
    run.body["created_at"] = "2020-01-01T00:00:00Z"  # submitted long ago
    result, _ = await _train(world, timeout=12 * 3600.0)
    assert result.outcome == "timed_out"
    assert run.state == "CANCELED" and len(world.emulator.runs) == 1
