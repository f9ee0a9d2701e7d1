"""Real Redis topologies on free loopback ports, for the tests and the chaos run.

- `SentinelTopology`: a primary, one replica and three Sentinels watching them (quorum 2).
  `fail_over()` kills the primary with SIGKILL and returns once a Sentinel announced the new
  primary (`+switch-master`, an event, not a sleep) and that replica says `role:master`.
- `ClusterTopology`: three primaries joined with `redis-cli --cluster create` (no replicas),
  ready when every node reports `cluster_state:ok`.

Both give the URL the bot takes (`redis+sentinel://…` / `redis+cluster://…`). Waits are on
conditions, bounded by a generous timeout that only a broken set-up reaches.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from testkit.redis_server import RedisServer, RedisUnavailable, free_port, redis_binary

SERVICE = "ilab"
DOWN_AFTER_MS = 1000  # how long a silent primary takes to be declared down
WAIT = 60.0  # upper bound of any wait below: reached only if the topology is broken


def wait_until(what: str, condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll `condition` (cheap local calls) until true; RedisUnavailable naming `what` if it
    never becomes true within `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RedisUnavailable(f"timed out waiting for {what}")
        time.sleep(0.05)


def client(port: int, **options: Any) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_timeout=5, **options)


def replication(port: int) -> dict[str, Any]:
    """`INFO replication` of the server on `port` ({} if it does not answer)."""
    try:
        with client(port) as conn:
            return dict(conn.info("replication"))
    except (redis.RedisError, OSError):
        return {}


@dataclass
class Sentinel:
    """One `redis-server --sentinel` process (its config file is its own: it rewrites it)."""

    directory: Path
    primary_port: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    myid: str = field(default_factory=lambda: os.urandom(20).hex())
    known: list[str] = field(default_factory=list)  # config lines: the others, the replica

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"logfile {self.directory / 'sentinel.log'}\nsentinel myid {self.myid}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"  # a next failover may follow soon
            f"sentinel parallel-syncs {SERVICE} 1\n" + "".join(f"{line}\n" for line in self.known)
        )
        argv = [redis_binary(), str(config), "--sentinel"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(f"sentinel on {self.port}", self._answers, timeout=10)

    def _answers(self) -> bool:
        with contextlib.suppress(redis.RedisError, OSError), client(self.port) as conn:
            return bool(conn.ping())
        return False

    def master(self) -> dict[str, Any]:
        with client(self.port) as conn:
            return dict(conn.sentinel_master(SERVICE))

    def master_address(self) -> tuple[str, int] | None:
        with client(self.port) as conn:
            found = conn.sentinel_get_master_addr_by_name(SERVICE)
        return (str(found[0]), int(found[1])) if found else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class SentinelTopology:
    """Primary + replica + 3 Sentinels. `servers[0]` starts as primary; after `fail_over()`
    `primary` names whichever server the Sentinels promoted."""

    directory: Path
    servers: list[RedisServer] = field(default_factory=list)
    sentinels: list[Sentinel] = field(default_factory=list)
    primary_port: int = 0

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def primary(self) -> RedisServer:
        return next(s for s in self.servers if s.port == self.primary_port)

    @property
    def replica(self) -> RedisServer:
        return next(s for s in self.servers if s.port != self.primary_port)

    def start(self) -> None:
        first = RedisServer(self.directory / "a")
        first.start()
        self.primary_port = first.port
        second = RedisServer(
            self.directory / "b", extra=["--replicaof", "127.0.0.1", str(first.port)]
        )
        second.start()
        self.servers = [first, second]
        wait_until("the replica's link", lambda: self.replica_synced(second.port))
        self.sentinels = [Sentinel(self.directory / f"s{i}", first.port) for i in range(3)]
        for sentinel in self.sentinels:  # told about each other: no 2-second hello rounds
            sentinel.known = [
                f"sentinel known-sentinel {SERVICE} 127.0.0.1 {other.port} {other.myid}"
                for other in self.sentinels
                if other is not sentinel
            ] + [f"sentinel known-replica {SERVICE} 127.0.0.1 {second.port}"]
            sentinel.start()
        wait_until("the Sentinels to know each other and the replica", self._watching)

    def replica_synced(self, port: int) -> bool:
        return replication(port).get("master_link_status") == "up"

    def _watching(self) -> bool:
        for sentinel in self.sentinels:
            master = sentinel.master()
            if (
                int(master.get("num-other-sentinels", 0)) < 2
                or int(master.get("num-slaves", 0)) < 1
            ):
                return False
        return True

    def fail_over(self) -> RedisServer:
        """`kill -9` the primary; returns the promoted replica once it serves as primary."""
        old = self.primary
        with client(self.sentinels[0].port) as conn, conn.pubsub() as events:
            events.subscribe("+switch-master")
            events.get_message(timeout=5)  # the subscribe confirmation
            old.kill()
            deadline = time.monotonic() + WAIT
            while True:
                message = events.get_message(timeout=1)
                if message and str(message["data"]).startswith(SERVICE + " "):
                    break
                if time.monotonic() > deadline:
                    raise RedisUnavailable("no +switch-master after the primary was killed")
        address = self.sentinels[0].master_address()
        assert address is not None
        self.primary_port = address[1]
        wait_until("the new primary", lambda: replication(address[1]).get("role") == "master")
        return self.primary

    def restart_old_primary(self, server: RedisServer) -> None:
        """Bring a killed server back as the new primary's replica (as an orchestrator would:
        the Sentinels would convert it too, but only at their next 10-second INFO round)."""
        server.extra = ["--replicaof", "127.0.0.1", str(self.primary_port)]
        server.start()
        wait_until("the old primary to rejoin as replica", lambda: self.replica_synced(server.port))

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def sentinel_topology(directory: Path) -> Iterator[SentinelTopology]:
    topology = SentinelTopology(directory)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


@dataclass
class ClusterTopology:
    """Three primaries sharing the 16384 slots; no replicas (the test is of the key layout)."""

    directory: Path
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for i in range(3):
            node = RedisServer(
                self.directory / f"n{i}",
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(self.directory / f"n{i}" / "nodes.conf"),
                    "--cluster-port",  # the bus port: port+10000 may be taken or too high
                    str(free_port()),
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
            node.start()
            self.nodes.append(node)
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RedisUnavailable("redis-cli is not installed (it comes with redis-server)")
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until("cluster_state:ok on every node", self._ok)

    def _ok(self) -> bool:
        for node in self.nodes:
            with client(node.port) as conn:
                info = conn.execute_command("CLUSTER", "INFO")
            text = info if isinstance(info, str) else str(info)
            if "cluster_state:ok" not in text:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def cluster_topology(directory: Path) -> Iterator[ClusterTopology]:
    topology = ClusterTopology(directory)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()
