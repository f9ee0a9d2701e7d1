"""Events a dispatcher set aside until their installation's GitHub quota resets.

An event whose installation has spent its hourly quota is left pending (not acknowledged, no
attempt counted). Whoever claims it first after its lease handles it; but the dispatcher that
set it aside takes it back itself as soon as the reset has passed, before any new event, so
it is handled at the reset rather than up to a lease later, in the order it arrived. Taking it
back is fenced: only if nobody claimed or renewed it since it was set aside.
"""

from __future__ import annotations

import time

from instruct_lab_bot.adapters.redis.keys import DISPATCH_GROUP, EVENTS_STREAM
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import StreamEntry

# Milliseconds of idle time not counted when taking an entry back (clocks and rounding): a
# claim by someone else this soon after the entry was set aside is not told apart. None can
# come that soon: `claim_stale` takes only entries idle for a lease, and this dispatcher had
# the entry until it set it aside (a handler's recorded steps would make it harmless too).
SLACK_MS = 50


def _stream_order(entry_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in entry_id.split("-"))


class Parked:
    def __init__(self, queue: Queue, consumer: str) -> None:
        self.queue = queue
        self.consumer = consumer
        self._entries: dict[str, tuple[float, float]] = {}  # id → (until, set aside at)

    def __len__(self) -> int:
        return len(self._entries)

    def park(self, entry_id: str, until: float, *, now: float | None = None) -> None:
        """Set the entry aside until `until` (epoch seconds); `now`: when (tests)."""
        self._entries[entry_id] = (until, time.time() if now is None else now)

    def forget(self, entry_id: str) -> None:
        """The entry is being handled again (taken back, or claimed after its lease)."""
        self._entries.pop(entry_id, None)

    async def due(self, room: int) -> list[StreamEntry]:
        """Up to `room` entries whose reset has passed, oldest first, taken back from the
        stream's pending list unless someone else has touched them since."""
        now = time.time()
        ready = [i for i, (until, _) in self._entries.items() if until <= now]
        taken: list[StreamEntry] = []
        for entry_id in sorted(ready, key=_stream_order)[: max(0, room)]:
            _, parked_at = self._entries.pop(entry_id)
            idle_ms = int((now - parked_at) * 1000) - SLACK_MS
            entry = await self.queue.claim_untouched(
                EVENTS_STREAM, DISPATCH_GROUP, self.consumer, entry_id, idle_ms
            )
            if entry is not None:
                taken.append(entry)
        return taken
