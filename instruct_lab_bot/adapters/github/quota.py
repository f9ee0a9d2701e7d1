"""GitHub's primary (hourly) quota per installation, as every process of the bot sees it.

When GitHub refuses a call because the installation's quota is spent (`x-ratelimit-remaining:
0` with `x-ratelimit-reset`), asking again before the reset only earns another refusal. So the
first refusal marks the installation spent until GitHub's reset, in the shared write gate
(Redis: every replica and process honours it) and in this process; until then every call for
that installation fails at once with `QuotaSpent` (naming the time), without asking GitHub,
and the callers wait for it: the dispatcher leaves the event pending, the outbox keeps the
result. The first answered call after the reset ends the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from instruct_lab_bot.adapters.github.errors import QuotaSpent
from instruct_lab_bot.core.write_gate import WriteGate

log = structlog.get_logger(__name__)

# Seconds past GitHub's reset (whole seconds) before asking again, so clocks a little apart
# do not meet a quota not yet refilled.
RESET_MARGIN = 1.0

#: Told how many installations this process knows to be waiting for their quota.
OnQuota = Callable[[int], None]


class QuotaMarks:
    """Which installations wait for their quota, until when: shared through `gate` (when
    there is one), remembered locally so a waiting process does not ask Redis each time."""

    def __init__(self, gate: WriteGate | None, on_change: OnQuota | None = None) -> None:
        self.gate = gate
        self.on_change = on_change
        self._until: dict[int, float] = {}  # installation → when its quota comes back

    @property
    def waiting(self) -> int:
        return len(self._until)

    async def check(self, installation_id: int, what: str) -> None:
        """Raise `QuotaSpent` if the installation's quota is marked spent (here or shared)."""
        now = time.time()
        until = self._until.get(installation_id, 0.0)
        if until <= now and self.gate is not None:
            until = await self.gate.quota_spent_until(installation_id)
            if until > now:
                self._remember(installation_id, until)
        if until > now:
            raise QuotaSpent(what, installation_id, until)

    async def spent(self, installation_id: int, reset: float, what: str) -> QuotaSpent:
        """GitHub refused a call for a spent quota that comes back at `reset` (epoch s):
        mark it for every process; the error to raise."""
        until = reset + RESET_MARGIN
        if self._until.get(installation_id, 0.0) < until:
            self._remember(installation_id, until)
            if self.gate is not None:
                await self.gate.spend_quota(installation_id, until)
        return QuotaSpent(what, installation_id, until)

    def answered(self, installation_id: int) -> None:
        """A call for the installation was answered: a wait it was in has ended."""
        until = self._until.pop(installation_id, None)
        if until is not None:
            log.info(
                "github.quota_wait_ended",
                installation_id=installation_id,
                late=round(time.time() - until, 3),
            )
            self._changed()

    def _remember(self, installation_id: int, until: float) -> None:
        known = installation_id in self._until
        self._until[installation_id] = until
        if not known:
            log.warning(
                "github.quota_wait_started",
                installation_id=installation_id,
                seconds=round(until - time.time(), 3),
            )
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.waiting)
