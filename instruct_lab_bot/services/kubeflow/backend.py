"""The `kubeflow` train backend (ILAB_BOT_TRAIN_BACKEND=kubeflow): a `train` job's training
runs as a Kubeflow Pipelines run on OpenShift AI instead of in the worker.

The worker still owns the job (lease, check run, reply); this backend submits the compiled
pipeline with the job's parameters, follows the run and turns what it sees into the same
`on_line` lines the worker backend gives: each task's state changes (stream = the task's name)
and `ilab model train`'s own output lines, which the training step mirrors to the object store
(stream = stdout/stderr, as ilab wrote them). Cancel and the training timeout terminate the
run. A job taken over by another worker finds its run by name and follows it: nothing trains
twice. On success the model is already under `<train job prefix>model/` (`remote_model`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from instruct_lab_bot.adapters.kubeflow import KfpClient, KfpConfig, KfpError, RunView
from instruct_lab_bot.adapters.storage import ArtifactStore, StorageError
from instruct_lab_bot.adapters.storage.s3 import S3Config, S3Store
from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.ilab.commands import with_ilab_config
from instruct_lab_bot.core.ilab.model_commands import TrainRun, TrainUnsupported
from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.kubeflow import (
    DATA_SLOT,
    PROGRESS_NAME,
    WORK_SLOT,
    data_job_of,
    parse_progress,
    run_phase,
    step_states,
)
from instruct_lab_bot.core.messages import kubeflow as texts
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.training import TrainLayout, TrainRequest, TrainRunResult
from instruct_lab_bot.services.worker.train_backend import OnTrainLine, planned

__all__ = ["KubeflowTrainBackend", "pod_plan", "run_name"]

log = structlog.get_logger(__name__)
_PROGRESS_BYTES = 4 * 1024 * 1024
_TERMINATE_READS = 20  # reads of a terminated run before the bot stops waiting for CANCELED


def run_name(job_id: str) -> str:
    """The run's display name: how a taken-over job finds the run it already submitted."""
    return f"instruct-lab-bot train {job_id}"


def pod_plan(profile: IlabProfile, settings: Settings, request: TrainRequest) -> TrainRun:
    """`ilab model train` as the training pod runs it (`core.ilab.train_run`, like a worker):
    the pod's data and work folders as slots (`{data}`, `{work}`), ILAB_BOT_KFP_ILAB_COMMAND
    as the executable, ilab's built-in config. A KFP run is not resumed from an uploaded
    checkpoint: a taken-over job follows the run instead. TrainUnsupported for a
    pipeline/device pair the release refuses."""
    in_pod = replace(
        request,
        data_path=Path(DATA_SLOT) / request.data_key.rsplit("/", 1)[-1],
        output_dir=Path(WORK_SLOT) / "checkpoints",
        workspace=Path(WORK_SLOT),
        resume_from=None,
        epochs_done=0,
    )
    pod_settings = with_ilab_config(
        replace(settings, ilab_command=settings.kfp_ilab_command), admin_config=False
    )
    return planned(profile, pod_settings, in_pod)


@dataclass
class _Follow:
    """What the backend has told `on_line` so far about one run."""

    on_line: OnTrainLine
    progress_key: str
    tasks: dict[str, str]
    seen: int = 0


class KubeflowTrainBackend:
    """Trains through the Data Science Pipelines API (one client and store per backend)."""

    def __init__(
        self,
        settings: Settings,
        profile: IlabProfile,
        *,
        client: KfpClient | None = None,
        store: ArtifactStore | None = None,
    ) -> None:
        self._settings = settings
        self._profile = profile
        self._client = client or KfpClient(
            KfpConfig(
                settings.kfp_url,
                settings.kfp_token_file,
                settings.kfp_ca_file,
                settings.kfp_namespace,
            )
        )
        self._store = store or _open_store(settings)

    def layout(self, request: TrainRequest) -> TrainLayout:
        """Nothing is written on the worker: the pipeline publishes the model itself."""
        return TrainLayout()

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._store.aclose()

    async def run(
        self, request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if cancel is not None and cancel.is_set():  # cancelled before anything was submitted
            return TrainRunResult("cancelled", None, 0.0)
        try:
            plan = pod_plan(self._profile, self._settings, request)
        except TrainUnsupported as exc:
            return TrainRunResult("exited", 2, 0.0, error=str(exc))  # as on a worker
        try:
            run = await self._submit(request, plan, on_line)
        except (KfpError, OSError, ImportError) as exc:  # ImportError: no `kubeflow` extra
            log.warning("kubeflow.submit_failed", error=str(exc))
            return TrainRunResult("exited", None, loop.time() - started, texts.submit_failed(exc))
        follow = _Follow(on_line, request.output_key + PROGRESS_NAME, {})
        # A run followed after a take-over has been training since it was created.
        spent = max(0.0, time.time() - run.created_at) if run.created_at else 0.0
        deadline = started + request.timeout - spent
        result = await self._follow(run.run_id, follow, cancel, deadline)
        return replace(result, duration=loop.time() - started)

    async def _submit(self, request: TrainRequest, plan: TrainRun, on_line: OnTrainLine) -> RunView:
        settings = self._settings
        experiment = await self._client.experiment_id(settings.kfp_experiment)
        name = run_name(request.job_id)
        found = await self._client.find_run(experiment, name)
        if found is not None and run_phase(found.state) in ("waiting", "running", "succeeded"):
            on_line("kfp", texts.following(found.run_id))
            return found
        spec = await asyncio.to_thread(_compiled, settings)
        params = self._parameters(request, plan)
        run = await self._client.create_run(name, experiment, spec, params)
        on_line("kfp", texts.submitted(run.run_id, settings.kfp_url))
        log.info("kubeflow.submitted", run_id=run.run_id, job_id=request.job_id)
        return run

    def _parameters(self, request: TrainRequest, plan: TrainRun) -> dict[str, object]:
        from instruct_lab_bot.services.kubeflow.pipeline import run_parameters

        manifest = {
            "train_job": request.job_id,
            "data_job": data_job_of(request.data_key),
            "base_model": request.base_model or "ilab's default",
            "ilab_version": self._profile.tested,
            "hyperparameters": request.hyperparameters.as_dict(),
        }
        return run_parameters(
            self._settings.artifacts_url,
            request.data_key,
            request.output_key,
            {"argv": plan.argv, "model_glob": plan.model_glob},
            manifest,
            self._settings.progress_interval,
        )

    async def _follow(
        self, run_id: str, follow: _Follow, cancel: asyncio.Event | None, deadline: float
    ) -> TrainRunResult:
        loop = asyncio.get_running_loop()
        while True:
            if cancel is not None and cancel.is_set():
                await self._terminate(run_id, follow)
                return TrainRunResult("cancelled", None, 0.0)
            if loop.time() >= deadline:
                await self._terminate(run_id, follow)
                return TrainRunResult("timed_out", None, 0.0)
            try:
                view = await self._client.get_run(run_id)
            except KfpError as exc:  # retried already; an outage: keep following
                log.warning("kubeflow.read_failed", run_id=run_id, error=str(exc))
                if exc.status == 404:
                    return TrainRunResult("exited", None, 0.0, texts.run_gone(run_id))
            else:
                self._tasks(view, follow)
                await self._relay(follow)
                done = _result(view)
                if done is not None:
                    return done
            await _wait(cancel, min(self._settings.kfp_poll_interval, deadline - loop.time()))

    def _tasks(self, view: RunView, follow: _Follow) -> None:
        errors = {task.name: task.error for task in view.tasks if task.error}
        for name, state in step_states([(t.name, t.state) for t in view.tasks]).items():
            if follow.tasks.get(name) != state:
                follow.tasks[name] = state
                follow.on_line(name, texts.task_state(name, state, errors.get(name, "")))

    async def _relay(self, follow: _Follow) -> None:
        try:
            raw = await self._store.read_head(follow.progress_key, _PROGRESS_BYTES)
        except StorageError as exc:
            log.warning("kubeflow.progress_unreadable", error=str(exc))
            return
        progress = parse_progress(raw) if raw else None
        if progress is None or progress.end <= follow.seen:
            return
        if progress.first > follow.seen:
            follow.on_line("kfp", texts.lines_skipped(progress.first - follow.seen))
        for stream, line in progress.after(follow.seen):
            follow.on_line(stream, line)
        follow.seen = progress.end

    async def _terminate(self, run_id: str, follow: _Follow) -> None:
        """Terminate the run and wait (a bounded number of reads) until it is CANCELED."""
        try:
            await self._client.terminate_run(run_id)
            for _ in range(_TERMINATE_READS):
                view = await self._client.get_run(run_id)
                self._tasks(view, follow)
                if run_phase(view.state) in ("canceled", "failed", "succeeded"):
                    break
                await asyncio.sleep(min(self._settings.kfp_poll_interval, 1.0))
        except KfpError as exc:
            log.warning("kubeflow.terminate_failed", run_id=run_id, error=str(exc))
            follow.on_line("kfp", texts.terminate_failed(run_id))
        await self._relay(follow)


def _result(view: RunView) -> TrainRunResult | None:
    phase = run_phase(view.state)
    if phase == "succeeded":
        return TrainRunResult("exited", 0, 0.0, remote_model=True)
    if phase == "failed":
        states = step_states([(t.name, t.state) for t in view.tasks])
        failed = next((name for name, s in states.items() if run_phase(s) == "failed"), "")
        if failed == "train-model":
            return TrainRunResult("exited", 1, 0.0)  # the log says why, as on a worker
        return TrainRunResult("exited", None, 0.0, texts.run_failed(failed))
    if phase == "canceled":
        return TrainRunResult("exited", None, 0.0, texts.canceled_elsewhere())
    return None


async def _wait(cancel: asyncio.Event | None, seconds: float) -> None:
    if cancel is None:
        await asyncio.sleep(max(seconds, 0.0))
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(cancel.wait(), timeout=max(seconds, 0.0))


_SPECS: dict[tuple[object, ...], dict[str, Any]] = {}


def _compiled(settings: Settings) -> dict[str, Any]:
    """The compiled pipeline for these settings (compiled once per process and options)."""
    from instruct_lab_bot.services.kubeflow.pipeline import PipelineOptions, compile_pipeline

    options = PipelineOptions(
        image=settings.kfp_image,
        gpus=settings.kfp_gpus,
        node_selector=settings.kfp_node_selector,
        s3_secret=settings.kfp_s3_secret,
        memory=settings.kfp_memory,
    )
    key = (options,)
    if key not in _SPECS:
        _SPECS[key] = compile_pipeline(options)
    return _SPECS[key]


def _open_store(settings: Settings) -> S3Store:
    location = parse_artifacts_url(settings.artifacts_url)
    config = S3Config(location.bucket, location.prefix, settings.s3_endpoint_url, 3600)
    return S3Store(config)
