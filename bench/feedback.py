"""Time to first feedback: webhook → 👀 reaction and webhook → queued check run, p50/p99.

What a contributor feels first. The real server, dispatcher and worker (the test harness)
against the GitHub emulator with GitHub's own latency added to every API call (150 ms ± 50 ms,
uniform: `GitHubEmulator.set_latency`). Each sample posts a signed `@bot generate` comment as a
reviewer with write access, then reads the emulator's call log: the reaction's POST and the
`generate` check run's POST (status "queued"), each taken when the emulator answered it.
Samples go one after another, each on a new head the contributor pushed (each waits for its
job to end, and for the bot to handle the push), with the write budget raised out of the way.
Targets (issue 17): ≤ 2 × the per-call latency for the reaction, ≤ 3 × for the queued check
run. The first sample is cold (installation token, permission, repository configuration and
validation all asked for); the rest are warm as on a busy PR: the PR's head was validated
when it was pushed (the `pull_request` event) and is remembered.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.messages.format import check_name

from .common import Row, figure_main, percentile, verdict
from .dispatch import _post, _push_new_head, _wait_finished, standin

LATENCY = 0.150  # seconds per GitHub call, as GitHub answers in 100–300 ms
JITTER = 0.050
# Room for every sample's writes: the installation's write budget (80/min by default) would
# skip reactions first once ~14 jobs ran within a minute, which is its job, not this figure's.
WRITES_PER_MINUTE = 10_000
REACTION_ROUTE = "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"
CHECK_RUNS_ROUTE = "/repos/{owner}/{repo}/check-runs"


async def measure_feedback(
    work: Path, samples: int, latency: float = LATENCY, jitter: float = JITTER
) -> dict[str, list[float]]:
    """{"reaction": [...], "queued": [...], "calls": [...]} in seconds, one per sample."""
    from testkit.demo import reviewer_comment, sandbox
    from testkit.harness import run_bot
    from testkit.testdata import load_webhook_example

    out: dict[str, list[float]] = {"reaction": [], "queued": [], "calls": []}
    log = work / "feedback.log"
    with open(os.devnull, "w") as quiet:  # noqa: PTH123 - the sandbox wants a text stream
        async with (
            sandbox(work / "sandbox", ilab_command=tuple(standin(log)), log_file=quiet) as box,
            run_bot(replace(box.settings, github_write_limit=WRITES_PER_MINUTE)) as bot,
            aiohttp.ClientSession() as session,
        ):
            box.gh.set_latency(latency, jitter)
            example = load_webhook_example(box.paths, "issue_comment", action="created")
            queue = Queue.from_url(box.settings.redis_url)
            try:
                for number in range(1, samples + 1):
                    if number > 1:
                        await _push_new_head(box, session, bot.webhook_url)
                    body = f"Run {number}, please.\n\n@{box.settings.username} generate"
                    payload = reviewer_comment(box.gh, example, body)
                    first_call = len(box.gh.calls)
                    sent = time.time()
                    await _post(session, bot.webhook_url, payload, box.settings)
                    reaction, queued = await _feedback_times(box.gh, first_call)
                    out["reaction"].append(reaction - sent)
                    out["queued"].append(queued - sent)
                    await _wait_finished(queue, number)
                    out["calls"].append(float(len(box.gh.calls) - first_call))
            finally:
                await queue.aclose()
    return out


async def _feedback_times(gh: object, first_call: int) -> tuple[float, float]:
    """When the emulator answered the reaction and the queued `generate` check run."""
    from testkit.github_emulator import GitHubEmulator

    assert isinstance(gh, GitHubEmulator)
    name = check_name("generate")

    def answered(route: str, wanted: dict[str, str] | None = None) -> float | None:
        for call in gh.calls[first_call:]:
            if call.method != "POST" or call.route != route or call.answered is None:
                continue
            data = call.json if isinstance(call.json, dict) else {}
            if wanted is None or all(data.get(k) == v for k, v in wanted.items()):
                return call.answered
        return None

    reaction: float | None = None
    queued: float | None = None

    def both() -> bool:
        nonlocal reaction, queued
        reaction = answered(REACTION_ROUTE)
        queued = answered(CHECK_RUNS_ROUTE, {"name": name, "status": "queued"})
        return reaction is not None and queued is not None

    async with asyncio.timeout(60):
        await gh.wait_for(both)
    assert reaction is not None and queued is not None
    return reaction, queued


def rows(results: dict[str, list[float]], latency: float = LATENCY) -> list[Row]:
    """p50/p99 over the warm samples (all but the first); the cold first one in the note."""
    out: list[Row] = []
    calls = results["calls"]
    for key, what, times in (
        ("reaction", "webhook → 👀 reaction", 2),
        ("queued", "webhook → queued check run", 3),
    ):
        cold, *warm = results[key]
        warm = warm or [cold]
        goal = times * latency
        p50, p99 = percentile(warm, 50), percentile(warm, 99)
        out.append(
            Row(
                f"first feedback: {what} (p50 / p99), GitHub at {latency * 1000:.0f} ms/call",
                f"{p50 * 1000:.0f} / {p99 * 1000:.0f} ms",
                f"{latency * 1000:.0f} ms/call",
                f"{p50 / latency:.1f} / {p99 / latency:.1f} ×",
                f"≤ {times} × per call ({goal * 1000:.0f} ms)",
                verdict(p99 <= goal),
                f"{len(warm)} warm comments, one at a time, each a `generate` by a writer, "
                f"GitHub ±{JITTER * 1000:.0f} ms jitter; the cold first comment (token, "
                f"permission, config, validation not yet known): {cold * 1000:.0f} ms; "
                f"GitHub calls per job p50 {percentile(calls, 50):.0f}",
            )
        )
    return out


async def measure(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="ilab-bench-feedback-") as tmp:
        found = await measure_feedback(Path(tmp), 2 if quick else 20)
    return rows(found)


if __name__ == "__main__":
    if sys.platform != "linux":
        raise SystemExit("the benchmarks read /proc and need Linux")
    figure_main(measure, __doc__)
