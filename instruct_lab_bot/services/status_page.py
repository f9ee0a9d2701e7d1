"""The read-only status page and its JSON API: routes, access control, security headers.

The HTML is rendered by `core.pages.status_html`, under a strict Content-Security-Policy set
here. Data comes from `job_status`, which also applies the privacy rule: with
`ILAB_BOT_STATUS_AUTH` unset the page is public and private repositories appear only as counts;
with it set, every request must authenticate and then sees everything.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiohttp import web
from multidict import CIMultiDict
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core import messages
from instruct_lab_bot.core.job_view import MAX_LIMIT, ReadOptions, iso
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.pages.status_html import render_error, render_overview, render_pr
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.status_auth import parse_status_auth
from instruct_lab_bot.services import job_status as status
from instruct_lab_bot.services.app_keys import QUEUE, SETTINGS
from instruct_lab_bot.services.serving import status as serving_status
from instruct_lab_bot.services.serving.proxy import CHAT

log = structlog.get_logger(__name__)

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_OWNER = r"[A-Za-z0-9-]{1,39}"
_REPO = r"[A-Za-z0-9._-]{1,100}"
_JOB_ID = r"[A-Za-z0-9_-]{1,100}"


# -- routes ---------------------------------------------------------------------------

Render = Callable[[web.Request, Queue, ReadOptions], Awaitable[web.Response]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_routes() -> list[web.RouteDef]:
    """The page and the API; `create_app` mounts them (they read `SETTINGS` and `QUEUE`)."""
    pr = f"/repos/{{owner:{_OWNER}}}/{{repo:{_REPO}}}/pulls/{{number:[0-9]{{1,9}}}}"
    return [
        web.get("/", _guard(_overview_page, api=False)),
        web.get(pr, _guard(_pr_page, api=False)),
        web.get("/api/v1/jobs", _guard(_jobs_api, api=True)),
        web.get(f"/api/v1/jobs/{{job_id:{_JOB_ID}}}", _guard(_job_api, api=True)),
        web.get("/api/v1/workers", _guard(_workers_api, api=True)),
        web.get("/api/v1/pools", _guard(_pools_api, api=True)),
        web.get("/api/v1" + pr, _guard(_pr_api, api=True)),
    ]


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under `/api/`, the router's own answers (404 no such path, 405 wrong method) are JSON
    `{"error": ...}` like every other API answer, with the security headers."""
    if not request.path.startswith("/api/v1/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status not in (404, 405):
            raise
        text = messages.STATUS_NO_SUCH_PATH if exc.status == 404 else messages.STATUS_WRONG_METHOD
        response = _error(exc.status, text, api=True)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        response.headers.update(_security_headers(private=True))
        return response


def _app_state(request: web.Request) -> tuple[Settings, Queue]:
    return request.app[SETTINGS], request.app[QUEUE]


def _guard(render: Render, *, api: bool) -> Handler:
    """Authenticate (when configured), pick the privacy level, add the security headers."""

    async def handler(request: web.Request) -> web.StreamResponse:
        settings, queue = _app_state(request)
        auth = parse_status_auth(settings.status_auth.value)
        if auth is not None and not auth.allows(request.headers.get("Authorization")):
            response = _error(401, messages.STATUS_UNAUTHORIZED, api=api)
            for challenge in auth.challenges():
                response.headers.add("WWW-Authenticate", challenge)
        else:
            options = ReadOptions.from_settings(settings, show_private=auth is not None)
            try:
                response = await render(request, queue, options)
            except (RedisError, OSError) as exc:
                log.warning("status.redis_error", error=repr(exc))
                response = _error(503, "Redis is unavailable; try again shortly.", api=api)
        response.headers.update(_security_headers(private=auth is not None))
        return response

    return handler


def _security_headers(*, private: bool) -> CIMultiDict[str]:
    return CIMultiDict(
        {
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store, private" if private else "no-cache",
        }
    )


def _error(status_code: int, message: str, *, api: bool) -> web.Response:
    if api:
        return web.json_response({"error": message}, status=status_code)
    return _html(render_error(status_code, message), status=status_code)


def _html(text: str, *, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


async def _overview_page(request: web.Request, queue: Queue, options: ReadOptions) -> web.Response:
    chat = request.app.get(CHAT)
    served = await serving_status.overview_section(chat, options.show_private, "./")
    return _html(render_overview(await status.overview(queue, options), served))


async def _pr_page(request: web.Request, queue: Queue, options: ReadOptions) -> web.Response:
    pull = _pr_params(request)
    served = await serving_status.pr_section(request.app.get(CHAT), pull, options.show_private)
    return _html(render_pr(await status.pr_status(queue, pull, options), served))


async def _jobs_api(request: web.Request, queue: Queue, options: ReadOptions) -> web.Response:
    try:
        states = _states(request.query.getall("state", []))
        limit = int(request.query.get("limit", "100"))
    except ValueError as exc:
        return _error(400, str(exc), api=True)
    if not 1 <= limit <= MAX_LIMIT:
        return _error(400, f"limit must be between 1 and {MAX_LIMIT}", api=True)
    jobs = await status.list_jobs(queue, options, states=states, limit=limit)
    return web.json_response(jobs.to_json())


async def _job_api(request: web.Request, queue: Queue, options: ReadOptions) -> web.Response:
    job = await status.job_status(queue, request.match_info["job_id"], options)
    if job is None:
        return _error(404, messages.STATUS_NOT_FOUND, api=True)
    return web.json_response(job.to_json())


async def _workers_api(request: web.Request, queue: Queue, options: ReadOptions) -> web.Response:
    found = await status.workers(queue, options)
    now = iso(time.time())
    return web.json_response({"generated_at": now, "workers": [w.to_json() for w in found]})


async def _pools_api(request: web.Request, queue: Queue, options: ReadOptions) -> web.Response:
    found = await status.pools(queue)
    now = iso(time.time())
    return web.json_response({"generated_at": now, "pools": [p.to_json() for p in found]})


async def _pr_api(request: web.Request, queue: Queue, options: ReadOptions) -> web.Response:
    pr = await status.pr_status(queue, _pr_params(request), options)
    return web.json_response(pr.to_json())


def _pr_params(request: web.Request) -> PullRequestRef:
    info = request.match_info
    return RepoRef(info["owner"], info["repo"]).pull(int(info["number"]))


def _states(values: Sequence[str]) -> list[State]:
    """`?state=queued&state=running` or `?state=queued,running`."""
    names = [name.strip() for value in values for name in value.split(",")]
    try:
        return [State(name) for name in names]  # an empty name (`?state=`) is no state either
    except ValueError:
        allowed = ", ".join(s.value for s in State)
        raise ValueError(f"state must be one of {allowed}") from None
