"""Stable links to a job's files on the bot's own server, and the browser viewer.

`GET /jobs/<id>/files/<name>?sig=…` checks the signature and that the job is still known,
then redirects to a fresh storage link (an S3 presigned URL, or the local store's signed
`/artifacts/` link), so a link in a PR comment keeps working after storage links expire.
`GET /jobs/<id>/view/<name>?sig=…` shows a jsonl or yaml file as paged cards with a search box
(rendered here, no script, a CSP that forbids any).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from instruct_lab_bot.adapters.storage import (
    ArtifactStore,
    StorageError,
    link_signing_key,
    open_store,
)
from instruct_lab_bot.adapters.storage.local import CachedKey
from instruct_lab_bot.core.artifacts import (
    parse_artifacts_url,
    stable_link,
    validate_key,
    verify_stable,
    viewable,
)
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages import links as wording
from instruct_lab_bot.core.pages.viewer_html import (
    MAX_VIEW_BYTES,
    VIEWER_CSP,
    ViewRequest,
    render_viewer,
)
from instruct_lab_bot.services.app_keys import QUEUE, SETTINGS

log = structlog.get_logger(__name__)

STORE = web.AppKey("job_files_store", ArtifactStore)
LINK_KEY = web.AppKey("job_files_key", CachedKey)
_JOB_ID = r"[A-Za-z0-9_-]{1,100}"
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def job_file_routes() -> list[web.RouteDef]:
    return [
        web.get(f"/jobs/{{job_id:{_JOB_ID}}}/files/{{name:.+}}", _files),
        web.get(f"/jobs/{{job_id:{_JOB_ID}}}/view/{{name:.+}}", _view),
    ]


async def job_files_ctx(app: web.Application) -> AsyncIterator[None]:
    """The store the stable links re-sign from, open while the server runs."""
    settings = app[SETTINGS]
    source = link_signing_key(settings, lambda: app[QUEUE].shared_link_key())
    app[LINK_KEY] = CachedKey(source)
    store = open_store(
        parse_artifacts_url(settings.artifacts_url),
        public_url=settings.public_url,
        signing_key=source,
        link_expiry=settings.link_expiry,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    app[STORE] = store
    try:
        yield
    finally:
        await store.aclose()


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=_HEADERS)


async def _checked(request: web.Request) -> tuple[Job, str] | web.Response:
    """The job and the storage key of a signed request, or the refusal to send."""
    job_id, name = request.match_info["job_id"], request.match_info["name"]
    try:
        validate_key(name)
    except ValueError:
        return _plain(400, wording.LINK_INVALID)
    key = await request.app[LINK_KEY].get()
    if not verify_stable(job_id, name, request.query.get("sig", ""), key):
        return _plain(403, wording.LINK_INVALID)
    job = await request.app[QUEUE].get_job(job_id)
    if job is None:
        return _plain(404, wording.LINK_NO_JOB)
    return job, job.artifact_key_prefix() + name


async def _files(request: web.Request) -> web.StreamResponse:
    checked = await _checked(request)
    if isinstance(checked, web.Response):
        return checked
    _job, key = checked
    try:
        target = await request.app[STORE].link(key)
    except StorageError as exc:
        log.warning("job_files.link_failed", error=str(exc))
        return _plain(503, wording.LINK_STORE_DOWN)
    raise web.HTTPFound(target, headers=_HEADERS)


async def _view(request: web.Request) -> web.StreamResponse:
    checked = await _checked(request)
    if isinstance(checked, web.Response):
        return checked
    job, key = checked
    name = request.match_info["name"]
    if not viewable(name):
        return _plain(404, wording.LINK_NO_FILE)
    try:
        data = await request.app[STORE].read_head(key, MAX_VIEW_BYTES + 1)
    except StorageError as exc:
        log.warning("job_files.read_failed", error=str(exc))
        return _plain(503, wording.LINK_STORE_DOWN)
    if data is None:
        return _plain(404, wording.LINK_NO_FILE)
    sig = request.query.get("sig", "")
    public = request.app[SETTINGS].public_url
    page_text = request.query.get("page", "1")
    view = ViewRequest(
        title=f"{job.repo_full_name} #{job.pr_number} @ {job.head_sha[:7]}: {job.command}",
        name=name,
        query=request.query.get("q", "")[:200],
        page=int(page_text) if page_text.isdigit() and len(page_text) < 7 else 1,
        base_url=request.rel_url.raw_path,
        download_url=stable_link(public, job.id, name, sig),
        sig=sig,
    )
    page = render_viewer(view, data[:MAX_VIEW_BYTES], truncated=len(data) > MAX_VIEW_BYTES)
    headers = {**_HEADERS, "Content-Security-Policy": VIEWER_CSP}
    return web.Response(text=page, content_type="text/html", headers=headers)
