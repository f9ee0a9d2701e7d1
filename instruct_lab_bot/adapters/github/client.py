"""GitHub adapter: App authentication and the few calls the bot makes, over gidgethub.

One `GitHubApp` per process holds one aiohttp session, the installation-token cache and the
write governor, and every GitHub call goes through its one request path:

- a per-attempt timeout, and retries (see `governor.retry_delay`) on 5xx, dropped
  connections, timeouts and rate limits, honouring `retry-after` / `x-ratelimit-reset`, all
  within one deadline per call;
- a per-process cap on concurrent requests;
- for installation writes, a budget shared by every process through Redis (`WriteBudget`):
  droppable writes (progress updates) are skipped when it runs short, the others wait;
- installation tokens refreshed well before they expire, and once more if GitHub refuses one;
- `on_response(route_template, status, headers)` after every response (status None when no
  response came), for metrics.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import gidgethub
import gidgethub.aiohttp
import gidgethub.apps
import structlog
from redis.exceptions import RedisError

from instruct_lab_bot import __version__
from instruct_lab_bot.adapters.github.governor import (
    WRITE_METHODS,
    Outcome,
    WriteGate,
    retry_delay,
)
from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core.permissions import role_from_permission
from instruct_lab_bot.core.retry import RetryPolicy
from instruct_lab_bot.core.settings import Settings

log = structlog.get_logger(__name__)
USER_AGENT = f"instruct-lab-bot/{__version__}"
TOKEN_REFRESH_MARGIN = 10 * 60  # refresh an installation token this long before it expires
JWT_REUSE = 5 * 60  # an app JWT lives 10 minutes; sign a new one after this
DEFAULT_CONCURRENCY = 8

ResponseHook = Callable[[str, int | None, Mapping[str, str]], None]
"""Called as `hook(route_template, status, headers)`; status None when no response came."""


class GitHubError(Exception):
    """A GitHub call that failed after retries; the message is safe to show users.

    `transient` says whether trying again later may succeed (5xx, timeouts, rate limits), as
    opposed to a refusal that will not change (404, 422, lost permission).
    """

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.status = status
        self.transient = transient


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass(frozen=True)
class _Response:
    data: Any
    headers: Mapping[str, str]


class _RecordingAPI(gidgethub.aiohttp.GitHubAPI):
    """gidgethub's aiohttp binding, keeping the last status and headers (gidgethub's errors
    do not always carry headers) and reporting each response to the metrics hook."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, route: str, hook: ResponseHook | None
    ) -> None:
        super().__init__(session, USER_AGENT, base_url=base_url)
        self.route = route
        self.hook = hook
        self.status: int | None = None
        self.headers: Mapping[str, str] = {}

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            status, got, data = await super()._request(method, url, headers, body)
        except BaseException:
            self._report(None, {})
            raise
        self.status, self.headers = status, got
        self._report(status, got)
        return status, got, data

    def _report(self, status: int | None, headers: Mapping[str, str]) -> None:
        if self.hook is None:
            return
        try:
            self.hook(self.route, status, headers)
        except Exception:  # metrics must never break a GitHub call
            log.exception("github.response_hook_failed", route=self.route)


class GitHubApp:
    """App-level auth (JWT), the installation-token cache and the governed request path."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        app_id: str,
        private_key: str,
        api_url: str,
        timeout: float = 30.0,
        budget: WriteGate | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        retry: RetryPolicy | None = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        self._session = session
        self._app_id = app_id
        self._private_key = private_key
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.on_response = on_response
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tokens: dict[int, _Token] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._jwt: tuple[str, float] | None = None

    # -- auth -------------------------------------------------------------------------

    def _app_jwt(self) -> str:
        now = time.monotonic()
        if self._jwt is None or now - self._jwt[1] > JWT_REUSE:
            token = gidgethub.apps.get_jwt(app_id=self._app_id, private_key=self._private_key)
            self._jwt = (str(token), now)
        return self._jwt[0]

    async def token(self, installation_id: int) -> str:
        """A token valid for at least `TOKEN_REFRESH_MARGIN` seconds."""
        cached = self._tokens.get(installation_id)
        if cached and cached.expires_at - time.time() > TOKEN_REFRESH_MARGIN:
            return cached.value
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached and cached.expires_at - time.time() > TOKEN_REFRESH_MARGIN:
                return cached.value
            data = await self.app_request(
                "create installation token",
                "POST",
                "/app/installations/{installation_id}/access_tokens",
                {"installation_id": installation_id},
                b"",
            )
            expires = datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
            token = _Token(str(data["token"]), expires.timestamp())
            self._tokens[installation_id] = token
            log.info("github.token_refreshed", installation_id=installation_id)
            return token.value

    def forget_token(self, installation_id: int, token: str) -> None:
        cached = self._tokens.get(installation_id)
        if cached and cached.value == token:
            del self._tokens[installation_id]

    def installation(self, installation_id: int) -> Installation:
        return Installation(self, installation_id)

    # -- app-level calls (JWT) ----------------------------------------------------------

    async def app_request(
        self, what: str, method: str, url: str, url_vars: Mapping[str, Any], data: Any = None
    ) -> Any:
        """One call authenticated as the App itself (not counted in any installation budget)."""
        response = await self._request(what, method, url, url_vars, data, installation_id=None)
        assert response is not None  # only droppable writes are ever skipped
        return response.data

    async def hook_deliveries(
        self, *, per_page: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the App's webhook deliveries (newest first) and the next page's cursor."""
        response = await self._request(
            "list webhook deliveries",
            "GET",
            "/app/hook/deliveries{?per_page,cursor}",
            {"per_page": per_page, "cursor": cursor},
            None,
            installation_id=None,
        )
        assert response is not None
        return list(response.data or []), _next_cursor(response.headers)

    async def redeliver_hook_delivery(self, delivery_id: int) -> None:
        """Ask GitHub to send a delivery again (GitHub accepts it with 202)."""
        await self.app_request(
            "redeliver a webhook delivery",
            "POST",
            "/app/hook/deliveries/{delivery_id}/attempts",
            {"delivery_id": delivery_id},
            b"",
        )

    # -- the one request path ---------------------------------------------------------

    async def _request(
        self,
        what: str,
        method: str,
        url: str,
        url_vars: Mapping[str, Any],
        data: Any,
        *,
        installation_id: int | None,
        droppable: bool = False,
    ) -> _Response | None:
        """Send with retries and the write budget; None only for a skipped droppable write."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry.deadline
        max_attempts = self.retry.droppable_attempts if droppable else self.retry.max_attempts
        budgeted = (
            self.budget is not None and installation_id is not None and method in WRITE_METHODS
        )
        route = url.split("{?", 1)[0].replace("{+", "{")
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = await self.token(installation_id) if installation_id is not None else None
            if budgeted and not await self._take_budget(
                cast(int, installation_id), droppable, deadline, what
            ):
                return None
            outcome, response = await self._attempt(method, url, route, url_vars, data, token)
            if response is not None:
                return response
            if outcome.status == 401 and token is not None and not refreshed:
                # Revoked or expired early (clock skew): fetch a new token once.
                self.forget_token(cast(int, installation_id), token)
                refreshed = True
                continue
            advice = retry_delay(outcome, attempt, self.retry)
            if advice is not None and advice.rate_limited:
                if installation_id is not None and self.budget is not None:
                    await self.budget.pause(installation_id, advice.delay)
                if droppable:  # progress is the first thing to give up under pressure
                    raise _error(what, outcome, attempt, transient=True)
            if advice is None or attempt >= max_attempts or loop.time() + advice.delay > deadline:
                raise _error(what, outcome, attempt, transient=advice is not None)
            log.info(
                "github.retry",
                what=what,
                error=_describe(outcome),
                attempt=attempt,
                delay=round(advice.delay, 3),
            )
            await asyncio.sleep(advice.delay)

    async def _attempt(
        self,
        method: str,
        url: str,
        route: str,
        url_vars: Mapping[str, Any],
        data: Any,
        token: str | None,
    ) -> tuple[Outcome, _Response | None]:
        if method not in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            raise ValueError(f"unsupported method {method}")
        api = _RecordingAPI(self._session, self.api_url, route, self.on_response)
        jwt = None if token is not None else self._app_jwt()
        with span("github.request", method=method, route=route) as current:
            outcome, response = await self._send(api, method, url, url_vars, data, jwt, token)
            if current.is_recording():
                current.set_attribute("http.response.status_code", str(outcome.status))
            return outcome, response

    async def _send(
        self,
        api: _RecordingAPI,
        method: str,
        url: str,
        url_vars: Mapping[str, Any],
        data: Any,
        jwt: str | None,
        token: str | None,
    ) -> tuple[Outcome, _Response | None]:
        result: Any = None
        try:
            async with self._slots, asyncio.timeout(self.timeout):
                if method == "GET":
                    result = await api.getitem(url, url_vars, jwt=jwt, oauth_token=token)
                elif method == "POST":
                    result = await api.post(url, url_vars, data=data, jwt=jwt, oauth_token=token)
                elif method == "PATCH":
                    result = await api.patch(url, url_vars, data=data, jwt=jwt, oauth_token=token)
                elif method == "PUT":
                    result = await api.put(url, url_vars, data=data, jwt=jwt, oauth_token=token)
                else:
                    await api.delete(url, url_vars, data=data or b"", jwt=jwt, oauth_token=token)
        except gidgethub.HTTPException as exc:
            return Outcome(int(exc.status_code), api.headers, exc), None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(None, {}, exc), None
        return Outcome(api.status, api.headers), _Response(result, api.headers)

    async def _take_budget(
        self, installation_id: int, droppable: bool, deadline: float, what: str
    ) -> bool:
        """Wait for a write slot; False if a droppable write should be skipped instead."""
        assert self.budget is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                wait = await self.budget.try_take(installation_id, droppable=droppable)
            except (RedisError, OSError) as exc:
                # Without Redis, final results still go out (GitHub's own limits and our
                # retries still apply); progress waits for better days.
                log.warning("github.budget_unavailable", error=repr(exc), droppable=droppable)
                return not droppable
            if wait <= 0:
                return True
            if droppable:
                log.info("github.write_skipped", what=what, installation_id=installation_id)
                return False
            if loop.time() + wait > deadline:
                raise GitHubError(
                    f"GitHub call failed ({what}): write budget exhausted", transient=True
                )
            await asyncio.sleep(wait + random.uniform(0, 0.05))  # noqa: S311 - jitter


class Installation:
    """Calls made as one installation; each call fetches a fresh-enough token."""

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id

    async def _call(
        self,
        what: str,
        method: str,
        url: str,
        url_vars: dict[str, Any],
        data: Any = None,
        *,
        droppable: bool = False,
    ) -> Any:
        response = await self.app._request(
            what,
            method,
            url,
            url_vars,
            data,
            installation_id=self.installation_id,
            droppable=droppable,
        )
        return None if response is None else response.data

    async def get_pull(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            await self._call(
                "read the pull request",
                "GET",
                "/repos/{owner}/{repo}/pulls/{number}",
                {"owner": owner, "repo": repo, "number": number},
            ),
        )

    async def add_reaction(self, owner: str, repo: str, comment_id: int, content: str) -> None:
        await self._call(
            "react to the comment",
            "POST",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
            {"owner": owner, "repo": repo, "comment_id": comment_id},
            {"content": content},
        )

    async def create_comment(self, owner: str, repo: str, number: int, body: str) -> int:
        data = await self._call(
            "comment on the pull request",
            "POST",
            "/repos/{owner}/{repo}/issues/{number}/comments",
            {"owner": owner, "repo": repo, "number": number},
            {"body": body},
        )
        return int(data["id"])

    async def create_check_run(self, owner: str, repo: str, payload: dict[str, Any]) -> int:
        data = await self._call(
            "create the check run",
            "POST",
            "/repos/{owner}/{repo}/check-runs",
            {"owner": owner, "repo": repo},
            payload,
        )
        return int(data["id"])

    async def update_check_run(
        self,
        owner: str,
        repo: str,
        check_run_id: int,
        payload: dict[str, Any],
        *,
        droppable: bool = False,
    ) -> None:
        """`droppable=True` for progress: skipped when the write budget runs short (each
        progress payload is a full snapshot, so the next one supersedes a skipped one), given
        up on a rate limit rather than waited for. Completions must use the default."""
        await self._call(
            "update the check run",
            "PATCH",
            "/repos/{owner}/{repo}/check-runs/{check_run_id}",
            {"owner": owner, "repo": repo, "check_run_id": check_run_id},
            payload,
            droppable=droppable,
        )

    # -- reads for permissions, validation and welcome ------------------------------------

    async def _optional(self, what: str, url: str, url_vars: dict[str, Any]) -> Any:
        """A GET whose 404 means "no such thing" rather than an error."""
        try:
            return await self._call(what, "GET", url, url_vars)
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    async def _pages(
        self,
        what: str,
        url: str,
        url_vars: dict[str, Any],
        *,
        key: str | None = None,
        max_pages: int = 30,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paginated list (100 a page; GitHub caps PR files at 3,000)."""
        for page in range(1, max_pages + 1):
            data = await self._call(
                what, "GET", url + "{?per_page,page}", {**url_vars, "per_page": 100, "page": page}
            )
            items = (data or {}).get(key, []) if key else (data or [])
            for item in items:
                yield item
            if len(items) < 100:
                return

    async def permission(self, owner: str, repo: str, user: str) -> str:
        """The person's role in the repository: none, read, triage, write, maintain, admin."""
        data = await self._optional(
            "read the collaborator permission",
            "/repos/{owner}/{repo}/collaborators/{username}/permission",
            {"owner": owner, "repo": repo, "username": user},
        )
        return role_from_permission(data) if isinstance(data, dict) else "none"

    async def team_member(self, org: str, team: str, user: str) -> bool:
        """Whether the person is an *active* member of the team (pending invites are not)."""
        data = await self._optional(
            "read the team membership",
            "/orgs/{org}/teams/{team_slug}/memberships/{username}",
            {"org": org, "team_slug": team, "username": user},
        )
        return isinstance(data, dict) and data.get("state") == "active"

    async def pull_files(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        return [
            item
            async for item in self._pages(
                "list the pull request's files",
                "/repos/{owner}/{repo}/pulls/{number}/files",
                {"owner": owner, "repo": repo, "number": number},
            )
        ]

    async def file_text(self, owner: str, repo: str, path: str, ref: str) -> str | None:
        """A file's text at `ref`; None if it does not exist there (or is not a file)."""
        data = await self._optional(
            "read a file",
            "/repos/{owner}/{repo}/contents/{+path}{?ref}",
            {"owner": owner, "repo": repo, "path": quote(path, safe="/"), "ref": ref},
        )
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        content = data.get("content")
        if data.get("encoding") != "base64" or not isinstance(content, str):
            return None  # over 1 MB: GitHub sends no content
        return base64.b64decode(content).decode("utf-8", errors="replace")

    async def find_check_run(
        self, owner: str, repo: str, sha: str, name: str, external_id: str
    ) -> int | None:
        """Our check run for a job, if one was created already (external_id is the job id)."""
        data = await self._call(
            "list check runs",
            "GET",
            "/repos/{owner}/{repo}/commits/{ref}/check-runs{?check_name,filter,per_page}",
            {
                "owner": owner,
                "repo": repo,
                "ref": sha,
                "check_name": name,
                "filter": "all",
                "per_page": 100,
            },
        )
        for run in (data or {}).get("check_runs", []):
            if run.get("external_id") == external_id:
                return int(run["id"])
        return None

    async def has_comment_with(self, owner: str, repo: str, number: int, marker: str) -> bool:
        """Whether a bot comment on the PR contains `marker` (e.g. the welcome's)."""
        async for comment in self._pages(
            "list comments",
            "/repos/{owner}/{repo}/issues/{number}/comments",
            {"owner": owner, "repo": repo, "number": number},
            max_pages=50,
        ):
            user = comment.get("user") or {}
            if user.get("type") == "Bot" and marker in str(comment.get("body", "")):
                return True
        return False


def build_github_app(
    session: aiohttp.ClientSession,
    settings: Settings,
    budget: WriteGate | None,
    on_response: Callable[[str, int | None, Mapping[str, str]], None] | None = None,
) -> GitHubApp:
    """The one way every process builds its GitHub client (same retries, same budget)."""
    return GitHubApp(
        session,
        app_id=settings.github_app_id,
        private_key=settings.github_private_key.value,
        api_url=settings.github_api_url,
        timeout=settings.github_timeout,
        budget=budget,
        max_concurrency=settings.github_max_concurrency,
        retry=RetryPolicy(
            deadline=settings.github_retry_deadline, max_attempts=settings.github_max_attempts
        ),
        on_response=on_response,
    )


_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


def _next_cursor(headers: Mapping[str, str]) -> str | None:
    """The `cursor` of the Link header's next page (GitHub's delivery list pages by cursor)."""
    match = _NEXT_LINK.search(headers.get("link", "") or headers.get("Link", ""))
    if match is None:
        return None
    cursors = parse_qs(urlsplit(match.group(1)).query).get("cursor")
    return cursors[0] if cursors else None


def _error(what: str, outcome: Outcome, attempt: int, *, transient: bool) -> GitHubError:
    log.warning("github.call_failed", what=what, error=_describe(outcome), attempt=attempt)
    return GitHubError(
        f"GitHub call failed ({what}): {_describe(outcome)}",
        status=outcome.status,
        transient=transient,
    )


def _describe(outcome: Outcome) -> str:
    exc = outcome.error
    if outcome.status is not None:
        return f"HTTP {outcome.status} {exc}" if exc is not None else f"HTTP {outcome.status}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
