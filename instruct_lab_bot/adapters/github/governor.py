"""GitHub write governor: retry decisions as data, and the write gate a shared budget fills.

GitHub asks integrations to keep content-creating requests (POST/PATCH/PUT/DELETE) under about
80 a minute and punishes bursts with secondary rate limits. `GitHubApp` asks a `WriteGate`
before each installation write; the services pass one shared by every process (the Redis
`WriteBudget`), so the limit holds across replicas. Progress updates are *droppable*: they
only go out while a reserve is left. A rate-limit answer from GitHub pauses every process's
writes for that installation until GitHub's stated time.

The retry side is pure: `retry_delay` turns an outcome (status, headers, exception) into how
long to wait, or None when trying again cannot help.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiohttp

from instruct_lab_bot.core.retry import RetryPolicy

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# GitHub's advice when a secondary limit names no time: "wait at least one minute".
SECONDARY_LIMIT_WAIT = 60.0


@dataclass(frozen=True)
class Outcome:
    """What one attempt got back: a status and headers, or only an exception (no response)."""

    status: int | None
    headers: Mapping[str, str]
    error: BaseException | None = None


@dataclass(frozen=True)
class RetryAdvice:
    delay: float
    rate_limited: bool  # GitHub asked us to slow down: pause other writers too


def retry_delay(outcome: Outcome, attempt: int, policy: RetryPolicy) -> RetryAdvice | None:
    """How long to wait before trying again, or None if the outcome is final.

    Retried: no response (connection refused/dropped, timeout), 5xx, 408, and rate limits —
    429, or 403 carrying `retry-after`, `x-ratelimit-remaining: 0` or a rate-limit message.
    Rate limits wait what GitHub says: `retry-after` seconds, else until `x-ratelimit-reset`.
    """
    status = outcome.status
    if status is None:
        retryable = isinstance(outcome.error, TimeoutError | aiohttp.ClientError | OSError)
        return RetryAdvice(policy.backoff(attempt), False) if retryable else None
    if status >= 500 or status == 408:
        return RetryAdvice(policy.backoff(attempt), False)
    if status in (403, 429):
        wait = rate_limit_wait(status, outcome.headers, str(outcome.error or ""))
        if wait is not None:
            return RetryAdvice(max(wait, 0.0) + random.uniform(0, 0.25), True)  # noqa: S311
    return None


def rate_limit_wait(status: int, headers: Mapping[str, str], message: str = "") -> float | None:
    """Seconds GitHub asks us to wait, or None if this 403/429 is not a rate limit."""
    lower = {k.lower(): v for k, v in headers.items()}
    retry_after = _seconds_from_retry_after(lower.get("retry-after"))
    if retry_after is not None:
        return retry_after
    if lower.get("x-ratelimit-remaining") == "0":
        reset = _float(lower.get("x-ratelimit-reset"))
        if reset is not None:
            return max(0.0, reset - time.time())
    if status == 429 or "rate limit" in message.lower():
        return SECONDARY_LIMIT_WAIT
    return None


def _seconds_from_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    seconds = _float(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:  # the HTTP-date form, which GitHub does not use today
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class WriteGate(Protocol):
    """A write budget shared by every process (the Redis one is
    `adapters.redis.write_budget.WriteBudget`): `GitHubApp` takes a slot before each
    installation write and pauses everyone when GitHub answers with a rate limit."""

    async def try_take(self, installation_id: int, *, droppable: bool) -> float:
        """0.0 if a write was granted (and counted), else seconds until one might be.
        Droppable writes (progress) must leave a reserve for the others."""
        ...

    async def pause(self, installation_id: int, seconds: float) -> None:
        """Hold every process's writes for this installation for `seconds`; never raises."""
        ...
