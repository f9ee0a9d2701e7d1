"""Chat with a PR's served model: what `serve`, `serve stop`, `chat`, the proxy and the chat page
share. One `ChatService` lives in the server process (the dispatcher runs there too)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from instruct_lab_bot.adapters.redis.chat_records import ChatRecords
from instruct_lab_bot.adapters.storage import ArtifactStore, StorageError
from instruct_lab_bot.adapters.storage.local import CachedKey
from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.chat_access import (
    ChatRecord,
    api_base,
    api_token,
    bounded_seeds,
    chat_link,
)
from instruct_lab_bot.core.chat_limits import ChatLimits
from instruct_lab_bot.core.chat_request import answer_text, question_request
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages.serving import ServeLinks
from instruct_lab_bot.core.model_manifest import (
    MANIFEST_NAME,
    MODEL_DIR,
    ManifestError,
    ModelManifest,
)
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.serving import ModelRef, ServedModel, ServeState
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.serving.backend import ServingBackend, ServingError
from instruct_lab_bot.services.serving.chat_metrics import ChatMetrics

log = structlog.get_logger(__name__)

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_ANSWER_BYTES = 256 * 1024  # of a non-streamed answer the bot reads


class ColdStartTimeout(Exception):
    """The model did not answer within the cold-start timeout."""


class ModelGone(Exception):
    """The backend no longer serves the PR's model (removed after its TTL, or by an admin)."""


@dataclass(frozen=True)
class Upstream:
    """Where one PR model answers: its `/v1` base URL and the model id it knows itself by."""

    base: str
    model: str


def v1_base(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def storage_uri(settings: Settings, key_prefix: str) -> str:
    location = parse_artifacts_url(settings.artifacts_url)
    if location.scheme == "s3":
        prefix = f"{location.prefix.strip('/')}/" if location.prefix.strip("/") else ""
        return f"s3://{location.bucket}/{prefix}{key_prefix}"
    assert location.root is not None
    return str(location.root.resolve() / key_prefix).rstrip("/") + "/"


@dataclass
class ChatService:
    settings: Settings
    records: ChatRecords
    backend: ServingBackend | None
    key: CachedKey
    store: ArtifactStore | None
    metrics: ChatMetrics
    session: aiohttp.ClientSession
    clock: Callable[[], float] = time.time
    limits: ChatLimits = field(init=False)
    _models: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.limits = ChatLimits.build(s.chat_user_concurrency, s.chat_model_concurrency)

    def _backend(self) -> ServingBackend:
        if self.backend is None:
            raise ServingError("no serving backend is configured on this bot")
        return self.backend

    async def deploy(
        self, pull: PullRequestRef, train: Job, seeds: list[str], requested_by: str
    ) -> tuple[ChatRecord, ServedModel]:
        """Serve the train job's model for the PR and remember it (new links, new token)."""
        backend = self._backend()
        prefix = train.artifact_key_prefix() + MODEL_DIR
        manifest = await self._manifest(prefix)
        model = ModelRef(
            pull,
            train.id,
            prefix,
            storage_uri(self.settings, prefix),
            base_model=manifest.base_model if manifest else "",
            data_job=(manifest.data_job if manifest else "") or train.source_job,
        )
        served = await backend.deploy(model)
        before = await self.records.get(pull)
        same = before is not None and not before.closed and before.train_job == train.id
        record = ChatRecord(
            pull,
            # the same model again keeps its links and token working (a redelivered `serve`
            # too); a new model, or one stopped or closed before, gets new ones
            nonce=before.nonce if same and before else secrets.token_hex(8),
            train_job=train.id,
            model_name=served.name,
            base_model=model.base_model,
            data_job=model.data_job,
            seeds=bounded_seeds(seeds),
            requested_by=requested_by,
            created_at=self.clock(),
            private=train.private,
        )
        await self.records.put(record)
        self._models.pop(str(pull), None)
        return record, served

    async def _manifest(self, prefix: str) -> ModelManifest | None:
        if self.store is None:
            return None
        try:
            raw = await self.store.read_head(prefix + MANIFEST_NAME, MAX_MANIFEST_BYTES)
            return ModelManifest.from_json(raw) if raw else None
        except (StorageError, ManifestError) as exc:
            log.warning("chat.manifest_unreadable", prefix=prefix, error=str(exc))
            return None

    async def links(self, record: ChatRecord, status_page: str) -> ServeLinks:
        expires = int(self.clock()) + self.settings.chat_link_ttl
        public = self.settings.public_url
        return ServeLinks(
            chat_link=chat_link(public, record, expires, await self.key.get()),
            link_expires=expires,
            api_base=api_base(public, record.pull),
            status_page=status_page,
            token_on_status_page=bool(self.settings.status_auth),
        )

    async def api_token(self, record: ChatRecord) -> str:
        return api_token(record, await self.key.get())

    async def remove(self, pull: PullRequestRef) -> bool:
        """`serve stop`: the served model and its record go (every link and token dies)."""
        record = await self.records.get(pull)
        removed = await self._backend().remove(pull) if self.backend is not None else False
        deleted = await self.records.delete(pull)
        if record is not None:
            self.metrics.forget(record.model_name)
        self._models.pop(str(pull), None)
        return removed or deleted

    async def pull_closed(self, pull: PullRequestRef) -> None:
        """The PR was closed or merged: remove its model; its links answer 410 from now on."""
        record = await self.records.close(pull, self.clock())
        if self.backend is not None and (record is not None or await self.backend.status(pull)):
            await self.backend.remove(pull)
        if record is not None:
            self.metrics.forget(record.model_name)
        self._models.pop(str(pull), None)

    async def upstream(self, pull: PullRequestRef) -> Upstream:
        """The model's URL once it answers (starting it when scaled to zero, counted as a cold
        start); raises `ServingError`, `ColdStartTimeout` or `ModelGone`."""
        backend = self._backend()
        started = time.perf_counter()
        before = await backend.status(pull)
        if before is None or before.state is ServeState.GONE:
            raise ModelGone(str(pull))
        cold = before.state is not ServeState.READY
        within = self.settings.chat_cold_start_timeout
        try:
            async with asyncio.timeout(within + 5):
                url = await backend.ready_url(pull, within)
        except TimeoutError:
            raise ColdStartTimeout(within) from None
        if cold:
            self.metrics.cold_starts.inc()
            self.metrics.cold_start_seconds.observe(time.perf_counter() - started)
        base = v1_base(url)
        return Upstream(base, await self._model_id(pull, base))

    async def _model_id(self, pull: PullRequestRef, base: str) -> str:
        """The id the server knows its model by (`/v1/models`), asked once per serving."""
        cached = self._models.get(str(pull))
        if cached:
            return cached
        model = ""
        try:
            async with self.session.get(base + "/models") as response:
                if response.status == 200:
                    data = await response.json(content_type=None)
                    model = str(data["data"][0]["id"])
        except (aiohttp.ClientError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("chat.models_unreadable", pull=str(pull), error=repr(exc))
        if model:
            self._models[str(pull)] = model
        return model

    async def ask(self, pull: PullRequestRef, question: str) -> str:
        """One question, answered in full (the `chat` command)."""
        upstream = await self.upstream(pull)
        body = question_request(question, upstream.model, self.settings.chat_max_tokens)
        timeout = aiohttp.ClientTimeout(total=self.settings.chat_answer_timeout)
        url = upstream.base + "/chat/completions"
        try:
            async with self.session.post(url, json=body, timeout=timeout) as response:
                raw = await response.content.read(MAX_ANSWER_BYTES)
                if response.status != 200:
                    raise ServingError(f"the model server answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = type(exc).__name__
            raise ServingError(f"the model server could not be reached ({reason})") from None
        try:
            data: Any = json.loads(raw)
        except ValueError:
            raise ServingError("the model server's answer was not JSON") from None
        return answer_text(data)

    async def refresh_gauges(self) -> list[ServedModel]:
        if self.backend is None:
            return []
        served = await self.backend.list_served()
        self.metrics.observe_served(served)
        return served
