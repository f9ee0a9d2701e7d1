"""The one retry policy: capped exponential backoff with jitter, bounded by attempts and a
deadline, and the loop that applies it.

Every outside call that can fail for a moment (GitHub requests, git, uploads, Redis during an
outage) retries through `retry` with a `RetryPolicy` value, so backoff arithmetic exists once.
Which failures are worth another try is the caller's knowledge (`retry_on`, or `advise` for
callers such as GitHub that read a wait time from the answer); the loop itself knows no I/O
library, and its clock and sleep are parameters so tests need no real time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
# Given the failure and the attempt number (1-based), how long to wait before the next
# attempt, or None when trying again cannot help.
Advise = Callable[[BaseException, int], float | None]
# Told before each wait: the failure, the attempt that failed and the delay chosen.
OnRetry = Callable[[BaseException, int, float], None]

# As many attempts as time allows: for loops bounded by their deadline alone.
UNLIMITED_ATTEMPTS = 2**62


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries.

    `deadline` bounds the whole call (attempts plus waits), so nothing waits forever;
    `max_attempts` bounds the tries; the delay before attempt n+1 is
    `min(max_delay, base_delay * 2**(n-1))`, of which the `jitter` share is random.
    `droppable_attempts` is for work that may be skipped under pressure (GitHub progress
    updates): one quick retry, never a long wait.
    """

    deadline: float = 120.0
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    droppable_attempts: int = 2
    retry_on: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    def backoff(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1` ("equal jitter" with the default 0.5)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        spread = ceiling * min(max(self.jitter, 0.0), 1.0)
        return float(ceiling - spread + random.uniform(0, spread))  # noqa: S311 - jitter

    def retryable(self, error: BaseException) -> bool:
        return isinstance(error, self.retry_on)


async def retry(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    advise: Advise | None = None,
    on_retry: OnRetry | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Await `call()` until it succeeds; re-raise the last failure once the policy gives up.

    A failure is retried when `advise` returns a delay (default: `policy.retryable` with the
    policy's backoff), while attempts remain and the wait still ends before the deadline.
    """
    deadline = clock() + policy.deadline
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as error:
            delay = _delay(policy, advise, error, attempt)
            if delay is None or attempt >= policy.max_attempts or clock() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(error, attempt, delay)
            await sleep(delay)


def _delay(
    policy: RetryPolicy, advise: Advise | None, error: BaseException, attempt: int
) -> float | None:
    if advise is not None:
        return advise(error, attempt)
    return policy.backoff(attempt) if policy.retryable(error) else None


def jittered(delay: float, spread: float) -> float:
    """`delay` plus up to `spread` seconds at random, so processes told the same wait (a rate
    limit's reset, a full write budget) come back spread out rather than all at once."""
    return delay + random.uniform(0, spread)  # noqa: S311 - jitter, not cryptography


def forever(policy: RetryPolicy) -> RetryPolicy:
    """The same backoff with no attempt or time limit: for loops that wait out an outage
    (a consumer whose Redis is down) rather than give up."""
    return RetryPolicy(
        deadline=float("inf"),
        max_attempts=UNLIMITED_ATTEMPTS,
        base_delay=policy.base_delay,
        max_delay=policy.max_delay,
        jitter=policy.jitter,
        retry_on=policy.retry_on,
    )
