"""The write gate: what the GitHub adapter asks before each installation write.

GitHub punishes bursts of content-creating requests with secondary rate limits, so every
process shares one budget per installation. The GitHub adapter knows only this interface; the
services hand it the Redis implementation (`adapters.redis.write_budget.WriteBudget`), and
tests may hand it anything with these methods. It also holds the mark of an installation
whose hourly quota GitHub says is spent, which every read and write honours.

Writes come in three classes (`WriteClass`), so that what the bot promised always has room:
final results may use the whole budget; replies to commands (refusals, help, unknown
commands: what a stranger can make the bot write) get a small share of their own; progress
updates take only what is left above the reserve.
"""

from __future__ import annotations

import enum
from typing import Protocol


class WriteClass(enum.StrEnum):
    FINAL = "final"  # results, check-run creation and completion: wait for room, never skipped
    REPLY = "reply"  # comments answering a command: their own small share, skipped when spent
    PROGRESS = "progress"  # check-run progress, reactions: skipped first under pressure

    @property
    def droppable(self) -> bool:
        """Skipped (not waited for) when the budget has no room for it."""
        return self is not WriteClass.FINAL


class GateUnavailable(Exception):
    """The shared budget cannot be asked right now (its store is down). Final results still
    go out then: GitHub's own limits and the retries hold the line."""


class WriteGate(Protocol):
    async def try_take(self, installation_id: int, *, write_class: WriteClass) -> float:
        """0.0 if a write was granted (and counted), else seconds until one might be.
        Progress and replies must leave a reserve for final results; replies also stay
        within their own share. Raises `GateUnavailable` when the budget cannot be asked."""
        ...

    async def pause(self, installation_id: int, seconds: float) -> None:
        """Hold every process's writes for this installation for `seconds`; never raises."""
        ...

    async def spend_quota(self, installation_id: int, until: float) -> None:
        """Mark this installation's hourly quota spent until `until` (epoch seconds) for every
        process: its reads and writes wait until then. Never raises."""
        ...

    async def quota_spent_until(self, installation_id: int) -> float:
        """The epoch second the installation's spent quota comes back, or 0.0 when it is not
        marked spent (or the mark cannot be read). Never raises."""
        ...
