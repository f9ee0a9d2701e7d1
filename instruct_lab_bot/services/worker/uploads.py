"""A job's outputs to the artifact store, with an index page linking each file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core.artifacts import (
    render_index_html,
    sign_stable,
    stable_link,
    viewable,
)
from instruct_lab_bot.core.checksums import (
    CHECKSUMS_NAME,
    Checksum,
    file_checksum,
    render_checksums,
)
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
    links = await job_links(deps, job)
    with span("artifacts.upload", files=len(uploads)):
        async with asyncio.timeout(deps.settings.upload_timeout):
            artifacts = [await _put(deps, job, upload, links) for upload in uploads]
            await _put_checksums(deps, job, uploads)
            index_url = await _put_index(deps, job, artifacts, links)
    uploaded = sum(a.size for a in artifacts)
    deps.metrics.artifact_bytes.inc(uploaded)
    log.info("job.uploaded", files=len(artifacts), bytes=uploaded)
    return tuple(artifacts), index_url


class JobLinks:
    """How a stored file is linked: a stable link on the bot's server (re-signed storage
    link on each visit), or, with `ILAB_BOT_STABLE_LINKS=off`, the store's expiring link."""

    def __init__(self, deps: WorkerDeps, job: Job, key: bytes) -> None:
        self.deps, self.job, self.key = deps, job, key

    async def file(self, name: str) -> str:
        if not self.key:
            return await self.deps.store.link(self.job.artifact_key_prefix() + name)
        return self._stable(name, view=False)

    def view(self, name: str) -> str:
        return self._stable(name, view=True) if self.key and viewable(name) else ""

    def _stable(self, name: str, *, view: bool) -> str:
        sig = sign_stable(self.job.id, name, self.key)
        return stable_link(self.deps.settings.public_url, self.job.id, name, sig, view=view)


async def job_links(deps: WorkerDeps, job: Job) -> JobLinks:
    source = deps.link_key
    if not deps.settings.stable_links or not source:
        return JobLinks(deps, job, b"")
    return JobLinks(deps, job, source if isinstance(source, bytes) else await source())


async def _put(deps: WorkerDeps, job: Job, upload: Upload, links: JobLinks) -> Artifact:
    key = job.artifact_key_prefix() + upload.name
    size = await deps.store.put_file(key, upload.path, upload.content_type)
    return Artifact(upload.name, await links.file(upload.name), size, links.view(upload.name))


async def _put_checksums(deps: WorkerDeps, job: Job, uploads: list[Upload]) -> None:
    """`checksums.json` beside the outputs: what a later job verifies its download against."""

    def digest(path: Path) -> Checksum:
        with path.open("rb") as src:
            return file_checksum(src)

    sums = {u.name: await asyncio.to_thread(digest, u.path) for u in uploads}
    key = job.artifact_key_prefix() + CHECKSUMS_NAME
    await deps.store.put_bytes(key, render_checksums(sums).encode(), "application/json")


async def _put_index(deps: WorkerDeps, job: Job, artifacts: list[Artifact], links: JobLinks) -> str:
    key = job.artifact_key_prefix() + INDEX_NAME
    page = render_index_html(
        index_title(job.pull_request, job.head_sha, job.command),
        [(a.name, a.url, a.size) for a in artifacts],
        {a.name: a.view_url for a in artifacts if a.view_url},
    )
    await deps.store.put_bytes(key, page.encode(), "text/html; charset=utf-8")
    return await links.file(INDEX_NAME)
