"""The `local` backend's launcher on a `serve` worker: the PR model's files fetched from the
store (each checked against its manifest), then `ilab model serve` in the sandbox on a free
loopback port, ready when `/v1/models` answers (`adapters/ilab_serve.py`: the real `ilab model
serve` exits 0 even when it failed). The model's folder stays while its train job is the PR's
latest, so a restart after an idle stop skips the download.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import aiohttp
import structlog

from instruct_lab_bot.adapters.ilab_serve import LOOPBACK, IlabServer, ServeFailed, free_port
from instruct_lab_bot.adapters.redis.serving import ServeRecords
from instruct_lab_bot.adapters.storage import ArtifactStore
from instruct_lab_bot.core.command_table import SERVE_CAPABILITY
from instruct_lab_bot.core.ilab import serve_argv
from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.model_manifest import MANIFEST_NAME
from instruct_lab_bot.core.serve_names import served_name
from instruct_lab_bot.core.serving import ModelRef
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.model_files import ModelFilesError, fetch_model
from instruct_lab_bot.services.serving.backend import ServingError
from instruct_lab_bot.services.serving.local_worker import (
    LocalLimits,
    LocalServeWorker,
    ModelServer,
)
from instruct_lab_bot.services.worker.deps import WorkerDeps

log = structlog.get_logger(__name__)


class IlabLauncher:
    def __init__(
        self,
        settings: Settings,
        store: ArtifactStore,
        profile: IlabProfile,
        session: aiohttp.ClientSession,
    ) -> None:
        self.settings = settings
        self.store = store
        self.profile = profile
        self.session = session
        self.root = settings.work_dir / "serving"

    async def __call__(self, model: ModelRef, ready_within: float) -> ModelServer:
        folder = self.root / served_name(model.pull)
        dest = folder / model.train_job / "model"
        await self._fetch(model, folder, dest)
        port = free_port()
        run = serve_argv(
            self.profile, self.settings.ilab_command, dest, LOOPBACK, port, dest.parent
        )
        server = await IlabServer.from_run(
            self.settings, run, port=port, workspace=folder, cwd=dest.parent
        )
        try:  # a failed start has stopped the server: only a started one is returned
            await server.start(self.session, ready_within, None)
        except ServeFailed as exc:
            raise ServingError(str(exc)) from None
        return server

    async def _fetch(self, model: ModelRef, folder: Path, dest: Path) -> None:
        """The model's files in `dest` (kept from an earlier start when complete); the PR's
        older train jobs' folders go."""
        await asyncio.to_thread(_prune, folder, model.train_job)
        if await asyncio.to_thread((dest / MANIFEST_NAME).is_file):
            return
        try:
            manifest = await fetch_model(self.store, model.model_prefix, dest)
        except ModelFilesError as exc:
            await asyncio.to_thread(shutil.rmtree, dest, True)
            raise ServingError(f"the model's files are not usable: {exc}") from None
        # Written last: its presence means every file arrived and matched.
        await asyncio.to_thread((dest / MANIFEST_NAME).write_text, manifest.to_json(), "utf-8")


def _prune(folder: Path, keep: str) -> None:
    if folder.is_dir():
        for child in folder.iterdir():
            if child.name != keep:
                shutil.rmtree(child, ignore_errors=True)


def serves_models(settings: Settings) -> bool:
    """Whether this worker runs PR models: the `local` backend, and a worker of the `serve`
    pool (`--capabilities …,serve`; a worker without `--capabilities` has every pool)."""
    return settings.serve_backend == "local" and SERVE_CAPABILITY in settings.worker_capabilities


async def serve_models(deps: WorkerDeps, name: str, stop: asyncio.Event) -> None:
    """A worker's serve loop until `stop` (returns at once unless it serves models)."""
    settings = deps.settings
    if not serves_models(settings):
        return
    limits = LocalLimits(
        settings.serve_idle, settings.serve_max_models, settings.serve_ready_timeout
    )
    async with aiohttp.ClientSession() as session:
        launcher = IlabLauncher(settings, deps.store, deps.ilab.profile, session)
        worker = LocalServeWorker(
            ServeRecords(deps.queue.redis),
            launcher,
            limits,
            name=name,
        )
        while not stop.is_set():  # a bug in serving must not end the worker's jobs
            try:
                await worker.run(stop)
            except Exception:
                log.exception("serving.local.loop_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5.0)
