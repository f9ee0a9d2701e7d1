"""The GitHub App: authentication and the one request path every GitHub call takes.

One `GitHubApp` per process holds one aiohttp session, the installation-token cache and the
write budget, and every call goes through `request`:

- a per-attempt timeout, and retries through `core.retry` (decided by
  `rate_limits.retry_delay`) on 5xx, dropped connections, timeouts and rate limits, honouring
  `retry-after` / `x-ratelimit-reset`, all within one deadline per call;
- a per-process cap on concurrent requests;
- for installation writes, a budget shared by every process (a `core.write_gate.WriteGate`):
  droppable writes (progress updates, replies to commands: `WriteClass`) are skipped when it
  runs short, final results wait;
- installation tokens refreshed well before they expire, and once more if GitHub refuses one;
- an installation whose hourly quota GitHub says is spent is marked so until GitHub's reset,
  for every process (`quota.QuotaMarks`): meanwhile its calls never ask GitHub; they wait for
  the reset within their deadline, or fail at once with `QuotaSpent` and the caller waits;
- `on_response(route_template, status, headers)` after every response (status None when no
  response came), for metrics.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import aiohttp
import gidgethub
import gidgethub.apps
import structlog

from instruct_lab_bot.adapters.github.errors import GitHubError
from instruct_lab_bot.adapters.github.installation import Installation
from instruct_lab_bot.adapters.github.quota import QuotaMarks, fits
from instruct_lab_bot.adapters.github.rate_limits import (
    WRITE_METHODS,
    Outcome,
    RetryAdvice,
    quota_reset,
    retry_delay,
)
from instruct_lab_bot.adapters.github.transport import (
    METHODS,
    ApiCall,
    RecordingAPI,
    Response,
    ResponseHook,
    dispatch,
)
from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core.retry import UNLIMITED_ATTEMPTS, RetryPolicy, jittered, retry
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.write_gate import GateUnavailable, WriteClass, WriteGate

log = structlog.get_logger(__name__)
TOKEN_REFRESH_MARGIN = 10 * 60  # refresh an installation token this long before it expires
JWT_REUSE = 5 * 60  # an app JWT lives 10 minutes; sign a new one after this
DEFAULT_CONCURRENCY = 8
_BUDGET_SPREAD = 0.05  # jitter on a write-budget wait, so waiting writers do not collide
_WAIT_WORTH_LOGGING = 0.1  # seconds: a write that waited this long for a slot is logged


@dataclass(frozen=True)
class GitHubAppConfig:
    """Who the App is, where GitHub is, and how hard each call tries."""

    app_id: str
    private_key: str
    api_url: str
    timeout: float = 30.0  # per attempt
    max_concurrency: int = DEFAULT_CONCURRENCY
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class _Token:
    value: str
    expires_at: float


#: Installation tokens per App (API URL, App id, key), shared by every `GitHubApp` of the
#: process: a server that runs its dispatcher next to a worker asks GitHub once an hour per
#: installation, not once per client (issue 17: no repeated reads).
_PROCESS_TOKENS: dict[tuple[str, str, str], dict[int, _Token]] = {}


class _Failed(Exception):
    """One attempt got no usable answer; carries what `core.retry` needs to decide."""

    def __init__(self, outcome: Outcome, attempt: int, advice: RetryAdvice | None) -> None:
        super().__init__(_describe(outcome))
        self.outcome = outcome
        self.attempt = attempt
        self.advice = advice


class _NoWriteSlot(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"no write slot for {wait:.3f} s")
        self.wait = wait


@dataclass
class _CallState:
    """One call across its attempts. `sends` counts every request sent, including the one
    repeated at once with a fresh token, so attempts count exactly as GitHub saw them."""

    call: ApiCall
    installation_id: int | None
    write_class: WriteClass
    max_attempts: int
    deadline: float
    sends: int = 0
    refreshed: bool = False

    @property
    def droppable(self) -> bool:
        return self.write_class.droppable

    def advise(self, error: BaseException, _attempt: int) -> float | None:
        if not isinstance(error, _Failed) or error.advice is None:
            return None
        return None if error.attempt >= self.max_attempts else error.advice.delay

    def log_retry(self, error: BaseException, _attempt: int, delay: float) -> None:
        assert isinstance(error, _Failed)
        log.info(
            "github.retry",
            what=self.call.what,
            error=_describe(error.outcome),
            attempt=error.attempt,
            delay=round(delay, 3),
        )


class GitHubApp:
    """App-level auth (JWT), the installation-token cache and the governed request path."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: GitHubAppConfig,
        *,
        budget: WriteGate | None = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        self._session = session
        self.config = replace(config, api_url=config.api_url.rstrip("/"))
        self.budget = budget
        self.on_response = on_response
        self.quota = QuotaMarks(budget)
        self._slots = asyncio.Semaphore(config.max_concurrency)
        app_key = (self.config.api_url, config.app_id, config.private_key)
        self._tokens = _PROCESS_TOKENS.setdefault(app_key, {})
        self._locks: dict[int, asyncio.Lock] = {}
        self._jwt: tuple[str, float] | None = None

    # -- auth -------------------------------------------------------------------------

    def _app_jwt(self) -> str:
        now = time.monotonic()
        if self._jwt is None or now - self._jwt[1] > JWT_REUSE:
            token = gidgethub.apps.get_jwt(
                app_id=self.config.app_id, private_key=self.config.private_key
            )
            self._jwt = (str(token), now)
        return self._jwt[0]

    def _cached_token(self, installation_id: int) -> str | None:
        cached = self._tokens.get(installation_id)
        if cached and cached.expires_at - time.time() > TOKEN_REFRESH_MARGIN:
            return cached.value
        return None

    async def token(self, installation_id: int) -> str:
        """A token valid for at least `TOKEN_REFRESH_MARGIN` seconds."""
        if cached := self._cached_token(installation_id):
            return cached
        async with self._locks.setdefault(installation_id, asyncio.Lock()):
            if cached := self._cached_token(installation_id):
                return cached
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
        response = await self.request(ApiCall(what, method, url, url_vars, data))
        assert response is not None  # only droppable writes are ever skipped
        return response.data

    async def hook_deliveries(
        self, *, per_page: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the App's webhook deliveries (newest first) and the next page's cursor."""
        response = await self.request(
            ApiCall(
                "list webhook deliveries",
                "GET",
                "/app/hook/deliveries{?per_page,cursor}",
                {"per_page": per_page, "cursor": cursor},
            )
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

    async def request(
        self,
        call: ApiCall,
        *,
        installation_id: int | None = None,
        write_class: WriteClass = WriteClass.FINAL,
    ) -> Response | None:
        """Send with retries and the write budget; None only for a skipped droppable write.

        Without `installation_id` the call is made as the App itself (JWT).
        """
        loop = asyncio.get_running_loop()
        policy = self.config.retry
        droppable = write_class.droppable
        max_attempts = policy.droppable_attempts if droppable else policy.max_attempts
        state = _CallState(
            call, installation_id, write_class, max_attempts, loop.time() + policy.deadline
        )
        try:
            return await retry(
                lambda: self._attempt(state),
                replace(policy, max_attempts=max_attempts),
                advise=state.advise,
                on_retry=state.log_retry,
                clock=loop.time,
            )
        except _Failed as failed:
            transient = failed.advice is not None
            raise _error(call.what, failed.outcome, failed.attempt, transient=transient) from None

    async def _attempt(self, state: _CallState) -> Response | None:
        """One try: a token, a write slot, the request. A refused token is replaced and the
        request sent again at once, once per call (revoked, or expired early by clock skew)."""
        installation_id = state.installation_id
        budgeted = (
            self.budget is not None
            and installation_id is not None
            and state.call.method in WRITE_METHODS
        )
        while True:
            if installation_id is not None:
                time_left = state.deadline - asyncio.get_running_loop().time()
                await self.quota.check(installation_id, state.call.what, time_left)
            state.sends += 1
            token = await self.token(installation_id) if installation_id is not None else None
            if budgeted and not await self._take_budget(state):
                return None
            outcome, response = await self._exchange(state.call, token)
            if response is not None:
                if installation_id is not None:
                    self.quota.answered(installation_id)
                return response
            if outcome.status == 401 and token is not None and not state.refreshed:
                assert installation_id is not None
                self.forget_token(installation_id, token)
                state.refreshed = True
                continue
            await self._failed(state, outcome)

    async def _failed(self, state: _CallState, outcome: Outcome) -> NoReturn:
        """Raise what `core.retry` decides on; a rate limit also pauses the installation's
        other writers, and gives up a droppable write at once; a spent hourly quota marks the
        installation, and the call waits for the reset only if it comes within its deadline."""
        reset = quota_reset(outcome)
        if reset is not None and reset > time.time() and state.installation_id is not None:
            spent = await self.quota.spent(state.installation_id, reset, state.call.what)
            time_left = state.deadline - asyncio.get_running_loop().time()
            if state.droppable or not fits(spent.until, time_left):
                log.warning("github.call_failed", what=state.call.what, error=_describe(outcome))
                raise spent
        advice = retry_delay(outcome, state.sends, self.config.retry)
        if advice is not None and advice.rate_limited:
            if state.installation_id is not None and self.budget is not None:
                await self.budget.pause(state.installation_id, advice.delay)
            if state.droppable:  # progress is the first thing to give up under pressure
                raise _error(state.call.what, outcome, state.sends, transient=True)
        raise _Failed(outcome, state.sends, advice)

    async def _exchange(self, call: ApiCall, token: str | None) -> tuple[Outcome, Response | None]:
        if call.method not in METHODS:
            raise ValueError(f"unsupported method {call.method}")
        api = RecordingAPI(self._session, self.config.api_url, call.route, self.on_response)
        jwt = None if token is not None else self._app_jwt()
        with span("github.request", method=call.method, route=call.route) as current:
            outcome, response = await self._send(api, call, jwt, token)
            if current.is_recording():
                current.set_attribute("http.response.status_code", str(outcome.status))
            return outcome, response

    async def _send(
        self, api: RecordingAPI, call: ApiCall, jwt: str | None, token: str | None
    ) -> tuple[Outcome, Response | None]:
        try:
            async with self._slots, asyncio.timeout(self.config.timeout):
                result = await dispatch(api, call, jwt, token)
        except gidgethub.HTTPException as exc:
            return Outcome(int(exc.status_code), api.headers, exc), None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(None, {}, exc), None
        return Outcome(api.status, api.headers), Response(result, api.headers)

    async def _take_budget(self, state: _CallState) -> bool:
        """Wait for a write slot until the call's deadline; False if a droppable write should
        be skipped instead."""
        assert self.budget is not None and state.installation_id is not None
        budget, installation_id, droppable = self.budget, state.installation_id, state.droppable

        async def take() -> bool:
            try:
                wait = await budget.try_take(installation_id, write_class=state.write_class)
            except (GateUnavailable, OSError) as exc:
                # Without Redis, final results still go out (GitHub's own limits and our
                # retries still apply); progress waits for better days.
                log.warning("github.budget_unavailable", error=repr(exc), droppable=droppable)
                return not droppable
            if wait <= 0:
                return True
            if droppable:
                log.info(
                    "github.write_skipped",
                    what=state.call.what,
                    installation_id=installation_id,
                    write_class=str(state.write_class),
                )
                return False
            raise _NoWriteSlot(wait)

        loop = asyncio.get_running_loop()
        asked = loop.time()
        until_deadline = RetryPolicy(
            deadline=state.deadline - asked, max_attempts=UNLIMITED_ATTEMPTS
        )
        try:
            return await retry(
                take,
                until_deadline,
                advise=lambda error, _: error.wait if isinstance(error, _NoWriteSlot) else None,
                sleep=lambda wait: asyncio.sleep(jittered(wait, _BUDGET_SPREAD)),
                clock=loop.time,
            )
        except _NoWriteSlot:
            message = f"GitHub call failed ({state.call.what}): write budget exhausted"
            raise GitHubError(message, transient=True) from None
        finally:
            waited = loop.time() - asked
            if waited >= _WAIT_WORTH_LOGGING:  # what a dispatcher or worker waits on
                log.info("github.write_waited", what=state.call.what, seconds=round(waited, 3))


def build_github_app(
    session: aiohttp.ClientSession,
    settings: Settings,
    budget: WriteGate | None,
    on_response: ResponseHook | None = None,
) -> GitHubApp:
    """The one way every process builds its GitHub client (same retries, same budget)."""
    config = GitHubAppConfig(
        app_id=settings.github_app_id,
        private_key=settings.github_private_key.value,
        api_url=settings.github_api_url,
        timeout=settings.github_timeout,
        max_concurrency=settings.github_max_concurrency,
        retry=RetryPolicy(
            deadline=settings.github_retry_deadline, max_attempts=settings.github_max_attempts
        ),
    )
    return GitHubApp(session, config, budget=budget, on_response=on_response)


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
