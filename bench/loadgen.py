"""HTTP load from a separate process: signed webhook deliveries, each with its own delivery id.

Two modes on raw keep-alive HTTP/1.1 connections (a hand-written client costs far less CPU per
request than aiohttp's, which matters when client and server share two cores):

- ``rate``: open loop, a fixed request rate; latency is measured from each request's *scheduled*
  send time, so a stalled server cannot hide its queueing (no coordinated omission).
- ``closed``: N connections, each sending its next request as soon as the previous answered;
  the throughput fallback when `wrk` is not installed.

Usage: python -m bench.loadgen URL BODY_FILE --event E --signature S --mode rate --rate 1000
       --duration 5 --json OUT [--vary-comment ID (signing key in LOADGEN_WEBHOOK_SECRET)]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .common import percentile


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[str, int]
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if s.startswith("2"))


class Request:
    """Builds request bytes: each has its own delivery id and, with `vary` (a comment id in
    the body) and `secret`, its own comment id (same width) and signature: the bot stores
    one comment once, so a body sent again would be answered as a duplicate."""

    def __init__(
        self,
        url: str,
        body: bytes,
        event: str,
        signature: str,
        *,
        vary: bytes = b"",
        secret: bytes = b"",
        pulls: int = 1,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nUser-Agent: GitHub-Hookshot/bench\r\n"
            f"X-GitHub-Event: {event}\r\nX-Hub-Signature-256: "
        ).encode()
        self._rest = f"\r\nContent-Length: {len(body)}\r\nX-GitHub-Delivery: ".encode()
        self._body = body
        self._signature = signature.encode()
        self._vary = vary if vary and secret and vary in body else b""
        self._secret = secret
        self._prefix = os.urandom(4).hex()
        self._count = 0
        self._pull = _pull_number(body) if pulls > 1 and self._vary else 0
        self._pulls = pulls
        if self._pull:
            assert len(str(self._pull + pulls - 1)) == len(str(self._pull)), "same width"

    def next(self) -> bytes:
        self._count += 1
        body, signature = self._body, self._signature
        if self._vary:
            own = str(int(self._vary) + self._count).encode()
            body = body.replace(self._vary, own.rjust(len(self._vary), b"0"), 1)
            if self._pull:  # the next of `pulls` PRs, round robin
                number = self._pull + self._count % self._pulls
                old, new = f'"number":{self._pull},', f'"number":{number},'
                body = body.replace(old.encode(), new.encode(), 1)
            digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            signature = f"sha256={digest}".encode()
        delivery = f"{self._prefix}-{self._count}\r\n\r\n".encode()
        return b"".join((self._head, signature, self._rest, delivery, body))


def _pull_number(body: bytes) -> int:
    """The issue (PR) number of a comment's payload (compact JSON)."""
    return int(json.loads(body)["issue"]["number"])


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> int:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def _connect(request: Request) -> Connection:
    reader, writer = await asyncio.open_connection(request.host, request.port)
    return Connection(reader, writer)


async def run_rate(request: Request, rate: float, duration: float, connections: int) -> LoadResult:
    """Open loop: request i is due at start + i/rate whatever happened to the earlier ones."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await _connect(request))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    total = int(rate * duration)

    async def one(due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.send(request.next())
            statuses[str(status)] += 1
            latencies.append(time.perf_counter() - due)
            pool.put_nowait(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.close()
            pool.put_nowait(await _connect(request))

    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        while sent < total and start + sent / rate <= now:
            task = asyncio.create_task(one(start + sent / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    if tasks:
        await asyncio.wait(set(tasks), timeout=30)
    seconds = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    return _result(len(latencies), seconds, statuses, errors, latencies)


async def run_closed(request: Request, duration: float, connections: int) -> LoadResult:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    deadline = time.perf_counter() + duration

    async def loop() -> None:
        nonlocal errors
        conn = await _connect(request)
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                status = await conn.send(request.next())
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                conn.close()
                conn = await _connect(request)
                continue
            statuses[str(status)] += 1
            latencies.append(time.perf_counter() - sent)
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    return _result(len(latencies), time.perf_counter() - start, statuses, errors, latencies)


def _result(
    count: int, seconds: float, statuses: Counter[str], errors: int, latencies: list[float]
) -> LoadResult:
    return LoadResult(
        requests=count,
        seconds=seconds,
        statuses=dict(statuses),
        errors=errors,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
    )


def load_result(path: Path) -> LoadResult:
    return LoadResult(**json.loads(path.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("body", type=Path)
    parser.add_argument("--event", required=True)
    parser.add_argument("--signature", required=True)
    parser.add_argument("--mode", choices=("rate", "closed"), default="rate")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--vary-comment", default="", help="comment id to vary per request")
    parser.add_argument(
        "--vary-pr", type=int, default=1, help="spread comments over this many PRs from the body's"
    )
    args = parser.parse_args()
    secret = os.environ.get("LOADGEN_WEBHOOK_SECRET", "").encode()
    request = Request(
        args.url,
        args.body.read_bytes(),
        args.event,
        args.signature,
        vary=args.vary_comment.encode(),
        secret=secret,
        pulls=args.vary_pr,
    )
    if args.mode == "rate":
        result = asyncio.run(run_rate(request, args.rate, args.duration, args.connections))
    else:
        result = asyncio.run(run_closed(request, args.duration, args.connections))
    args.json.write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
