"""`ilab model serve`, started, waited for and stopped; and its OpenAI-compatible API asked.

The real `ilab model serve` exits 0 even when it could not serve (port taken, model missing),
so "ready" is never its exit code: it is a `GET /v1/models` that answers 200 while the process
still runs. The process runs in the job's sandbox like every `ilab` (through `process_runner`,
`ilab_command`), with the host's network (the worker must reach its port; the server binds to
the loopback address only) and is stopped whatever happens: a failed `start()` stops it,
`IlabServer` is an async context manager that stops it on the way out, and `stop()` is safe to
call twice. Its users (`test`, the `local` serving backend) keep no guard of their own.

Used by `test` (base and trained model side by side) and by the `local` serving backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from instruct_lab_bot.adapters.runner import RunLimits, RunResult
from instruct_lab_bot.adapters.sandbox import ilab_command, process_runner
from instruct_lab_bot.core.ilab import ServeRun
from instruct_lab_bot.core.settings import Settings

__all__ = ["IlabServer", "ServeFailed", "ask_model", "free_port", "served_models"]

LOOPBACK = "127.0.0.1"
POLL_INTERVAL = 0.25  # between two readiness polls (and the most a poll may take)
_TAIL_LINES = 20
MAX_ANSWER_BYTES = 64 * 1024


class ServeFailed(Exception):
    """The server did not become ready (or died); the message says why, safe to show."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the OS picks it; a race with another process
    taking it before the server binds shows up as a server that never becomes ready)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def served_models(
    session: aiohttp.ClientSession, base_url: str, within: float = POLL_INTERVAL * 4
) -> list[str] | None:
    """The model ids `GET {base_url}/v1/models` lists; None while it does not answer."""
    try:
        async with session.get(
            f"{base_url}/v1/models", timeout=aiohttp.ClientTimeout(total=within)
        ) as response:
            if response.status != 200:
                return None
            data = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    items = data.get("data") if isinstance(data, dict) else None
    return [str(m.get("id")) for m in items or () if isinstance(m, dict)]


async def ask_model(
    session: aiohttp.ClientSession,
    base_url: str,
    model: str,
    question: str,
    *,
    within: float,
    max_tokens: int = 512,
) -> str:
    """One chat completion (not streamed); the answer text, cut at MAX_ANSWER_BYTES.

    Raises ServeFailed with a short reason when the server does not answer properly."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "stream": False,
    }
    try:
        async with session.post(
            f"{base_url}/v1/chat/completions",
            json=body,
            timeout=aiohttp.ClientTimeout(total=within),
        ) as response:
            raw = await response.content.read(4 * MAX_ANSWER_BYTES)
            if response.status != 200:
                raise ServeFailed(f"the model server answered HTTP {response.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServeFailed(f"the model server did not answer: {type(exc).__name__}") from None
    return _answer_text(raw)[:MAX_ANSWER_BYTES]


def _answer_text(raw: bytes) -> str:
    try:
        data = json.loads(raw)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ServeFailed("the model server's answer is not a chat completion") from None
    return content if isinstance(content, str) else ""


class IlabServer:
    """One `ilab model serve` process on `LOOPBACK:port`, from start to stop.

    `argv` is the whole `ilab model serve …` command, already told to listen on `port`;
    `from_run` takes `core.ilab.serve_argv`'s `ServeRun` (and writes 0.18's config file)."""

    @classmethod
    async def from_run(
        cls, settings: Settings, run: ServeRun, *, port: int, workspace: Path, cwd: Path
    ) -> IlabServer:
        """The server of `run` (0.18 reads its port from the config file it names: written
        here)."""
        if run.config_file is not None and run.config_text is not None:
            await asyncio.to_thread(run.config_file.write_text, run.config_text, "utf-8")
        return cls(settings, run.argv, port=port, workspace=workspace, cwd=cwd)

    def __init__(
        self,
        settings: Settings,
        argv: Sequence[str],
        *,
        port: int,
        workspace: Path,
        cwd: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.argv = list(argv)
        self.port = port
        self.workspace = workspace
        self.cwd = cwd
        self.extra_env = dict(extra_env or {})
        self.url = f"http://{LOOPBACK}:{port}"
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[RunResult] | None = None

    async def start(
        self, session: aiohttp.ClientSession, ready_within: float, cancel: asyncio.Event | None
    ) -> list[str]:
        """Start the server and wait until it answers; the model ids it serves.

        Raises ServeFailed when it exits, does not answer within `ready_within` seconds, or
        `cancel` is set first. However start fails (cancelled too) the server is stopped
        before it raises: a caller keeping the server has one to stop only once this returned.
        """
        self._launch(ready_within)
        try:
            return await self._until_ready(session, ready_within, cancel)
        except BaseException:
            await self.stop()
            raise

    async def _until_ready(
        self, session: aiohttp.ClientSession, ready_within: float, cancel: asyncio.Event | None
    ) -> list[str]:
        assert self._task is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_within
        while True:
            models = await served_models(session, self.url)
            if models is not None and not self._task.done():
                return models
            why = self._not_ready_reason(loop.time() >= deadline, cancel, ready_within)
            if why:
                raise ServeFailed(why)
            await asyncio.wait({self._task}, timeout=POLL_INTERVAL)

    def _launch(self, ready_within: float) -> None:
        if self._task is not None:
            raise RuntimeError("IlabServer.start called twice")
        # The worker must reach the port: the server gets the host's network namespace.
        settings = replace(self.settings, sandbox_network="host")
        command = ilab_command(
            settings, self.argv, workspace=self.workspace, cwd=self.cwd, extra_env=self.extra_env
        )
        limits = RunLimits(
            timeout=self.settings.job_timeout + ready_within, kill_grace=self.settings.kill_grace
        )
        self._task = asyncio.create_task(
            process_runner(self.settings)(
                command.argv,
                cwd=self.cwd,
                env=command.env,
                on_line=self._line,
                limits=limits,
                cancel=self._stop,
            )
        )

    def _not_ready_reason(
        self, late: bool, cancel: asyncio.Event | None, ready_within: float
    ) -> str:
        assert self._task is not None
        if self._task.done():
            return f"`ilab model serve` stopped before it answered{self._exit_words()}"
        if cancel is not None and cancel.is_set():
            return "cancelled while the model server was starting"
        if late:
            return f"`ilab model serve` did not answer within {ready_within:.0f} s"
        return ""

    def _exit_words(self) -> str:
        assert self._task is not None
        error = self._task.exception()
        if error is not None:
            return f" ({type(error).__name__}: {error})"
        result = self._task.result()
        last = next((line.strip() for line in reversed(self.tail) if line.strip()), "")
        code = f"exit code {result.exit_code}" if result.exit_code is not None else result.outcome
        return f" ({code}{': ' + last[:300] if last else ''})"

    def _line(self, stream: str, line: str) -> None:
        self.tail.append(line)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> RunResult | None:
        """Stop the server (SIGTERM, then SIGKILL after the kill grace) and wait for it; the
        way it ended, None when it never started or could not be spawned."""
        if self._task is None:
            return None
        self._stop.set()
        with contextlib.suppress(Exception):
            return await asyncio.shield(self._task)
        return None

    async def __aenter__(self) -> IlabServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
