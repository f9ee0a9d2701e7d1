"""The bot's GitHub adapter through real gidgethub against the spec-validating emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from instruct_lab_bot.github import GitHubApp, GitHubError
from instruct_lab_bot.testing.github_emulator import AppKey, GitHubEmulator


@pytest.fixture
async def app(github: GitHubEmulator, github_app_key: AppKey) -> AsyncIterator[GitHubApp]:
    github.add_pull("o", "r", 1, head_sha="a" * 40, head_ref="topic")
    async with aiohttp.ClientSession() as session:
        yield GitHubApp(
            session,
            app_id=str(github_app_key.app_id),
            private_key=github_app_key.private_key_pem,
            api_url=github.url,
            timeout=5,
        )


async def test_token_is_cached_and_refreshed_before_expiry(
    app: GitHubApp, github: GitHubEmulator
) -> None:
    gh = app.installation(github.installation_id)
    await gh.get_pull("o", "r", 1)
    await gh.get_pull("o", "r", 1)
    assert len(github.tokens[github.installation_id]) == 1  # cached
    github.token_lifetime = timedelta(minutes=5)  # less than the refresh margin
    app.forget_token(github.installation_id, github.tokens[github.installation_id][0])
    await gh.get_pull("o", "r", 1)
    await gh.get_pull("o", "r", 1)
    assert len(github.tokens[github.installation_id]) == 3  # each near-expiry token replaced


async def test_revoked_token_is_replaced_once(app: GitHubApp, github: GitHubEmulator) -> None:
    gh = app.installation(github.installation_id)
    await gh.get_pull("o", "r", 1)
    github.expire_tokens()
    pull = await gh.get_pull("o", "r", 1)
    assert pull["head"]["sha"] == "a" * 40
    assert len(github.tokens[github.installation_id]) == 2


async def test_server_errors_are_retried(app: GitHubApp, github: GitHubEmulator) -> None:
    github.inject("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", status=502, times=2)
    pull = await app.installation(github.installation_id).get_pull("o", "r", 1)
    assert pull["number"] == 1
    assert len(github.calls_matching("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")) == 3


async def test_refusals_are_permanent_errors(app: GitHubApp, github: GitHubEmulator) -> None:
    gh = app.installation(github.installation_id)
    with pytest.raises(GitHubError) as missing:
        await gh.get_pull("o", "r", 404)
    assert missing.value.status == 404 and not missing.value.transient
    github.inject(
        "PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}", status=503, times=None
    )
    check_run = await gh.create_check_run("o", "r", {"name": "x", "head_sha": "a" * 40})
    with pytest.raises(GitHubError) as broken:
        await gh.update_check_run("o", "r", check_run, {"status": "in_progress"})
    assert broken.value.transient and "update the check run" in str(broken.value)
