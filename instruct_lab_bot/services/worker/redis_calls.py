"""How the worker rides out a Redis outage, through the one retry helper (`core.retry`).

Steps that record an outcome (finish, dead letter, the comment-once marker) wait for Redis up
to `RECORD_POLICY.deadline` (600 s) with capped backoff: losing them would lose a result.
Consume loops wait for as long as the outage lasts (`CONSUME_POLICY`). Status-only writes
(progress, the result comment's id) are best effort.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.core.retry import RetryPolicy, Sleep, forever, retry

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: What a Redis call raises while Redis is unreachable or restarting.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

#: Recording an outcome: up to 10 minutes, 0.2 s doubling to 10 s between attempts.
RECORD_POLICY = RetryPolicy(
    deadline=600.0,
    max_attempts=2**62,  # the deadline is the limit
    base_delay=0.2,
    max_delay=10.0,
    retry_on=REDIS_ERRORS,
)

#: Reading the stream: 0.5 s doubling to 30 s between attempts, for as long as it takes.
CONSUME_POLICY = forever(RetryPolicy(base_delay=0.5, max_delay=30.0, retry_on=REDIS_ERRORS))


async def record(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Await a Redis step that records an outcome, waiting out an outage (`RECORD_POLICY`)."""

    def logged(error: BaseException, _attempt: int, delay: float) -> None:
        log.warning("redis.retry", what=what, error=repr(error), retry_in=round(delay, 2))

    return await retry(call, RECORD_POLICY, on_retry=logged)


async def consume(
    what: str,
    call: Callable[[], Awaitable[T]],
    sleep: Sleep,
    on_error: Callable[[], None] = lambda: None,
) -> T:
    """Await a consume-loop step until Redis answers (`CONSUME_POLICY`); `sleep` lets the
    caller cut a wait short on shutdown, `on_error` forget state a restarted Redis lost."""

    def logged(error: BaseException, _attempt: int, delay: float) -> None:
        on_error()
        log.warning(f"{what}.redis_error", error=repr(error), retry_in=round(delay, 2))

    return await retry(call, CONSUME_POLICY, on_retry=logged, sleep=sleep)


async def best_effort(call: Awaitable[object]) -> None:
    """A status-only Redis write: skipped while Redis is away."""
    with contextlib.suppress(*REDIS_ERRORS):
        await call
