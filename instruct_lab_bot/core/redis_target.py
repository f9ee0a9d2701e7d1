"""Where Redis is: one server, a Sentinel-watched primary, or a Cluster, read from one URL.

`ILAB_BOT_REDIS_URL` takes redis-py's own forms (`redis://`, `rediss://`, `unix://`) for one
server, and two more for high availability, mapped by `adapters.redis.connection` onto
redis-py's `Sentinel` and `RedisCluster` clients:

- `redis+sentinel://[user:pass@]host:port[,host:port...]/service[/db]`: the Sentinels to ask
  and the service (master group) name; the credentials are the data nodes' (Redis ACL user).
- `redis+cluster://[user:pass@]host:port[,host:port...]`: any reachable Cluster nodes.

`rediss+sentinel://` and `rediss+cluster://` use TLS, like `rediss://`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

SINGLE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class RedisTarget:
    """A parsed `ILAB_BOT_REDIS_URL`: `kind` is "single", "sentinel" or "cluster"."""

    kind: str
    url: str = field(repr=False)  # as given (one server: redis-py reads it itself)
    nodes: tuple[tuple[str, int], ...] = ()  # Sentinels or Cluster seed nodes
    service: str = ""  # Sentinel master group
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    tls: bool = False


def parse_redis_url(text: str) -> RedisTarget:
    """The target a URL names; ValueError (never quoting a password) if it names none."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in SINGLE_SCHEMES:
        return RedisTarget("single", text, tls=scheme == "rediss")
    if scheme not in SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        allowed = ", ".join(f"{s}://" for s in SINGLE_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES)
        raise ValueError(f"must start with one of {allowed}")
    rest = text.split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    nodes = tuple(_host_port(item) for item in hosts.split(","))
    sentinel = scheme in SENTINEL_SCHEMES
    service, db = _service_db(path) if sentinel else _cluster_path(path)
    return RedisTarget(
        "sentinel" if sentinel else "cluster",
        text,
        nodes,
        service,
        db,
        unquote(user) or None,
        unquote(password) or None,
        scheme.startswith("rediss"),
    )


def _host_port(item: str) -> tuple[str, int]:
    match = _HOST_PORT.match(item.strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError("every node must be host:port (several separated by commas)")
    return match.group(1).strip("[]"), int(match.group(2))


def _service_db(path: str) -> tuple[str, int]:
    service, _, db = path.strip("/").partition("/")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", service):
        raise ValueError("a Sentinel URL ends with /service (the master group name)[/db]")
    if db and not db.isdigit():
        raise ValueError("the database after the service name must be a number")
    return service, int(db or 0)


def _cluster_path(path: str) -> tuple[str, int]:
    if path.strip("/") not in ("", "0"):
        raise ValueError("a Cluster has only database 0: no path after the nodes")
    return "", 0
