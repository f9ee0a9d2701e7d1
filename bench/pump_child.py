"""One `run_streaming` of the line flood with the worker's line sink, in a process of its own so
its memory can be read from /proc/self/status.

The run stops at BYTES or after SECONDS (the child is then killed: `run_streaming`'s timeout),
so a slow reader costs bounded time; the rate is over what went through.
Prints one JSON object: bytes, seconds, cpu_seconds, lines, rss_before_kb, hwm_kb, rss_after_kb.
Usage: python -m bench.pump_child BYTES SECONDS WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from instruct_lab_bot.adapters.runner import RunLimits, run_streaming
from instruct_lab_bot.core.job_outcome import LOG_NAME
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.worker.ilab import LineSink, line_sink
from instruct_lab_bot.services.worker.log_file import CappedLog


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def reset_peak() -> bool:
    """Make VmHWM start from the current RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Counting:
    """The worker's sink, counting characters (the bars' █ count 1 instead of 3 bytes); it
    passes on whole chunks as the worker's sink takes them (`BatchSink`)."""

    def __init__(self, inner: LineSink) -> None:
        self.inner = inner
        self.consumed = 0

    def __call__(self, stream: str, line: str) -> None:
        self.consumed += len(line) + 1
        self.inner(stream, line)

    def lines(self, stream: str, lines: list[str]) -> None:
        self.consumed += sum(map(len, lines)) + len(lines)
        self.inner.lines(stream, lines)


async def pump(size: int, limit: float, work: Path) -> dict[str, float]:
    progress = Progress()
    log_path = work / LOG_NAME
    flood = [sys.executable, "-m", "bench.line_flood", str(size)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with CappedLog(log_path, Settings.log_limit) as log_file:
        worker_sink = line_sink(progress, log_file, Redactor(["bench-secret-value"]))
        worker_sink("stdout", "warm-up line")  # imports and regexes compiled before the baseline
        sink = Counting(worker_sink)

        rss_before = status_kb("VmRSS")
        peak_reset = reset_peak()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = await run_streaming(
            flood, cwd=work, env=env, on_line=sink, limits=RunLimits(timeout=limit, kill_grace=5)
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    hwm = status_kb("VmHWM")
    log_path.unlink()
    return {
        "bytes": sink.consumed,
        "received": result.output_bytes,
        "seconds": seconds,
        "cpu_seconds": cpu,  # this process's (the reader's), not the generator's
        "lines": progress.lines_seen,
        "complete": result.outcome == "exited" and result.exit_code == 0,
        "rss_before_kb": rss_before,
        "hwm_kb": hwm,
        "rss_after_kb": status_kb("VmRSS"),
        "peak_reset": peak_reset,
    }


def main() -> None:
    size, limit, work = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    print(json.dumps(asyncio.run(pump(size, limit, work))))


if __name__ == "__main__":
    main()
