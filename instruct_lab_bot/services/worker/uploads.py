"""A job's outputs to the artifact store, with an index page linking each file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core.artifacts import render_index_html
from instruct_lab_bot.core.job_outcome import INDEX_NAME, Upload, index_title, plan_uploads
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages import Artifact
from instruct_lab_bot.core.outputs import list_files
from instruct_lab_bot.services.worker.deps import WorkerDeps

log = structlog.get_logger(__name__)


async def upload_outputs(
    deps: WorkerDeps, job: Job, out_dir: Path, log_path: Path | None
) -> tuple[tuple[Artifact, ...], str]:
    """Store every output file (and the log), then the index; the artifacts and index URL.

    The whole upload shares `upload_timeout`; a storage failure raises `StorageError`.
    """
    listed = await asyncio.to_thread(list_files, out_dir)
    uploads = plan_uploads(out_dir, listed, log_path)
    with span("artifacts.upload", files=len(uploads)):
        async with asyncio.timeout(deps.settings.upload_timeout):
            artifacts = [await _put(deps, job, upload) for upload in uploads]
            index_url = await _put_index(deps, job, artifacts)
    uploaded = sum(a.size for a in artifacts)
    deps.metrics.artifact_bytes.inc(uploaded)
    log.info("job.uploaded", files=len(artifacts), bytes=uploaded)
    return tuple(artifacts), index_url


async def _put(deps: WorkerDeps, job: Job, upload: Upload) -> Artifact:
    key = job.artifact_key_prefix() + upload.name
    size = await deps.store.put_file(key, upload.path, upload.content_type)
    return Artifact(upload.name, await deps.store.link(key), size)


async def _put_index(deps: WorkerDeps, job: Job, artifacts: list[Artifact]) -> str:
    key = job.artifact_key_prefix() + INDEX_NAME
    page = render_index_html(
        index_title(job.pull_request, job.head_sha, job.command),
        [(a.name, a.url, a.size) for a in artifacts],
    )
    await deps.store.put_bytes(key, page.encode(), "text/html; charset=utf-8")
    return await deps.store.link(key)
