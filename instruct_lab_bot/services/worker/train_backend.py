"""Where a `train` job's training runs (`ILAB_BOT_TRAIN_BACKEND`): the contract every backend
implements and the default `worker` backend, `ilab model train` in this worker's sandbox.

A backend gets a `TrainRequest` (core/training.py), feeds every output line it sees to
`on_line(stream, line)` (the worker parses progress from them and keeps the log) and stops when
`cancel` is set or the request's timeout passes. The `kubeflow` backend (helper `kubeflow`)
submits a pipeline run instead and maps its task logs to lines the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from instruct_lab_bot.adapters.runner import RunLimits, RunProcess
from instruct_lab_bot.adapters.sandbox import ilab_command, process_runner
from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.training import Hyperparameters, TrainRequest, TrainRunResult

__all__ = ["OnTrainLine", "TrainBackend", "WorkerTrainBackend", "hyperparameters", "train_argv"]

#: (stream, line): "stdout"/"stderr" for ilab's own output; a remote backend names its task.
OnTrainLine = Callable[[str, str], None]


class TrainBackend(Protocol):
    """Runs one training to its end; never raises for the training's own failure (that is the
    result's exit code / outcome), only OSError when it cannot start at all."""

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


def train_argv(profile: IlabProfile, settings: Settings, request: TrainRequest) -> list[str]:
    """`ilab model train` for the request (paths and configured values only)."""
    hp = request.hyperparameters
    args = ["--data-path", str(request.data_path), "--model-path", request.model_path]
    args += ["--ckpt-output-dir", str(request.output_dir)]
    for flag, value in (
        ("--num-epochs", hp.epochs),
        ("--effective-batch-size", hp.effective_batch_size),
        ("--learning-rate", hp.learning_rate),
        ("--device", hp.device),
    ):
        if value:
            args += [flag, str(value)]
    if hp.pipeline and profile.line >= (0, 26):
        args += ["--pipeline", hp.pipeline]
    return [*settings.ilab_command, "model", "train", *args]


class WorkerTrainBackend:
    """`ilab model train` in the sandbox (bubblewrap or the ilab runner), on this worker."""

    def __init__(
        self, settings: Settings, profile: IlabProfile, run: RunProcess | None = None
    ) -> None:
        self._settings = settings
        self._profile = profile
        self._run = run or process_runner(settings)

    async def run(
        self, request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        argv = train_argv(self._profile, self._settings, request)
        # The job's folder is the cwd: the `simple` pipeline writes `training_results/` there.
        command = ilab_command(
            self._settings, argv, workspace=request.workspace, cwd=request.workspace
        )
        limits = RunLimits(timeout=request.timeout, kill_grace=self._settings.kill_grace)
        result = await self._run(
            command.argv,
            cwd=request.workspace,
            env=command.env,
            on_line=on_line,
            cancel=cancel,
            limits=limits,
        )
        return TrainRunResult(result.outcome, result.exit_code, result.duration)

    async def aclose(self) -> None:
        """Nothing held between runs."""
