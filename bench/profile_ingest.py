"""Where ingest's time goes: `py-spy` samples the real `instruct-lab-bot server` while `wrk`
sends it signed command comments at its maximum rate (as `bench.ingest` does), and writes a
flame graph (SVG) plus the functions that hold the most samples (self and total).

Usage: python -m bench.profile_ingest [--seconds 8] [--svg docs/images/ingest-flame.svg]
[--kind command|plain]
(needs `wrk` and `py-spy`, and ptrace rights over the server: root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import ingest
from .common import ROOT, bot_argv, bot_env, free_port, redis_server


def summarize(collapsed: Path, top: int = 15) -> str:
    """Self and total share of samples per function, from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples"]
    hottest = own.most_common(1)[0][0] if own else ""
    callers: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [_short(f) for f in stack.split(";")]
        if len(frames) > 2 and frames[-1] == hottest:
            callers[" < ".join(reversed(frames[-4:-1]))] += int(count_text)
    lines += [f"under {hottest}: {n / samples:6.1%} {c}" for c, n in callers.most_common(5)]
    lines += [f"self  {n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += [f"total {n / samples:6.1%}  {f}" for f, n in total.most_common(top * 4)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """`func (path/to/module.py:12)` → `func (module.py)`: one row per function."""
    name, _, where = frame.partition(" (")
    module = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{name} ({module})" if module else name


def profile(seconds: float, svg: Path, work: Path, kind: str = "command") -> str:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    secret = os.urandom(32).hex()
    body = ingest.bodies(work, secret)[kind]
    with redis_server() as redis_url:
        port = free_port()
        server = ingest.Server(
            "ours",
            bot_argv("server", "--no-dispatcher"),
            bot_env(redis_url, work, port, secret),
            f"http://127.0.0.1:{port}/healthz",
        )
        with ingest.serving(server, work) as url:
            pid = ingest.listener_pid(port)
            collapsed = work / "ingest.collapsed"
            recorders = [
                subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(round(seconds)),
                        "--rate",
                        "250",
                        "--nonblocking",
                        "--format",
                        fmt,
                        "-o",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for fmt, out in (("flamegraph", svg), ("raw", collapsed))
            ]
            ingest.max_throughput(url, body, seconds, work)
            for recorder in recorders:
                recorder.wait(timeout=seconds + 60)
    return summarize(collapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--svg", type=Path, default=ROOT / "docs" / "images" / "ingest-flame.svg")
    parser.add_argument("--kind", choices=("command", "plain"), default="command")
    args = parser.parse_args()
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ilab-bench-profile-") as tmp:
        print(profile(args.seconds, args.svg.resolve(), Path(tmp), args.kind))
    print(f"wrote {args.svg}")


if __name__ == "__main__":
    main()
