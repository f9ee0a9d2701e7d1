"""The worker's side of `ILAB_BOT_SANDBOX=runner`: run `ilab` through the ilab runner.

Same call shape as `adapters.runner.run_streaming` (argv, cwd, env, on_line, limits, cancel →
RunResult), so the worker picks one or the other in one place (`adapters.sandbox`). The run
happens in the runner's container (`services.ilab_runner`); this side sends the request,
feeds `on_line` and returns the result. A cancel is sent as a message (the runner stops the
group as `limits` say); if this task is cancelled or `on_line` raises, the connection is
closed, which makes the runner kill the run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from instruct_lab_bot.adapters.runner import BatchSink, OnLine, RunLimits, RunResult
from instruct_lab_bot.core.runner_protocol import MAX_MESSAGE, Refused, decode, encode

__all__ = ["RunnerClient", "RunnerRefused"]


class RunnerRefused(OSError):
    """The runner would not run the request (or answered nonsense); the message says why."""


class RunnerClient:
    """Talks to the ilab runner listening on `socket`."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    async def version(self) -> dict[str, Any]:
        """The runner's `version` answer (its ilab command and jobs folder)."""
        async with self._connect() as (reader, writer):
            writer.write(encode({"op": "version"}))
            await writer.drain()
            return _answer(await reader.readline(), "version")

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_line: OnLine,
        limits: RunLimits,
        cancel: asyncio.Event | None = None,
    ) -> RunResult:
        """Run `argv` in the runner's container; OSError when it cannot start there."""
        request = {
            "op": "run",
            "argv": list(argv),
            "cwd": str(cwd),
            "env": dict(env),
            "timeout": limits.timeout,
            "kill_grace": limits.kill_grace,
            "max_line": limits.max_line,
        }
        async with self._connect() as (reader, writer):
            writer.write(encode(request))
            await writer.drain()
            cancelled = asyncio.create_task(cancel.wait()) if cancel is not None else None
            try:
                return await _follow(reader, writer, on_line, cancelled)
            finally:
                if cancelled is not None:
                    cancelled.cancel()
                    await asyncio.gather(cancelled, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _connect(self) -> Any:
        reader, writer = await asyncio.open_unix_connection(self.socket, limit=MAX_MESSAGE)
        try:
            yield reader, writer
        finally:
            writer.close()  # mid-run, this is what makes the runner kill the run
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _follow(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_line: OnLine,
    cancelled: asyncio.Task[bool] | None,
) -> RunResult:
    """Feed `on_line` until the result arrives; pass a cancel on to the runner once."""
    while True:
        reading = asyncio.ensure_future(reader.readline())
        waiting: set[asyncio.Future[Any]] = {reading}
        if cancelled is not None:
            waiting.add(cancelled)
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not reading.done():
                reading.cancel()
        if cancelled is not None and cancelled.done():
            with contextlib.suppress(ConnectionError):  # it ended meanwhile: its answer is read
                writer.write(encode({"op": "cancel"}))
                await writer.drain()
            cancelled = None
        if not reading.done() or reading.cancelled():
            continue
        message = _answer(reading.result(), "line", "lines", "result")
        if message["type"] == "result":
            return _run_result(message)
        await _deliver(message, on_line)


async def _deliver(message: Mapping[str, Any], on_line: OnLine) -> None:
    """A `line` or `lines` message to `on_line`: a batch at once when it takes batches."""
    stream = str(message.get("stream"))
    if message["type"] == "line":
        lines = [str(message.get("line"))]
    else:
        found = message.get("lines")
        lines = [str(line) for line in found] if isinstance(found, list) else []
    if isinstance(on_line, BatchSink):
        pending = on_line.lines(stream, lines) if lines else None
        if pending is not None:
            await pending
        return
    for line in lines:
        pending = on_line(stream, line)
        if pending is not None:
            await pending


def _answer(line: bytes, *types: str) -> dict[str, Any]:
    """One answer of the expected `types`; OSError for a refusal, an error or a lost runner."""
    if not line:
        raise ConnectionError(errno.ECONNRESET, "the ilab runner closed the connection")
    try:
        message = decode(line)
    except Refused as exc:
        raise RunnerRefused(errno.EPROTO, f"the ilab runner answered {exc}") from None
    kind = message.get("type")
    if kind == "refused":
        raise RunnerRefused(errno.EPERM, f"the ilab runner refused: {message.get('reason')}")
    if kind == "error":
        code = message.get("errno")
        raise OSError(code if isinstance(code, int) else errno.EIO, str(message.get("message")))
    if kind not in types:
        raise RunnerRefused(errno.EPROTO, f"the ilab runner answered {kind!r}")
    return message


def _run_result(message: Mapping[str, Any]) -> RunResult:
    outcome = message.get("outcome")
    if outcome not in ("exited", "timed_out", "cancelled"):
        raise RunnerRefused(errno.EPROTO, f"the ilab runner answered outcome {outcome!r}")
    return RunResult(
        exit_code=_int_or_none(message.get("exit_code")),
        outcome=outcome,
        duration=float(message.get("duration") or 0.0),
        signal=_int_or_none(message.get("signal")),
        output_bytes=int(message.get("output_bytes") or 0),
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
