"""The bot's GitHub adapter through real gidgethub against the spec-validating emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from instruct_lab_bot.adapters.github import GitHubApp, GitHubAppConfig, GitHubError
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.retry import RetryPolicy
from testkit.github_emulator import DROPPED, AppKey, GitHubEmulator

PULL = "/repos/{owner}/{repo}/pulls/{pull_number}"
COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
CHECK_RUN = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
FAST = RetryPolicy(deadline=10, max_attempts=6, base_delay=0.01, max_delay=0.05)

REPO = RepoRef("o", "r")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


MakeApp = Callable[..., GitHubApp]


@pytest.fixture
def make_app(
    github: GitHubEmulator, github_app_key: AppKey, session: aiohttp.ClientSession
) -> MakeApp:
    """`make_app(**GitHubApp keyword args)`: an app on the emulator with fast retries."""

    def make(**kwargs: Any) -> GitHubApp:
        options: dict[str, Any] = {"timeout": 5, "retry": FAST, **kwargs}
        hooks = {name: options.pop(name) for name in ("budget", "on_response") if name in options}
        config = GitHubAppConfig(
            app_id=str(github_app_key.app_id),
            private_key=github_app_key.private_key_pem,
            api_url=github.url,
            **options,
        )
        return GitHubApp(session, config, **hooks)

    return make


@pytest.fixture
def app(github: GitHubEmulator, make_app: MakeApp) -> GitHubApp:
    github.add_pull("o", "r", 1, head_sha="a" * 40, head_ref="topic")
    return make_app()


async def test_token_is_cached_and_refreshed_before_expiry(
    app: GitHubApp, github: GitHubEmulator
) -> None:
    gh = app.installation(github.installation_id)
    await gh.get_pull(REPO.pull(1))
    await gh.get_pull(REPO.pull(1))
    assert len(github.tokens[github.installation_id]) == 1  # cached
    github.token_lifetime = timedelta(minutes=5)  # less than the refresh margin
    app.forget_token(github.installation_id, github.tokens[github.installation_id][0])
    await gh.get_pull(REPO.pull(1))
    await gh.get_pull(REPO.pull(1))
    assert len(github.tokens[github.installation_id]) == 3  # each near-expiry token replaced


async def test_revoked_token_is_replaced_once(app: GitHubApp, github: GitHubEmulator) -> None:
    gh = app.installation(github.installation_id)
    await gh.get_pull(REPO.pull(1))
    github.expire_tokens()
    pull = await gh.get_pull(REPO.pull(1))
    assert pull["head"]["sha"] == "a" * 40
    assert len(github.tokens[github.installation_id]) == 2


async def test_server_errors_are_retried(app: GitHubApp, github: GitHubEmulator) -> None:
    github.inject("GET", PULL, status=502, times=2)
    pull = await app.installation(github.installation_id).get_pull(REPO.pull(1))
    assert pull["number"] == 1
    assert len(github.calls_matching("GET", PULL)) == 3


async def test_refusals_are_permanent_errors(app: GitHubApp, github: GitHubEmulator) -> None:
    gh = app.installation(github.installation_id)
    with pytest.raises(GitHubError) as missing:
        await gh.get_pull(REPO.pull(404))
    assert missing.value.status == 404 and not missing.value.transient
    github.inject("PATCH", CHECK_RUN, status=503, times=None)
    check_run = await gh.create_check_run(REPO, {"name": "x", "head_sha": "a" * 40})
    with pytest.raises(GitHubError) as broken:
        await gh.update_check_run(REPO, check_run, {"status": "in_progress"})
    assert broken.value.transient and "update the check run" in str(broken.value)
    assert len(github.calls_matching("PATCH", CHECK_RUN)) == FAST.max_attempts


async def test_a_forbidden_call_is_not_retried(app: GitHubApp, github: GitHubEmulator) -> None:
    github.inject(
        "POST", COMMENTS, status=403, body={"message": "Resource not accessible by integration"}
    )
    with pytest.raises(GitHubError) as refused:
        await app.installation(github.installation_id).create_comment(REPO.pull(1), "hi")
    assert refused.value.status == 403 and not refused.value.transient
    assert len(github.calls_matching("POST", COMMENTS)) == 1


async def test_dropped_connections_timeouts_and_5xx_are_retried(
    github: GitHubEmulator, make_app: MakeApp
) -> None:
    github.add_pull("o", "r", 1, head_sha="a" * 40, head_ref="topic")
    app: GitHubApp = make_app(timeout=0.5)
    gh = app.installation(github.installation_id)
    check_run = await gh.create_check_run(REPO, {"name": "x", "head_sha": "a" * 40})
    github.inject("PATCH", CHECK_RUN, status=502)
    github.inject("PATCH", CHECK_RUN, status=503)
    github.inject("PATCH", CHECK_RUN, drop=True)
    github.inject("PATCH", CHECK_RUN, delay=1.5)  # answered after the client gave up
    await gh.update_check_run(REPO, check_run, {"status": "in_progress"})
    statuses = [c.status for c in github.calls_matching("PATCH", CHECK_RUN)]
    assert statuses[:3] == [502, 503, DROPPED]
    assert statuses[4] == 200
    assert github.check_run(check_run)["status"] == "in_progress"


async def test_secondary_rate_limit_waits_for_retry_after(
    app: GitHubApp, github: GitHubEmulator
) -> None:
    github.inject(
        "POST",
        COMMENTS,
        status=403,
        headers={"retry-after": "1"},
        body={"message": "You have exceeded a secondary rate limit."},
    )
    await app.installation(github.installation_id).create_comment(REPO.pull(1), "hello")
    first, second = github.calls_matching("POST", COMMENTS)
    assert (first.status, second.status) == (403, 201)
    assert second.timestamp - first.timestamp >= 1.0
    assert [c["body"] for c in github.comments("o", "r", 1)] == ["hello"]


async def test_429_waits_until_the_rate_limit_reset(app: GitHubApp, github: GitHubEmulator) -> None:
    gh = app.installation(github.installation_id)
    await gh.get_pull(REPO.pull(1))  # the token is in hand
    reset = int(time.time()) + 2
    github.inject(
        "GET",
        PULL,
        status=429,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    await gh.get_pull(REPO.pull(1))
    limited, retried = github.calls_matching("GET", PULL)[1:]
    assert (limited.status, retried.status) == (429, 200)
    assert retried.timestamp >= reset


async def test_a_rate_limit_longer_than_the_deadline_fails_at_once(
    app: GitHubApp, github: GitHubEmulator
) -> None:
    gh = app.installation(github.installation_id)
    await gh.get_pull(REPO.pull(1))
    github.set_rate_limit(remaining=0, reset_in=3600)  # primary limit: gidgethub raises
    with pytest.raises(GitHubError) as limited:
        await gh.get_pull(REPO.pull(1))
    assert limited.value.status == 403 and limited.value.transient
    assert len(github.calls_matching("GET", PULL)) == 2


async def test_droppable_updates_do_not_wait_on_rate_limits(
    app: GitHubApp, github: GitHubEmulator
) -> None:
    gh = app.installation(github.installation_id)
    check_run = await gh.create_check_run(REPO, {"name": "x", "head_sha": "a" * 40})
    github.inject("PATCH", CHECK_RUN, status=429, headers={"retry-after": "30"})
    with pytest.raises(GitHubError) as dropped:
        await gh.update_check_run(REPO, check_run, {"status": "in_progress"}, droppable=True)
    assert dropped.value.transient
    assert len(github.calls_matching("PATCH", CHECK_RUN)) == 1


async def test_concurrency_is_bounded_per_process(
    github: GitHubEmulator, make_app: MakeApp
) -> None:
    github.add_pull("o", "r", 1, head_sha="a" * 40, head_ref="topic")
    app: GitHubApp = make_app(max_concurrency=2)
    gh = app.installation(github.installation_id)
    await app.token(github.installation_id)
    github.inject("GET", PULL, delay=0.2, times=None)
    in_flight: list[int] = []

    def observe() -> bool:
        calls = github.calls_matching("GET", PULL)
        in_flight.append(sum(1 for c in calls if c.status is None))
        return len(calls) == 6 and all(c.status is not None for c in calls)

    watcher = asyncio.create_task(github.wait_for(observe))
    await asyncio.gather(*(gh.get_pull(REPO.pull(1)) for _ in range(6)))
    async with asyncio.timeout(5):
        await watcher
    assert max(in_flight) == 2


async def test_every_response_reaches_the_hook_with_its_route_template(
    github: GitHubEmulator, make_app: MakeApp
) -> None:
    github.add_pull("o", "r", 1, head_sha="a" * 40, head_ref="topic")
    seen: list[tuple[str, int | None, str | None]] = []

    def hook(route: str, status: int | None, headers: Mapping[str, str]) -> None:
        seen.append((route, status, headers.get("x-ratelimit-remaining")))

    app: GitHubApp = make_app(on_response=hook)
    gh = app.installation(github.installation_id)
    check_run = await gh.create_check_run(REPO, {"name": "x", "head_sha": "a" * 40})
    github.inject("PATCH", CHECK_RUN, drop=True)  # aiohttp itself re-sends a dropped GET
    await gh.update_check_run(REPO, check_run, {"status": "in_progress"})
    update = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
    assert [(route, status) for route, status, _ in seen] == [
        ("/app/installations/{installation_id}/access_tokens", 201),
        ("/repos/{owner}/{repo}/check-runs", 201),
        (update, None),
        (update, 200),
    ]
    assert seen[-1][2] is not None and int(seen[-1][2]) > 0


async def test_hook_deliveries_page_by_cursor_and_redeliver(
    app: GitHubApp, github: GitHubEmulator
) -> None:
    for n in range(5):
        github.add_hook_delivery(f"guid-{n}", event="issue_comment", status_code=502)
    first, cursor = await app.hook_deliveries(per_page=3)
    assert [d["guid"] for d in first] == ["guid-4", "guid-3", "guid-2"] and cursor
    second, end = await app.hook_deliveries(per_page=3, cursor=cursor)
    assert [d["guid"] for d in second] == ["guid-1", "guid-0"] and end is None
    await app.redeliver_hook_delivery(first[0]["id"])
    assert github.redeliveries == [first[0]["id"]]
