"""Failures the contributor did not cause are told apart from their own mistakes, end to end:
the real worker, a real S3 endpoint that lost its bucket, and the `ilab` stand-in failing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from testkit.harness import run_bot
from tests.fixtures.s3 import S3Server
from tests.fixtures.world import World


async def test_an_object_store_outage_is_not_your_fault(world: World, s3_server: S3Server) -> None:
    world.settings = replace(
        world.settings,
        artifacts_url="s3://a-bucket-that-is-gone/runs",
        s3_endpoint_url=s3_server.endpoint_url,
        upload_timeout=20.0,
    )
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
    body = comment["body"]
    assert "🛠️ **Not your fault:** the bot could not store the job's files" in body
    status = f"{world.settings.public_url}/repos/instructlab/taxonomy/pulls/7"
    assert f"[Status page]({status})" in body
    assert world.check_run()["conclusion"] == "failure"


async def test_a_contributors_failure_keeps_its_wording(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_MODE", "fail")
    monkeypatch.setenv("ILAB_STANDIN_FAIL_MESSAGE", "qna.yaml: seed example 3 has no answer")
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
    assert "Not your fault" not in comment["body"]
    assert "seed example 3 has no answer" in comment["body"]
