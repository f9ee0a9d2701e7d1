"""Connect to the Redis the settings name: one server, a Sentinel-watched primary or a
Cluster (`core.redis_target`), over TLS when the URL says `rediss`.

Only redis-py's own clients: `Sentinel.master_for` asks the Sentinels for the primary on every
new connection and drops connections to a primary that was demoted (READONLY), so a failover
costs the callers one error each (they retry) and then heals; `RedisCluster` follows MOVED.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from instruct_lab_bot.core.redis_target import RedisTarget, parse_redis_url

# A dead Redis fails calls instead of hanging them.
_TIMEOUTS: dict[str, Any] = {
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
}


@dataclass(frozen=True)
class RedisTls:
    """Files for TLS: the CA that signed the server's certificate (empty: the system's), and
    a client certificate and key when Redis asks for one (`tls-auth-clients`)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


def connect(url: str, tls: RedisTls | None = None) -> aioredis.Redis:
    """A client for `url` with the bot's timeouts; a Cluster client where `url` names one
    (typed as `Redis`: the queue uses only commands both have)."""
    target = parse_redis_url(url)
    options: dict[str, Any] = {"decode_responses": True, **_TIMEOUTS}
    if target.tls:
        options.update(tls_options(tls or RedisTls()))
    if target.kind == "single":  # the scheme chose TLS: `ssl` is not an argument here
        options.pop("ssl", None)
        single: aioredis.Redis = aioredis.Redis.from_url(url, health_check_interval=30, **options)
        return single
    if target.kind == "sentinel":
        return _sentinel(target, options)
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        **options,
    )
    return cast(aioredis.Redis, cluster)


def tls_options(tls: RedisTls) -> dict[str, Any]:
    """redis-py's TLS arguments: the server's certificate and host name always verified."""
    options: dict[str, Any] = {
        "ssl": True,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
    }
    if tls.ca_file:
        options["ssl_ca_certs"] = tls.ca_file
    if tls.cert_file:
        options["ssl_certfile"] = tls.cert_file
        options["ssl_keyfile"] = tls.key_file
    return options


def _sentinel(target: RedisTarget, options: dict[str, Any]) -> aioredis.Redis:
    # The Sentinels get the same TLS set-up, not the data nodes' user (they have their own).
    sentinels = Sentinel(
        list(target.nodes),
        sentinel_kwargs=dict(options),
        username=target.username,
        password=target.password,
        db=target.db,
        **options,
    )
    client: aioredis.Redis = sentinels.master_for(target.service, health_check_interval=30)
    return client


async def close(client: aioredis.Redis) -> None:
    """Close `client` and, for a Sentinel-watched primary, the clients of the Sentinels."""
    await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


def is_cluster(client: aioredis.Redis) -> bool:
    return isinstance(client, RedisCluster)
