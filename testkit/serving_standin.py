"""A small serving backend for tests and the benchmark: each PR model is a REAL
OpenAI-compatible HTTP server (the stand-in teacher, `testkit.fake_teacher`) started on
demand, scaled to zero on `scale_to_zero()` (the server stops) and started again by the next
`ready_url` (a cold start). It implements `services.serving.backend.ServingBackend`, so the
commands, the proxy and the chat page run exactly as with the `kserve` or `local` backend.

`refuse` makes `deploy` fail like a cluster that refuses the object (quota)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.serving import ModelRef, ServedModel, ServeState
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.serving.backend import ServingBackend, ServingError
from instruct_lab_bot.services.serving.chat_app import ServingFactory
from testkit.fake_teacher import Teacher


def served_name(pull: PullRequestRef) -> str:
    return f"pr-{pull.owner}-{pull.name}-{pull.number}".lower().replace(".", "-")[:63]


@dataclass
class StandinBackend:
    """PR models served by stand-in teachers, one per PR."""

    refuse: str = ""  # a reason: every `deploy` raises ServingError with it
    models: dict[PullRequestRef, ServedModel] = field(default_factory=dict)
    servers: dict[PullRequestRef, Teacher] = field(default_factory=dict)
    deployed: list[ModelRef] = field(default_factory=list)
    removed: list[PullRequestRef] = field(default_factory=list)
    cold_starts: int = 0
    pause_stream: threading.Event | None = None  # given to each server (`TeacherState`)

    async def deploy(self, model: ModelRef) -> ServedModel:
        if self.refuse:
            raise ServingError(self.refuse)
        self.deployed.append(model)
        self._stop(model.pull)
        served = ServedModel(
            model.pull,
            served_name(model.pull),
            model.train_job,
            ServeState.SCALED_TO_ZERO,
            cold_start_seconds=1.0,
            created_at=time.time(),
        )
        self.models[model.pull] = served
        return served

    async def status(self, pull: PullRequestRef) -> ServedModel | None:
        return self.models.get(pull)

    async def ready_url(self, pull: PullRequestRef, within: float) -> str:
        served = self.models.get(pull)
        if served is None:
            raise ServingError("no model is served for this pull request", not_your_fault=False)
        server = self.servers.get(pull)
        if server is None:  # scaled to zero: start it (a cold start)
            server = Teacher(model=served.name).__enter__()
            server.state.pause_stream = self.pause_stream
            self.servers[pull] = server
            self.cold_starts += 1
        self.models[pull] = replace(
            served, state=ServeState.READY, url=server.url, last_request_at=time.time()
        )
        return server.url

    def scale_to_zero(self, pull: PullRequestRef) -> None:
        self._stop(pull)
        if pull in self.models:
            self.models[pull] = replace(self.models[pull], state=ServeState.SCALED_TO_ZERO)

    def server(self, pull: PullRequestRef) -> Teacher | None:
        return self.servers.get(pull)

    async def remove(self, pull: PullRequestRef) -> bool:
        self._stop(pull)
        self.removed.append(pull)
        return self.models.pop(pull, None) is not None

    async def list_served(self) -> list[ServedModel]:
        return list(self.models.values())

    async def aclose(self) -> None:
        for pull in list(self.servers):
            self._stop(pull)

    def _stop(self, pull: PullRequestRef) -> None:
        server = self.servers.pop(pull, None)
        if server is not None:
            server.__exit__(None, None, None)

    def factory(self) -> contextlib.AbstractAsyncContextManager[ServingBackend | None]:
        """For `create_app(serving=...)`/`run_bot(serving=...)`: this backend, closed at exit."""
        return _opened(self)


@contextlib.asynccontextmanager
async def _opened(backend: StandinBackend) -> AsyncIterator[ServingBackend | None]:
    try:
        yield backend
    finally:
        await backend.aclose()


def standin_factory(backend: StandinBackend) -> ServingFactory:
    """A `ServingFactory` that hands out `backend` whatever the settings."""

    def factory(
        _settings: Settings,
    ) -> contextlib.AbstractAsyncContextManager[ServingBackend | None]:
        return backend.factory()

    return factory
