"""The subprocess runner against real child processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from instruct_lab_bot.adapters.runner import (
    LineSplitter,
    RunLimits,
    RunResult,
    run_streaming,
    scrub_env,
)

PY = sys.executable


class Lines:
    """Collects (stream, line) pairs; usable as a sync ``on_line``."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.items.append((stream, line))

    def of(self, stream: str) -> list[str]:
        return [line for name, line in self.items if name == stream]


def live_members(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (an orphan zombie is dead, just unreaped)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


async def assert_group_gone(pgid: int) -> None:
    # SIGKILL was sent when run_streaming returned; let the kernel finish the exits.
    for _ in range(200):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if not live_members(pgid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process group {pgid} still has live members {live_members(pgid)}")


async def run_py(
    code: str, tmp_path: Path, *, cancel: asyncio.Event | None = None, **limits: float
) -> tuple[RunResult, Lines]:
    """Run Python `code`; `limits` are `RunLimits` fields."""
    lines = Lines()
    result = await run_streaming(
        [PY, "-c", code],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        on_line=lines,
        limits=RunLimits(**limits),  # type: ignore[arg-type]
        cancel=cancel,
    )
    return result, lines


# A child that starts a grandchild ``sleep 1000`` in its group, reports both pids, then waits.
SPAWNS_GRANDCHILD = """
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "1000"])
print(os.getpid(), child.pid, flush=True)
time.sleep(1000)
"""


def test_line_splitter_terminators() -> None:
    s = LineSplitter(100)
    assert s.feed(b"a\nb\r\nc\rd") == ["a", "b", "c"]
    assert s.feed(b"e\r") == ["de"]
    assert s.feed(b"\nf\n\n") == ["f", ""]  # the '\n' completes the '\r\n' split across chunks
    assert s.feed(b"\rbar 1\rbar 2\r") == ["bar 1", "bar 2"]
    assert s.feed(b"tail") == []
    assert s.close() == ["tail"]
    assert s.close() == []


def test_line_splitter_cuts_long_lines_at_character_boundaries() -> None:
    s = LineSplitter(8)
    pieces = s.feed("ééééé".encode() + b"xyz\n")  # 10 bytes of 2-byte chars, then 3 bytes
    assert pieces == ["éééé", "éxyz"]
    assert all(len(piece.encode()) <= 8 for piece in pieces)
    assert s.feed(b"12345678\n") == ["12345678"]  # exactly max_line: one line, no empty piece
    assert s.feed(b"\xff\xfe\n") == ["\ufffd\ufffd"]


async def test_lines_from_both_streams_in_order(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "for i in range(200):\n"
        "    print(f'out {i}', flush=True)\n"
        "    print(f'err {i}', file=sys.stderr, flush=True)\n"
        "sys.stdout.write('no newline at end')\n"
        "sys.exit(3)\n"
    )
    result, lines = await run_py(code, tmp_path, timeout=60)
    assert result.outcome == "exited"
    assert result.exit_code == 3
    assert result.signal is None
    assert lines.of("stdout") == [f"out {i}" for i in range(200)] + ["no newline at end"]
    assert lines.of("stderr") == [f"err {i}" for i in range(200)]
    assert result.output_bytes == sum(len(line) + 1 for _, line in lines.items) - 1


async def test_carriage_returns_split_lines(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "for i in range(3):\n"
        "    sys.stderr.write(f'\\r{i * 50}%|###| {i}/2')\n"
        "sys.stderr.write('\\r\\ndone\\r\\n')\n"
    )
    result, lines = await run_py(code, tmp_path, timeout=60)
    assert result.exit_code == 0
    assert lines.of("stderr") == ["0%|###| 0/2", "50%|###| 1/2", "100%|###| 2/2", "done"]


async def test_async_on_line_is_awaited(tmp_path: Path) -> None:
    seen: list[str] = []

    async def slow(stream: str, line: str) -> None:
        await asyncio.sleep(0)
        seen.append(line)

    code = "for i in range(50): print(i)"
    result = await run_streaming(
        [PY, "-c", code],
        cwd=tmp_path,
        env={},
        on_line=slow,
        limits=RunLimits(timeout=60, kill_grace=1),
    )
    assert result.exit_code == 0
    assert seen == [str(i) for i in range(50)]


async def test_flood_without_newlines_stays_bounded(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "block = b'x' * (1 << 20)\n"
        "for _ in range(50):\n"
        "    sys.stdout.buffer.write(block)\n"
    )
    count = 0
    longest = 0

    def on_line(stream: str, line: str) -> None:
        nonlocal count, longest
        count += 1
        longest = max(longest, len(line))

    result = await run_streaming(
        [PY, "-c", code],
        cwd=tmp_path,
        env={},
        on_line=on_line,
        limits=RunLimits(timeout=120, max_line=16 * 1024),
    )
    assert result.exit_code == 0
    assert result.output_bytes == 50 << 20
    assert longest == 16 * 1024
    assert count == (50 << 20) // (16 * 1024)


async def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    result, lines = await run_py(SPAWNS_GRANDCHILD, tmp_path, timeout=2, kill_grace=5)
    assert result.outcome == "timed_out"
    assert result.signal == signal.SIGTERM
    assert result.exit_code is None
    child_pid, grandchild_pid = map(int, lines.of("stdout")[0].split())
    await assert_group_gone(child_pid)
    assert grandchild_pid not in live_members(child_pid)


async def test_sigterm_ignoring_child_gets_sigkill(tmp_path: Path) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(1000)\n"
    )
    ready = asyncio.Event()
    cancel = asyncio.Event()

    def on_line(stream: str, line: str) -> None:
        if line == "ready":
            ready.set()

    async def cancel_when_ready() -> None:
        await ready.wait()
        cancel.set()

    trigger = asyncio.create_task(cancel_when_ready())
    result = await run_streaming(
        [PY, "-c", code],
        cwd=tmp_path,
        env={},
        on_line=on_line,
        cancel=cancel,
        limits=RunLimits(timeout=60, kill_grace=0.5),
    )
    await trigger
    assert result.outcome == "cancelled"
    assert result.signal == signal.SIGKILL


async def test_cancel_event(tmp_path: Path) -> None:
    cancel = asyncio.Event()
    pids: list[int] = []

    def on_line(stream: str, line: str) -> None:
        pids.extend(map(int, line.split()))
        cancel.set()

    result = await run_streaming(
        [PY, "-c", SPAWNS_GRANDCHILD],
        cwd=tmp_path,
        env={},
        on_line=on_line,
        cancel=cancel,
        limits=RunLimits(timeout=60, kill_grace=5),
    )
    assert result.outcome == "cancelled"
    await assert_group_gone(pids[0])


async def test_already_set_cancel_event(tmp_path: Path) -> None:
    cancel = asyncio.Event()
    cancel.set()
    result, _ = await run_py("import time; time.sleep(1000)", tmp_path, timeout=60, cancel=cancel)
    assert result.outcome == "cancelled"


async def test_caller_cancellation_kills_the_group(tmp_path: Path) -> None:
    started: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()

    def on_line(stream: str, line: str) -> None:
        if not started.done():
            started.set_result(list(map(int, line.split())))

    task = asyncio.create_task(
        run_streaming(
            [PY, "-c", SPAWNS_GRANDCHILD],
            cwd=tmp_path,
            env={},
            on_line=on_line,
            limits=RunLimits(timeout=60),
        )
    )
    child_pid, _ = await started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_group_gone(child_pid)


async def test_on_line_error_kills_the_group_and_propagates(tmp_path: Path) -> None:
    pids: list[int] = []

    def on_line(stream: str, line: str) -> None:
        pids.extend(map(int, line.split()))
        raise RuntimeError("consumer broke")

    with pytest.raises(RuntimeError, match="consumer broke"):
        await run_streaming(
            [PY, "-c", SPAWNS_GRANDCHILD],
            cwd=tmp_path,
            env={},
            on_line=on_line,
            limits=RunLimits(timeout=60),
        )
    await assert_group_gone(pids[0])


async def test_grandchild_holding_pipes_does_not_hang(tmp_path: Path) -> None:
    # The child exits at once; its grandchild keeps stdout/stderr open for 1000 s.
    code = "import os, subprocess; subprocess.Popen(['sleep', '1000']); print(os.getpid())"
    result, lines = await run_py(code, tmp_path, timeout=60, pipe_grace=0.5)
    assert result.outcome == "exited"
    assert result.exit_code == 0
    await assert_group_gone(int(lines.of("stdout")[0]))


async def test_hostile_argv_reaches_child_untouched(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = [f"$(touch {marker})", "--help", "'\"quoted\"'", "a\nb", "; rm -rf /", "`id`", ""]
    code = "import sys; print(repr(sys.argv[1:]))"
    lines = Lines()
    result = await run_streaming(
        [PY, "-c", code, *hostile],
        cwd=tmp_path,
        env={},
        on_line=lines,
        limits=RunLimits(timeout=60),
    )
    assert result.exit_code == 0
    assert lines.of("stdout") == [repr(hostile)]
    assert not marker.exists()


async def test_child_sees_only_the_given_env_and_no_stdin(tmp_path: Path) -> None:
    code = "import os, sys; print(sorted(os.environ)); print(repr(sys.stdin.read()))"
    result, lines = await run_py(code, tmp_path, timeout=60)
    assert result.exit_code == 0
    assert lines.of("stdout")[1] == "''"
    assert "ILAB_BOT" not in lines.of("stdout")[0]


async def test_missing_executable_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_streaming(
            [str(tmp_path / "nope")],
            cwd=tmp_path,
            env={},
            on_line=Lines(),
            limits=RunLimits(timeout=5),
        )


def test_scrub_env() -> None:
    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/bot",
        "ILAB_BOT_GITHUB_APP_KEY": "-----BEGIN KEY-----",
        "ILAB_BOT_WEBHOOK_SECRET": "hunter2",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "GITHUB_TOKEN": "ghs_x",
        "GH_TOKEN": "ghs_y",
        "GIT_ASKPASS": "/bin/askpass",
        "LEAKY": "prefix-hunter2-suffix",
        "EMPTY": "",
    }
    env = scrub_env(base, secrets=["hunter2", ""], extra={"HOME": "/tmp/job", "HF_HOME": "/c"})
    assert env == {"PATH": "/usr/bin", "HOME": "/tmp/job", "EMPTY": "", "HF_HOME": "/c"}
    assert scrub_env({"X": "1"}, secrets=[]) == {"X": "1"}
