"""GitHub calls for one `generate` job of a given length with steady progress.

Target (issue 7): at most 5 + 1 per progress interval. Runs the real server, dispatcher and
worker against the GitHub sandbox, with the `ilab` stand-in printing progress for `--duration`
seconds, and counts the calls the sandbox recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from testkit.demo import play, sandbox
from testkit.harness import run_bot

from .common import Row, verdict


async def measure(duration: float, interval: float) -> tuple[int, Counter[str]]:
    os.environ["ILAB_STANDIN_DURATION"] = str(duration)
    standin = str(Path(sys.executable).with_name("ilab-standin"))
    with (
        tempfile.TemporaryDirectory(prefix="ilab-bench-calls-") as scratch,  # runs never collide
        open(os.devnull, "w") as quiet,  # noqa: PTH123 - the sandbox wants a text stream
    ):
        var = Path(scratch) / "var"
        async with (
            sandbox(
                var, ilab_command=(standin,), progress_interval=interval, log_file=quiet
            ) as box,
            run_bot(box.settings) as bot,
        ):
            await play(box.gh, bot.webhook_url, box.settings, box.paths)
            routes = Counter(f"{c.method} {c.route}" for c in box.gh.calls)
    return sum(routes.values()), routes


WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")
TOKEN_ROUTE = "POST /app/installations/{installation_id}/access_tokens"


def rows(duration: float, interval: float, total: int, routes: Counter[str]) -> list[Row]:
    """The figure for `python -m bench`: calls for one job (the 50-job writes are measured,
    not projected, by `bench.concurrent_jobs`).

    `make bench` runs a 10-minute job at 1/20 scale (30 s, progress every 1.5 s): the same
    number of progress intervals, so the same budget (5 + 20)."""
    budget = 5 + math.ceil(duration / interval)
    intervals = duration / interval
    if not any("check-runs" in route for route in routes):
        why = "no check run: the job never ran (" + ", ".join(sorted(routes)) + ")"
        return [Row.unavailable("GitHub calls for one job", why, f"≤ {budget}")]
    writes = sum(n for r, n in routes.items() if r.split()[0] in WRITE_METHODS and r != TOKEN_ROUTE)
    scale = f"{duration:.0f} s job, progress every {interval:g} s ({intervals:.0f} intervals)"
    by_route = ", ".join(f"{n} {r}" for r, n in sorted(routes.items()))
    return [
        Row(
            "GitHub calls for one job (10-min job at 1/20 scale)"
            if intervals == 20
            else f"GitHub calls for one job ({scale})",
            str(total),
            "—",
            "—",
            f"≤ {budget} (5 + 1 per interval)",
            verdict(total <= budget),
            f"{scale}; {writes} writes; {by_route}",
        )
    ]


async def _figure(quick: bool) -> list[Row]:
    duration, interval = (3.0, 0.75) if quick else (30.0, 1.5)
    async with asyncio.timeout(duration * 3 + 90):
        total, routes = await measure(duration, interval)
    return rows(duration, interval, total, routes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=180.0, help="job length, seconds")
    parser.add_argument("--interval", type=float, default=30.0, help="progress interval")
    parser.add_argument("--quick", action="store_true", help="`python -m bench` form: see rows()")
    parser.add_argument("--bench", action="store_true", help="the 1/20-scale 10-minute job")
    parser.add_argument("--json", type=Path, default=None, help="write the table rows here")
    args = parser.parse_args()
    if args.quick or args.bench:
        found = asyncio.run(_figure(args.quick))
        if args.json is not None:
            args.json.write_text(json.dumps([asdict(r) for r in found], indent=1))
        for row in found:
            print(f"{row.figure}: {row.ours} (target {row.target}) {row.note}")
        return
    total, routes = asyncio.run(measure(args.duration, args.interval))
    budget = 5 + math.ceil(args.duration / args.interval)
    for route, count in sorted(routes.items()):
        print(f"{count:4d}  {route}")
    print(
        f"github calls for a {args.duration:.0f}s job, progress every {args.interval:.0f}s: "
        f"{total} (budget 5 + 1/interval = {budget})"
    )


if __name__ == "__main__":
    main()
