"""A server-sent-events reader over aiohttp (the relay's channel; WHATWG's parsing rules).

Only what smee-style channels use: `event`, `data` (several lines joined with "\\n"), `id`;
comments (`:` lines) and `retry` are ignored (the one retry policy decides reconnects).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

MAX_EVENT_BYTES = 30 * 1024 * 1024  # GitHub caps payloads at 25 MB
READ_TIMEOUT = 120.0  # smee pings every 30 s: a silent connection this long is dead


@dataclass(frozen=True)
class StreamEvent:
    type: str
    data: str
    id: str = ""


class EventStreamError(ConnectionError):
    """The channel answered with something else than an event stream, or broke a rule."""


async def read_events(
    session: aiohttp.ClientSession, url: str, *, read_timeout: float = READ_TIMEOUT
) -> AsyncIterator[StreamEvent]:
    """Every event of the stream at `url` until the server closes it."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    async with session.get(url, headers=headers, timeout=timeout) as response:
        kind = response.headers.get("Content-Type", "")
        if response.status != 200 or not kind.startswith("text/event-stream"):
            raise EventStreamError(f"channel answered HTTP {response.status} ({kind or '-'})")
        event_type, size = "", 0
        data: list[str] = []
        async for raw in response.content:
            line = raw.decode("utf-8").rstrip("\r\n")
            size += len(raw)
            if size > MAX_EVENT_BYTES:
                raise EventStreamError("channel event larger than any webhook")
            if not line:
                if data:
                    yield StreamEvent(event_type or "message", "\n".join(data))
                event_type, data, size = "", [], 0
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event_type = value
            elif name == "data":
                data.append(value)
