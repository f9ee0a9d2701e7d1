"""The `kserve` serving backend: one KServe InferenceService per PR model (serverless mode, so
Knative scales it to zero when idle and the activator holds the first request of a cold start).

State lives in the cluster alone (the InferenceService, its annotations and its Knative
revisions), so a restarted bot finds everything it serves with one list call, and a replica's
view equals every other's. Readiness is the `Ready` condition plus `status.url`; a failure the
model will not recover from (image pull, failed load) is reported at once, not after the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from instruct_lab_bot.adapters.kubernetes import KubeApi, KubeError
from instruct_lab_bot.adapters.kubernetes.client import ISVC_LABEL
from instruct_lab_bot.core import serve_names as names
from instruct_lab_bot.core.messages import serving_backend as texts
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.serve_manifest import (
    IsvcOptions,
    belongs_to,
    inference_service,
    served_model,
)
from instruct_lab_bot.core.serving import ModelRef, ServedModel, ServeState
from instruct_lab_bot.services.serving.backend import ServingError

log = structlog.get_logger(__name__)


class KServeBackend:
    """`ServingBackend` on a cluster with KServe (OpenShift AI single-model serving)."""

    def __init__(
        self,
        kube: KubeApi,
        options: IsvcOptions,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 2.0,
        touch_every: float = 60.0,
    ) -> None:
        self.kube = kube
        self.options = options
        self.clock = clock
        self.poll_interval = poll_interval
        self.touch_every = touch_every  # the last-request annotation's resolution

    @property
    def namespace(self) -> str:
        return self.options.namespace

    def _refused(self, exc: KubeError) -> ServingError:
        log.warning("serving.kserve.refused", status=exc.status, reason=exc.reason)
        return ServingError(
            texts.cluster_refused(exc.status, exc.reason, exc.message, self.namespace)
        )

    async def deploy(self, model: ModelRef) -> ServedModel:
        body = inference_service(model, self.options, self.clock())
        name = body["metadata"]["name"]
        try:
            existing = await self.kube.get_isvc(self.namespace, name)
            if existing is None:
                created = await self.kube.create_isvc(self.namespace, body)
            elif not belongs_to(existing, model.pull):
                raise ServingError(texts.name_taken(name))
            else:  # a new train: the same object, the new model (Knative rolls a revision)
                body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                created = await self.kube.replace_isvc(self.namespace, body)
        except KubeError as exc:
            raise self._refused(exc) from None
        log.info("serving.kserve.deployed", name=name, train_job=model.train_job)
        served = served_model(created, [], self.options)
        assert served is not None
        return served

    async def status(self, pull: PullRequestRef) -> ServedModel | None:
        name = names.served_name(pull)
        try:
            found = await self.kube.get_isvc(self.namespace, name)
            if found is None or not belongs_to(found, pull):
                return None
            revisions = await self.kube.list_revisions(self.namespace, name)
        except KubeError as exc:
            raise self._refused(exc) from None
        return served_model(found, revisions, self.options)

    async def ready_url(self, pull: PullRequestRef, within: float) -> str:
        """Waits for `Ready`; a model scaled to zero is ready (Knative's activator holds the
        request while a pod starts), so its URL comes back at once."""
        deadline = time.monotonic() + within
        while True:
            served = await self.status(pull)
            if served is None:
                raise ServingError(texts.not_served(), not_your_fault=False)
            if served.state is ServeState.FAILED:
                raise ServingError(texts.failed_to_start(served.message))
            if served.url and served.state in (ServeState.READY, ServeState.SCALED_TO_ZERO):
                await self._touch(pull, served)
                return served.url
            if time.monotonic() >= deadline:
                raise ServingError(texts.still_starting(within))
            await asyncio.sleep(min(self.poll_interval, max(deadline - time.monotonic(), 0)))

    async def _touch(self, pull: PullRequestRef, served: ServedModel) -> None:
        """Record the request (the TTL sweep's clock), at most once per `touch_every`."""
        now = self.clock()
        if now - served.last_request_at < self.touch_every:
            return
        try:
            found = await self.kube.get_isvc(self.namespace, served.name)
            if found is None or not belongs_to(found, pull):
                return
            found["metadata"]["annotations"][names.ANNOTATION_LAST_REQUEST] = f"{now:.0f}"
            await self.kube.replace_isvc(self.namespace, found)
        except KubeError as exc:  # 409: another replica touched it first; both are fine
            log.info("serving.kserve.touch_skipped", status=exc.status)

    async def remove(self, pull: PullRequestRef) -> bool:
        name = names.served_name(pull)
        try:
            found = await self.kube.get_isvc(self.namespace, name)
            if found is None or not belongs_to(found, pull):
                return False
            removed = await self.kube.delete_isvc(self.namespace, name)
        except KubeError as exc:
            raise self._refused(exc) from None
        log.info("serving.kserve.removed", name=name, removed=removed)
        return removed

    async def list_served(self) -> list[ServedModel]:
        try:
            found = await self.kube.list_isvc(self.namespace, names.selector(self.options.bot))
            by_isvc: dict[str, list[dict[str, Any]]] = {}
            for revision in await self.kube.list_revisions(self.namespace):
                owner = revision["metadata"].get("labels", {}).get(ISVC_LABEL, "")
                by_isvc.setdefault(owner, []).append(revision)
            served = []
            for obj in found:
                revisions = by_isvc.get(obj["metadata"]["name"], [])
                model = served_model(obj, revisions, self.options)
                if model is not None:
                    served.append(model)
        except KubeError as exc:
            raise self._refused(exc) from None
        return served

    async def aclose(self) -> None:
        await self.kube.aclose()
