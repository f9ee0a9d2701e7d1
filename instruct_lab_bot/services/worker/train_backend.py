"""Where a `train` job's training runs (`ILAB_BOT_TRAIN_BACKEND`): the contract every backend
implements and the default `worker` backend, `ilab model train` in this worker's sandbox.

A backend gets a `TrainRequest` (core/training.py), feeds every output line it sees to
`on_line(stream, line)` (the worker parses progress from them and keeps the log) and stops when
`cancel` is set or the request's timeout passes. The `kubeflow` backend (helper `kubeflow`)
submits a pipeline run instead and maps its task logs to lines the same way.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from typing import Protocol

from instruct_lab_bot.adapters.runner import RunLimits, RunProcess
from instruct_lab_bot.adapters.sandbox import ilab_command, process_runner
from instruct_lab_bot.core.ilab.model_commands import (
    TrainInput,
    TrainParams,
    TrainRun,
    TrainUnsupported,
    train_run,
)
from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.training import (
    Hyperparameters,
    TrainLayout,
    TrainRequest,
    TrainRunResult,
)

__all__ = [
    "OnTrainLine",
    "TrainBackend",
    "TrainBackendFactory",
    "WorkerTrainBackend",
    "hyperparameters",
    "open_train_backend",
    "planned",
    "train_argv",
]

#: (stream, line): "stdout"/"stderr" for ilab's own output; a remote backend names its task.
OnTrainLine = Callable[[str, str], None]


class TrainBackend(Protocol):
    """Runs one training to its end; never raises for the training's own failure (that is the
    result's exit code / outcome / error), only OSError when it cannot start at all.

    `layout` says where a local training writes (checkpoints, model, how to resume); a remote
    backend answers an empty `TrainLayout()` and sets `TrainRunResult.remote_model`. It raises
    ValueError (with a message for the PR) for a configuration the release refuses."""

    def layout(self, request: TrainRequest) -> TrainLayout: ...

    async def run(
        self, request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult: ...

    async def aclose(self) -> None: ...


def hyperparameters(settings: Settings) -> Hyperparameters:
    """The admin's ILAB_BOT_TRAIN_* values."""
    return Hyperparameters(
        epochs=settings.train_epochs,
        effective_batch_size=settings.train_effective_batch_size,
        learning_rate=settings.train_learning_rate,
        device=settings.train_device,
        pipeline=settings.train_pipeline,
    )


def planned(profile: IlabProfile, settings: Settings, request: TrainRequest) -> TrainRun:
    """`ilab model train` for the request (`core.ilab.train_run`: paths and configured values
    only); TrainUnsupported for a pipeline/device pair the release refuses."""
    hp = request.hyperparameters
    defaults = TrainParams(base_model=request.base_model)
    params = TrainParams(
        base_model=request.base_model,
        pipeline=hp.pipeline or defaults.pipeline,
        device=hp.device or defaults.device,
        epochs=hp.epochs or defaults.epochs,
        effective_batch_size=hp.effective_batch_size,
        learning_rate=hp.learning_rate,
    )
    data = TrainInput(
        messages_file=request.data_path,
        generate_dir=request.data_path.parent,
        workdir=request.workspace,
        resume_model=request.resume_from,
        epochs_done=request.epochs_done,
    )
    return train_run(profile, settings.ilab_command, params, data)


def train_argv(profile: IlabProfile, settings: Settings, request: TrainRequest) -> list[str]:
    return planned(profile, settings, request).argv


class WorkerTrainBackend:
    """`ilab model train` in the sandbox (bubblewrap or the ilab runner), on this worker."""

    def __init__(
        self, settings: Settings, profile: IlabProfile, run: RunProcess | None = None
    ) -> None:
        self._settings = settings
        self._profile = profile
        self._run = run or process_runner(settings)

    def layout(self, request: TrainRequest) -> TrainLayout:
        plan = planned(self._profile, self._settings, request)
        extras = (f"home/.local/share/{plan.gguf_in_data_home}",) if plan.gguf_in_data_home else ()
        return TrainLayout(plan.checkpoint_globs, plan.model_glob, extras, plan.resume)

    async def run(
        self, request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        try:
            plan = planned(self._profile, self._settings, request)
        except TrainUnsupported as exc:
            return TrainRunResult("exited", 2, 0.0, error=str(exc))
        # The job's folder is the cwd: the `simple` pipeline writes `training_results/` there.
        command = ilab_command(self._settings, plan.argv, workspace=request.workspace, cwd=plan.cwd)
        limits = RunLimits(timeout=request.timeout, kill_grace=self._settings.kill_grace)
        result = await self._run(
            command.argv,
            cwd=plan.cwd,
            env=command.env,
            on_line=on_line,
            cancel=cancel,
            limits=limits,
        )
        return TrainRunResult(result.outcome, result.exit_code, result.duration)

    async def aclose(self) -> None:
        """Nothing held between runs."""


#: Builds the backend a train job runs through, from the settings and the worker's ilab.
TrainBackendFactory = Callable[[Settings, IlabProfile], TrainBackend]


def open_train_backend(settings: Settings, profile: IlabProfile) -> TrainBackend:
    """The backend `ILAB_BOT_TRAIN_BACKEND` names (the `kubeflow` one: helper `kubeflow`)."""
    if settings.train_backend != "worker":
        raise OSError(errno.ENOSYS, f"train backend {settings.train_backend!r} is not available")
    return WorkerTrainBackend(settings, profile)
