"""Serving PR models for chat: the backend interface and its implementations."""

from __future__ import annotations

from instruct_lab_bot.core.serve_manifest import IsvcOptions
from instruct_lab_bot.core.settings import Settings


def isvc_options(settings: Settings) -> IsvcOptions:
    """The InferenceService choices the settings make."""
    return IsvcOptions(
        namespace=settings.serve_namespace,
        runtime=settings.serve_runtime,
        service_account=settings.serve_storage_account,
        gpus=settings.serve_gpus,
        retention_seconds=int(settings.serve_retention),
        bot=settings.username,
        cold_start_seconds=settings.serve_cold_start,
    )
