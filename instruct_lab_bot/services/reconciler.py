"""Missed deliveries: ask GitHub to redeliver webhooks that failed, once each.

GitHub never retries a failed webhook delivery by itself; it only keeps three days of them,
which the App may list (`GET /app/hook/deliveries`) and redeliver
(`POST /app/hook/deliveries/{id}/attempts`). A delivery fails when the bot was down, slow or
answered 5xx (e.g. 503 while Redis was away). Every `interval`, one replica at a time (a short
Redis lock) lists the recent deliveries and redelivers each failed event that neither
succeeded later nor was redelivered already. A per-GUID `SET NX` mark makes "once" hold even
if two passes overlap; a redelivery keeps its GUID, so the server's own dedup still applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github.client import GitHubApp, GitHubError
from instruct_lab_bot.adapters.redis.redelivery import RedeliveryLedger

log = structlog.get_logger(__name__)

GITHUB_REDELIVERY_WINDOW = 3 * 24 * 3600
DEFAULT_LOOKBACK = GITHUB_REDELIVERY_WINDOW - 15 * 60  # stay clear of the window's edge
MAX_PAGES = 50  # deliveries listed per pass: at most this many pages of `per_page`


def _timestamp(value: Any) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _succeeded(delivery: dict[str, Any]) -> bool:
    return 200 <= int(delivery.get("status_code") or 0) < 300


def pick_redeliveries(deliveries: Iterable[dict[str, Any]], since: float) -> list[dict[str, Any]]:
    """The failed deliveries to redeliver: one per GUID (its newest failed original), for
    events delivered after `since` that never succeeded and were never redelivered (by us or
    by a person clicking "Redeliver"). Pure: plain dicts in, plain dicts out."""
    by_guid: dict[str, list[dict[str, Any]]] = {}
    for delivery in deliveries:
        by_guid.setdefault(str(delivery["guid"]), []).append(delivery)
    picked = []
    for attempts in by_guid.values():
        if any(_succeeded(d) or d.get("redelivery") for d in attempts):
            continue
        recent = [d for d in attempts if _timestamp(d["delivered_at"]) >= since]
        if recent:
            picked.append(max(recent, key=lambda d: (_timestamp(d["delivered_at"]), d["id"])))
    return sorted(picked, key=lambda d: _timestamp(d["delivered_at"]))


class Reconciler:
    """Periodically redelivers failed webhook deliveries; safe to run in every replica."""

    def __init__(
        self,
        github: GitHubApp,
        ledger: RedeliveryLedger,
        *,
        interval: float = 600.0,
        lookback: float = DEFAULT_LOOKBACK,
        lock_ttl: float = 300.0,
        per_page: int = 100,
    ) -> None:
        self.github = github
        self.ledger = ledger
        self.interval = interval
        self.lookback = min(lookback, GITHUB_REDELIVERY_WINDOW)
        self.lock_ttl = lock_ttl
        self.per_page = per_page

    async def run(self, stop: asyncio.Event) -> None:
        """A pass now, then one every `interval`, until `stop`; failures wait for the next."""
        while not stop.is_set():
            try:
                await self.reconcile_once()
            except (GitHubError, RedisError, OSError) as exc:
                log.warning("reconciler.pass_failed", error=str(exc) or repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def reconcile_once(self) -> int:
        """One pass; the number of deliveries GitHub accepted to redeliver (0 if another
        replica holds the lock)."""
        owner = await self.ledger.lock(self.lock_ttl)
        if owner is None:
            return 0
        try:
            deliveries = await self._recent(time.time() - self.lookback)
            redelivered = 0
            for delivery in pick_redeliveries(deliveries, time.time() - self.lookback):
                redelivered += await self._redeliver(delivery)
            if redelivered:
                log.info("reconciler.pass_done", redelivered=redelivered, seen=len(deliveries))
            return redelivered
        finally:
            await self.ledger.unlock(owner)

    async def _recent(self, since: float) -> list[dict[str, Any]]:
        """Deliveries newer than `since`, page by page (newest first) until older ones."""
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        for _page in range(MAX_PAGES):
            page, cursor = await self.github.hook_deliveries(per_page=self.per_page, cursor=cursor)
            seen += page
            if not page or cursor is None or _timestamp(page[-1]["delivered_at"]) < since:
                break
        return seen

    async def _redeliver(self, delivery: dict[str, Any]) -> int:
        guid, delivery_id = str(delivery["guid"]), int(delivery["id"])
        bound = log.bind(guid=guid, delivery_id=delivery_id, event=delivery.get("event"))
        if await self.ledger.stored(guid):
            return 0  # the server stored it; only its answer was lost
        # Claimed for one lock period first: a crash before GitHub answers frees it again.
        if not await self.ledger.claim(guid, delivery_id, self.lock_ttl):
            return 0
        try:
            await self.github.redeliver_hook_delivery(delivery_id)
        except GitHubError as exc:
            if exc.transient:
                await self.ledger.release(guid)  # the next pass tries again
            else:
                await self.ledger.settle(guid)  # GitHub refused for good
            bound.warning("reconciler.redelivery_failed", error=str(exc))
            return 0
        await self.ledger.settle(guid)
        bound.info("reconciler.redelivered", status_code=delivery.get("status_code"))
        return 1
