"""`instruct-lab-bot ilab-runner`: run `ilab` for the worker in a container with no secrets.

The worker (`ILAB_BOT_SANDBOX=runner`) connects to this server's Unix socket in a volume the
two containers share, sends one run request and reads the output lines and the result back
(`core.runner_protocol`). This process holds none of the bot's secrets (it refuses to start
with any in its environment), so neither can the `ilab` it starts: there is nothing to steal
in its parent's environment or files. Each request is checked before anything runs; the run
itself is `adapters.runner.run_streaming`'s (bounded memory, the process group killed on a
cancel or timeout, everything reaped). A connection the worker closes cancels its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from instruct_lab_bot import __version__
from instruct_lab_bot.adapters.runner import RunLimits, RunResult, run_streaming
from instruct_lab_bot.core.runner_protocol import (
    MAX_MESSAGE,
    Refused,
    RunRequest,
    decode,
    encode,
    line_batches,
    parse_run_request,
    path_arguments,
    secrets_in_environment,
)
from instruct_lab_bot.core.sandbox import FIXED_ENV, ResourceLimits, limits_argv

__all__ = ["RunnerConfig", "RunnerRefusesToStart", "serve_runner"]

log = structlog.get_logger(__name__)


class RunnerRefusesToStart(Exception):
    """The runner's environment or configuration is unsafe; the message names the fix."""


@dataclass(frozen=True)
class RunnerConfig:
    """What the runner runs and where: its own settings, never the worker's word."""

    ilab_command: tuple[str, ...]
    jobs_root: Path
    allow_env: tuple[str, ...]
    limits: ResourceLimits
    path: str = os.defpath  # PATH for ilab: the runner's own

    def describe(self) -> dict[str, Any]:
        """The `version` answer: the worker checks it matches its own settings."""
        return {
            "type": "version",
            "version": __version__,
            "ilab_command": list(self.ilab_command),
            "jobs_root": str(self.jobs_root),
            "allow_env": list(self.allow_env),
        }


def check_environment(environ: Mapping[str, str]) -> None:
    """RunnerRefusesToStart if any of the bot's secrets is in this process's environment."""
    found = secrets_in_environment(environ)
    if found:
        raise RunnerRefusesToStart(
            f"the ilab runner must hold no secrets, but its environment has {', '.join(found)}: "
            "give its container no envFrom/secretKeyRef (docs/security.md, Kubernetes)"
        )


def prepare(config: RunnerConfig, request: RunRequest) -> tuple[list[str], Path, dict[str, str]]:
    """The argv (under the runner's own rlimits), cwd and environment to run; Refused unless
    the program is the runner's ilab command and every path lies in the jobs folder."""
    prefix = config.ilab_command
    if request.argv[: len(prefix)] != prefix:
        raise Refused(f"argv must start with the runner's ilab command {list(prefix)}")
    cwd = inside(config.jobs_root, request.cwd, Path("/"))
    if not cwd.is_dir():
        raise Refused("cwd is not a folder")
    for arg in path_arguments(request.argv[len(prefix) :]):
        inside(config.jobs_root, arg.split("=", 1)[-1] if arg.startswith("-") else arg, cwd)
    home = inside(config.jobs_root, request.env.get("HOME", ""), cwd)
    if request.env.get("TMPDIR", "/tmp") != "/tmp":  # noqa: S108 - the container's own /tmp
        inside(config.jobs_root, request.env["TMPDIR"], cwd)
    env = {**request.env, **FIXED_ENV, "HOME": str(home), "PATH": config.path}
    return [*_limits(config.limits), *request.argv], cwd, env


def inside(root: Path, text: str, cwd: Path) -> Path:
    """`text` (relative to `cwd`) resolved, symlinks followed; Refused outside `root` or with
    a `..` component."""
    if not text or ".." in Path(text).parts or text.startswith("~"):
        raise Refused(f"path {text!r} must name a place in the jobs folder without '..'")
    resolved = (cwd / text).resolve()
    if not resolved.is_relative_to(root):
        raise Refused(f"path {text!r} is outside the jobs folder")
    return resolved


def _limits(limits: ResourceLimits) -> list[str]:
    if limits == ResourceLimits(None, None, None):
        return []
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise RunnerRefusesToStart("`prlimit` (util-linux) is needed for ilab's resource limits")
    return limits_argv(prlimit, limits)


async def handle(
    config: RunnerConfig, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One connection: one request, its answers, then close."""
    try:
        message = decode(await reader.readline())
        if message.get("op") == "version":
            writer.write(encode(config.describe()))
        elif message.get("op") == "run":
            await _run(config, parse_run_request(message, config.allow_env), reader, writer)
        else:
            raise Refused("op must be version or run")
    except Refused as exc:
        log.warning("runner.refused", reason=str(exc))
        writer.write(encode({"type": "refused", "reason": str(exc)}))
    except (ValueError, ConnectionError) as exc:  # an over-long line or a vanished worker
        log.warning("runner.connection", error=str(exc))
    finally:
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class _Sender:
    """Output lines to the worker: a pipe read's lines in few `lines` messages (issue 17),
    then one drain: back-pressure, a slow worker slows ilab and a gone one stops it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def __call__(self, stream: str, line: str) -> None:
        self.writer.write(encode({"type": "line", "stream": stream, "line": line}))
        await self.writer.drain()

    async def lines(self, stream: str, lines: list[str]) -> None:
        for batch in line_batches(lines):
            self.writer.write(encode({"type": "lines", "stream": stream, "lines": batch}))
        await self.writer.drain()


async def _run(
    config: RunnerConfig,
    request: RunRequest,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    argv, cwd, env = prepare(config, request)
    cancel = asyncio.Event()
    watcher = asyncio.create_task(_watch_for_cancel(reader, cancel))

    log.info("runner.run", argv0=argv[0], cwd=str(cwd))
    try:
        result = await run_streaming(
            argv,
            cwd=cwd,
            env=env,
            on_line=_Sender(writer),
            cancel=cancel,
            limits=RunLimits(request.timeout, request.kill_grace, request.max_line),
        )
    except OSError as exc:
        if isinstance(exc, ConnectionError):
            raise
        message = exc.strerror or str(exc)
        writer.write(encode({"type": "error", "errno": exc.errno, "message": message}))
        return
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        # The job's own folder is HOME's parent (`adapters.sandbox.ilab_command`).
        await asyncio.to_thread(share_back, config.jobs_root, Path(env["HOME"]).parent)
    log.info("runner.done", outcome=result.outcome, exit_code=result.exit_code)
    writer.write(encode({"type": "result", **_result_fields(result)}))


async def _watch_for_cancel(reader: asyncio.StreamReader, cancel: asyncio.Event) -> None:
    """Set `cancel` on a `cancel` message or when the worker closes the connection."""
    while True:
        try:
            line = await reader.readline()
        except (ValueError, ConnectionError):
            line = b""
        if not line:
            break
        with contextlib.suppress(Refused):
            if decode(line).get("op") == "cancel":
                break
    cancel.set()


def _result_fields(result: RunResult) -> dict[str, Any]:
    return {
        "exit_code": result.exit_code,
        "outcome": result.outcome,
        "duration": result.duration,
        "signal": result.signal,
        "output_bytes": result.output_bytes,
    }


def share_back(root: Path, folder: Path) -> None:
    """Make what ilab wrote in its job's folder (`folder`, in `root`) group-writable, so the
    worker (another uid, same group) can upload and delete it even where ilab created a
    private (0700) folder. Runs after every process of the run is gone; links are skipped."""
    if folder == root or not folder.is_relative_to(root):
        return
    uid = os.getuid()
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            path = Path(parent, name)
            with contextlib.suppress(OSError):
                info = path.lstat()
                if info.st_uid == uid and not stat.S_ISLNK(info.st_mode):
                    extra = stat.S_IRWXG if stat.S_ISDIR(info.st_mode) else stat.S_IRGRP
                    path.chmod(info.st_mode | extra | stat.S_IWGRP)


def _bind_socket_path(config: RunnerConfig, socket_path: Path) -> None:
    if not config.jobs_root.is_dir():
        raise RunnerRefusesToStart(f"the jobs folder {config.jobs_root} does not exist")
    _limits(config.limits)
    _unlink(socket_path)


def _unlink(socket_path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()


@contextlib.asynccontextmanager
async def serve_runner(config: RunnerConfig, socket_path: Path) -> AsyncIterator[None]:
    """Listen on `socket_path` (only the worker's container shares its folder) until exit."""
    _bind_socket_path(config, socket_path)
    server = await asyncio.start_unix_server(
        lambda r, w: handle(config, r, w), path=socket_path, limit=MAX_MESSAGE
    )
    os.chmod(socket_path, 0o660)  # noqa: PTH101 - the worker's container shares our group
    log.info("runner.listening", socket=str(socket_path), jobs_root=str(config.jobs_root))
    try:
        async with server:
            yield
    finally:
        _unlink(socket_path)
