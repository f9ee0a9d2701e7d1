"""The metrics notice Redis going away, coming back and being another server (a restart or a
failover), so the dashboards can mark them: a real redis-server killed and started again."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.services.metrics import QueueGauges
from testkit.redis_server import running_redis


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


async def test_outage_reconnect_and_new_server_are_counted(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    gauges = QueueGauges(registry)
    with running_redis(tmp_path / "redis", appendonly=True, appendfsync="always") as server:
        queue = Queue.from_url(server.url)
        try:
            await gauges.tick(queue)
            assert sample(registry, "instruct_lab_bot_redis_up") == 1
            server.kill()
            await gauges.tick(queue)
            assert sample(registry, "instruct_lab_bot_redis_up") == 0
            server.start()
            await gauges.tick(queue)
            await gauges.tick(queue)  # counted once, not on every refresh after
        finally:
            await queue.aclose()
    assert sample(registry, "instruct_lab_bot_redis_up") == 1
    changes = "instruct_lab_bot_redis_changes_total"
    assert sample(registry, changes, kind="reconnect") == 1
    assert sample(registry, changes, kind="server") == 1


async def test_a_restart_between_two_refreshes_is_still_seen(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    gauges = QueueGauges(registry)
    with running_redis(tmp_path / "redis", appendonly=True, appendfsync="always") as server:
        queue = Queue.from_url(server.url)
        try:
            await gauges.tick(queue)
            server.kill()
            server.start()
            await gauges.tick(queue)  # may fail once on the dropped connection, then…
            await gauges.tick(queue)
        finally:
            await queue.aclose()
    assert sample(registry, "instruct_lab_bot_redis_changes_total", kind="server") == 1
