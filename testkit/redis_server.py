"""A private `redis-server` on a free loopback port: for the tests, the demo and the benchmarks.

One launcher, so all three run Redis the same way (and, with `appendonly`, the way production
should: AOF on), and none of them ever touches a Redis someone else is using.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MIN_VERSION = (6, 2)  # XAUTOCLAIM


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisUnavailable(RuntimeError):
    """No usable redis-server binary (missing or too old), or it did not come up."""


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable("redis-server is not installed (`make redis` installs it with apt)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    number = version.stdout.split("v=")[1].split()[0]
    if tuple(int(p) for p in number.split(".")[:2]) < MIN_VERSION:
        raise RedisUnavailable(f"redis-server {number} is too old: the bot needs >= 6.2")
    return binary


@dataclass
class RedisServer:
    """One redis-server process; `start`/`kill` may be repeated (same port, same data)."""

    directory: Path
    appendonly: bool = False
    appendfsync: str = "everysec"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)  # more `--option value` arguments
    tls_client: ssl.SSLContext | None = None  # set when `port` speaks only TLS

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--logfile",
            str(self.directory / "redis.log"),
            *self.extra,
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisUnavailable(f"redis-server exited; see {self.directory / 'redis.log'}")
            if self._answers():
                return
            time.sleep(0.02)
        raise RedisUnavailable("redis-server did not answer in time")

    def _answers(self) -> bool:
        """Whether the server answers a PING (an ACL refusal is an answer; LOADING is not)."""
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw,
        ):
            if self.tls_client is None:
                return _pinged(raw)
            with self.tls_client.wrap_socket(raw, server_hostname="localhost") as sock:
                return _pinged(sock)
        return False

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (only what AOF kept survives)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _pinged(sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    return sock.recv(64).startswith((b"+PONG", b"-NOAUTH", b"-NOPERM"))


@contextlib.contextmanager
def running_redis(
    directory: Path, *, appendonly: bool = False, appendfsync: str = "everysec"
) -> Iterator[RedisServer]:
    server = RedisServer(directory, appendonly=appendonly, appendfsync=appendfsync)
    server.start()
    try:
        yield server
    finally:
        server.stop()
