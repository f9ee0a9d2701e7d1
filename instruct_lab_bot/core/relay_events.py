"""smee.io channel events → the webhook delivery to replay (pure).

smee's server (probot/smee.io) turns each POST to a channel into one server-sent event whose
`data` is JSON: the request's headers as keys (lower-cased, as Node gives them), `body` (the
request body as Express parsed it), `query` and `timestamp`. It also sends `ready` on connect
and `ping` every 30 s, as named events with `{}`.

smee-client replays `JSON.stringify(data.body)`: a re-serialisation, so the signature GitHub
computed over its own bytes only verifies when the two serialisations agree. GitHub sends
compact JSON (no spaces, UTF-8 unescaped) and so does `JSON.stringify`, which is why it usually
works; `\\u` escapes, `\\/` or numbers such as `1.0` in a payload break it. Here:

- a raw body, when the server sends one (gosmee's `bodyB`: base64 of the exact bytes), is used
  as is, so every signature verifies;
- otherwise the body is serialised the way `JSON.stringify` does (compact, non-ASCII kept), so
  the relay verifies exactly when smee-client would, and never less.

The bot's server still checks the signature on what arrives: the relay adds no trust.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

# Hop-by-hop headers and the ones the new request sets itself (smee-client drops `host` too).
DROPPED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "accept-encoding",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "proxy-authorization",
    }
)
NOT_HEADERS = frozenset({"body", "bodyB", "query", "timestamp"})
IGNORED_EVENTS = frozenset({"ready", "ping"})


@dataclass(frozen=True)
class RelayedDelivery:
    """One webhook delivery to POST to the local endpoint, byte for byte where possible."""

    headers: dict[str, str]
    body: bytes
    raw: bool  # True: the original bytes; False: re-serialised like smee-client

    @property
    def delivery_id(self) -> str:
        return self.headers.get("x-github-delivery", "")

    @property
    def event(self) -> str:
        return self.headers.get("x-github-event", "")


def parse_channel_event(event_type: str, data: str) -> RelayedDelivery | None:
    """The delivery an SSE event carries; None for `ready`, `ping` and anything not a request.

    Raises `ValueError` for a message event whose data is not smee's JSON object.
    """
    if event_type != "message":
        return None
    try:
        message = json.loads(data)
    except ValueError:
        raise ValueError("channel event is not JSON") from None
    if not isinstance(message, dict) or ("body" not in message and "bodyB" not in message):
        raise ValueError("channel event has no body")
    return RelayedDelivery(_headers(message), *_body(message))


def _headers(message: Mapping[str, object]) -> dict[str, str]:
    return {
        key.lower(): value
        for key, value in message.items()
        if isinstance(value, str) and key not in NOT_HEADERS and key.lower() not in DROPPED_HEADERS
    }


def _body(message: Mapping[str, object]) -> tuple[bytes, bool]:
    raw = message.get("bodyB")
    if isinstance(raw, str) and raw:
        try:
            return base64.b64decode(raw, validate=True), True
        except (binascii.Error, ValueError):
            raise ValueError("channel event's bodyB is not base64") from None
    text = json.dumps(message.get("body"), separators=(",", ":"), ensure_ascii=False)
    return text.encode(), False
