"""GitHub calls for one `generate` job of a given length with steady progress.

Target (issue 7): at most 5 + 1 per progress interval. Runs the real server, dispatcher and
worker against the GitHub sandbox, with the `ilab` stand-in printing progress for `--duration`
seconds, and counts the calls the sandbox recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections import Counter
from pathlib import Path

from instruct_lab_bot.testing.demo import play, sandbox
from instruct_lab_bot.testing.harness import run_bot


async def measure(duration: float, interval: float) -> tuple[int, Counter[str]]:
    os.environ["ILAB_STANDIN_DURATION"] = str(duration)
    standin = str(Path(sys.executable).with_name("ilab-standin"))
    var = Path.cwd() / "var" / "bench-github-calls"
    with open(os.devnull, "w") as quiet:  # noqa: PTH123 - the sandbox wants a text stream
        async with (
            sandbox(
                var, ilab_command=(standin,), progress_interval=interval, log_file=quiet
            ) as box,
            run_bot(box.settings) as bot,
        ):
            await play(box.gh, bot.webhook_url, box.settings, box.paths)
            routes = Counter(f"{c.method} {c.route}" for c in box.gh.calls)
    return sum(routes.values()), routes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=180.0, help="job length, seconds")
    parser.add_argument("--interval", type=float, default=30.0, help="progress interval")
    args = parser.parse_args()
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
