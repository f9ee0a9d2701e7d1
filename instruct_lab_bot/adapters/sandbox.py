"""Run `ilab` in a bubblewrap sandbox: find the programs, check at start-up that the sandbox
can be created, and build each run's argv and environment (`core.sandbox` is the pure part).

What is masked: the App's key file, `.env`, the work dir (other jobs' workspaces), the
artifacts folder, a Redis unix socket and the admin's `ILAB_BOT_SANDBOX_HIDE` paths. The
runner still gets a plain argv (no shell); bubblewrap and prlimit are simply its first words.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.sandbox import (
    ResourceLimits,
    SandboxPlan,
    child_env,
    limits_argv,
    sandbox_argv,
)
from instruct_lab_bot.core.settings import Settings

__all__ = [
    "FIX",
    "IlabCommand",
    "SandboxUnavailable",
    "check_sandbox",
    "ilab_command",
    "set_non_dumpable",
]

FIX = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora/UBI: "
    "`dnf install bubblewrap`) and allow unprivileged user namespaces (sysctl "
    "user.max_user_namespaces > 0; in a container, a seccomp/AppArmor profile that permits "
    "them); or set ILAB_BOT_SANDBOX=off to run ilab unsandboxed, which lets a pull request "
    "read this worker's secrets (on Kubernetes only when ilab runs in its own container "
    "with no secrets mounted)"
)
_DEVICES = ("nvidia*", "dri", "kfd")  # GPUs: NVIDIA, DRM render nodes, AMD ROCm
_PR_SET_DUMPABLE = 4
_PROBE_TIMEOUT = 30.0


class SandboxUnavailable(OSError):
    """The sandbox cannot be created here; the message names the fix."""


@dataclass(frozen=True)
class IlabCommand:
    """What to hand the runner: the full argv and the child's whole environment."""

    argv: list[str]
    env: dict[str, str]


def limits_of(settings: Settings) -> ResourceLimits:
    return ResourceLimits(
        memory=settings.ilab_memory_limit,
        processes=settings.ilab_max_processes,
        file_size=settings.ilab_max_file_size,
    )


def ilab_command(
    settings: Settings,
    argv: Sequence[str],
    *,
    workspace: Path,
    cwd: Path,
    environ: Mapping[str, str] | None = None,
) -> IlabCommand:
    """`argv` wrapped in prlimit and (unless ILAB_BOT_SANDBOX=off) bubblewrap for one job.

    Raises SandboxUnavailable when a program it needs is missing.
    """
    environ = os.environ if environ is None else environ
    workspace = workspace.resolve()
    home = workspace / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = child_env(environ, settings.ilab_env, home=home, path=environ.get("PATH", os.defpath))
    if settings.sandbox == "off":
        return IlabCommand([*_limits(settings), *argv], env)
    plan = _plan(settings, workspace, cwd.resolve(), argv[0])
    return IlabCommand(sandbox_argv(plan, [*_limits(settings), *argv]), env)


def _limits(settings: Settings) -> list[str]:
    limits = limits_of(settings)
    if limits == ResourceLimits(None, None, None):
        return []
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise SandboxUnavailable(
            "`prlimit` (util-linux) is not on PATH but ilab's resource limits need it: "
            "install util-linux, or set ILAB_BOT_ILAB_MEMORY_LIMIT, ILAB_BOT_ILAB_MAX_PROCESSES "
            "and ILAB_BOT_ILAB_MAX_FILE_SIZE to off"
        )
    return limits_argv(prlimit, limits)


def _plan(settings: Settings, workspace: Path, cwd: Path, program: str) -> SandboxPlan:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"ILAB_BOT_SANDBOX=bwrap but `bwrap` is not on PATH: {FIX}")
    dirs: list[Path] = []
    files: list[Path] = []
    for path in secret_paths(settings):
        if path.is_dir():
            dirs.append(path)
        elif path.exists():
            files.append(path)
    devices = sorted({p for pattern in _DEVICES for p in Path("/dev").glob(pattern)})
    return SandboxPlan(
        bwrap=bwrap,
        workspace=workspace,
        cwd=cwd,
        hide_dirs=tuple(dirs),
        hide_files=tuple(files),
        readable=tuple(
            sorted({*needed_from_tmp(program), *(p.resolve() for p in settings.sandbox_readable)})
        ),
        writable=tuple(p.resolve() for p in settings.sandbox_writable if p.exists()),
        devices=tuple(devices),
        network=settings.sandbox_network == "host",
    )


def needed_from_tmp(program: str) -> tuple[Path, ...]:
    """What the private `/tmp` would hide that `ilab` needs: the environment it is installed
    in (the folder holding `pyvenv.cfg` above its executable) and the bot's own working folder
    (an editable checkout, as in a test run or `make demo`), when they lie under /tmp. The
    rest of the file system is visible read-only anyway; the bot's secrets stay masked."""
    tmp = Path("/tmp").resolve()  # noqa: S108 - the folder the sandbox replaces
    found = shutil.which(program)
    candidates = [Path.cwd().resolve()]
    if found is not None:
        executable = Path(found).absolute()  # a venv's python is a symlink out of the venv
        venv = next((p for p in executable.parents if (p / "pyvenv.cfg").exists()), None)
        candidates.append((venv or executable.parent).resolve())
    return tuple(sorted({p for p in candidates if p != tmp and p.is_relative_to(tmp)}))


def secret_paths(settings: Settings) -> list[Path]:
    """Absolute paths of the bot's own files that `ilab` must not read (existing or not)."""
    paths = [Path(".env"), settings.work_dir, *settings.sandbox_hide]
    if settings.github_private_key_file:
        paths.append(Path(settings.github_private_key_file))
    if settings.redis_key_file:
        paths.append(Path(settings.redis_key_file))
    artifacts = parse_artifacts_url(settings.artifacts_url)
    if artifacts.root is not None:
        paths.append(artifacts.root)
    redis = urlsplit(settings.redis_url)
    if redis.scheme == "unix" and redis.path:
        paths.append(Path(redis.path))
    return [path.resolve() for path in paths]


async def check_sandbox(settings: Settings) -> str | None:
    """Refuse (SandboxUnavailable) unless the sandbox works here: runs `true` inside it.

    Returns the warning to log loudly when the admin turned the sandbox off.
    """
    if settings.sandbox == "off":
        _limits(settings)
        return (
            "ILAB_BOT_SANDBOX=off: ilab runs as this worker's own user, with its files and "
            "processes in reach; a pull request can read the App key and the worker's "
            "secrets. Only acceptable when ilab runs in its own container with no secrets."
        )
    with tempfile.TemporaryDirectory(prefix="ilab-bot-sandbox-check-") as scratch:
        root = Path(scratch)
        command = ilab_command(settings, ["true"], workspace=root, cwd=root, environ=os.environ)
        done = await asyncio.to_thread(
            subprocess.run,
            command.argv,
            env=command.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
        )
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise SandboxUnavailable(
            f"cannot create ilab's sandbox ({why[-1] if why else f'exit {done.returncode}'}): {FIX}"
        )
    return None


def set_non_dumpable() -> bool:
    """PR_SET_DUMPABLE=0 for this process: no core dumps, and a same-uid process can neither
    ptrace it nor read its /proc/<pid>/environ or memory. False where not supported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
