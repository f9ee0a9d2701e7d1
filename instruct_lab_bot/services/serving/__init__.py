"""Serving PR models for chat: the backend interface (`backend.py`), its two implementations
(`kserve.py`, `local.py` + `local_worker.py`), the sweep that leaves nothing running that no
PR owns (`sweep.py`), and `open_serving_backend`, which picks one from the settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from instruct_lab_bot.adapters.redis.connection import RedisTls, close, connect
from instruct_lab_bot.adapters.redis.serving import ServeRecords
from instruct_lab_bot.core.serve_manifest import IsvcOptions
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.serving.backend import ServingBackend
from instruct_lab_bot.services.serving.local import LocalBackend


def isvc_options(settings: Settings) -> IsvcOptions:
    """The InferenceService choices the settings make."""
    return IsvcOptions(
        namespace=settings.serve_namespace,
        runtime=settings.serve_runtime,
        service_account=settings.serve_storage_account,
        gpus=settings.serve_gpus,
        retention_seconds=int(settings.serve_retention),
        bot=settings.username,
    )


def serve_records(settings: Settings) -> ServeRecords:
    """The `local` backend's Redis records, on the settings' Redis (its own connection)."""
    tls = RedisTls(settings.redis_ca_file, settings.redis_cert_file, settings.redis_key_file)
    return ServeRecords(connect(settings.redis_url, tls))


@contextlib.asynccontextmanager
async def open_serving_backend(
    settings: Settings, *, kubeconfig: str | None = None
) -> AsyncIterator[ServingBackend]:
    """The backend `ILAB_BOT_SERVE_BACKEND` names, closed on exit. `kserve` uses the pod's
    service account in a cluster, else `kubeconfig` (default: `KUBECONFIG`, ~/.kube/config)."""
    if settings.serve_backend == "kserve":
        # kubernetes_asyncio (~30 MB of generated models) only for the backend that uses it.
        from instruct_lab_bot.adapters.kubernetes import open_kube
        from instruct_lab_bot.services.serving.kserve import KServeBackend

        kserve = KServeBackend(await open_kube(kubeconfig), isvc_options(settings))
        try:
            yield kserve
        finally:
            await kserve.aclose()
        return
    records = serve_records(settings)
    try:
        yield LocalBackend(records)
    finally:
        await close(records.redis)
