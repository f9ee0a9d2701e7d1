"""Output pumping: `ilab` printing 1 GB of log lines, read by the worker's machinery.

ours: `run_streaming` (own process group, pipe back-pressure, line splitting on \\n and \\r)
with the worker's line sink (`Progress.feed` + writing `ilab.log`), in a child process that
reads its own VmRSS/VmHWM; baseline: the same generator piped into `cat` > /dev/null. The
generator (`bench.line_flood`) writes prebuilt 1 MiB blocks of ilab log lines and tqdm redraws.
Each run is capped in time; the rate is over what went through before the cap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

from .common import ROOT, Row, figure_main, ratio, verdict

GB = 1 << 30
MB = 1 << 20
TARGET_MBPS = 150.0
TARGET_RSS_MB = 20.0


def cat_rate(size: int) -> float:
    started = time.perf_counter()
    flood = subprocess.Popen(
        [sys.executable, "-m", "bench.line_flood", str(size)], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert flood.stdout is not None
    cat = subprocess.Popen(["cat"], stdin=flood.stdout, stdout=subprocess.DEVNULL)
    flood.stdout.close()
    cat.wait(timeout=300)
    flood.wait(timeout=300)
    return size / (time.perf_counter() - started)


def ours(size: int, limit: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ilab-bench-pump-") as work:
        done = subprocess.run(
            [sys.executable, "-m", "bench.pump_child", str(size), str(limit), work],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=limit + 120,
            check=True,
        )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def measure(quick: bool) -> list[Row]:
    size, limit = (8 * MB, 5.0) if quick else (GB, 40.0)
    baseline = cat_rate(size)
    mine = ours(size, limit)
    rate = mine["bytes"] / mine["seconds"]
    growth_mb = (mine["hwm_kb"] - mine["rss_before_kb"]) / 1024
    pumped = f"{mine['bytes'] / MB:,.0f} MB of {size / MB:,.0f} MB"
    if not mine["complete"]:
        pumped += f" (stopped at the {limit:.0f} s cap)"
    return [
        Row(
            "output pumping: ilab log lines through run_streaming + line sink (MB/s)",
            f"{rate / MB:,.1f}",
            f"cat {baseline / MB:,.0f}",
            ratio(rate, baseline),
            f"≥ {TARGET_MBPS:.0f} MB/s",
            verdict(rate / MB >= TARGET_MBPS),
            f"{pumped}, {mine['lines']:,.0f} lines in {mine['seconds']:.1f} s; the reader "
            f"{mine['bytes'] / MB / mine['cpu_seconds']:,.0f} MB per CPU-second",
        ),
        Row(
            "output pumping: worker RSS growth (MB)",
            f"{growth_mb:.1f}",
            "—",
            "—",
            f"< {TARGET_RSS_MB:.0f} MB",
            verdict(growth_mb < TARGET_RSS_MB),
            f"VmRSS {mine['rss_before_kb'] / 1024:.1f} MB before, peak (VmHWM, reset before the "
            f"run: {bool(mine['peak_reset'])}) {mine['hwm_kb'] / 1024:.1f} MB, "
            f"{mine['rss_after_kb'] / 1024:.1f} MB after",
        ),
    ]


if __name__ == "__main__":
    figure_main(measure, __doc__)
