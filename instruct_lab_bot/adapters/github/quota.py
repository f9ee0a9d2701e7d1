"""GitHub's primary (hourly) quota per installation, as every process of the bot sees it.

When GitHub refuses a call because the installation's quota is spent (`x-ratelimit-remaining:
0` with `x-ratelimit-reset`), asking again before the reset only earns another refusal. So the
first refusal marks the installation spent until GitHub's reset, in the shared write gate
(Redis: every replica and process honours it) and in this process. Until then no call for
that installation asks GitHub: one whose deadline reaches past the reset waits for it in
place (as any rate limit within the deadline always did); any other fails at once with
`QuotaSpent` (naming the time), and its caller waits: the dispatcher leaves the event pending,
the outbox keeps the result. The first answered call after the reset ends the wait.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from instruct_lab_bot.adapters.github.errors import QuotaSpent
from instruct_lab_bot.core.retry import jittered
from instruct_lab_bot.core.write_gate import WriteGate

log = structlog.get_logger(__name__)

# Seconds past GitHub's reset (whole seconds) before asking again, so clocks a little apart
# do not meet a quota not yet refilled.
RESET_MARGIN = 1.0
# Spread over a wait for the reset, so processes told the same time do not return together.
RESET_SPREAD = 0.25


class QuotaMarks:
    """Which installations wait for their quota, until when: shared through `gate` (when
    there is one), remembered locally so a waiting process does not ask Redis each time."""

    def __init__(self, gate: WriteGate | None) -> None:
        self.gate = gate
        self._until: dict[int, float] = {}  # installation → when its quota comes back

    @property
    def waiting(self) -> int:
        """Installations this process knows to be waiting for their reset now."""
        now = time.time()
        return sum(1 for until in self._until.values() if until > now)

    async def check(self, installation_id: int, what: str, time_left: float) -> None:
        """Return once the installation's quota is not marked spent (here or shared): at
        once, or after waiting for its reset when that comes within `time_left` seconds;
        else raise `QuotaSpent`."""
        now = time.time()
        until = self._until.get(installation_id, 0.0)
        if until <= now and self.gate is not None:
            until = await self.gate.quota_spent_until(installation_id)
            if until > now:
                self._remember(installation_id, until)
        if until <= now:
            return
        if fits(until, time_left):
            await asyncio.sleep(jittered(until - now, RESET_SPREAD))
            return
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

    def _remember(self, installation_id: int, until: float) -> None:
        known = installation_id in self._until
        self._until[installation_id] = until
        if not known:
            log.warning(
                "github.quota_wait_started",
                installation_id=installation_id,
                seconds=round(until - time.time(), 3),
            )


def fits(until: float, time_left: float) -> bool:
    """Whether a call with `time_left` seconds can wait for a reset at `until` (epoch s)."""
    return until + RESET_SPREAD - time.time() <= time_left
