"""Time to first feedback (issue 17): the dispatcher asks GitHub for the 👀 reaction, the PR and
its files at once, and creates a job's check run without first looking for one it cannot have
made. Real server, dispatcher and worker (the harness) against the GitHub emulator; no timing:
the emulator holds every call unanswered, so only calls made concurrently can all arrive."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
import pytest

from bench import feedback
from bench.dispatch import _post, standin
from instruct_lab_bot.core.messages.format import check_name
from testkit.demo import reviewer_comment, sandbox
from testkit.harness import run_bot
from testkit.testdata import load_webhook_example

PULL = "/repos/{owner}/{repo}/pulls/{pull_number}"
FILES = "/repos/{owner}/{repo}/pulls/{pull_number}/files"
CHECK_RUNS = "/repos/{owner}/{repo}/check-runs"


async def test_reaction_pull_request_and_files_are_asked_at_once(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILAB_BOT_REDIS_URL", redis_url)
    log = tmp_path / "ilab.log"
    with io.StringIO() as quiet:
        async with (
            sandbox(tmp_path / "box", ilab_command=tuple(standin(log)), log_file=quiet) as box,
            run_bot(box.settings) as bot,
            aiohttp.ClientSession() as session,
        ):
            gh = box.gh
            body = f"@{box.settings.username} generate"
            example = load_webhook_example(box.paths, "issue_comment", action="created")
            payload = reviewer_comment(gh, example, body)
            # The first comment warms the installation token (every call needs it).
            await _post(session, bot.webhook_url, payload, box.settings)
            name = check_name("generate")

            def queued() -> bool:
                posts = gh.calls_matching("POST", CHECK_RUNS)
                return any(c.answered and (c.json or {}).get("name") == name for c in posts)

            async with asyncio.timeout(60):
                await gh.wait_for(queued)
            # A job this delivery created cannot have a check run yet: none is looked for.
            assert not gh.calls_matching("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
            first = len(gh.calls)
            gh.hold()
            # Another kind: a repeat of the live `generate` would wait for its answer, unread
            # files and no 👀 (`test_duplicates.py`).
            payload = reviewer_comment(gh, example, f"@{box.settings.username} precheck")
            await _post(session, bot.webhook_url, payload, box.settings)

            def asked(method: str, route: str) -> bool:
                return any(c.method == method and c.route == route for c in gh.calls[first:])

            reaction = "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"
            try:
                async with asyncio.timeout(60):  # a serial dispatcher never gets past the first
                    await gh.wait_for(
                        lambda: (
                            asked("POST", reaction) and asked("GET", PULL) and asked("GET", FILES)
                        )
                    )
                assert all(c.answered is None for c in gh.calls[first:])
            finally:
                gh.release()


async def test_feedback_bench_measures_both_times(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILAB_BOT_REDIS_URL", redis_url)
    found = await feedback.measure_feedback(tmp_path, 2, latency=0.02, jitter=0.01)
    assert len(found["reaction"]) == len(found["queued"]) == len(found["calls"]) == 2
    assert all(v > 0 for v in found["reaction"] + found["queued"] + found["calls"])
    rows = feedback.rows(found, 0.02)
    assert [r.met in ("yes", "no") for r in rows] == [True, True]
