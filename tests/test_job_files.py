"""Links that do not die, and the browser viewer: a job's files on S3 (moto's server), the
job in a real Redis, the bot's real server answering `/jobs/<id>/files/…` and `/view/…`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.storage.s3 import S3Config, S3Store
from instruct_lab_bot.core.artifacts import sign_stable, stable_link
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.pages.viewer_html import PAGE_SIZE, VIEWER_CSP
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.settings import Secret, Settings
from instruct_lab_bot.services.job_links import file_names, links_text, pick_job
from instruct_lab_bot.services.server import create_app
from testkit.harness import run_bot
from tests.fixtures.bot import make_settings
from tests.fixtures.s3 import S3Server
from tests.fixtures.world import World
from tests.test_status_browser import (  # noqa: F401 - the session browser
    browser,
    open_page,
    screenshot,
)

KEY_HEX = "ab" * 32
KEY = bytes.fromhex(KEY_HEX)
HOSTILE = '<script>window.pwned=1;alert("x")</script><img src=x onerror=alert(2)>'
SAMPLES = "2026-12-06_041000/skills_train_msgs_2026-12-06T04_10_00.jsonl"
RECIPE = "2026-12-06_041000/skills_recipe_2026-12-06T04_10_00.yaml"


def _records() -> bytes:
    rows = []
    for n in range(45):
        question = f"Write a haiku about lighthouse number {n}?"
        answer = (
            f"Weathered tower {n},\nsweeping light across the dark,\nships find their way home."
        )
        if n == 1:
            answer = HOSTILE
        rows.append(
            {
                "id": f"id-{n}",
                "messages": [
                    {"role": "system", "content": "I am a Red Hat® Instruct Model."},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ],
                "metadata": json.dumps({"system": "I am a Red Hat® Instruct Model."}),
            }
        )
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(settings, dispatcher=False), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def stored(
    redis_url: str, s3_server: S3Server, s3_bucket: str
) -> AsyncIterator[tuple[Settings, Job]]:
    """A finished job in Redis whose files are in the bucket."""
    settings = make_settings(
        redis_url=redis_url,
        artifacts_url=f"s3://{s3_bucket}/artifacts",
        s3_endpoint_url=s3_server.endpoint_url,
        link_signing_key=Secret(KEY_HEX),
        link_expiry=60,
    )
    job = Job(
        id="0193a1b2c3d4e5f6a7b8c9d0",
        command="generate",
        installation_id=1,
        owner="instructlab",
        repo="taxonomy",
        pr_number=7,
        requester="contributor",
        head_sha="3f2c9e1" + "0" * 33,
    )
    queue = Queue.from_url(redis_url)
    assert (await queue.create_job(job)).status == "created"
    await queue.aclose()
    store = S3Store(S3Config(s3_bucket, "artifacts", s3_server.endpoint_url, 60))
    prefix = job.artifact_key_prefix()
    await store.put_bytes(prefix + SAMPLES, _records(), "application/x-ndjson")
    recipe = f"datasets:\n- path: x.jsonl\n  sampling_size: 30\n# {HOSTILE}\n"
    await store.put_bytes(prefix + RECIPE, recipe.encode(), "application/yaml")
    await store.aclose()
    yield settings, job


def _url(server: TestServer, job: Job, name: str, *, view: bool = False, sig: str = "") -> str:
    sig = sig or sign_stable(job.id, name, KEY)
    return stable_link(str(server.make_url("")), job.id, name, sig, view=view)


async def _get(url: str, **kw: Any) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url, **kw) as response:
        return response.status, dict(response.headers), await response.text()


async def test_stable_link_redirects_to_a_fresh_presigned_url_each_visit(
    stored: tuple[Settings, Job],
) -> None:
    settings, job = stored
    async with served(settings) as server:
        url = _url(server, job, SAMPLES)
        locations = []
        for _ in range(2):
            status, headers, _ = await _get(url, allow_redirects=False)
            assert status == 302 and headers["Cache-Control"] == "no-store"
            locations.append(headers["Location"])
        assert all("X-Amz-Signature=" in loc for loc in locations)
        status, _, body = await _get(url)  # followed to the bucket: the file itself
        assert status == 200 and body.count("\n") == 45
        # forged or other-job signatures, unknown jobs and bad names are refused
        assert (await _get(_url(server, job, SAMPLES, sig="0" * 64)))[0] == 403
        other = _url(server, job, RECIPE, sig=sign_stable(job.id, SAMPLES, KEY))
        assert (await _get(other, allow_redirects=False))[0] == 403
        gone = job.evolve(id="0193ffffffffffffffffffff")
        assert (await _get(_url(server, gone, SAMPLES), allow_redirects=False))[0] == 404
        assert (await _get(_url(server, job, "../x")))[0] in (400, 403, 404)


async def test_stable_links_off_serves_no_job_routes(stored: tuple[Settings, Job]) -> None:
    settings, job = stored
    async with served(replace(settings, stable_links=False)) as server:
        assert (await _get(_url(server, job, SAMPLES), allow_redirects=False))[0] == 404


async def test_viewer_pages_searches_and_escapes_in_chromium(
    stored: tuple[Settings, Job],
    browser: Browser,  # noqa: F811 - the session fixture
    tmp_path: Path,
) -> None:
    settings, job = stored
    async with served(settings) as server:
        status, headers, _ = await _get(_url(server, job, SAMPLES, view=True))
        assert status == 200 and headers["Content-Security-Policy"] == VIEWER_CSP
        page, problems = await open_page(browser)
        await page.goto(_url(server, job, SAMPLES, view=True))
        assert await page.locator("section.card").count() == PAGE_SIZE
        text = await page.locator("body").inner_text()
        assert "45 records" in text and "page 1 of 3" in text
        assert HOSTILE in text  # shown as text, not markup
        assert await page.locator("section.card script, section.card img").count() == 0
        assert await page.evaluate("window.pwned") is None
        # docs/images/jsonl-viewer.png is this screen (STATUS_SCREENSHOTS=docs/images)
        await screenshot(page, tmp_path, "jsonl-viewer", full_page=False)
        await page.locator("a[rel=next]").first.click()
        assert "page 2 of 3" in await page.locator("nav").first.inner_text()
        await page.fill("input[type=search]", "number 42")
        await page.locator("button[type=submit]").click()
        assert await page.locator("section.card").count() == 1
        assert "1 record matching" in await page.locator("header").inner_text()
        await page.goto(_url(server, job, RECIPE, view=True))
        assert HOSTILE in await page.locator("pre.yaml").inner_text()
        assert problems == []
        await page.context.close()


LINK = re.compile(r"\]\((http[^)\s]+)\)")


async def test_a_real_generate_replies_with_stable_links_and_links_reissues_them(
    world: World,
) -> None:
    """The whole path with the default settings: the worker's reply links through the bot's
    server, each link reaches the stored bytes, and `links` answers with links that work."""
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        body = (await world.result_comment())["body"]
        links = LINK.findall(body)
        assert links and all("/jobs/" in url and "expires=" not in url for url in links)
        fetched = {url: await _get(url) for url in links}
        log_url = next(url for url in links if "/files/ilab.log?" in url)
        mention = f"@{world.settings.username} links"
        assert (await world.comment(bot, mention))[0] == 202
        async with asyncio.timeout(30):
            await world.gh.wait_for(
                lambda: any("Links to the files" in c["body"] for c in world.bot_comments())
            )
        reissued = next(
            c["body"] for c in world.bot_comments() if "Links to the files" in c["body"]
        )
        again = [await _get(url) for url in LINK.findall(reissued)]
        queue = Queue.from_url(world.settings.redis_url)
        try:
            pull = RepoRef("instructlab", "taxonomy").pull(7)
            (job,) = await queue.get_jobs(await queue.pr_job_ids(pull))
        finally:
            await queue.aclose()
    # the status page's `files` link is the same stable link to the index
    assert job.index_url.startswith(f"{world.settings.public_url}/jobs/{job.id}/files/index.html")
    assert {"ilab.log", "index.html"} - set(file_names(job)) == {"index.html"}
    assert pick_job([job], job.id) is job and pick_job([job], "other") is None
    assert all(status == 200 for status, _, _ in fetched.values())
    assert fetched[log_url][2].startswith("$ ")  # the command line ilab ran, first
    assert "data generate" in fetched[log_url][2].splitlines()[0]
    views = [text for url, (_, _, text) in fetched.items() if "/view/" in url]
    assert views and all(
        'section class="card"' in text or 'pre class="yaml"' in text for text in views
    )
    index = next(text for url, (_, _, text) in fetched.items() if "/files/index.html" in url)
    assert "/view/" in index and ">view</a>" in index  # the index links the viewer too
    assert "ilab.log" in reissued and again and all(status == 200 for status, _, _ in again)


async def test_links_reissues_stable_or_freshly_signed_links(stored: tuple[Settings, Job]) -> None:
    settings, job = stored
    queue = Queue.from_url(settings.redis_url)
    try:
        await queue.update_job(job.id, artifact_names=f"{SAMPLES}\n{RECIPE}\nilab.l")
        stable = await links_text(settings, queue, job.pull_request, "")
        signed = await links_text(
            replace(settings, stable_links=False), queue, job.pull_request, ""
        )
        unknown = await links_text(settings, queue, job.pull_request, "nope")
    finally:
        await queue.aclose()
    assert f"/jobs/{job.id}/files/{SAMPLES}?sig=" in stable and "/view/" in stable
    urls = LINK.findall(signed)
    assert len(urls) == 3 and all("X-Amz-Signature=" in url for url in urls)
    for url in urls[:2]:
        assert (await _get(url))[0] == 200
    assert "no job `nope`" in unknown
