"""50 `generate` jobs at once on one installation, against GitHub's secondary rate limit.

Issue 17, item 4: writes per minute per installation ≤ 80 for 50 concurrent jobs, with no
final result dropped. Runs the real server, dispatcher and one worker (concurrency = jobs)
against the GitHub emulator, which refuses an installation's writes beyond 80 in any window
(GitHub's secondary rate limit, `GitHubEmulator.limit_writes`); the bot's own write budget
(`adapters/redis/write_budget.py`) has the same limit and window. A reviewer comments
`generate` on each of `--jobs` PRs at once; the run ends when every PR has its result.

Time is scaled: `--scale 20` (the default) runs 10-minute jobs in 30 s, progress every 1.5 s
instead of 30 s, and the budget's and the emulator's minute in 3 s, so the writes per window
are the writes per minute of the real-time run. Measured: the most writes the emulator
accepted in any window (its sliding maximum), the writes it refused, and per PR whether its
`generate` check run completed with `success` and it has exactly one result comment.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from testkit.chaos.checks import result_comments
from testkit.chaos.world import (
    GENERATE_CHECK,
    OWNER,
    REPO,
    Delivery,
    build_remote,
    generate_commands,
    publish_pulls,
)
from testkit.demo import sandbox
from testkit.github_emulator import Call, GitHubEmulator
from testkit.harness import run_bot

from .common import Row, verdict

WRITES_PER_MINUTE = 80  # GitHub's guidance, the emulator's limit and the bot's budget
SKIPPED = "instruct_lab_bot_check_run_progress_skipped_total"


@dataclass(frozen=True)
class Run:
    jobs: int
    scale: float
    seconds: float  # first webhook sent → every PR had its result (scaled time)
    max_per_window: int  # the most accepted writes in any window (= per real-time minute)
    refused: int  # writes the emulator answered with its secondary rate limit
    completed: int  # PRs whose generate check run completed with success
    one_comment: int  # PRs with exactly one result comment
    writes: int  # accepted installation writes in all
    progress_writes: int  # of those, check-run progress updates (PATCH, not completing)
    all_queued: float = 0.0  # seconds until the last queued check run was created
    all_started: float = 0.0  # … until the last job's check run said it runs
    budget_skipped: int = 0  # progress updates the write budget skipped (worker metric)


def sliding_max(times: Sequence[float], window: float) -> int:
    """The most timestamps in any half-open window of `window` seconds."""
    ordered, best, first = sorted(times), 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - window:
            first += 1
        best = max(best, last - first + 1)
    return best


def judge(gh: GitHubEmulator, heads: dict[int, str]) -> tuple[int, int]:
    """(PRs whose generate check run completed with success, PRs with exactly one result)."""
    completed = one = 0
    for number, sha in heads.items():
        runs = gh.check_runs(OWNER, REPO, sha, GENERATE_CHECK)
        completed += int(
            len(runs) == 1
            and runs[0]["status"] == "completed"
            and runs[0]["conclusion"] == "success"
        )
        one += int(len(result_comments(gh, number)) == 1)
    return completed, one


async def send_all(url: str, deliveries: Sequence[Delivery]) -> None:
    """Every delivery at once, as GitHub would send comments made in the same moment."""
    async with aiohttp.ClientSession() as session:

        async def send(delivery: Delivery) -> None:
            async with session.post(url, data=delivery.body, headers=delivery.headers()) as got:
                got.raise_for_status()

        await asyncio.gather(*(send(d) for d in deliveries))


async def measure(jobs: int, scale: float, limit: float) -> Run:
    interval, window, duration = 30.0 / scale, 60.0 / scale, 600.0 / scale
    os.environ["ILAB_STANDIN_DURATION"] = str(duration)
    standin = str(Path(sys.executable).with_name("ilab-standin"))
    with (
        tempfile.TemporaryDirectory(prefix="ilab-bench-jobs-") as scratch,
        open(os.devnull, "w") as quiet,  # noqa: PTH123 - the sandbox wants a text stream
    ):
        var = Path(scratch) / "var"
        async with sandbox(
            var, ilab_command=(standin,), progress_interval=interval, log_file=quiet
        ) as box:
            gh = box.gh
            remote = build_remote(Path(scratch) / "many")
            heads = publish_pulls(gh, remote, jobs)
            numbers = sorted(heads)
            gh.limit_writes(WRITES_PER_MINUTE, window)
            settings = dataclasses.replace(
                box.settings,
                github_git_url=remote.git_url_base,
                github_write_limit=WRITES_PER_MINUTE,
                github_write_window=window,
            )
            secret = settings.webhook_secret.value
            deliveries = generate_commands(gh, box.paths, numbers, secret)
            async with run_bot(settings, concurrency=jobs) as bot:
                started = time.time()
                await send_all(bot.webhook_url, deliveries)
                everyone = lambda: all(result_comments(gh, n) for n in numbers)  # noqa: E731
                async with asyncio.timeout(limit):
                    await gh.wait_for(everyone)
                seconds = time.time() - started
                registry = bot.workers[0].deps.metrics.registry
                skipped = registry.get_sample_value(SKIPPED, {"reason": "budget"}) or 0
            completed, one = judge(gh, heads)
            writes = gh.write_times()
            progress = [
                c
                for c in gh.calls
                if c.method == "PATCH"
                and c.status == 200
                and "conclusion" not in (c.json or {})
                and (c.json or {}).get("status") == "in_progress"
            ]
    queued, running = milestones(gh.calls, started)
    return Run(
        jobs,
        scale,
        seconds,
        sliding_max(writes, window),
        gh.writes_refused,
        completed,
        one,
        len(writes),
        len(progress),
        queued,
        running,
        int(skipped),
    )


def milestones(calls: Sequence[Call], started: float) -> tuple[float, float]:
    """Seconds from `started` until the last queued check run was created, and until the
    last job's check run said it runs."""
    ok = [c for c in calls if c.status is not None and c.status < 300 and c.json]
    queued = [c.timestamp for c in ok if c.method == "POST" and c.json.get("status") == "queued"]
    running = [c.timestamp for c in ok if c.method == "PATCH" and "started_at" in c.json]
    return _after(queued, started), _after(running, started)


def _after(times: Sequence[float], started: float) -> float:
    return max(times) - started if times else float("nan")


def rows(run: Run) -> list[Row]:
    delivered = min(run.completed, run.one_comment)
    how = (
        f"{run.jobs} 10-minute `generate` jobs at 1/{run.scale:g} time on {run.jobs} PRs of one "
        f"installation, commented at once; the emulator refuses writes beyond "
        f"{WRITES_PER_MINUTE}/min (GitHub's secondary limit), the bot's budget is the same; "
        f"max over every sliding minute of the writes GitHub accepted; {run.writes} writes in "
        f"all ({run.progress_writes} progress, {run.budget_skipped} progress updates "
        f"skipped by the budget), {run.refused} refused by the emulator"
    )
    return [
        Row(
            f"GitHub writes/min per installation, {run.jobs} concurrent jobs (measured)",
            str(run.max_per_window),
            "—",
            "—",
            f"≤ {WRITES_PER_MINUTE}",
            verdict(run.max_per_window <= WRITES_PER_MINUTE),
            how,
        ),
        Row(
            f"final results delivered, {run.jobs} concurrent jobs",
            f"{delivered}/{run.jobs}",
            "—",
            "—",
            f"{run.jobs}/{run.jobs}",
            verdict(delivered == run.jobs),
            f"check run completed with success: {run.completed}; exactly one result "
            f"comment: {run.one_comment}; all done {run.seconds:.0f} s after the comments "
            f"(jobs of {600 / run.scale:.0f} s at 1/{run.scale:g} time; checkouts, process "
            f"starts and the machine's load are not scaled); the last "
            f"queued check run after {run.all_queued:.0f} s, the last job running after "
            f"{run.all_started:.0f} s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50, help="concurrent jobs (PRs)")
    parser.add_argument("--scale", type=float, default=20.0, help="time compression")
    parser.add_argument("--limit", type=float, default=600.0, help="give up after (s)")
    parser.add_argument("--quick", action="store_true", help="`python -m bench --quick`: 6 jobs")
    parser.add_argument("--json", type=Path, default=None, help="write the table rows here")
    args = parser.parse_args()
    jobs, scale = (6, 100.0) if args.quick else (args.jobs, args.scale)
    run = asyncio.run(measure(jobs, scale, args.limit))
    found = rows(run)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in found], indent=1))
    for row in found:
        print(f"{row.figure}: {row.ours} (target {row.target}, met: {row.met}) {row.note}")


if __name__ == "__main__":
    main()
