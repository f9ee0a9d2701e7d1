"""Finding 9: a helper that leaves the process group but keeps our pipes open.

Before the fix the runner raised `InvalidStateError` (the output reader never finished), the
worker re-ran the job three times and the helpers were left running. Now the runner closes
the pipes after a drain grace, kills every process of the run (process group, descendants,
processes carrying the run's marker, and, in a subreaper, adopted orphans) and never crashes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from instruct_lab_bot.adapters.runner import RunLimits, RunResult, run_streaming

PY = sys.executable

# The child double-forks; the grandchild calls setsid() (a new session and process group),
# ignores SIGTERM, records its pid and keeps the inherited stdout/stderr open.
ESCAPE = textwrap.dedent(
    """
    import os, signal, sys, time
    pidfile = sys.argv[1]
    scrub = sys.argv[2] == "scrub"
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(pidfile + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(pidfile + ".tmp", pidfile)
            if scrub:  # drop every environment variable, the run marker included
                os.execve("/bin/sleep", ["sleep", "1000"], {})
            time.sleep(1000)
        os._exit(0)
    os.wait()
    while not os.path.exists(pidfile):
        time.sleep(0.01)
    print("main done", flush=True)
    if sys.argv[3] == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(1000)
    """
)


def alive(pid: int) -> bool:
    """Running (a zombie is dead, just not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def wait_dead(pid: int) -> None:
    """SIGKILL was sent before run_streaming returned; wait for the kernel to finish it."""
    for _ in range(400):
        if not alive(pid):
            return
        await asyncio.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"helper {pid} outlived the run")


async def run_escape(tmp_path: Path, *, scrub: bool, hang: bool, **limits: float) -> RunResult:
    lines: list[str] = []
    result = await run_streaming(
        [
            PY,
            "-c",
            ESCAPE,
            str(tmp_path / "pid"),
            "scrub" if scrub else "keep",
            "hang" if hang else "exit",
        ],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        on_line=lambda _stream, line: lines.append(line),
        limits=RunLimits(**limits),  # type: ignore[arg-type]
    )
    assert lines == ["main done"]
    return result


async def test_setsid_grandchild_holding_stdout_is_killed_and_the_run_ends(tmp_path: Path) -> None:
    result = await run_escape(tmp_path, scrub=False, hang=False, timeout=60, pipe_grace=0.3)
    assert (result.outcome, result.exit_code) == ("exited", 0)
    await wait_dead(int((tmp_path / "pid").read_text()))


async def test_sigterm_ignoring_child_and_escaped_helper_are_killed_on_timeout(
    tmp_path: Path,
) -> None:
    result = await run_escape(
        tmp_path, scrub=False, hang=True, timeout=1.0, kill_grace=0.3, pipe_grace=0.3
    )
    assert result.outcome == "timed_out"
    assert result.signal == signal.SIGKILL
    await wait_dead(int((tmp_path / "pid").read_text()))


async def test_unfindable_helper_cannot_hang_or_crash_the_run(tmp_path: Path) -> None:
    """Not a subreaper, marker scrubbed: the helper cannot be attributed, the pipes are closed."""
    try:
        result = await run_escape(tmp_path, scrub=True, hang=False, timeout=60, pipe_grace=0.3)
        assert (result.outcome, result.exit_code) == ("exited", 0)
    finally:
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)


SUBREAPER = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pathlib import Path
    from instruct_lab_bot.adapters.processes import become_subreaper, is_subreaper
    from instruct_lab_bot.adapters.runner import RunLimits, run_streaming

    async def main():
        assert become_subreaper() and is_subreaper()
        tmp = Path(sys.argv[1])
        result = await run_streaming(
            [sys.executable, "-c", sys.argv[2], str(tmp / "pid"), "scrub", "exit"],
            cwd=tmp, env={"PATH": os.environ["PATH"]}, on_line=lambda s, l: None,
            limits=RunLimits(timeout=60, pipe_grace=0.3),
        )
        pid = int((tmp / "pid").read_text())
        print(json.dumps({"outcome": result.outcome, "pid": pid,
                          "exists": Path(f"/proc/{pid}").exists()}))

    asyncio.run(main())
    """
)


def test_subreaper_worker_kills_and_reaps_a_helper_that_scrubbed_its_marker(
    tmp_path: Path,
) -> None:
    """In the worker (a subreaper) the orphan re-parents to us: found, killed and reaped."""
    done = subprocess.run(
        [PY, "-c", SUBREAPER, str(tmp_path), ESCAPE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    if report["exists"]:
        os.kill(report["pid"], signal.SIGKILL)
    assert report == {"outcome": "exited", "pid": report["pid"], "exists": False}
