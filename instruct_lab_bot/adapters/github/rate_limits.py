"""Which GitHub failures are worth another try, and how long to wait first.

Pure decisions, no I/O: `retry_delay` turns what one attempt got back (a status and headers,
or only an exception) into a wait, or None when trying again cannot help. The request path
feeds it to `core.retry.retry` as its `advise`, so the backoff itself lives in one place.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp

from instruct_lab_bot.core.retry import RetryPolicy, jittered

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# GitHub's advice when a secondary limit names no time: "wait at least one minute".
SECONDARY_LIMIT_WAIT = 60.0
# Spread over the wait GitHub names, so replicas told the same reset do not return together.
_RATE_LIMIT_SPREAD = 0.25


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
            return RetryAdvice(jittered(max(wait, 0.0), _RATE_LIMIT_SPREAD), True)
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


def quota_reset(outcome: Outcome) -> float | None:
    """When the installation's primary (hourly) quota comes back, as epoch seconds, if this
    answer says it is spent (403/429 with `x-ratelimit-remaining: 0` and a reset, no
    `retry-after`: that one is a secondary limit); else None."""
    if outcome.status not in (403, 429):
        return None
    lower = {k.lower(): v for k, v in outcome.headers.items()}
    if "retry-after" in lower or lower.get("x-ratelimit-remaining") != "0":
        return None
    return _float(lower.get("x-ratelimit-reset"))


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
