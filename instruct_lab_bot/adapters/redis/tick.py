"""Per-job Redis calls made in one event-loop tick share one round trip.

A worker that took a batch of entries starts, reads and finishes those jobs in step: each job's
task makes the same call within the same tick. Sent one by one, each call would cost a round
trip (on loopback, a `send` that wakes Redis and a context switch each way: most of the
worker's CPU). `TickBatch` queues the calls of one tick and sends them in one pipeline at its
end. Each call is still its own command or atomic script with its own reply or error (a broken
connection fails them all, and each caller retries as it would have), so batching changes no
guarantee, only how many round trips carry the calls. A write that must survive a failover
shares the pipeline's one `WAIT` (`ReplicaWaitTimeout` when too few replicas confirm it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from instruct_lab_bot.adapters.redis.scripts import script, source


class ReplicaWaitTimeout(RedisError):
    """Fewer replicas than `ILAB_BOT_REDIS_WAIT_REPLICAS` confirmed a write in time: it is on
    the primary, but a failover now could lose it (the caller answers 503 / retries).
    `result` is what the write returned on the primary."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


def check_replicas(confirmed: Any, wanted: int, timeout_ms: int, result: Any = None) -> None:
    """Raise unless `WAIT`'s reply `confirmed` counts `wanted` replicas (ReplicaWaitTimeout,
    carrying the write's `result`; WAIT's own error if it failed)."""
    if isinstance(confirmed, Exception):  # WAIT itself failed (a pipeline kept its error)
        raise confirmed
    if int(confirmed) < wanted:
        raise ReplicaWaitTimeout(
            f"{confirmed} of {wanted} replicas confirmed the write within {timeout_ms} ms",
            result,
        )


@dataclass
class _Call:
    script: str | None  # a `lua/` script's name, or None for a plain command
    args: tuple[Any, ...]  # the command and its arguments, or the script's key count, keys, args
    durable: bool  # its write must reach `wait_replicas` replicas before it is answered
    reply: asyncio.Future[Any]


class TickBatch:
    """The calls of one tick, sent together at its end (one pipeline, one connection)."""

    def __init__(self, client: aioredis.Redis, wait_replicas: int, wait_timeout_ms: int) -> None:
        self.client = client
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._calls: list[_Call] | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def command(self, *args: Any) -> Any:
        """One Redis command (its reply as redis-py's own call would give it)."""
        return await self._join(_Call(None, args, False, self._future()))

    async def script(
        self, name: str, keys: Sequence[str], args: Sequence[Any], *, durable: bool = False
    ) -> Any:
        """Run `lua/NAME.lua` (EVALSHA; loaded again if Redis forgot it). `durable`: with
        replicas to wait for, answered only once they confirmed it (else ReplicaWaitTimeout,
        carrying the script's result)."""
        call = _Call(name, (len(keys), *keys, *args), durable, self._future())
        return await self._join(call)

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _join(self, call: _Call) -> Any:
        if self._calls is None:
            self._calls = []
            # Runs after the tasks woken in this tick made their calls.
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        self._calls.append(call)
        return await call.reply

    async def _flush(self) -> None:
        calls, self._calls = self._calls or [], None
        await self._send(calls, retry_noscript=True)

    async def _send(self, calls: list[_Call], *, retry_noscript: bool) -> None:
        wait = bool(self.wait_replicas) and any(call.durable for call in calls)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for call in calls:
                    if call.script is None:
                        pipe.execute_command(*call.args)
                    else:
                        pipe.evalsha(script(self.client, call.script).sha, *call.args)
                if wait:
                    pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for call in calls:
                if not call.reply.done():
                    call.reply.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        confirmed = results.pop() if wait else None
        forgotten = [c for c, r in zip(calls, results, strict=True) if isinstance(r, NoScriptError)]
        if forgotten and retry_noscript:  # a restarted Redis: load them, send those again
            await self._reload(forgotten)
        for call, result in zip(calls, results, strict=True):
            if not call.reply.done():
                self._settle(call, result, confirmed)

    async def _reload(self, calls: list[_Call]) -> None:
        try:
            for name in {call.script for call in calls if call.script}:
                await self.client.script_load(source(name))
        except Exception as exc:
            for call in calls:
                if not call.reply.done():
                    call.reply.set_exception(exc)
            return
        await self._send(calls, retry_noscript=False)

    def _settle(self, call: _Call, result: Any, confirmed: Any) -> None:
        if isinstance(result, Exception):
            call.reply.set_exception(result)
            return
        if call.durable and self.wait_replicas:
            try:
                check_replicas(confirmed, self.wait_replicas, self.wait_timeout_ms, result)
            except Exception as exc:
                call.reply.set_exception(exc)
                return
        call.reply.set_result(result)
