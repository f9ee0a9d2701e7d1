"""GitHub adapter: App authentication and the few calls the bot makes, over gidgethub.

One `GitHubApp` per process holds one aiohttp session and the installation-token cache, so
every call shares connections, and a long job always gets a token with time left on it.
Every call has a timeout; server errors and dropped connections are retried with backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import aiohttp
import gidgethub
import gidgethub.aiohttp
import gidgethub.apps
import structlog

from . import __version__

log = structlog.get_logger(__name__)
T = TypeVar("T")
USER_AGENT = f"instruct-lab-bot/{__version__}"
TOKEN_REFRESH_MARGIN = 10 * 60  # refresh an installation token this long before it expires
RETRIES = 3


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


class GitHubApp:
    """App-level auth (JWT) and a per-installation token cache."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        app_id: str,
        private_key: str,
        api_url: str,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._app_id = app_id
        self._private_key = private_key
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._tokens: dict[int, _Token] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def _api(self, token: str | None = None) -> gidgethub.aiohttp.GitHubAPI:
        return gidgethub.aiohttp.GitHubAPI(
            self._session, USER_AGENT, oauth_token=token, base_url=self.api_url
        )

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
            data = await _with_retries(
                "create installation token",
                self.timeout,
                lambda: gidgethub.apps.get_installation_access_token(
                    self._api(),
                    installation_id=str(installation_id),
                    app_id=self._app_id,
                    private_key=self._private_key,
                ),
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


class Installation:
    """Calls made as one installation; each call fetches a fresh-enough token."""

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id

    async def _call(
        self, what: str, method: str, url: str, url_vars: dict[str, Any], data: Any = None
    ) -> Any:
        async def attempt() -> Any:
            token = await self.app.token(self.installation_id)
            try:
                return await send(self.app._api(token))
            except gidgethub.BadRequest as exc:
                if exc.status_code != 401:
                    raise
                # Revoked or expired early (clock skew): fetch a new token once.
                self.app.forget_token(self.installation_id, token)
                return await send(self.app._api(await self.app.token(self.installation_id)))

        async def send(api: gidgethub.aiohttp.GitHubAPI) -> Any:
            if method == "GET":
                return await api.getitem(url, url_vars)
            if method == "POST":
                return await api.post(url, url_vars, data=data)
            if method == "PATCH":
                return await api.patch(url, url_vars, data=data)
            raise ValueError(method)

        return await _with_retries(what, self.app.timeout, attempt)

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
        self, owner: str, repo: str, check_run_id: int, payload: dict[str, Any]
    ) -> None:
        await self._call(
            "update the check run",
            "PATCH",
            "/repos/{owner}/{repo}/check-runs/{check_run_id}",
            {"owner": owner, "repo": repo, "check_run_id": check_run_id},
            payload,
        )


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, gidgethub.GitHubBroken | aiohttp.ClientConnectionError | TimeoutError):
        return True
    return isinstance(exc, gidgethub.BadRequest) and exc.status_code in (408, 429)


async def _with_retries(
    what: str,
    timeout: float,  # noqa: ASYNC109 - a per-attempt deadline, not the caller's
    call: Callable[[], Awaitable[T]],
) -> T:
    delay = 0.5
    for attempt in range(1, RETRIES + 1):
        try:
            async with asyncio.timeout(timeout):
                return await call()
        except Exception as exc:
            if attempt == RETRIES or not _retryable(exc):
                log.warning("github.call_failed", what=what, error=_describe(exc), attempt=attempt)
                status = getattr(exc, "status_code", None)
                raise GitHubError(
                    f"GitHub call failed ({what}): {_describe(exc)}",
                    status=int(status) if status is not None else None,
                    transient=_retryable(exc),
                ) from exc
            log.info("github.retry", what=what, error=_describe(exc), attempt=attempt)
            await asyncio.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
            delay *= 2
    raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, gidgethub.HTTPException):
        return f"HTTP {int(exc.status_code)} {exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
