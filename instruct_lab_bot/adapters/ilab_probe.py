"""Is the worker's `ilab` there and does it run? (`ilab --version`, outside the sandbox: it
is the admin's own program, and this runs before any pull request's content is on disk)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

PROBE_TIMEOUT = 60.0  # ilab imports torch: its first start on a cold disk is slow


def find_ilab(command: tuple[str, ...]) -> str:
    """The path of the program `command` starts with; `RuntimeError` when there is none."""
    program = shutil.which(command[0])
    if program is None:
        raise RuntimeError(f"`{command[0]}` is not on PATH")
    return program


async def ilab_version(command: tuple[str, ...]) -> str:
    """The first line `ilab --version` prints; `RuntimeError` saying why not."""
    program = find_ilab(command)
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [program, *command[1:], "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"`{program} --version` did not run ({type(exc).__name__})") from None
    lines = (done.stdout or done.stderr).decode(errors="replace").strip().splitlines()
    if done.returncode != 0:
        why = lines[-1] if lines else f"exit {done.returncode}"
        raise RuntimeError(f"`{program} --version` failed: {why[:200]}")
    return lines[0][:200] if lines else program
