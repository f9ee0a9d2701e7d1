"""`instruct-lab-bot relay <channel>`: webhooks from a smee.io-style channel to a local server.

For development without a public URL: GitHub posts to the channel, this process holds the
channel's event stream open and replays each delivery to the local webhook endpoint with its
original headers (signature included) and body (see `core.relay_events` for why the bytes
matter). Connection losses reconnect through the one retry policy, with a fresh backoff once
a connection has delivered anything (smee's `ready` counts), so a flapping channel is not
hammered and a healthy one reconnects at once.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import structlog

from instruct_lab_bot.adapters.event_stream import read_events
from instruct_lab_bot.core.relay_events import RelayedDelivery, parse_channel_event
from instruct_lab_bot.core.retry import RetryPolicy, forever, retry

log = structlog.get_logger(__name__)
NETWORK_ERRORS = (OSError, TimeoutError, aiohttp.ClientError)
RECONNECT = forever(RetryPolicy(base_delay=1.0, max_delay=60.0, retry_on=NETWORK_ERRORS))
FORWARD = RetryPolicy(deadline=30.0, max_attempts=4, retry_on=NETWORK_ERRORS)


class _NothingReceived(ConnectionError):
    """The channel closed before sending anything: back off before trying again."""


async def run_relay(
    channel: str,
    target: str,
    *,
    on_forwarded: Callable[[RelayedDelivery, int], None] | None = None,
    reconnect: RetryPolicy = RECONNECT,
) -> None:
    """Relay until cancelled."""
    log.info("relay.started", channel=channel, target=target)
    async with aiohttp.ClientSession() as session:
        while True:
            await retry(
                lambda: _relay_once(session, channel, target, on_forwarded),
                reconnect,
                on_retry=lambda error, attempt, delay: log.warning(
                    "relay.reconnecting", error=repr(error), attempt=attempt, delay=delay
                ),
            )


async def _relay_once(
    session: aiohttp.ClientSession,
    channel: str,
    target: str,
    on_forwarded: Callable[[RelayedDelivery, int], None] | None,
) -> None:
    received = False
    try:
        async for event in read_events(session, channel):
            received = True
            try:
                delivery = parse_channel_event(event.type, event.data)
            except ValueError as exc:
                log.warning("relay.bad_event", error=str(exc))
                continue
            if delivery is None:
                continue
            status = await forward(session, target, delivery)
            if on_forwarded is not None:
                on_forwarded(delivery, status)
    except NETWORK_ERRORS:
        if not received:
            raise
    if not received:
        raise _NothingReceived("channel closed before its first event")
    log.info("relay.channel_closed")


async def forward(session: aiohttp.ClientSession, target: str, delivery: RelayedDelivery) -> int:
    """POST one delivery to the local endpoint; its HTTP status (0 if it never answered)."""

    async def post() -> int:
        async with session.post(target, data=delivery.body, headers=delivery.headers) as answer:
            await answer.read()
            return answer.status

    try:
        status = await retry(post, FORWARD)
    except NETWORK_ERRORS as exc:
        log.error("relay.target_unreachable", target=target, error=repr(exc))
        return 0
    log.info(
        "relay.forwarded",
        github_event=delivery.event,
        delivery=delivery.delivery_id,
        status=status,
        raw_body=delivery.raw,
    )
    return status
