"""The GitHub emulator, its OpenAPI validator and the npm test data, driven by real gidgethub."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import gidgethub
import gidgethub.apps
import jwt
import pytest
from gidgethub.aiohttp import GitHubAPI

from instruct_lab_bot.core import app_manifest
from testkit import testdata as testdata_module
from testkit.github_emulator import AppKey, GitHubEmulator, generate_app_key
from testkit.kserve_schema import KSERVE_SDK
from testkit.openapi import OpenAPISpec, SpecViolation
from testkit.testdata import ALL_FILES, TestDataPaths, is_fetched
from tests.fixtures.bot import MENTION
from tests.fixtures.github import WebhookExample

OWNER, REPO = "instructlab", "taxonomy"
SHA = "c0ffee" + "0" * 34
CHECK_RUNS = f"/repos/{OWNER}/{REPO}/check-runs"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def client(session: aiohttp.ClientSession, gh: GitHubEmulator, token: str | None) -> GitHubAPI:
    return GitHubAPI(session, "instruct-lab-bot-tests", base_url=gh.url, oauth_token=token)


@pytest.fixture
def api(session: aiohttp.ClientSession, github: GitHubEmulator) -> GitHubAPI:
    """gidgethub authenticated with a fresh installation token."""
    return client(session, github, github.issue_token())


def body_of(call_json: Any) -> bytes:
    return json.dumps(call_json).encode()


async def raw_request(
    session: aiohttp.ClientSession, gh: GitHubEmulator, method: str, path: str, data: Any = None
) -> tuple[int, Mapping[str, str], Any]:
    """A plain HTTP call, for what gidgethub hides (status 200 vs 201, Link headers)."""
    headers = {"Authorization": f"token {gh.issue_token()}"}
    async with session.request(method, gh.url + path, json=data, headers=headers) as response:
        return response.status, response.headers, await response.json()


# -- test data ---------------------------------------------------------------------------


def test_testdata_is_fetched_with_version_markers(testdata: TestDataPaths) -> None:
    cache = testdata.openapi.parents[1]
    assert testdata == testdata_module.testdata_paths(cache)
    assert all(is_fetched(cache, item) for item in ALL_FILES)
    assert testdata.webhook_schema.stat().st_size > 100_000


def test_fetch_extracts_only_the_pinned_file(tmp_path: Path) -> None:
    item = testdata_module.WEBHOOK_SCHEMA
    assert testdata_module.fetch(tmp_path, item) is True
    assert testdata_module.fetch(tmp_path, item) is False  # idempotent
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [item.target, item.target + ".version"]
    assert json.loads((tmp_path / item.target).read_text())["definitions"]


def test_cli_reports_one_line_per_package(
    testdata: TestDataPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert testdata_module.main(["--cache", str(testdata.openapi.parents[1])]) == 0
    lines = capsys.readouterr().out.splitlines()
    specs = [item.spec for item in ALL_FILES] + [KSERVE_SDK]  # and KServe's schema (pip)
    assert [line.split(":")[0] for line in lines] == specs
    assert all("cached" in line for line in lines)


def test_webhook_examples_are_deep_copies(webhook_example: WebhookExample) -> None:
    first = webhook_example("issue_comment", action="created")
    first["comment"]["body"] = f"{MENTION} generate"
    again = webhook_example("issue_comment", action="created")
    assert again["action"] == "created"
    assert again["comment"]["body"] != f"{MENTION} generate"
    on_pr = webhook_example("pull_request", predicate=lambda p: p["action"] == "synchronize")
    assert on_pr["action"] == "synchronize"
    with pytest.raises(LookupError):
        webhook_example("issue_comment", action="no-such-action")


# -- the validator on its own ------------------------------------------------------------


def test_validator_accepts_what_the_bot_sends(openapi_spec: OpenAPISpec) -> None:
    op = openapi_spec.validate_request(
        "POST",
        CHECK_RUNS,
        {},
        {},
        body_of({"name": "generate", "head_sha": SHA, "status": "in_progress"}),
    )
    assert op.template == "/repos/{owner}/{repo}/check-runs"
    op = openapi_spec.validate_request(
        "GET", f"/repos/{OWNER}/{REPO}/commits/{SHA}/check-runs", {"check_name": "x"}
    )
    assert op.operation_id == "checks/list-for-ref"


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "where"),
    [
        ("POST", CHECK_RUNS, {}, {"name": "g", "head_sha": SHA, "status": "bogus"}, "body.status"),
        ("POST", CHECK_RUNS, {}, {"name": "g"}, "body"),
        ("PATCH", f"{CHECK_RUNS}/1", {}, {"status": "completed"}, "body"),
        (
            "PATCH",
            f"/repos/{OWNER}/{REPO}/hooks/1/config",
            {},
            {"url": "https://example.com", "colour": "blue"},
            "body",
        ),
        ("GET", f"{CHECK_RUNS}/not-a-number", {}, None, "path.check_run_id"),
        ("GET", f"/repos/{OWNER}/{REPO}/commits/{SHA}/check-runs", {"bogus": "1"}, None, "query"),
        ("GET", f"/repos/{OWNER}/{REPO}/pulls/1/files", {"per_page": "ten"}, None, "query"),
        (
            "POST",
            f"/repos/{OWNER}/{REPO}/issues/comments/1/reactions",
            {},
            {"content": "smile"},
            "body",
        ),
    ],
)
def test_validator_rejects_what_github_would(
    openapi_spec: OpenAPISpec,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    where: str,
) -> None:
    with pytest.raises(SpecViolation) as caught:
        openapi_spec.validate_request(
            method, path, query, {}, None if body is None else body_of(body)
        )
    assert caught.value.where.startswith(where)
    assert caught.value.operation.startswith(method)
    assert str(caught.value).startswith(f"{method} /repos/{{owner}}/{{repo}}/")


def test_validator_rejects_unknown_endpoints_and_methods(openapi_spec: OpenAPISpec) -> None:
    with pytest.raises(SpecViolation, match="no such endpoint"):
        openapi_spec.match("GET", "/repos/o/r/no-such-thing")
    with pytest.raises(SpecViolation, match="not allowed"):
        openapi_spec.match("DELETE", "/repos/o/r/pulls/1")


def test_router_prefers_literal_segments_and_keeps_slashes_in_paths(
    openapi_spec: OpenAPISpec,
) -> None:
    op = openapi_spec.match("GET", "/repos/o/r/issues/comments/5")
    assert op.template == "/repos/{owner}/{repo}/issues/comments/{comment_id}"
    op = openapi_spec.match("GET", "/repos/o/r/contents/compositional_skills/a%20b/qna.yaml")
    assert op.path_params("/repos/o/r/contents/compositional_skills/a%20b/qna.yaml")["path"] == (
        "compositional_skills/a b/qna.yaml"
    )


def test_spec_is_parsed_once_per_file(testdata: TestDataPaths, openapi_spec: OpenAPISpec) -> None:
    assert OpenAPISpec.load(testdata.openapi) is openapi_spec


def test_response_validation_accepts_null_conclusion_and_rejects_bad_bodies(
    openapi_spec: OpenAPISpec,
) -> None:
    op = openapi_spec.match("GET", f"{CHECK_RUNS}/1")
    run = openapi_spec.example("check-run")
    run.update(status="in_progress", conclusion=None, completed_at=None)
    openapi_spec.validate_response(op, 200, run)
    run["status"] = "bogus"
    with pytest.raises(SpecViolation, match=r"response 200\.status"):
        openapi_spec.validate_response(op, 200, run)
    with pytest.raises(SpecViolation, match="status not documented"):
        openapi_spec.validate_response(op, 418, {})


# -- app authentication ------------------------------------------------------------------


async def test_installation_token_flow(
    session: aiohttp.ClientSession, github: GitHubEmulator, github_app_key: AppKey
) -> None:
    github.add_pull(OWNER, REPO, 7, head_sha=SHA, head_ref="skill")
    app_api = client(session, github, None)
    token = await gidgethub.apps.get_installation_access_token(
        app_api,
        installation_id="99",
        app_id=str(github_app_key.app_id),
        private_key=github_app_key.private_key_pem,
    )
    assert token["token"].startswith("ghs_")
    assert token["expires_at"].endswith("Z")
    assert github.tokens[99] == [token["token"]]
    pull = await client(session, github, token["token"]).getitem(
        "/repos/{owner}/{repo}/pulls/{number}", {"owner": OWNER, "repo": REPO, "number": 7}
    )
    assert pull["head"]["sha"] == SHA
    call = github.calls_matching("POST", "/app/installations/{installation_id}/access_tokens")[0]
    assert call.status == 201


def _jwt(key: AppKey, *, iss: Any = None, lifetime: int = 540) -> str:
    now = int(time.time()) - 30
    claims = {"iat": now, "exp": now + lifetime, "iss": str(iss or key.app_id)}
    return jwt.encode(claims, key.private_key_pem, algorithm="RS256")


@pytest.mark.parametrize("problem", ["other-key", "wrong-iss", "too-long", "not-a-jwt"])
async def test_bad_jwt_is_refused(
    session: aiohttp.ClientSession, github: GitHubEmulator, github_app_key: AppKey, problem: str
) -> None:
    if problem == "other-key":
        token = _jwt(generate_app_key(github_app_key.app_id))
    elif problem == "wrong-iss":
        token = _jwt(github_app_key, iss=1)
    elif problem == "too-long":
        token = _jwt(github_app_key, lifetime=3600)
    else:
        token = "garbage"
    with pytest.raises(gidgethub.BadRequest) as caught:
        await client(session, github, None).post(
            "/app/installations/1/access_tokens", data=b"", jwt=token
        )
    assert caught.value.status_code == 401
    assert github.tokens == {}


async def test_unknown_or_expired_token_is_refused(
    session: aiohttp.ClientSession, github: GitHubEmulator, api: GitHubAPI
) -> None:
    github.add_pull(OWNER, REPO, 1, head_sha=SHA, head_ref="x")
    with pytest.raises(gidgethub.BadRequest) as caught:
        await client(session, github, "ghs_nope").getitem(f"/repos/{OWNER}/{REPO}/pulls/1")
    assert caught.value.status_code == 401
    await api.getitem(f"/repos/{OWNER}/{REPO}/pulls/1")
    github.expire_tokens()
    with pytest.raises(gidgethub.BadRequest):
        await api.getitem(f"/repos/{OWNER}/{REPO}/pulls/1")


# -- spec violations over HTTP -----------------------------------------------------------


async def test_violations_are_recorded_and_answered_422(
    github: GitHubEmulator, api: GitHubAPI
) -> None:
    with pytest.raises(gidgethub.BadRequest) as caught:
        await api.post(CHECK_RUNS, data={"name": "g", "head_sha": SHA, "status": "bogus"})
    assert caught.value.status_code == 422
    with pytest.raises(gidgethub.BadRequest):
        await api.patch(f"/repos/{OWNER}/{REPO}/hooks/1/config", data={"colour": "blue"})
    with pytest.raises(gidgethub.BadRequest):
        await api.getitem(f"{CHECK_RUNS}/abc")
    with pytest.raises(gidgethub.BadRequest):
        await api.getitem(f"/repos/{OWNER}/{REPO}/no-such-endpoint")
    violations = github.take_violations()
    assert len(violations) == 4
    assert "body.status" in violations[0] and "bogus" in violations[0]
    assert "colour" in violations[1]
    assert "path.check_run_id" in violations[2]
    assert "no such endpoint" in violations[3]
    assert [c.status for c in github.calls] == [422] * 4
    assert github.check_runs(OWNER, REPO) == []


# -- check runs ---------------------------------------------------------------------------


async def test_check_run_round_trip(github: GitHubEmulator, api: GitHubAPI) -> None:
    github.add_pull(OWNER, REPO, 3, head_sha=SHA, head_ref="skill")
    created = await api.post(
        CHECK_RUNS,
        data={"name": "instruct-lab-bot/generate", "head_sha": SHA, "status": "queued"},
    )
    assert created["status"] == "queued" and created["conclusion"] is None
    assert created["pull_requests"][0]["number"] == 3
    assert created["app"]["id"] == github.app_id
    url = f"{CHECK_RUNS}/{created['id']}"
    progress = {"title": "Generating", "summary": "40% done"}
    await api.patch(url, data={"status": "in_progress", "output": progress})
    done = await api.patch(
        url,
        data={
            "conclusion": "success",
            "output": {"title": "Done", "summary": "ok", "text": "details"},
        },
    )
    assert done["status"] == "completed" and done["completed_at"]
    fetched = await api.getitem(url)
    assert fetched == done
    assert fetched["output"]["summary"] == "ok"
    history = github.check_run_history(created["id"])
    assert [h.get("status") for h in history] == ["queued", "in_progress", None]
    assert history[2]["conclusion"] == "success"
    listed = await api.getitem(
        f"/repos/{OWNER}/{REPO}/commits/{SHA}/check-runs",
        {},
    )
    assert listed["total_count"] == 1
    by_branch = await api.getitem(
        f"/repos/{OWNER}/{REPO}/commits/skill/check-runs?check_name=instruct-lab-bot/generate"
    )
    assert by_branch["check_runs"][0]["id"] == created["id"]
    none = await api.getitem(f"/repos/{OWNER}/{REPO}/commits/{SHA}/check-runs?status=in_progress")
    assert none["total_count"] == 0
    assert github.check_runs(OWNER, REPO, head_sha=SHA)[0]["conclusion"] == "success"


async def test_check_run_limits(github: GitHubEmulator, api: GitHubAPI) -> None:
    at_cap = {"title": "t", "summary": "s" * 65535, "text": "t" * 65535}
    run = await api.post(CHECK_RUNS, data={"name": "g", "head_sha": SHA, "output": at_cap})
    assert len(run["output"]["summary"]) == 65535
    url = f"{CHECK_RUNS}/{run['id']}"
    for bad in (
        {"output": {"title": "t", "summary": "s" * 65536}},
        {"output": {"title": "t", "summary": "s", "text": "t" * 65536}},
        {"output": {"summary": "no title"}},
        {"status": "completed"},
    ):
        with pytest.raises(gidgethub.BadRequest) as caught:
            await api.patch(url, data=bad)
        assert caught.value.status_code == 422
    assert len(github.take_violations()) == 4
    assert len(github.check_run_history(run["id"])) == 1
    assert github.check_run(run["id"])["status"] == "queued"


# -- comments and reactions ---------------------------------------------------------------


async def test_comments_are_paginated_and_capped(
    session: aiohttp.ClientSession, github: GitHubEmulator, api: GitHubAPI
) -> None:
    github.add_pull(OWNER, REPO, 5, head_sha=SHA, head_ref="skill")
    url = f"/repos/{OWNER}/{REPO}/issues/5/comments"
    for i in range(35):
        await api.post(url, data={"body": f"comment {i}"})
    seen = [c["body"] async for c in api.getiter(url + "?per_page=10")]
    assert seen == [f"comment {i}" for i in range(35)]
    assert (
        len(github.calls_matching("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"))
        == 4
    )
    _, headers, page = await raw_request(session, github, "GET", f"{url}?per_page=10&page=2")
    assert [c["body"] for c in page] == [f"comment {i}" for i in range(10, 20)]
    link = headers["Link"]
    assert 'page=3>; rel="next"' in link and 'page=4>; rel="last"' in link
    assert 'page=1>; rel="prev"' in link
    comments = github.comments(OWNER, REPO, 5)
    assert comments[0]["user"] == comments[0]["user"] | {
        "login": "instruct-lab-bot[bot]",
        "type": "Bot",
    }
    edited = await api.patch(
        f"/repos/{OWNER}/{REPO}/issues/comments/{comments[0]['id']}", data={"body": "x" * 65536}
    )
    assert len(edited["body"]) == 65536
    with pytest.raises(gidgethub.BadRequest) as caught:
        await api.post(url, data={"body": "x" * 65537})
    assert caught.value.status_code == 422
    assert github.take_violations() == [
        "GitHub rule: IssueComment.body: Body is too long (maximum is 65536 characters)"
    ]
    with pytest.raises(gidgethub.BadRequest) as caught:
        await api.post(f"/repos/{OWNER}/{REPO}/issues/404/comments", data={"body": "hi"})
    assert caught.value.status_code == 404


async def test_reactions(
    session: aiohttp.ClientSession, github: GitHubEmulator, api: GitHubAPI
) -> None:
    github.add_pull(OWNER, REPO, 5, head_sha=SHA, head_ref="skill")
    command = github.add_comment(OWNER, REPO, 5, f"{MENTION} generate")
    url = f"/repos/{OWNER}/{REPO}/issues/comments/{command['id']}/reactions"
    status, _, first = await raw_request(session, github, "POST", url, {"content": "eyes"})
    assert status == 201
    status, _, again = await raw_request(session, github, "POST", url, {"content": "eyes"})
    assert (status, again["id"]) == (200, first["id"])
    assert [r["id"] for r in github.reactions(OWNER, REPO, command["id"])] == [first["id"]]
    listed = [r async for r in api.getiter(url)]
    assert listed[0]["content"] == "eyes"
    comment = await api.getitem(f"/repos/{OWNER}/{REPO}/issues/comments/{command['id']}")
    assert comment["reactions"]["eyes"] == 1
    await api.delete(f"{url}/{first['id']}")
    assert github.reactions(OWNER, REPO, command["id"]) == []


# -- every served endpoint answers schema-shaped bodies ----------------------------------


async def test_every_served_endpoint_answers_schema_shaped_bodies(
    session: aiohttp.ClientSession,
    github: GitHubEmulator,
    api: GitHubAPI,
    github_app_key: AppKey,
    openapi_spec: OpenAPISpec,
) -> None:
    gh = github
    gh.add_pull(OWNER, REPO, 9, head_sha=SHA, head_ref="skill", files=["a/qna.yaml", "b.md"])
    gh.set_permission(OWNER, REPO, "maintainer", "maintain")
    gh.add_team_member(OWNER, "triagers", "maintainer")
    gh.add_org_member(OWNER, "maintainer")
    gh.set_content(OWNER, REPO, ".github/instruct-lab-bot.yaml", "enabled: true\n")
    delivery = gh.add_hook_delivery("abc-123", event="issue_comment", action="created")
    app_api = GitHubAPI(
        session,
        "instruct-lab-bot-tests",
        base_url=gh.url,
        app_id=str(github_app_key.app_id),
        private_key=github_app_key.private_key_pem,
    )
    repo = f"/repos/{OWNER}/{REPO}"
    await app_api.getitem("/app")
    await gidgethub.apps.get_installation_access_token(
        app_api,
        installation_id="1",
        app_id=str(github_app_key.app_id),
        private_key=github_app_key.private_key_pem,
    )
    await app_api.getitem(f"{repo}/installation")
    [d async for d in app_api.getiter("/app/hook/deliveries")]
    await app_api.getitem(f"/app/hook/deliveries/{delivery['id']}")
    await app_api.post(f"/app/hook/deliveries/{delivery['id']}/attempts", data=b"")
    assert gh.redeliveries == [delivery["id"]]
    await api.getitem("/installation/repositories")
    await api.getitem("/rate_limit")
    await api.getitem(f"{repo}/pulls/9")
    [f async for f in api.getiter(f"{repo}/pulls/9/files")]
    run = await api.post(f"{repo}/check-runs", data={"name": "g", "head_sha": SHA})
    await api.patch(f"{repo}/check-runs/{run['id']}", data={"status": "in_progress"})
    await api.getitem(f"{repo}/check-runs/{run['id']}")
    await api.getitem(f"{repo}/commits/{SHA}/check-runs")
    comment = await api.post(f"{repo}/issues/9/comments", data={"body": "hello"})
    [c async for c in api.getiter(f"{repo}/issues/9/comments")]
    await api.getitem(f"{repo}/issues/comments/{comment['id']}")
    await api.patch(f"{repo}/issues/comments/{comment['id']}", data={"body": "edited"})
    reaction = await api.post(
        f"{repo}/issues/comments/{comment['id']}/reactions", data={"content": "rocket"}
    )
    [r async for r in api.getiter(f"{repo}/issues/comments/{comment['id']}/reactions")]
    await api.delete(f"{repo}/issues/comments/{comment['id']}/reactions/{reaction['id']}")
    permission = await api.getitem(f"{repo}/collaborators/maintainer/permission")
    assert (permission["permission"], permission["role_name"]) == ("write", "maintain")
    membership = await api.getitem(f"/orgs/{OWNER}/teams/triagers/memberships/maintainer")
    assert membership["state"] == "active"
    assert await api.getstatus(f"/orgs/{OWNER}/members/maintainer") == 204
    assert await api.getstatus(f"/orgs/{OWNER}/members/stranger") == 404
    content = await api.getitem(f"{repo}/contents/.github/instruct-lab-bot.yaml")
    assert content["encoding"] == "base64"
    gh.set_link(OWNER, REPO, "a/link.yaml", ref=SHA, target="../../outside")
    gh.set_link(OWNER, REPO, "a/sub", ref=SHA, submodule_url="https://github.com/o/r.git")
    gh.set_content(OWNER, REPO, "a/big.yaml", b"#" * (1024 * 1024 + 1), ref=SHA)
    link = await api.getitem(f"{repo}/contents/a/link.yaml?ref={SHA}")
    assert (link["type"], link["target"]) == ("symlink", "../../outside")
    submodule = await api.getitem(f"{repo}/contents/a/sub?ref={SHA}")
    assert submodule["type"] == "submodule"
    big = await api.getitem(f"{repo}/contents/a/big.yaml?ref={SHA}")
    assert (big["encoding"], big["content"], big["size"]) == ("none", "", 1024 * 1024 + 1)
    compared = await api.getitem(f"{repo}/compare/main...{SHA}?per_page=1&page=1")
    assert [f["filename"] for f in compared["files"]] == ["a/qna.yaml", "b.md"]
    assert compared["commits"][0]["sha"] == SHA
    assert await api.getstatus(f"{repo}/compare/main...{'f' * 40}") == 404
    await api.post(f"{repo}/issues/9/labels", data={"labels": ["generating"]})
    await api.delete(f"{repo}/issues/9/labels/generating")
    await api.post(f"{repo}/statuses/{SHA}", data={"state": "pending", "context": "bot"})
    gh.set_branch(OWNER, REPO, "release/1.x", SHA)
    ref = await api.getitem(f"{repo}/git/ref/heads/release/1.x")
    assert (ref["ref"], ref["object"]["sha"]) == ("refs/heads/release/1.x", SHA)
    assert await api.getstatus(f"{repo}/git/ref/heads/nowhere") == 404

    # last: the conversion makes the emulator answer as the new App (another key)
    manifest = app_manifest.manifest(
        name="b",
        public_url="https://b.test",
        webhook_url="https://b.test/h",
        redirect_url="http://127.0.0.1:1/callback",
        teams=True,
    )
    _, location = gh.manifests.submit(json.dumps(manifest), "s" * 43)
    code = parse_qs(urlsplit(location).query)["code"][0]
    created = await api.post(f"/app-manifests/{code}/conversions", data=b"")
    assert created["permissions"] == manifest["default_permissions"] and "pem" in created
    with pytest.raises(gidgethub.BadRequest):  # a code converts once
        await api.post(f"/app-manifests/{code}/conversions", data=b"")

    served = {(c.method, c.route) for c in gh.calls if c.status is not None and c.status < 300}
    assert served >= set(gh._handlers), set(gh._handlers) - served
    assert gh.emulator_errors == []
    # and once more by hand, for a body gidgethub already decoded
    op = openapi_spec.match("GET", f"{repo}/pulls/9")
    openapi_spec.validate_response(op, 200, await api.getitem(f"{repo}/pulls/9"))


async def test_unimplemented_endpoints_answer_404(github: GitHubEmulator, api: GitHubAPI) -> None:
    with pytest.raises(gidgethub.BadRequest) as caught:
        await api.getitem(f"/repos/{OWNER}/{REPO}/branches/main")
    assert caught.value.status_code == 404
    assert github.unimplemented == ["GET /repos/{owner}/{repo}/branches/{branch}"]


# -- rate limits and failure injection ---------------------------------------------------


async def test_rate_limit_headers_and_exhaustion(github: GitHubEmulator, api: GitHubAPI) -> None:
    github.add_pull(OWNER, REPO, 1, head_sha=SHA, head_ref="x")
    await api.getitem(f"/repos/{OWNER}/{REPO}/pulls/1")
    assert api.rate_limit is not None and api.rate_limit.limit == 5000
    assert api.rate_limit.remaining == 4999
    github.set_rate_limit(remaining=0)
    with pytest.raises(gidgethub.RateLimitExceeded):
        await api.getitem(f"/repos/{OWNER}/{REPO}/pulls/1")


async def test_injected_statuses(github: GitHubEmulator, api: GitHubAPI) -> None:
    github.add_pull(OWNER, REPO, 1, head_sha=SHA, head_ref="x")
    route = "/repos/{owner}/{repo}/pulls/{pull_number}"
    github.inject("GET", route, status=502, times=2)
    for _ in range(2):
        with pytest.raises(gidgethub.GitHubBroken):
            await api.getitem(f"/repos/{OWNER}/{REPO}/pulls/1")
    assert (await api.getitem(f"/repos/{OWNER}/{REPO}/pulls/1"))["number"] == 1
    github.inject(
        "POST",
        CHECK_RUNS,
        status=403,
        headers={"retry-after": "7"},
        body={"message": "You have exceeded a secondary rate limit."},
    )
    with pytest.raises(gidgethub.BadRequest) as caught:
        await api.post(CHECK_RUNS, data={"name": "g", "head_sha": SHA})
    assert caught.value.status_code == 403
    assert caught.value.headers["retry-after"] == "7"
    assert "secondary rate limit" in str(caught.value)
    assert [c.status for c in github.calls_matching("*", route)] == [502, 502, 200]
    assert github.check_runs(OWNER, REPO) == []


async def test_injected_delay_does_not_block_other_requests(
    github: GitHubEmulator, api: GitHubAPI
) -> None:
    github.add_pull(OWNER, REPO, 1, head_sha=SHA, head_ref="x")
    github.add_pull(OWNER, REPO, 2, head_sha=SHA, head_ref="y")
    github.inject("GET", f"/repos/{OWNER}/{REPO}/pulls/1", delay=0.5)
    slow = asyncio.create_task(api.getitem(f"/repos/{OWNER}/{REPO}/pulls/1"))
    async with asyncio.timeout(10):
        await github.wait_for_calls("GET", f"/repos/{OWNER}/{REPO}/pulls/1")
    fast = await api.getitem(f"/repos/{OWNER}/{REPO}/pulls/2")
    assert fast["number"] == 2
    assert not slow.done()
    assert (await slow)["number"] == 1
    assert [c.path.rsplit("/", 1)[1] for c in github.calls] == ["1", "2"]
    assert [c.status for c in github.calls] == [200, 200]


def test_emulator_requires_start(openapi_spec: OpenAPISpec, github_app_key: AppKey) -> None:
    gh = GitHubEmulator(openapi_spec, app_id=1, public_key_pem=github_app_key.public_key_pem)
    with pytest.raises(RuntimeError):
        _ = gh.url


async def test_close_cuts_injected_delays_short(
    session: aiohttp.ClientSession, openapi_spec: OpenAPISpec, github_app_key: AppKey
) -> None:
    gh = GitHubEmulator(openapi_spec, app_id=1, public_key_pem=github_app_key.public_key_pem)
    await gh.start()
    gh.add_pull(OWNER, REPO, 1, head_sha=SHA, head_ref="x")
    gh.inject("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", delay=600)
    slow = asyncio.create_task(
        client(session, gh, gh.issue_token()).getitem(f"/repos/{OWNER}/{REPO}/pulls/1")
    )
    async with asyncio.timeout(10):
        await gh.wait_for_calls("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
        await gh.close()
        with pytest.raises(gidgethub.GitHubBroken):
            await slow
    assert gh.calls[0].status == 503
