"""Deliver webhooks as GitHub does: signed, spread over time, and sent again with the same
delivery id after any answer that is not a 2xx (or no answer at all) until one is."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from .world import Delivery


@dataclass
class DeliveryLog:
    """Every attempt's outcome, and per delivery how many attempts its 2xx took."""

    statuses: Counter[str] = field(default_factory=Counter)  # "202", "503", "ClientOSError"…
    attempts: dict[str, int] = field(default_factory=dict)  # delivery id → attempts
    accepted: dict[str, float] = field(default_factory=dict)  # delivery id → seconds of the 2xx
    failed: list[str] = field(default_factory=list)  # never got a 2xx

    @property
    def redeliveries(self) -> int:
        return sum(self.attempts.values()) - len(self.attempts)


@dataclass(frozen=True)
class Redelivery:
    """GitHub's redelivery, sped up: a capped backoff and a bound on attempts."""

    first_wait: float = 0.3
    max_wait: float = 2.0
    max_attempts: int = 60
    request_timeout: float = 15.0


async def deliver_all(
    url: str,
    deliveries: Sequence[Delivery],
    duration: float,
    redelivery: Redelivery | None = None,
) -> DeliveryLog:
    """Send delivery i at `i * duration / len(deliveries)` seconds; return once each got a 2xx
    or ran out of attempts. A new connection per request, so the proxy spreads them."""
    redelivery = redelivery or Redelivery()
    log = DeliveryLog()
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    timeout = aiohttp.ClientTimeout(total=redelivery.request_timeout)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(index: int, delivery: Delivery) -> None:
            await asyncio.sleep(max(0.0, started + index * spacing - time.monotonic()))
            await _until_accepted(session, url, delivery, redelivery, log)

        spacing = duration / max(1, len(deliveries))
        await asyncio.gather(*(one(i, d) for i, d in enumerate(deliveries)))
    return log


async def _until_accepted(
    session: aiohttp.ClientSession,
    url: str,
    delivery: Delivery,
    redelivery: Redelivery,
    log: DeliveryLog,
) -> None:
    wait = redelivery.first_wait
    for attempt in range(1, redelivery.max_attempts + 1):
        log.attempts[delivery.delivery_id] = attempt
        sent = time.monotonic()
        outcome = await _post(session, url, delivery)
        log.statuses[outcome] += 1
        if outcome.startswith("2"):
            log.accepted[delivery.delivery_id] = time.monotonic() - sent
            return
        await asyncio.sleep(wait)
        wait = min(redelivery.max_wait, wait * 2)
    log.failed.append(delivery.delivery_id)


async def _post(session: aiohttp.ClientSession, url: str, delivery: Delivery) -> str:
    try:
        async with session.post(url, data=delivery.body, headers=delivery.headers()) as response:
            await response.read()
            return str(response.status)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return type(exc).__name__
