"""Run one `train` job (called from `TrainContext.run`): download the generate job's data
(checksum verified), resume from the last uploaded checkpoint if the job was taken over, train
through the configured backend while the check run shows epoch, step, loss, ETA and the loss
curve, upload checkpoints as they appear, then stash the model with its `model.json`."""

from __future__ import annotations

import asyncio
import errno
import shutil
import time
from pathlib import Path
from typing import Protocol

import structlog

from instruct_lab_bot.adapters.plots import loss_curve_png
from instruct_lab_bot.adapters.storage import StorageError
from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core import messages
from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.checksums import ChecksumError
from instruct_lab_bot.core.job_outcome import exit_label, state_from_run
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.core.messages.train import (
    ModelLink,
    TrainSummary,
    check_run_training,
    train_progress_title,
)
from instruct_lab_bot.core.model_manifest import (
    MANIFEST_NAME,
    MODEL_DIR,
    ManifestError,
    ModelManifest,
)
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.train_progress import LossPoint, TrainTracker
from instruct_lab_bot.core.training import (
    DISK_FULL,
    ILAB_DEFAULT_BASE_MODEL,
    TrainLayout,
    TrainRequest,
    TrainRunResult,
    final_model_dir,
    folders_matching,
    train_verdict,
)
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.ilab import JobFailed, shown_command
from instruct_lab_bot.services.worker.log_file import CappedLog
from instruct_lab_bot.services.worker.reporting import Reporter, Snapshot
from instruct_lab_bot.services.worker.train_backend import (
    OnTrainLine,
    TrainBackend,
    hyperparameters,
    train_argv,
)
from instruct_lab_bot.services.worker.train_files import (
    CheckpointUploader,
    Resumed,
    StoredModel,
    TrainingData,
    download_checkpoint,
    download_data,
    files_under,
    read_manifest,
    upload_model,
)
from instruct_lab_bot.services.worker.uploads import job_links, upload_outputs
from instruct_lab_bot.services.worker.workspace import Workspace


class TrainContext(Protocol):
    """What a train job uses of its `TrainContext` (a Protocol: no import of job.py)."""

    deps: WorkerDeps
    job: Job
    cancel: asyncio.Event | None
    reporter: Reporter
    workspace: Workspace
    progress: Progress
    started: float


log = structlog.get_logger(__name__)

LOSS_CURVE_NAME = "loss.png"


async def run_train(execution: TrainContext) -> JobResult:
    """The whole train job; failures it can explain raise JobFailed (reported on the PR)."""
    try:
        return await TrainJob(execution).run()
    except ChecksumError as exc:
        raise JobFailed(f"a checkpoint of this job does not match its checksum: {exc}") from None
    except ManifestError as exc:
        raise JobFailed(f"the model's manifest cannot be trusted: {exc}") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise JobFailed("the train worker's disk is full (No space left on device)") from None
        raise


class TrainJob:
    def __init__(self, execution: TrainContext) -> None:
        self.x = execution
        self.deps, self.job = execution.deps, execution.job
        settings = execution.deps.settings
        self.tracker = TrainTracker(settings.train_epochs, settings.train_pipeline or None)
        self.root = execution.workspace.root
        self.output_dir = self.root / "checkpoints"
        self.resumed = ""
        self.disk_full = False
        self.curve_url = ""
        self._drawn: list[LossPoint] = []  # the points behind `curve_url`

    async def run(self) -> JobResult:
        source = await self._source()
        self.x.workspace.out_dir.mkdir()
        (self.root / "data").mkdir()
        data = await download_data(self.deps, source, self.root / "data")
        backend = self.deps.tools.train(self.deps.settings, self.deps.ilab.profile)
        try:
            return await self._with(backend, source, data)
        finally:
            await backend.aclose()

    async def _with(self, backend: TrainBackend, source: Job, data: TrainingData) -> JobResult:
        try:
            layout = backend.layout(self._request(source, data, None))
        except ValueError as exc:  # a pipeline/device pair this release refuses
            raise JobFailed(f"cannot train with this configuration: {exc}") from None
        resume = await download_checkpoint(self.deps, self.job, self.root, layout)
        if resume is not None:
            self.resumed = resume.name
            log.info("train.resuming", checkpoint=self.resumed, epochs_done=resume.epochs_done)
        request = self._request(source, data, resume)
        run = await self._train(backend, request, layout)
        return await self._finish(source, request, run, layout)

    async def _source(self) -> Job:
        source = await self.deps.queue.get_job(self.job.source_job)
        if source is None or source.command != "generate" or source.state is not State.SUCCEEDED:
            raise JobFailed(
                f"the generate job `{self.job.source_job}` to train on is gone or did not "
                "succeed: run `generate`, then `train` again"
            )
        if source.pull_request != self.job.pull_request:
            raise JobFailed(f"generate job `{source.id}` belongs to another pull request")
        return source

    def _request(self, source: Job, data: TrainingData, resume: Resumed | None) -> TrainRequest:
        settings = self.deps.settings
        self.output_dir.mkdir(exist_ok=True)
        return TrainRequest(
            job_id=self.job.id,
            data_path=data.path,
            data_key=data.key,
            base_model=settings.train_base_model or ILAB_DEFAULT_BASE_MODEL,
            hyperparameters=hyperparameters(settings),
            output_dir=self.output_dir,
            output_key=self.job.artifact_key_prefix(),
            workspace=self.root,
            timeout=settings.train_timeout,
            resume_from=resume.folder if resume else None,
            resume_key=self.job.artifact_key_prefix() if resume else "",
            epochs_done=resume.epochs_done if resume else 0,
        )

    async def _train(
        self, backend: TrainBackend, request: TrainRequest, layout: TrainLayout
    ) -> TrainRunResult:
        deps, settings = self.deps, self.deps.settings
        command_line = self._command_line(request)
        await redis_calls.best_effort(deps.queue.update_job(self.job.id, command_line=command_line))
        uploader = CheckpointUploader(deps, self.job, self.root, layout, self._epochs_done)
        stop = asyncio.Event()
        with CappedLog(self.x.workspace.log_path, settings.log_limit) as log_file:
            log_file.write_line(f"$ {command_line}")
            follower = asyncio.create_task(self._follow(uploader, stop))
            try:
                with span("train.run", backend=settings.train_backend):
                    run = await backend.run(request, self._sink(log_file), self.x.cancel)
            except OSError as exc:
                raise JobFailed(f"cannot start training: {exc.strerror or exc}") from None
            finally:
                stop.set()
                await follower
        deps.metrics.exits.labels("train", exit_label(run.exit_code)).inc()
        device = request.hyperparameters.device or "default"
        deps.metrics.train.device_seconds.labels(device).inc(run.duration)
        return run

    def _epochs_done(self) -> int:
        """Whole epochs behind the epoch in progress (TrainProgress.epoch is 1-based)."""
        return max((self.tracker.progress.epoch or 1) - 1, 0)

    def _command_line(self, request: TrainRequest) -> str:
        if self.deps.settings.train_backend != "worker":
            return f"`ilab model train` through {self.deps.settings.train_backend}"
        try:
            argv = train_argv(self.deps.ilab.profile, self.deps.settings, request)
        except ValueError:
            return ""
        return shown_command(argv, self.deps.redactor)

    def _sink(self, log_file: CappedLog) -> OnTrainLine:
        redact, progress = self.deps.redactor.redact, self.x.progress

        def sink(_stream: str, line: str) -> None:
            line = redact(line)
            log_file.write_line(line)
            progress.feed(line)
            self.tracker.feed(line)
            if DISK_FULL.search(line):
                self.disk_full = True

        return sink

    async def _follow(self, uploader: CheckpointUploader, stop: asyncio.Event) -> None:
        """Every progress interval: upload finished checkpoints, then the check run under the
        reporter's policy (only what shows something new; each best effort: a failed update
        never fails the training)."""

        async def scan() -> None:
            try:
                await uploader.scan()
            except (StorageError, OSError) as exc:  # tried again at the next interval
                log.warning("train.checkpoint_upload_failed", error=str(exc))

        await self.x.reporter.follow_view(_TrainView(self), stop, scan)

    async def refresh_curve(self) -> None:
        """Redraw the loss curve only when its points changed: a new link to the same
        picture would make the check run look changed when it is not."""
        points = self.tracker.loss_curve()
        if points and points != self._drawn:
            await self._report_curve_quietly()
            self._drawn = points

    async def _upload_curve(self) -> str:
        points = [(p.step, p.loss) for p in self.tracker.loss_curve()]
        png = await asyncio.to_thread(loss_curve_png, points)
        key = self.job.artifact_key_prefix() + LOSS_CURVE_NAME
        await self.deps.store.put_bytes(key, png, "image/png")
        return await self.deps.store.link(key)

    async def _finish(
        self, source: Job, request: TrainRequest, run: TrainRunResult, layout: TrainLayout
    ) -> JobResult:
        state = state_from_run(run.outcome, run.exit_code)
        model_dir = await self._model_dir(run, layout)
        state, error = train_verdict(
            state,
            exit_code=run.exit_code,
            logged_error=run.error or self.tracker.progress.error or self.x.progress.error,
            saw_nan=self.tracker.progress.saw_nan,
            disk_full=self.disk_full,
            model_found=model_dir is not None or run.remote_model,
        )
        if self.tracker.loss_curve():  # the whole curve, for the completed check run and reply
            await self._report_curve_quietly()
        summary = None
        if state is State.SUCCEEDED:
            stored = await self._stash(source, request, run, model_dir)
            summary = await self._summary(stored)
        artifacts, index_url = await upload_outputs(
            self.deps, self.job, self.x.workspace.out_dir, self.x.workspace.log_path
        )
        return JobResult(
            state=state,
            duration=time.monotonic() - self.x.started,
            exit_code=run.exit_code,
            error=error,
            artifacts=artifacts,
            index_url=index_url,
            log_tail=self.x.progress.last_lines(messages.FAILURE_LOG_LINES),
            train=summary,
        )

    async def _model_dir(self, run: TrainRunResult, layout: TrainLayout) -> Path | None:
        """The final model folder; with the `simple` pipeline, whose weights are the GGUF
        outside it, the folder it writes (the GGUF is copied in)."""
        if run.remote_model or not layout.model_glob:
            return None
        names = await asyncio.to_thread(files_under, self.root)
        folder = final_model_dir(names, layout.model_glob)
        extras = [self.root / e for e in layout.model_extras if e in names]
        if folder is None and extras:
            written = folders_matching(names, layout.model_glob)
            folder = written[-1] if written else layout.model_glob.replace("*", "final")
        if folder is None:
            return None
        for extra in extras:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.copy, extra, self.root / folder / extra.name)
        return self.root / folder

    async def _stash(
        self, source: Job, request: TrainRequest, run: TrainRunResult, model_dir: Path | None
    ) -> StoredModel:
        if run.remote_model or model_dir is None:
            return await read_manifest(self.deps, self.job, self.root / "model.json")
        template = ModelManifest(
            train_job=self.job.id,
            data_job=source.id,
            base_model=request.base_model,
            ilab_version=str(self.deps.ilab.version),
            files=(),
            hyperparameters=request.hyperparameters.as_dict(),
            final_loss=self.tracker.progress.loss,
        )
        with span("train.upload_model"):
            stored = await upload_model(self.deps, self.job, model_dir, template)
        self.deps.metrics.train.model_bytes.inc(stored.manifest.total_bytes)
        return stored

    async def _summary(self, stored: StoredModel) -> TrainSummary:
        links = await job_links(self.deps, self.job)
        files = [
            ModelLink(f.name, await links.file(MODEL_DIR + f.name), f.size)
            for f in stored.manifest.files
        ]
        location = parse_artifacts_url(self.deps.settings.artifacts_url)
        s3_uri = ""
        if location.scheme == "s3":
            base = f"{location.prefix}/" if location.prefix else ""
            s3_uri = f"s3://{location.bucket}/{base}{self.job.artifact_key_prefix()}{MODEL_DIR}"
        return TrainSummary(
            data_job=stored.manifest.data_job,
            base_model=stored.manifest.base_model,
            files=files,
            manifest_url=await links.file(MODEL_DIR + MANIFEST_NAME),
            final_loss=stored.manifest.final_loss,
            s3_uri=s3_uri,
            resumed=self.resumed,
            loss_curve_url=self.curve_url,
            bot=self.deps.settings.username,
        )

    async def _report_curve_quietly(self) -> None:
        try:
            self.curve_url = await self._upload_curve()
        except (StorageError, OSError, ValueError) as exc:  # the picture is a nicety
            log.warning("train.loss_curve_failed", error=str(exc))


class _TrainView:
    """A train job's numbers, loss curve and newest lines as its check run shows them."""

    def __init__(self, train: TrainJob) -> None:
        self.train = train

    def lines_seen(self) -> int:
        return self.train.x.progress.lines_seen

    async def snapshot(self) -> Snapshot:
        t = self.train
        await t.refresh_curve()
        status, tail = t.tracker.progress, t.x.progress.last_lines(t.x.progress.tail_lines)
        payload = check_run_training(t.job, status, tail, image_url=t.curve_url, resumed=t.resumed)
        fields = {"stage": train_progress_title(status)}
        return Snapshot(t.deps.redactor.value(payload), status.stage, status.percent == 100, fields)
