"""Run a child program (``ilab``, ``git``) and stream its output line by line.

Why this is more than ``create_subprocess_exec``: the child is untrusted in what it prints and
in how it dies. It may print a gigabyte without a newline, redraw a progress bar with ``\\r``,
fork helpers that ignore SIGTERM or keep our pipes open after it exits. The runner keeps memory
bounded, kills the whole process group on timeout/cancel, and at the end kills every process
of the run, even helpers that left the group (`adapters.processes`), and closes the pipes if
something it cannot find still holds them: it always reaps and closes everything it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import subprocess
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from instruct_lab_bot.adapters.processes import RUN_MARKER, TRACKER
from instruct_lab_bot.core.line_splitter import LineSplitter

__all__ = [
    "BatchSink",
    "LineSplitter",
    "OnLine",
    "RunProcess",
    "RunResult",
    "run_streaming",
    "scrub_env",
]

OnLine = Callable[[str, str], Awaitable[None] | None]


@runtime_checkable
class BatchSink(Protocol):
    """An `on_line` that also takes all the lines of one pipe read at once: `run_streaming`
    then calls `lines(stream, lines)` once per chunk instead of per line (and awaits it when
    it returns an awaitable, as for `on_line`)."""

    def __call__(self, stream: str, line: str) -> Awaitable[None] | None: ...

    def lines(self, stream: str, lines: list[str]) -> Awaitable[None] | None: ...


Outcome = Literal["exited", "timed_out", "cancelled"]

# Pause the pipes when this many unread chunks are queued; resume at the low mark. A chunk is at
# most one pipe read (asyncio reads up to 256 KiB), so the queue holds a few MiB at worst.
_HIGH_WATER = 8
_LOW_WATER = 2
_PIPE_GRACE = 2.0
_PIPE_SIZE = 1 << 20  # the default /proc/sys/fs/pipe-max-size: allowed without privileges
_STREAMS = {1: "stdout", 2: "stderr"}

DEFAULT_DROP_PREFIXES = ("ILAB_BOT_", "AWS_", "GITHUB_", "GH_", "GIT_")


@dataclass(frozen=True)
class RunResult:
    """How a child run ended.

    ``exit_code`` is the status the child passed to ``exit()``; it is None when the child was
    ended by a signal (then ``signal`` says which) or could not be reaped at all.
    """

    exit_code: int | None
    outcome: Outcome
    duration: float
    signal: int | None
    output_bytes: int


class _ChildProtocol(asyncio.SubprocessProtocol):
    """Queue pipe chunks for one consumer and pause the pipes when it falls behind."""

    def __init__(self, exited: asyncio.Future[None]) -> None:
        self.queue: deque[tuple[int, bytes | None]] = deque()
        self.wakeup = asyncio.Event()
        self.output_bytes = 0
        self._exited = exited
        self._transport: asyncio.SubprocessTransport | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.output_bytes += len(raw)
        self._put((fd, raw))
        if len(self.queue) >= _HIGH_WATER and not self._paused:
            self._set_paused(True)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._put((fd, None))

    def process_exited(self) -> None:
        if not self._exited.done():
            self._exited.set_result(None)

    def take(self) -> tuple[int, bytes | None] | None:
        item = self.queue.popleft() if self.queue else None
        if self._paused and len(self.queue) <= _LOW_WATER:
            self._set_paused(False)
        return item

    def _put(self, item: tuple[int, bytes | None]) -> None:
        self.queue.append(item)
        self.wakeup.set()

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if self._transport is None:
            return
        for fd in _STREAMS:
            pipe = self._transport.get_pipe_transport(fd)
            if isinstance(pipe, asyncio.ReadTransport) and not pipe.is_closing():
                if paused:
                    pipe.pause_reading()
                else:
                    pipe.resume_reading()


async def _consume(proto: _ChildProtocol, on_line: OnLine, limits: RunLimits) -> None:
    """Deliver lines until both pipes reach EOF. ``on_line`` is never called concurrently."""
    splitters = {fd: LineSplitter(limits.max_line) for fd in _STREAMS}
    batch = on_line.lines if isinstance(on_line, BatchSink) else None
    open_pipes = len(splitters)
    while open_pipes:
        item = proto.take()
        if item is None:
            proto.wakeup.clear()
            await proto.wakeup.wait()
            continue
        fd, data = item
        splitter = splitters.get(fd)
        if splitter is None:
            continue
        if data is None:
            lines = splitter.close()
            open_pipes -= 1
        else:
            lines = splitter.feed(data)
        if batch is not None:
            sent = batch(_STREAMS[fd], lines) if lines else None
            if sent is not None:
                await sent
            continue
        for line in lines:
            pending = on_line(_STREAMS[fd], line)
            if pending is not None:
                await pending


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait_for(aws: set[asyncio.Future[Any]], seconds: float) -> None:
    """Wait until all of ``aws`` are done or ``seconds`` pass; never raises their errors."""
    pending = {aw for aw in aws if not aw.done()}
    if pending:
        await asyncio.wait(pending, timeout=max(seconds, 0.0))


async def _cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    live = {task for task in tasks if task is not None and not task.done()}
    for task in live:
        task.cancel()
    if live:
        await asyncio.wait(live)


async def _watch(
    exited: asyncio.Future[None],
    consumer: asyncio.Task[None],
    cancelled: asyncio.Task[bool] | None,
    deadline: float,
) -> Outcome:
    """Wait for the child to exit, the deadline, or the cancel event; surface consumer errors."""
    loop = asyncio.get_running_loop()
    while True:
        watched: set[asyncio.Future[None] | asyncio.Task[bool]] = {exited}
        if not consumer.done():
            watched.add(consumer)
        if cancelled is not None:
            watched.add(cancelled)
        done, _ = await asyncio.wait(
            watched, timeout=max(deadline - loop.time(), 0.0), return_when=asyncio.FIRST_COMPLETED
        )
        if consumer in done:
            consumer.result()  # re-raise an on_line failure
        if exited.done():
            return "exited"
        if cancelled is not None and cancelled in done:
            return "cancelled"
        if not done:
            return "timed_out"


@dataclass(frozen=True)
class RunLimits:
    """How long a child may run and how much it may print per line.

    On `timeout` seconds (wall clock) or a cancel the group gets SIGTERM, then SIGKILL after
    `kill_grace` seconds. If the child exits but something else in its group keeps the pipes
    open, every process of the run is killed after `pipe_grace` seconds, and the pipes are
    closed after another `pipe_grace` if a holder could not be found. Lines longer than
    `max_line` bytes are cut.
    """

    timeout: float
    kill_grace: float = 10.0
    max_line: int = 16 * 1024
    pipe_grace: float = _PIPE_GRACE


class RunProcess(Protocol):
    """`run_streaming`'s shape (the ilab runner's client has it too): run argv, feed each
    output line, end within the limits."""

    async def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_line: OnLine,
        limits: RunLimits,
        cancel: asyncio.Event | None = None,
    ) -> RunResult: ...


async def run_streaming(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: OnLine,
    limits: RunLimits,
    cancel: asyncio.Event | None = None,
) -> RunResult:
    """Run ``argv`` (no shell) in its own process group, calling ``on_line(stream, line)``.

    ``on_line`` may be sync or async. An async one is awaited before more output is read, so a
    slow consumer slows the child down (back-pressure): keep it cheap, e.g. update in-memory
    state only. It is never called concurrently, and lines of one stream arrive in order.

    The group is stopped as `limits` says on a timeout or when ``cancel`` is set. If the calling
    task is cancelled, or ``on_line`` raises, the group is killed at once and the error
    re-raised. Spawn errors (e.g. a missing executable) propagate as ``OSError``.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    exited: asyncio.Future[None] = loop.create_future()
    token = secrets.token_hex(16)  # marks every process of this run (see adapters.processes)
    transport, proto = await _spawn(argv, cwd, {**env, RUN_MARKER: token}, exited)
    _widen_pipes(transport)
    child = _Child(transport, token, exited, asyncio.create_task(_consume(proto, on_line, limits)))
    cancelled = asyncio.create_task(cancel.wait()) if cancel is not None else None
    try:
        outcome = await _supervise(child, cancelled, started + limits.timeout, limits)
    except BaseException:
        _killpg(child.pgid, signal.SIGKILL)
        await _cancel_and_wait([child.consumer, cancelled])
        transport.close()
        # Reap briefly so no zombie is left; the loop's child watcher finishes it otherwise.
        await asyncio.shield(_wait_for({exited}, limits.kill_grace))
        raise
    finally:
        await _cancel_and_wait([child.consumer, cancelled])
        transport.close()
        await asyncio.shield(child.end(limits.kill_grace))
    return _result(transport.get_returncode(), outcome, loop.time() - started, proto)


async def _spawn(
    argv: Sequence[str], cwd: Path, env: dict[str, str], exited: asyncio.Future[None]
) -> tuple[asyncio.SubprocessTransport, _ChildProtocol]:
    """Start the child; until its pid is registered, sweeps leave unmarked orphans alone."""
    TRACKER.spawning += 1
    TRACKER.active.add(env[RUN_MARKER])
    try:
        return await asyncio.get_running_loop().subprocess_exec(
            lambda: _ChildProtocol(exited),
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except BaseException:
        TRACKER.active.discard(env[RUN_MARKER])
        raise
    finally:
        TRACKER.spawning -= 1


def _widen_pipes(transport: asyncio.SubprocessTransport) -> None:
    """Give the output pipes 1 MiB (Linux; 64 KiB by default), so a busy child's output is
    read a full 256 KiB (asyncio's read size) at a time: fewer, bigger chunks, each split,
    redacted and written at once (issue 17: output pumping). Best effort."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    for fd in _STREAMS:
        pipe = transport.get_pipe_transport(fd)
        raw = pipe.get_extra_info("pipe") if pipe is not None else None
        if setpipe is not None and raw is not None:
            with contextlib.suppress(OSError, ValueError):
                fcntl.fcntl(raw.fileno(), setpipe, _PIPE_SIZE)


class _Child:
    """One spawned child: its pipes, its run token, its exit and the task reading its output."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        token: str,
        exited: asyncio.Future[None],
        consumer: asyncio.Task[None],
    ) -> None:
        self.transport = transport
        self.token = token
        self.pgid = transport.get_pid()
        self.exited = exited
        self.consumer = consumer
        TRACKER.children.add(self.pgid)

    def kill_all(self) -> list[int]:
        """SIGKILL the group and every other process of this run; the adopted orphans."""
        _killpg(self.pgid, signal.SIGKILL)
        return TRACKER.sweep(self.token, self.pgid).adopted

    def close_pipes(self) -> None:
        """Stop reading: the consumer sees end-of-file on both pipes."""
        for fd in _STREAMS:
            pipe = self.transport.get_pipe_transport(fd)
            if pipe is not None and not pipe.is_closing():
                pipe.close()

    async def end(self, grace: float) -> None:
        """After the run: kill what is left of it, reap adopted orphans, forget the child."""
        try:
            adopted = self.kill_all()
            if adopted:
                reaping = asyncio.gather(*(asyncio.to_thread(_reap, pid) for pid in adopted))
                await _wait_for({reaping}, grace)
        finally:
            if self.exited.done():
                TRACKER.children.discard(self.pgid)
            TRACKER.active.discard(self.token)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


async def _supervise(
    child: _Child, cancelled: asyncio.Task[bool] | None, deadline: float, limits: RunLimits
) -> Outcome:
    """Wait for the end (exit, timeout or cancel), stop the group if needed, drain output."""
    outcome = await _watch(child.exited, child.consumer, cancelled, deadline)
    if outcome != "exited":
        _killpg(child.pgid, signal.SIGTERM)
        await _wait_for({child.exited, child.consumer}, limits.kill_grace)
        child.kill_all()
        await _wait_for({child.exited}, limits.kill_grace)
    await _drain(child, limits.pipe_grace)
    if child.consumer.done() and not child.consumer.cancelled():
        child.consumer.result()  # re-raise an on_line failure
    return outcome


def _result(
    returncode: int | None, outcome: Outcome, duration: float, proto: _ChildProtocol
) -> RunResult:
    return RunResult(
        exit_code=returncode if returncode is not None and returncode >= 0 else None,
        outcome=outcome,
        duration=duration,
        signal=-returncode if returncode is not None and returncode < 0 else None,
        output_bytes=proto.output_bytes,
    )


async def _drain(child: _Child, pipe_grace: float) -> None:
    """Read what is left after the child exited. Stragglers that hold the pipes open (in the
    group or escaped from it) are killed after `pipe_grace`; if the pipes are still open after
    another grace (a holder we could not find), they are closed: the run never hangs on them."""
    await _wait_for({child.consumer}, pipe_grace)
    if child.consumer.done():
        return
    child.kill_all()
    await _wait_for({child.consumer}, pipe_grace)
    if not child.consumer.done():
        child.close_pipes()
        await _wait_for({child.consumer}, pipe_grace)


def scrub_env(
    base: Mapping[str, str],
    *,
    secrets: Iterable[str],
    drop_prefixes: Sequence[str] = DEFAULT_DROP_PREFIXES,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for an untrusted child: none of the bot's settings or anything secret.

    Drops names with any of ``drop_prefixes`` (the bot's ``ILAB_BOT_*`` settings hold the App
    key and webhook secret) and any variable whose value contains a non-empty secret; then
    applies ``extra`` unchanged.
    """
    needles = [secret for secret in secrets if secret]
    prefixes = tuple(drop_prefixes)
    env = {
        name: value
        for name, value in base.items()
        if not name.startswith(prefixes) and not any(needle in value for needle in needles)
    }
    env.update(extra or {})
    return env
