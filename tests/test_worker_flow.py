"""The worker's job flow as a module: `Worker.process` and `Worker.run` against a real Redis,
with in-memory GitHub, artifact store, checkout and a stand-in `ilab` runner (no sockets, no
subprocesses). Each test asserts what GitHub, the store and Redis saw."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from instruct_lab_bot.adapters.redis.keys import WORKER_GROUP, jobs_stream
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.runner import OnLine, Outcome, RunLimits, RunResult
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.metrics import WorkerMetrics
from instruct_lab_bot.services.worker.app import Worker
from instruct_lab_bot.services.worker.deps import JobTools, WorkerDeps
from tests.fixtures.bot import WEBHOOK_SECRET, make_settings
from tests.fixtures.ilab_outputs import skill_leaf, write_026
from tests.fixtures.worker import CHECK_RUN, FakeGitHub, FakeStore, fetch

GENERATE_STREAM = jobs_stream("generate")  # the generate pool's jobs stream

BAR = "Generating synthetic data: 40%|████      | 2/5 [00:02<00:03, 1.0it/s]"


Argv = Sequence[str]
Cancel = asyncio.Event | None
# What the stand-in ilab does: given its argv, output sink and cancel, how the run ends.
Script = Callable[[Argv, OnLine, Cancel], Awaitable[RunResult]]


@dataclass
class StandInRunner:
    script: Script
    argvs: list[list[str]] = field(default_factory=list)

    async def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_line: OnLine,
        limits: RunLimits,
        cancel: asyncio.Event | None = None,
    ) -> RunResult:
        assert "installation-token" not in env.values()
        self.argvs.append(list(argv))
        return await self.script(argv, on_line, cancel)


def ended(outcome: Outcome, exit_code: int | None) -> RunResult:
    return RunResult(exit_code, outcome, 1.0, None, 0)


@dataclass
class Rig:
    worker: Worker
    queue: Queue
    github: FakeGitHub
    store: FakeStore
    runner: StandInRunner
    settings: Settings

    async def submit(self, job_id: str = "job-1") -> Job:
        """A queued job on the stream (as the dispatcher leaves it)."""
        job = Job(
            id=job_id,
            command="generate",
            installation_id=5,
            owner="o",
            repo="r",
            pr_number=3,
            requester="alice",
            head_sha="a" * 40,
            base_branch="main",
            check_run_id=CHECK_RUN,
        )
        await self.queue.create_job(job)
        await self.queue.enqueue_job(job)
        return job

    async def process_next(self) -> None:
        (entry,) = await self.queue.read(
            GENERATE_STREAM, WORKER_GROUP, self.worker.name, count=1, block_ms=100
        )
        await self.worker.process(entry)

    async def stored(self, job_id: str = "job-1") -> Job:
        job = await self.queue.get_job(job_id)
        assert job is not None
        return job

    async def pending(self) -> int:
        summary: Any = await self.queue.redis.xpending(GENERATE_STREAM, WORKER_GROUP)
        return int(summary["pending"])


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()

    def build(script: Script, **overrides: Any) -> Rig:
        settings = make_settings(
            redis_url=redis_url,
            work_dir=tmp_path / "work",
            progress_interval=0.01,
            heartbeat_interval=0.05,
            **overrides,
        )
        github, store, runner = FakeGitHub(), FakeStore(), StandInRunner(script)
        tools = JobTools(fetch=fetch, run=runner)
        deps = WorkerDeps(settings, queue, github, store, WorkerMetrics(), tools)
        return Rig(Worker(deps, name="w-test"), queue, github, store, runner, settings)

    yield build
    await queue.aclose()


async def test_a_successful_job_reports_progress_then_one_result(
    rig: Callable[..., Rig],
) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        """Print a bar, write two samples, exit 0 once the check run showed progress."""
        out_dir = Path(argv[argv.index("--output-dir") + 1])
        records = [{"user": f"q{i}", "assistant": f"a{i}"} for i in range(2)]
        (out_dir / "generated_x.json").write_text(json.dumps(records))
        on_line("stderr", BAR)
        await r.github.checks.progressed.wait()
        return ended("exited", 0)

    r = rig(script)
    await r.submit()
    await r.process_next()

    checks = r.github.checks
    assert checks.kinds()[0] == "started"
    assert "progress" in checks.kinds()
    assert checks.kinds()[-1] == "completed:success"
    assert len(checks.comments) == 1 and checks.comments[0][:3] == ("o", "r", 3)
    job = await r.stored()
    assert job.state is State.SUCCEEDED and job.generated == 2
    assert job.result_comment_id == 901
    prefix = f"o/r/pr-3/{'a' * 40}/job-1/"
    assert set(r.store.objects) == {
        prefix + name for name in ("generated_x.json", "ilab.log", "index.html", "checksums.json")
    }
    sums = json.loads(r.store.objects[prefix + "checksums.json"])["files"]
    assert set(sums) == {"generated_x.json", "ilab.log"}
    assert sums["generated_x.json"]["size"] == len(r.store.objects[prefix + "generated_x.json"])
    assert BAR in r.store.objects[prefix + "ilab.log"].decode()
    assert job.index_url == f"https://store.example/{prefix}index.html"
    (argv,) = r.runner.argvs
    assert argv[argv.index("--taxonomy-base") + 1] == "origin/main"
    assert await r.pending() == 0  # acknowledged with the end state
    assert not (r.settings.work_dir / "job-1").exists()


async def test_a_failing_ilab_fails_the_job_with_its_error(rig: Callable[..., Rig]) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        on_line("stderr", "Generating dataset failed with the following error: model gone")
        return ended("exited", 1)

    r = rig(script)
    await r.submit()
    await r.process_next()

    assert r.github.checks.kinds()[-1] == "completed:failure"
    assert len(r.github.checks.comments) == 1
    assert "model gone" in r.github.checks.comments[0][3]
    job = await r.stored()
    assert job.state is State.FAILED and job.error == "model gone"
    assert await r.pending() == 0


@pytest.mark.parametrize(
    "run_end",
    [ended("cancelled", None), ended("exited", 0)],  # a cancel wins over a run ending with it
    ids=["stopped", "finished-meanwhile"],
)
async def test_a_cancel_requested_while_running_ends_cancelled(
    rig: Callable[..., Rig], run_end: RunResult
) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        assert cancel is not None
        await r.queue.request_cancel("job-1", "bob")
        await cancel.wait()  # set by the worker's heartbeat, which sees the request
        return run_end

    r = rig(script)
    await r.submit()
    await r.process_next()

    assert r.github.checks.kinds()[-1] == "completed:cancelled"
    (comment,) = r.github.checks.comments
    assert "@bob" in comment[3]
    assert (await r.stored()).state is State.CANCELLED
    assert await r.pending() == 0


async def test_a_run_over_its_time_limit_times_out(rig: Callable[..., Rig]) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        return ended("timed_out", None)

    r = rig(script)
    await r.submit()
    await r.process_next()

    assert r.github.checks.kinds()[-1] == "completed:timed_out"
    assert len(r.github.checks.comments) == 1
    assert (await r.stored()).state is State.TIMED_OUT


async def test_a_storage_failure_fails_the_job_and_says_so(rig: Callable[..., Rig]) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        return ended("exited", 0)

    r = rig(script)
    r.store.broken = True
    await r.submit()
    await r.process_next()

    assert r.github.checks.kinds()[-1] == "completed:failure"
    (comment,) = r.github.checks.comments
    assert "bucket unreachable" in comment[3]
    job = await r.stored()
    assert job.state is State.FAILED and "bucket unreachable" in job.error
    assert await r.pending() == 0


async def test_a_job_that_ended_is_not_run_again(rig: Callable[..., Rig]) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        return ended("exited", 0)

    r = rig(script)
    job = await r.submit()
    await r.process_next()
    await r.queue.enqueue_job(job)  # a duplicate entry for the same job
    await r.process_next()

    assert len(r.runner.argvs) == 1
    assert len(r.github.checks.comments) == 1
    assert await r.pending() == 0  # the duplicate is acknowledged, not left pending


async def test_the_consume_loop_runs_a_queued_job_and_stops(rig: Callable[..., Rig]) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        return ended("exited", 0)

    r = rig(script)
    await r.submit()
    stop = asyncio.Event()
    running = asyncio.create_task(r.worker.run(stop))
    await r.github.checks.commented.wait()
    stop.set()
    await running

    assert (await r.stored()).state is State.SUCCEEDED
    assert await r.pending() == 0
    assert await r.queue.live_workers() == []  # unregistered on stop


async def test_a_shutdown_hands_a_running_job_back(rig: Callable[..., Rig]) -> None:
    running_ilab = asyncio.Event()

    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        assert cancel is not None
        running_ilab.set()
        await cancel.wait()  # set by the drain once the shutdown grace is over
        return ended("cancelled", None)

    r = rig(script, shutdown_grace=0.0)
    await r.submit()
    stop = asyncio.Event()
    running = asyncio.create_task(r.worker.run(stop))
    await running_ilab.wait()
    stop.set()
    await running

    assert r.github.checks.kinds() == ["started", "queued"]
    assert r.github.checks.comments == []
    job = await r.stored()
    assert job.state is State.QUEUED and job.attempts == 0  # a hand-back uses no attempt
    assert await r.queue.redis.xlen(GENERATE_STREAM) == 2  # a fresh entry for the next worker


async def test_a_026_run_replies_with_its_facts_counts_and_the_change_since_the_last_run(
    rig: Callable[..., Rig],
) -> None:
    """Real 0.26-shaped outputs; the facts another part records on the job hash while it runs
    (ilab version, teacher, pipeline) reach the reply; the second run is compared with the
    first; the command line heads ilab.log."""
    seeds = {"job-1": 5, "job-2": 3}

    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        out_dir = Path(argv[argv.index("--output-dir") + 1])
        job_id = out_dir.parent.name
        await r.queue.update_job(
            job_id, ilab_version="0.26.1", teacher_model="mixtral-8x7b", pipeline="simple"
        )
        write_026(out_dir, [skill_leaf(seeds=seeds[job_id])])
        return ended("exited", 0)

    r = rig(script)
    for job_id in seeds:
        await r.submit(job_id)
        await r.process_next()
    first, second = r.github.checks.comments
    assert "**10** samples generated." in first[3]
    assert "**Run:** ilab 0.26.1 · teacher model `mixtral-8x7b` · pipeline `simple`" in second[3]
    assert "**6** samples generated (compared with the previous run on this PR" in second[3]
    assert "+0/−4 samples" in second[3] and "| Seed question |" in second[3]
    assert "checkpoints" not in second[3] and "knowledge_recipe" not in second[3]
    job = await r.stored("job-2")
    assert job.leaf_counts == '{"compositional_skills_writing_haiku":6}'
    log = r.store.objects[f"o/r/pr-3/{'a' * 40}/job-2/ilab.log"].decode()
    assert log.startswith("$ ") and "data generate" in log.splitlines()[0]
    assert job.command_line == log.splitlines()[0][2:]


async def test_ilabs_reason_after_a_progress_bar_reaches_comment_and_check_run(
    rig: Callable[..., Rig],
) -> None:
    """0.26.1 against a teacher answering 500 prints its reason right after a tqdm frame, on
    the same line; the reply said only "ilab exited with code 1"."""
    token = WEBHOOK_SECRET  # one of the deployment's secrets: redacted wherever it shows

    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        on_line(
            "stdout",
            f"{BAR}\x1b[31mfailed to generate data with exception: PipelineBlockError("
            f"gen_skill_freeform): Error code: 500 - teacher down (key {token})\x1b[0m",
        )
        return ended("exited", 1)

    r = rig(script)
    await r.submit()
    await r.process_next()

    (comment,) = r.github.checks.comments
    completed = r.github.checks.updates[-1]
    for text in (comment[3], completed["output"]["title"], completed["output"]["summary"]):
        assert "Error code: 500 - teacher down" in text and token not in text
    assert "ilab exited with code 1" not in comment[3].split("**Error:**")[1].split("\n")[0]
    assert (await r.stored()).error.startswith("PipelineBlockError(gen_skill_freeform)")
