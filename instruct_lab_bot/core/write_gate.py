"""The write gate: what the GitHub adapter asks before each installation write.

GitHub punishes bursts of content-creating requests with secondary rate limits, so every
process shares one budget per installation. The GitHub adapter knows only this interface; the
services hand it the Redis implementation (`adapters.redis.write_budget.WriteBudget`), and
tests may hand it anything with these two methods.
"""

from __future__ import annotations

from typing import Protocol


class GateUnavailable(Exception):
    """The shared budget cannot be asked right now (its store is down). Final results still
    go out then: GitHub's own limits and the retries hold the line."""


class WriteGate(Protocol):
    async def try_take(self, installation_id: int, *, droppable: bool) -> float:
        """0.0 if a write was granted (and counted), else seconds until one might be.
        Droppable writes (progress) must leave a reserve for the others. Raises
        `GateUnavailable` when the budget cannot be asked."""
        ...

    async def pause(self, installation_id: int, seconds: float) -> None:
        """Hold every process's writes for this installation for `seconds`; never raises."""
        ...
