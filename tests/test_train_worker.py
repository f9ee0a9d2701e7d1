"""The `train` job on a worker: a real Redis, the S3 store against a real (moto) S3 endpoint,
an in-memory GitHub, and the training itself through a scripted `TrainBackend` (the contract's
seam: the `ilab model train` stand-in is exercised by the ilab tests). Each test asserts what
GitHub, the store and Redis saw."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from instruct_lab_bot.adapters.redis.keys import WORKER_GROUP, jobs_stream
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.storage.s3 import S3Config, S3Store
from instruct_lab_bot.core.checksums import Checksum, render_checksums
from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.model_manifest import ModelManifest
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.training import TrainLayout, TrainRequest, TrainRunResult
from instruct_lab_bot.services.metrics import WorkerMetrics
from instruct_lab_bot.services.worker.app import Worker
from instruct_lab_bot.services.worker.deps import JobTools, WorkerDeps
from instruct_lab_bot.services.worker.train_backend import OnTrainLine, TrainBackend
from tests.fixtures.bot import MENTION, make_settings
from tests.fixtures.s3 import S3Server
from tests.fixtures.worker import CHECK_RUN, FakeGitHub, fetch, kind

HEAD = "b" * 40
SAMPLES = "checkpoints/hf_format/samples_"
DATA = b"".join(
    json.dumps({"system": "s", "user": f"q{i}", "assistant": f"a{i}"}).encode() + b"\n"
    for i in range(4)
)
DATA_NAME = "2026-01-01_000000/train_2026-01-01T00_00_00.jsonl"


def full_line(epoch: int, step: int, loss: float | str) -> str:
    """0.26's `full` pipeline step line (CLI.md §6.4)."""
    return (
        f"Epoch: {epoch}, Step: {step}, Loss per batch: {loss}, "
        f"Actual Loss Per Batch = {loss}, accumulated loss: {loss}"
    )


def bar(epoch: int, step: int, total: int) -> str:
    return f"Epoch {epoch}:  {100 * step // total}%|███  | {step}/{total} [00:02<00:06,  2.00it/s]"


def write_model(output_dir: Path, samples: int, weights: bytes = b"w" * 4096) -> Path:
    folder = output_dir / "hf_format" / f"samples_{samples}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


Script = Callable[[TrainRequest, OnTrainLine, asyncio.Event | None], Awaitable[TrainRunResult]]


@dataclass
class ScriptedBackend:
    """A `TrainBackend` that runs a test's script instead of `ilab model train`."""

    script: Script
    requests: list[TrainRequest] = field(default_factory=list)
    closed: int = 0

    def layout(self, request: TrainRequest) -> TrainLayout:
        """Where 0.26's `full` pipeline writes (core.ilab.train_run)."""
        samples = "checkpoints/hf_format/samples_*"
        return TrainLayout((samples,), samples, (), "model-path")

    async def run(
        self, request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        self.requests.append(request)
        return await self.script(request, on_line, cancel)

    async def aclose(self) -> None:
        self.closed += 1


@dataclass
class TrainRig:
    worker: Worker
    queue: Queue
    github: FakeGitHub
    store: S3Store
    backend: ScriptedBackend

    async def generate_job(
        self, job_id: str = "gen-1", *, pr: int = 3, data: bytes = DATA, listed: bytes = DATA
    ) -> Job:
        """A successful generate job with its data and `checksums.json` in the store
        (`listed` is what the checksums file describes)."""
        job = Job(
            id=job_id,
            command="generate",
            installation_id=5,
            owner="o",
            repo="r",
            pr_number=pr,
            requester="alice",
            head_sha=HEAD,
            state=State.SUCCEEDED,
        )
        await self.queue.create_job(job)
        prefix = job.artifact_key_prefix()
        await self.store.put_bytes(prefix + DATA_NAME, data, "application/x-ndjson")
        digest = Checksum(len(listed), hashlib.sha256(listed).hexdigest())
        sums = render_checksums({DATA_NAME: digest}).encode()
        await self.store.put_bytes(prefix + "checksums.json", sums, "application/json")
        return job

    async def train_job(self, source: str = "gen-1", job_id: str = "train-1") -> Job:
        job = Job(
            id=job_id,
            command="train",
            installation_id=5,
            owner="o",
            repo="r",
            pr_number=3,
            requester="alice",
            head_sha=HEAD,
            check_run_id=CHECK_RUN,
            source_job=source,
        )
        await self.queue.create_job(job)
        await self.queue.enqueue_job(job)
        return job

    async def process_next(self) -> Job:
        (entry,) = await self.queue.read(
            jobs_stream("train"), WORKER_GROUP, self.worker.name, count=1, block_ms=100
        )
        await self.worker.process(entry)
        job = await self.queue.get_job(entry.fields["job"])
        assert job is not None
        return job

    async def train_after_generate(self) -> Job:
        """A generate job's data, a `train` job on it, and the worker's run of it."""
        await self.generate_job()
        await self.train_job()
        return await self.process_next()

    def comment(self) -> str:
        (comment,) = self.github.checks.comments
        return comment[3]

    def final_check_run(self) -> dict[str, Any]:
        return self.github.checks.updates[-1]


@pytest.fixture
async def train_rig(
    redis_url: str, tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> AsyncIterator[Callable[..., TrainRig]]:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    stores: list[S3Store] = []

    def build(script: Script, **overrides: Any) -> TrainRig:
        settings = make_settings(
            redis_url=redis_url,
            work_dir=tmp_path / "work",
            progress_interval=0.01,
            heartbeat_interval=0.05,
            artifacts_url=f"s3://{s3_bucket}/runs",
            s3_endpoint_url=s3_server.endpoint_url,
            stable_links=False,
            **overrides,
        )
        store = S3Store(S3Config(s3_bucket, "runs", s3_server.endpoint_url, 3600))
        stores.append(store)
        backend = ScriptedBackend(script)

        def factory(_settings: Settings, _profile: IlabProfile) -> TrainBackend:
            return backend

        tools = JobTools(fetch=fetch, train=factory)
        deps = WorkerDeps(settings, queue, FakeGitHub(), store, WorkerMetrics(), tools)
        worker = Worker(deps, name="w-train")
        return TrainRig(worker, queue, deps.github, store, backend)  # type: ignore[arg-type]

    yield build
    for store in stores:
        await store.aclose()
    await queue.aclose()


async def test_train_reports_progress_with_a_loss_curve_and_stashes_the_model(
    train_rig: Callable[..., TrainRig], tmp_path: Path
) -> None:
    async def script(
        request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        assert request.data_path.read_bytes() == DATA  # downloaded and verified
        assert request.resume_from is None
        on_line("stdout", "NUM EPOCHS IS: 2")
        for step, loss in enumerate((2.5, 1.75, 1.25), 1):
            on_line("stderr", bar(0, step, 4))
            on_line("stderr", full_line(0, step, loss))
        r.github.checks.progressed.clear()
        await r.github.checks.progressed.wait()  # the check run showed it
        write_model(request.output_dir, 4, b"checkpoint")  # an epoch's checkpoint...
        for step in (4, 5):  # ...seen unchanged by two scans (one per progress update)
            on_line("stderr", full_line(1, step, 1.25))
            r.github.checks.progressed.clear()
            await r.github.checks.progressed.wait()
        write_model(request.output_dir, 8)
        return TrainRunResult("exited", 0, 3.0)

    r = train_rig(script, train_epochs=2)
    job = await r.train_after_generate()

    assert job.state is State.SUCCEEDED, job.error
    epochs = json.loads(
        await r.store.get_bytes(
            job.artifact_key_prefix() + "checkpoints/" + SAMPLES + "4/checkpoint.json"
        )
    )["epochs_done"]
    assert epochs == 1  # written during epoch 1 (0-based): epoch 0 is done
    assert job.source_job == "gen-1"
    progress = [u for u in r.github.checks.updates if kind(u) == "progress"]
    shown = progress[-1]["output"]
    titles = [u["output"]["title"] for u in progress]
    assert any(t.startswith("Epoch 1/2, step 3/8, loss 1.25") for t in titles), titles
    assert "- **Loss:** 1.25" in shown["summary"] and "- **ETA:**" in shown["summary"]
    (image,) = shown["images"]
    png = await r.store.get_bytes("o/r/pr-3/" + HEAD + "/train-1/loss.png")
    assert png.startswith(b"\x89PNG")
    assert "loss.png" in image["image_url"]

    final = r.final_check_run()
    assert final["conclusion"] == "success"
    assert final["output"]["title"].endswith("final loss 1.25")
    body = r.comment()
    assert "aws s3 cp --recursive s3://" in body and "/train-1/model/ ./model" in body
    assert "ilab model chat --model ./model" in body
    assert "final loss **1.25**" in body and f"`{MENTION} test`" in body

    # the manifest's checksums hold for what a reviewer downloads
    prefix = "o/r/pr-3/" + HEAD + "/train-1/model/"
    manifest = ModelManifest.from_json(await r.store.get_bytes(prefix + "model.json"))
    assert manifest.data_job == "gen-1" and manifest.final_loss == 1.25
    assert {f.name for f in manifest.files} == {
        "config.json",
        "tokenizer.json",
        "model.safetensors",
    }
    for entry in manifest.files:
        local = tmp_path / "down" / entry.name
        assert await r.store.get_file(prefix + entry.name, local) == entry.size
        assert hashlib.sha256(local.read_bytes()).hexdigest() == entry.sha256
    # the finished checkpoint was uploaded as training went (the final model only as the model)
    keys = await r.store.list_keys("o/r/pr-3/" + HEAD + "/train-1/checkpoints/")
    assert [k.rsplit("/", 4)[-4:] for k in keys] == [
        ["checkpoints", "hf_format", "samples_4", name]
        for name in ("checkpoint.json", "config.json", "model.safetensors", "tokenizer.json")
    ]
    assert r.backend.closed == 1


async def test_train_refuses_data_that_does_not_match_its_checksum(
    train_rig: Callable[..., TrainRig],
) -> None:
    async def script(
        request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        raise AssertionError("must not train on unverified data")

    r = train_rig(script)
    await r.generate_job(data=DATA + b'{"user": "injected"}\n', listed=DATA)
    await r.train_job()
    job = await r.process_next()
    assert job.state is State.FAILED
    assert "does not match its checksum" in job.error
    assert "does not match its checksum" in r.comment()
    assert r.final_check_run()["conclusion"] == "failure"


@pytest.mark.parametrize(
    ("lines", "writes_model", "error"),
    [
        ([full_line(0, 1, 2.0), full_line(0, 2, "nan")], True, "loss became NaN"),
        (["Operation failed, terminating process."], False, "without writing a model"),
        (["OSError: [Errno 28] No space left on device"], False, "disk filled up"),
    ],
    ids=["nan-loss", "no-model-exit-0", "disk-full"],
)
async def test_a_training_that_goes_wrong_fails_with_a_clear_reason(
    train_rig: Callable[..., TrainRig], lines: list[str], writes_model: bool, error: str
) -> None:
    async def script(
        request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        for line in lines:
            on_line("stderr", line)
        if writes_model:
            write_model(request.output_dir, 8)
        return TrainRunResult("exited", 0, 1.0)  # 0.18 exits 0 after a failure

    r = train_rig(script)
    job = await r.train_after_generate()
    assert job.state is State.FAILED
    assert error in job.error
    assert error in r.comment()
    assert r.final_check_run()["conclusion"] == "failure"
    assert not await r.store.list_keys("o/r/pr-3/" + HEAD + "/train-1/model/")


async def test_a_taken_over_train_job_resumes_from_the_last_uploaded_checkpoint(
    train_rig: Callable[..., TrainRig],
) -> None:
    weights = b"epoch-1-weights" * 100

    async def script(
        request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        assert request.resume_from is not None
        assert (request.resume_from / "model.safetensors").read_bytes() == weights
        assert request.model_path == str(request.resume_from)
        assert request.epochs_done == 1
        on_line("stderr", full_line(1, 9, 0.5))
        r.github.checks.progressed.clear()
        await r.github.checks.progressed.wait()
        write_model(request.output_dir, 16)
        return TrainRunResult("exited", 0, 1.0)

    r = train_rig(script)
    await r.generate_job()
    job = await r.train_job()
    # what a first worker uploaded before it died: one complete checkpoint, one half-done
    prefix = job.artifact_key_prefix() + "checkpoints/checkpoints/hf_format/"
    sums = {
        "model.safetensors": Checksum(len(weights), hashlib.sha256(weights).hexdigest()),
        "config.json": Checksum(2, hashlib.sha256(b"{}").hexdigest()),
    }
    await r.store.put_bytes(prefix + "samples_8/model.safetensors", weights, "x/y")
    await r.store.put_bytes(prefix + "samples_8/config.json", b"{}", "application/json")
    await r.store.put_bytes(
        prefix + "samples_8/checkpoint.json",
        render_checksums(sums, epochs_done=1).encode(),
        "application/json",
    )
    await r.store.put_bytes(prefix + "samples_12/model.safetensors", b"half", "x/y")

    done = await r.process_next()
    assert done.state is State.SUCCEEDED, done.error
    assert "Resumed from checkpoint `checkpoints/hf\\_format/samples\\_8`" in r.comment()
    assert any(
        "Resumed from the last uploaded checkpoint" in u["output"]["summary"]
        for u in r.github.checks.updates
        if kind(u) == "progress"
    )
