"""The whole path with real parts: signed real webhook → server → Redis → dispatcher → worker →
git checkout of a real PR ref → `ilab` stand-in → S3 endpoint / local store → GitHub emulator."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
import pytest

from instruct_lab_bot.adapters.processes import RUN_MARKER
from instruct_lab_bot.adapters.redis.keys import (
    DISPATCH_GROUP,
    EVENTS_STREAM,
    WORKER_GROUP,
    jobs_stream,
)
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.sandbox import FIXED_ENV
from instruct_lab_bot.core.settings import Settings
from testkit.harness import run_bot
from testkit.taxonomy import SkillSeed, leaf_files, skill_qna
from tests.fixtures.bot import processes_with_env
from tests.fixtures.s3 import S3Server
from tests.fixtures.taxonomy import PR_SKILL_DIR, TaxonomyFactory
from tests.fixtures.world import World, push_head

GENERATE_STREAM = jobs_stream("generate")  # the generate pool's jobs stream

CHECK_NAME = "instruct-lab-bot/generate"
LINK = re.compile(r"\]\((http[^)\s]+)\)")


async def download(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


def jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


async def test_generate_success_local_store(world: World, tmp_path: Path) -> None:
    # the storage's own expiring links (`/jobs/…` stable links: tests/test_job_files.py)
    world.settings = replace(world.settings, stable_links=False)
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
        queue = Queue.from_url(world.settings.redis_url)
        try:
            (job_id,) = await queue.pr_job_ids(RepoRef("instructlab", "taxonomy").pull(7))
            job = await queue.get_job(job_id)
            pending_jobs = await queue.redis.xpending(GENERATE_STREAM, WORKER_GROUP)
            pending_events = await queue.redis.xpending(EVENTS_STREAM, DISPATCH_GROUP)
        finally:
            await queue.aclose()
        links = LINK.findall(comment["body"])
        downloads = {url: await download(url) for url in links}
        tampered = await download(links[0].replace("sig=", "sig=0"))
        expired = await download(re.sub(r"expires=\d+", "expires=1", links[0]))

    gh = world.gh
    (invocation,) = world.record.entries()
    expected = 2 * len(invocation["seeds"])  # --sdg-scale-factor 2
    # 👀 on the contributor's comment
    assert [r["content"] for r in gh.reactions("instructlab", "taxonomy", world.comment_id)] == [
        "eyes"
    ]
    # one check run: queued → in_progress → progress updates → completed/success
    run = world.check_run()
    history = gh.check_run_history(run["id"])
    assert history[0]["status"] == "queued" and history[0]["head_sha"] == world.remote.head_sha
    assert history[1]["status"] == "in_progress"
    progress = [h for h in history[2:-1] if "%" in h.get("output", {}).get("title", "")]
    assert progress, f"no progress update in {[h.get('output', {}).get('title') for h in history]}"
    assert history[-1]["conclusion"] == "success"
    assert run["status"] == "completed" and run["conclusion"] == "success"
    assert f"Generated {expected} samples" in run["output"]["title"]

    # the reply: what ran, on which sha, counts, preview, links
    body = comment["body"]
    assert world.remote.head_sha in body
    assert f"**{expected}** samples generated" in body
    assert len(re.findall(r"^\| \d+ \| ", body, re.M)) == 5
    assert job is not None and job.state is State.SUCCEEDED and job.id in body
    assert pending_jobs["pending"] == 0 and pending_events["pending"] == 0

    # every link downloads exactly the bytes stored, with signed, expiring URLs
    names = {url.split("?")[0].rsplit("/", 1)[-1]: url for url in links}
    assert {"index.html", "ilab.log"} <= set(names)
    assert any(n.startswith("train_") and n.endswith(".jsonl") for n in names)
    assert any(n.startswith("skills_train_msgs_") and n.endswith(".jsonl") for n in names)
    root = tmp_path / "artifacts"
    for url, (status, data, _type) in downloads.items():
        assert status == 200, url
        assert "sig=" in url and "expires=" in url
        key = url.split("/artifacts/", 1)[1].split("?")[0]
        assert (root / key).read_bytes() == data
    train_url = next(u for n, u in names.items() if n.startswith("train_"))
    records = jsonl(downloads[train_url][1])
    assert len(records) == expected
    assert tampered[0] == 403 and expired[0] == 403

    # what reached `ilab`: the real flags, paths only, and none of the bot's secrets
    argv = invocation["argv"]
    assert argv[:4] == ["--config", "DEFAULT", "data", "generate"]  # no config in a fresh HOME
    assert argv[argv.index("--taxonomy-base") + 1] == "origin/main"
    assert "--output-dir" in argv and argv[-4:] == [
        "--sdg-scale-factor",
        "2",
        "--pipeline",
        "simple",
    ]
    # only the allow-listed stand-in switches, the fixed safe values (core.sandbox) and the
    # runner's per-run marker (adapters.processes: how leftovers of this run are found)
    passed = {k for k in invocation["env"] if not k.startswith("ILAB_STANDIN_")}
    assert passed <= {*FIXED_ENV, "HOME", "PATH", "TMPDIR", "PWD", RUN_MARKER}, passed

    # what it cost on GitHub (reported in the closing note)
    routes = [f"{c.method} {c.route}" for c in gh.calls]
    print(f"\nGitHub API calls for one job: {len(routes)}")
    for route in sorted(set(routes)):
        print(f"  {routes.count(route):3d} {route}")


async def test_generate_success_s3(world: World, s3_server: S3Server, s3_bucket: str) -> None:
    settings = world.settings
    world.settings = Settings(
        **{
            **settings.__dict__,
            "artifacts_url": f"s3://{s3_bucket}/runs",
            "s3_endpoint_url": s3_server.endpoint_url,
            "stable_links": False,  # the presigned links themselves
        }
    )
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
    links = LINK.findall(comment["body"])
    assert world.check_run()["conclusion"] == "success"
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3_server.endpoint_url) as s3:
        listing = await s3.list_objects_v2(Bucket=s3_bucket, Prefix="runs/")
        keys = [o["Key"] for o in listing.get("Contents", [])]
        assert any(k.endswith("/index.html") for k in keys)
        for url in links:
            status, data, _ = await download(url)
            assert status == 200, url
            key = url.split(f"/{s3_bucket}/", 1)[1].split("?")[0]
            stored = await s3.get_object(Bucket=s3_bucket, Key=key)
            assert data == await stored["Body"].read()
    prefix = f"runs/instructlab/taxonomy/pr-7/{world.remote.head_sha}/"
    assert keys and all(k.startswith(prefix) for k in keys)


async def test_generate_failure_reports_error_and_log(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_MODE", "fail")
    monkeypatch.setenv("ILAB_STANDIN_FAIL_MESSAGE", "teacher model at http://teacher:8000 refused")
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
    run = world.check_run()
    assert run["conclusion"] == "failure"
    body = comment["body"]
    assert "failed" in body and "teacher model" in body
    assert "<details><summary>Last log lines</summary>" in body
    assert "ilab.log" in body  # the full log is still uploaded


async def test_a_flooded_ilab_log_is_capped_with_head_and_tail(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 64 * 1024
    world.settings = replace(world.settings, log_limit=limit)
    monkeypatch.setenv("ILAB_STANDIN_MODE", "flood")
    monkeypatch.setenv("ILAB_STANDIN_FLOOD_LINES", "20000")  # about 3 MB of log lines
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
        log_url = next(u for u in LINK.findall(comment["body"]) if "/ilab.log?" in u)
        status, data, _type = await download(log_url)
    assert status == 200 and world.check_run()["conclusion"] == "success"
    text = data.decode()
    assert len(data) <= limit + 300
    command, rest = text.split("\n", 1)
    assert command.startswith("$ ") and "data generate" in command  # what ran, first
    assert rest.startswith("INFO ") and "NumExpr defaulting" in rest[:2000]  # the head
    assert "[instruct-lab-bot: " in text and "ILAB_BOT_LOG_LIMIT=65536" in text  # the cut
    assert "[flood 1/20000]" not in text.split("[instruct-lab-bot: ")[1]
    assert "Generation took" in text[-limit // 2 :]  # the tail: how the run ended


async def test_generate_timeout_kills_process_group(world: World) -> None:
    world.settings = Settings(**{**world.settings.__dict__, "job_timeout": 3.0, "kill_grace": 1.0})
    os.environ["ILAB_STANDIN_MODE"] = "hang-ignore-term"
    os.environ["ILAB_STANDIN_CHILD"] = "1"
    try:
        async with run_bot(world.settings) as bot:
            assert (await world.comment(bot))[0] == 202
            comment = await world.result_comment()
    finally:
        del os.environ["ILAB_STANDIN_MODE"], os.environ["ILAB_STANDIN_CHILD"]
    assert world.check_run()["conclusion"] == "timed_out"
    assert "timed out" in comment["body"]
    (invocation,) = world.record.entries()
    assert invocation["child_pid"]  # it did start a helper
    # pids inside the sandbox are its own namespace's: find survivors by their environment
    assert not processes_with_env(str(world.record.path)), "ilab or its helper survived"


HOSTILE = [
    SkillSeed(question="--help", answer="An answer with 'single' and \"double\" quotes."),
    SkillSeed(question="What does $(touch /tmp/ilab-bot-pwned) do?", answer="`rm -rf /` ; echo x"),
    SkillSeed(question="Line one\nline two | with a pipe", answer="Ünïcödé 日本語 🚀 @octocat"),
    SkillSeed(question="<script>alert(1)</script>", answer="[link](javascript:alert(1))"),
    SkillSeed(question="-x --taxonomy-path /etc", answer="'; DROP TABLE seeds; --"),
]


async def test_hostile_seed_text_reaches_ilab_untouched(
    world: World, taxonomy_remote: TaxonomyFactory
) -> None:
    remote = taxonomy_remote(
        repo="taxonomy", pr_number=7, pr_files=leaf_files(PR_SKILL_DIR, skill_qna(HOSTILE))
    )
    world.remote = remote
    push_head(world.gh, remote, remote.head_sha)
    pwned = Path("/tmp/ilab-bot-pwned")
    pwned.unlink(missing_ok=True)
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
    assert world.check_run()["conclusion"] == "success"
    (invocation,) = world.record.entries()
    seen = [(s["question"], s["answer"]) for s in invocation["seeds"]]
    assert seen == [(s.question, s.answer) for s in HOSTILE]
    assert not pwned.exists()
    body = comment["body"]
    assert "<script>" not in body and "@octocat" not in body
    assert "](javascript:" not in body
