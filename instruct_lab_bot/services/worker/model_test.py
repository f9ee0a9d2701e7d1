"""`test` on a worker: the trained model fetched (every file checked against its manifest),
the base and the trained model served side by side (`ilab model serve` in the sandbox, each
on a free loopback port, both stopped whatever happens), each seed question of the PR's
changed qna.yaml files asked of both, each answer scored against the contributor's
(ROUGE-L, `core.model_test`), and the report stored as `test.json` and `test.html`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from instruct_lab_bot.adapters.ilab_serve import (
    LOOPBACK,
    IlabServer,
    ServeFailed,
    ask_model,
    free_port,
)
from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core.ilab import serve_argv
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.core.messages import model_test as wording
from instruct_lab_bot.core.model_manifest import ModelManifest
from instruct_lab_bot.core.model_test import ModelTestReport, SeedComparison, served_file
from instruct_lab_bot.core.pages.model_test_html import render_test_html
from instruct_lab_bot.core.precheck import Seed
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.services import precheck
from instruct_lab_bot.services.model_files import ModelFilesError, fetch_model, model_prefix
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.ilab import JobFailed
from instruct_lab_bot.services.worker.model_evaluate import evaluate
from instruct_lab_bot.services.worker.reporting import Reporter
from instruct_lab_bot.services.worker.uploads import upload_outputs
from instruct_lab_bot.services.worker.workspace import Workspace

log = structlog.get_logger(__name__)


class ModelTest:
    """One `test` job, from its checkout to its result."""

    def __init__(
        self,
        deps: WorkerDeps,
        job: Job,
        workspace: Workspace,
        reporter: Reporter,
        progress: Progress,
        cancel: asyncio.Event | None,
    ) -> None:
        self.deps, self.job, self.workspace = deps, job, workspace
        self.reporter, self.progress, self.cancel = reporter, progress, cancel

    async def run(self, checkout: Path, elapsed: Callable[[], float]) -> JobResult:
        files = [f for f in self.job.files.split(",") if f]
        seeds = await asyncio.to_thread(precheck.read_seeds, checkout, files)
        if not seeds:
            raise JobFailed(wording.NO_SEEDS)
        train_job = await self.deps.queue.get_job(self.job.source_job)
        if train_job is None:
            raise JobFailed(wording.train_job_gone(self.job.source_job))
        trained_dir = self.workspace.root / "model"
        manifest = await self._fetch(train_job, trained_dir)
        served = served_file([f.name for f in manifest.files])
        trained = trained_dir / served if served else trained_dir
        base = self.deps.settings.test_base_model or manifest.base_model
        report = ModelTestReport(train_job.id, base, f"{train_job.id}/model/{served}".rstrip("/"))
        try:
            async with asyncio.timeout(self.deps.settings.job_timeout):
                report = await self._followed(report, seeds, checkout, trained)
        except TimeoutError:
            return JobResult(state=State.TIMED_OUT, duration=elapsed())
        except JobFailed:
            if not self._cancelled():
                raise
            return JobResult(state=State.CANCELLED, duration=elapsed())
        return await self._result(report, elapsed)

    async def _fetch(self, train_job: Job, dest: Path) -> ModelManifest:
        """The trained model's files in `dest`, each checked against its manifest."""
        try:
            with span("test.fetch_model", train_job=train_job.id):
                prefix = model_prefix(train_job.artifact_key_prefix())
                return await fetch_model(self.deps.store, prefix, dest)
        except ModelFilesError as exc:
            raise JobFailed(wording.MANIFEST_MISMATCH.format(detail=exc)) from None

    async def _followed(
        self, report: ModelTestReport, seeds: Sequence[Seed], checkout: Path, trained: Path
    ) -> ModelTestReport:
        """The answers (and the judge's evaluation, when one is configured), with the check
        run following the progress meanwhile."""
        stop = asyncio.Event()
        follower = asyncio.create_task(self.reporter.follow(self.progress, stop))
        try:
            answers = await self._ask_both(seeds, report.base_model, trained)
            report = replace(report, answers=tuple(self._redacted(a) for a in answers))
            await asyncio.to_thread(report.score_all)  # CPU work: off the event loop
            if self._cancelled():
                return report
            if self.deps.settings.test_judge_model:
                self.progress.stage = wording.EVALUATING
                self.progress.lines_seen += 1
            models = (str(trained), report.base_model)
            evaluation = await evaluate(
                self.deps,
                self.job,
                models=models,
                checkout=checkout,
                workspace=self.workspace.root,
                cancel=self.cancel,
            )
            return replace(report, evaluation=evaluation)
        finally:
            stop.set()
            await follower

    async def _ask_both(
        self, seeds: Sequence[Seed], base: str, trained: Path
    ) -> list[SeedComparison]:
        settings = self.deps.settings
        async with (
            aiohttp.ClientSession() as session,
            self._server("base", base) as base_server,
            self._server("trained", str(trained)) as trained_server,
        ):
            self.progress.stage = wording.progress_stage(0, 0)
            base_ids, trained_ids = await _both(
                self._start(session, base_server, "base"),
                self._start(session, trained_server, "trained"),
            )
            answers: list[SeedComparison] = []
            for index, seed in enumerate(seeds):
                if self._cancelled():
                    break
                self._step(index, len(seeds))
                base_answer, trained_answer = await asyncio.gather(
                    _ask(session, base_server.url, base_ids, seed, settings.test_answer_timeout),
                    _ask(
                        session, trained_server.url, trained_ids, seed, settings.test_answer_timeout
                    ),
                )
                answers.append(_answer(seed, base_answer, trained_answer))
            return answers

    @contextlib.asynccontextmanager
    async def _server(self, which: str, model: str) -> AsyncIterator[IlabServer]:
        """`ilab model serve` of `model` on a free loopback port, stopped on the way out."""
        port = free_port()
        folder = self.workspace.root / f"serve-{which}"
        await asyncio.to_thread(folder.mkdir, exist_ok=True)
        run = serve_argv(
            self.deps.ilab.profile,
            self.deps.settings.ilab_command,
            Path(model),
            LOOPBACK,
            port,
            folder,
        )
        server = await IlabServer.from_run(
            self.deps.settings, run, port=port, workspace=self.workspace.root, cwd=folder
        )
        try:
            async with server:  # stopped on the way out, whatever happens
                yield server
        finally:
            for line in server.tail:
                self.progress.feed(self.deps.redactor.redact(f"[{which}] {line}"))

    async def _start(
        self, session: aiohttp.ClientSession, server: IlabServer, which: str
    ) -> list[str]:
        try:
            with span("test.serve", which=which):
                return await server.start(
                    session, self.deps.settings.test_ready_timeout, self.cancel
                )
        except ServeFailed as exc:
            raise JobFailed(wording.serve_failed(which, str(exc))) from None

    def _step(self, index: int, total: int) -> None:
        progress = self.progress
        progress.stage = wording.progress_stage(index, total)
        progress.percent = int(100 * index / total)
        progress.counter = None  # the stage says "Question i of N" already
        progress.lines_seen += 1  # something changed: the next tick updates the check run

    async def _result(self, report: ModelTestReport, elapsed: Callable[[], float]) -> JobResult:
        out_dir = self.workspace.out_dir
        await asyncio.to_thread(_write_report, out_dir, report)
        artifacts, index_url = await upload_outputs(self.deps, self.job, out_dir, None)
        if self._cancelled():
            state, error = State.CANCELLED, ""
        elif report.compared:
            state, error = State.SUCCEEDED, ""
        else:
            state, error = State.FAILED, _first_error(report) or wording.NO_ANSWERS
        log.info(
            "test.scored",
            questions=len(report.answers),
            compared=report.compared,
            trained_closer=report.count("trained"),
        )
        return JobResult(
            state=state,
            duration=elapsed(),
            error=error,
            artifacts=artifacts,
            index_url=index_url,
            model_test=report,
        )

    def _redacted(self, answer: SeedComparison) -> SeedComparison:
        redact = self.deps.redactor.redact
        return replace(
            answer,
            base=redact(answer.base),
            trained=redact(answer.trained),
            base_error=redact(answer.base_error),
            trained_error=redact(answer.trained_error),
        )

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


async def _both(
    first: Coroutine[Any, Any, list[str]], second: Coroutine[Any, Any, list[str]]
) -> tuple[list[str], list[str]]:
    """Both servers started at once; when one fails, the other's wait is cancelled too."""
    tasks = [asyncio.create_task(first), asyncio.create_task(second)]
    try:
        one, two = await asyncio.gather(*tasks)
        return one, two
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _ask(
    session: aiohttp.ClientSession,
    url: str,
    models: Sequence[str],
    seed: Seed,
    within: float,
) -> tuple[str, str]:
    """(answer, "") or ("", why not)."""
    model = models[0] if models else "default"
    try:
        return await ask_model(session, url, model, seed.question, within=within), ""
    except ServeFailed as exc:
        return "", str(exc)


def _answer(seed: Seed, base: tuple[str, str], trained: tuple[str, str]) -> SeedComparison:
    return SeedComparison(
        seed.path,
        seed.question,
        seed.answer,
        base=base[0],
        trained=trained[0],
        base_error=base[1],
        trained_error=trained[1],
    )


def _first_error(report: ModelTestReport) -> str:
    return next(
        (
            a.trained_error or a.base_error
            for a in report.answers
            if a.trained_error or a.base_error
        ),
        "",
    )


def _write_report(out_dir: Path, report: ModelTestReport) -> None:
    (out_dir / "test.json").write_text(report.to_json(), encoding="utf-8")
    (out_dir / "test.html").write_text(render_test_html(report), encoding="utf-8")
