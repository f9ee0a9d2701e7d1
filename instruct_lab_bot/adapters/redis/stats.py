"""What the queue gauges report, read from Redis as plain numbers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.base import RedisPart


@dataclass(frozen=True)
class StreamStats:
    length: int  # entries in the stream
    pending: int  # delivered to the group, not yet acknowledged
    lag: int  # not yet delivered to the group


class QueueStats(RedisPart):
    async def stream_stats(self, stream: str, group: str) -> StreamStats:
        length = int(await self.redis.xlen(stream))
        info = await self._group_info(stream, group)
        return StreamStats(
            length=length,
            pending=int(str(info.get("pending") or 0)),
            lag=int(str(info.get("lag") or 0)),
        )

    async def oldest_waiting_age(self, stream: str, group: str) -> float:
        """Seconds the first entry after the group's last delivered id has waited (the one
        that waits longest); 0.0 when nothing waits."""
        info = await self._group_info(stream, group)
        last = str(info.get("last-delivered-id") or "0-0")
        entries: Any = await self.redis.xrange(stream, min=f"({last}", count=1)
        if not entries:
            return 0.0
        millis = int(str(entries[0][0]).split("-")[0])
        return max(0.0, time.time() - millis / 1000)

    async def _group_info(self, stream: str, group: str) -> dict[str, object]:
        """XINFO GROUPS for one group; empty if the stream or group does not exist yet."""
        try:
            groups: Any = await self.redis.xinfo_groups(stream)
        except RedisError:
            return {}
        return next((dict(g) for g in groups if g.get("name") == group), {})

    async def server_run_id(self) -> str:
        """The Redis server's run id: it changes when Redis restarts or fails over to another
        server, which is how the metrics notice an outage shorter than their refresh."""
        info: Any = await self.redis.info("server")
        return str(info.get("run_id", ""))
