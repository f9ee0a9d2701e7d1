"""Find and kill every process a run left behind, even one that left its process group.

A child may double-fork and `setsid()` so that killing its process group misses the helper,
which then keeps our pipes open or keeps running after the job ended. Three nets catch it:

- each run's child gets a marker variable (`RUN_MARKER=<token>`) that its descendants inherit;
  at the end of the run every live process carrying this run's token is killed;
- descendants still attached to the child (by parent pid) are killed;
- the worker makes itself a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`), so orphans
  re-parent to it instead of to init: an orphan that scrubbed its environment is still found
  (its parent is the worker but the worker never spawned it) and is killed when no other run is
  active, and the zombies of dead orphans are reaped so none pile up.

Linux only (`/proc`); elsewhere these are no-ops and the process group kill is what remains.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RUN_MARKER", "TRACKER", "Swept", "Tracker", "become_subreaper", "is_subreaper"]

RUN_MARKER = "BOT_RUN_TOKEN"
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
_PROC = Path("/proc")


def _prctl(option: int, arg: int | ctypes.c_int | ctypes._Pointer[ctypes.c_int]) -> int:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True)
    return int(libc.prctl(option, arg, 0, 0, 0))


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process; False where unsupported.

    Call it only in a process whose every child is spawned by the runner (the worker): orphans
    are told apart from our own children by the runner's registry.
    """
    try:
        done = _prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0
    except (OSError, AttributeError):
        return False
    TRACKER.subreaper = done
    return done


def is_subreaper() -> bool:
    value = ctypes.c_int(0)
    try:
        if _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.pointer(value)) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return bool(value.value)


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    zombie: bool


def _processes() -> Iterator[_Proc]:
    """Every process visible in /proc (none where there is no /proc)."""
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) >= 2 and fields[1].lstrip("-").isdigit():
            yield _Proc(int(entry.name), int(fields[1]), fields[0] in ("Z", "X"))


def _marker(pid: int) -> str | None:
    """This process's run token, "" when it has none, None when its environment is unreadable."""
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = RUN_MARKER.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return ""


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Swept:
    """What a sweep killed, and which of those are our own (adopted) children to reap."""

    killed: list[int]
    adopted: list[int]


class Tracker:
    """The runs of this process: which children it spawned and which runs are still active.

    One per process (`TRACKER`); the runner registers each child and calls `sweep` when a run
    ends. Everything here is synchronous and called from the event loop's thread.
    """

    def __init__(self) -> None:
        self.children: set[int] = set()  # pids we spawned that the event loop still waits for
        self.active: set[str] = set()  # tokens of runs not yet swept
        self.spawning = 0  # spawns in flight: their pids are not registered yet
        self.subreaper = False  # set by `become_subreaper`: orphans re-parent to us

    def sweep(self, token: str, root: int) -> Swept:
        """Kill every live process of run `token`: descendants of `root`, processes marked with
        `token`, and (as a subreaper, when no other run is active) unmarked orphans."""
        procs = list(_processes())
        me = os.getpid()
        lone = not (self.active - {token}) and not self.spawning
        doomed = _descendants(procs, root)
        for proc in procs:
            if proc.zombie or proc.pid in (me, root) or proc.pid in doomed:
                continue
            marker = _marker(proc.pid)
            if marker == token or (lone and not marker and self._orphan(proc)):
                doomed.add(proc.pid)
        for pid in sorted(doomed):
            _kill(pid)
        self.reap(procs)
        mine = sorted(p.pid for p in procs if p.pid in doomed and self._orphan(p))
        return Swept(sorted(doomed), mine)

    def _orphan(self, proc: _Proc) -> bool:
        """Re-parented to us, not spawned by us (only a subreaper adopts orphans)."""
        return self.subreaper and proc.ppid == os.getpid() and proc.pid not in self.children

    def reap(self, procs: list[_Proc] | None = None) -> None:
        """Collect zombies of orphans re-parented to us (never a pid the event loop waits for)."""
        if self.spawning or not self.subreaper:
            return
        me = os.getpid()
        for proc in procs if procs is not None else _processes():
            if proc.zombie and proc.ppid == me and proc.pid not in self.children:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(proc.pid, os.WNOHANG)


def _descendants(procs: list[_Proc], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in procs:
        if not proc.zombie:
            children.setdefault(proc.ppid, []).append(proc.pid)
    found: set[int] = set()
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, []))
    return found


TRACKER = Tracker()
