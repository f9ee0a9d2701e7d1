"""The full command set through the real harness: permissions, refusals, cancel, retry,
precheck, welcome, validation, supersede, close."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.refs import RepoRef
from testkit.harness import RunningBot, run_bot
from testkit.ilab_profiles import DEFAULT_VERSION as STANDIN_VERSION
from testkit.taxonomy import (
    SkillSeed,
    add_pr_commit,
    leaf_files,
    skill_qna,
)
from tests.fixtures.bot import MENTION, post_webhook, processes_with_env
from tests.fixtures.redis import events_settled
from tests.fixtures.taxonomy import PR_SKILL_DIR, TaxonomyFactory
from tests.fixtures.world import World, publish_pull, push_head

OWNER, REPO, PR = "instructlab", "taxonomy", 7
RESTRICTED = ("generate", "precheck", "retry", "cancel")
OPEN = ("help", "status", "links")


async def comment_as(world: World, bot: RunningBot, login: str, body: str) -> int:
    seeded = world.gh.add_comment(OWNER, REPO, PR, body, user_login=login)
    payload = world.payload(
        body, installation_id=world.gh.installation_id, comment_id=seeded["id"], login=login
    )
    async with aiohttp.ClientSession() as session:
        status, _ = await post_webhook(session, bot.webhook_url, "issue_comment", payload)
    assert status == 202
    return int(seeded["id"])


def replies(world: World, after: int = 0) -> list[str]:
    return [c["body"] for c in world.bot_comments() if int(c["id"]) > after]


async def wait_replies(world: World, count: int, after: int = 0, timeout: float = 30) -> list[str]:
    async with asyncio.timeout(timeout):
        while len(replies(world, after)) < count:
            await asyncio.sleep(0.05)
    return replies(world, after)


async def settled(world: World, timeout: float = 30) -> None:
    """Every stored event has been dispatched and acknowledged."""
    async with asyncio.timeout(timeout):
        await events_settled(world.settings.redis_url)


async def jobs(world: World) -> list[Any]:
    queue = Queue.from_url(world.settings.redis_url)
    try:
        return await queue.get_jobs(await queue.pr_job_ids(RepoRef(OWNER, REPO).pull(PR)))
    finally:
        await queue.aclose()


async def event(
    bot: RunningBot, name: str, payload: dict[str, Any], delivery: str | None = None
) -> int:
    async with aiohttp.ClientSession() as session:
        status, _ = await post_webhook(session, bot.webhook_url, name, payload, delivery=delivery)
    return status


# -- permissions --------------------------------------------------------------------------

MATRIX = {  # login → (role on the repo, member of instructlab/reviewers)
    "admin-alice": ("admin", False),
    "maintainer-mo": ("maintain", False),
    "writer-wu": ("write", False),
    "triager-tim": ("triage", False),
    "reader-rae": ("read", False),
    "outsider-oz": ("none", False),
    "reviewer-rey": ("read", True),
    "contributor": ("read", False),  # the PR's author
}
EXPECTED_ALLOWED = {"admin-alice", "maintainer-mo", "writer-wu", "reviewer-rey"}


async def test_permission_matrix(world: World) -> None:
    settings = replace(
        world.settings, allowed_teams=("instructlab/reviewers",), min_permission="write"
    )
    for login, (role, member) in MATRIX.items():
        world.gh.set_permission(OWNER, REPO, login, role)
        if member:
            world.gh.add_team_member("instructlab", "reviewers", login)
    world.gh.add_team_member("instructlab", "reviewers", "outsider-oz", state="pending")
    table: dict[tuple[str, str], bool] = {}
    async with run_bot(settings, workers=0) as bot:
        for login in MATRIX:
            for command in (*OPEN, *RESTRICTED):
                last = max([int(c["id"]) for c in world.gh.comments(OWNER, REPO, PR)] or [0])
                await comment_as(world, bot, login, f"{MENTION} {command}")
                await settled(world)
                denied = [r for r in replies(world, last) if r.startswith("Sorry")]
                table[(login, command)] = not denied
    print(
        "\n"
        + "\n".join(
            f"{login:15} "
            + " ".join(f"{c}:{'yes' if table[(login, c)] else 'no'}" for c in (*OPEN, *RESTRICTED))
            for login in MATRIX
        )
    )
    for (login, command), allowed in table.items():
        expected = command in OPEN or login in EXPECTED_ALLOWED
        assert allowed == expected, (login, command)


async def test_bots_are_never_obeyed(world: World) -> None:
    async with run_bot(world.settings, workers=0) as bot:
        payload = world.payload(installation_id=world.gh.installation_id)
        payload["comment"]["user"]["type"] = "Bot"
        payload["comment"]["user"]["login"] = "helper[bot]"
        assert await event(bot, "issue_comment", payload) == 202
        await asyncio.sleep(1.0)
    assert world.bot_comments() == [] and await jobs(world) == []


# -- refusals -----------------------------------------------------------------------------


async def test_help_unknown_and_capped_commands(world: World) -> None:
    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    async with run_bot(world.settings, workers=0) as bot:
        await comment_as(world, bot, "writer-wu", f"{MENTION} help")
        (help_reply,) = await wait_replies(world, 1)
        await comment_as(world, bot, "writer-wu", f"{MENTION} generat")
        unknown = (await wait_replies(world, 2))[-1]
        body = "\n".join([f"{MENTION} status"] * 40)
        await comment_as(world, bot, "writer-wu", body)
        everything = await wait_replies(world, 13)
    assert f"`{MENTION} precheck`" in help_reply and "restricted" in help_reply
    assert f"Did you mean `{MENTION} generate`?" in unknown
    assert any("more than 10 commands" in r for r in everything)
    assert await jobs(world) == []


async def test_closed_pr_plain_issue_and_no_taxonomy_change(
    world: World, taxonomy_remote: TaxonomyFactory
) -> None:
    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    async with run_bot(world.settings, workers=0) as bot:
        world.gh.update_pull(OWNER, REPO, PR, state="closed")
        await comment_as(world, bot, "writer-wu", f"{MENTION} generate")
        (closed,) = await wait_replies(world, 1)
        world.gh.update_pull(OWNER, REPO, PR, state="open", files=["README.md"])
        await comment_as(world, bot, "writer-wu", f"{MENTION} generate")
        no_change = (await wait_replies(world, 2))[-1]
        issue = world.payload(installation_id=world.gh.installation_id)
        issue["issue"].pop("pull_request")
        assert await event(bot, "issue_comment", issue) == 202
        plain = (await wait_replies(world, 3))[-1]
    assert "closed" in closed and "changes no `qna.yaml`" in no_change
    assert "pull requests only" in plain
    assert await jobs(world) == []


async def test_invalid_qna_is_annotated_and_refused(
    world: World, taxonomy_remote: TaxonomyFactory
) -> None:
    bad = skill_qna([SkillSeed("What is 2+2?", "4")] * 2).replace("created_by", "creatd_by")
    remote = taxonomy_remote(repo="broken", pr_files=leaf_files(PR_SKILL_DIR, bad))
    publish_pull(world.gh, remote)
    world.gh.set_permission(OWNER, "broken", "writer-wu", "write")
    async with run_bot(world.settings, workers=0) as bot:
        seeded = world.gh.add_comment(
            OWNER, "broken", 7, f"{MENTION} generate", user_login="writer-wu"
        )
        payload = world.payload(
            installation_id=world.gh.installation_id,
            repo="broken",
            comment_id=seeded["id"],
            login="writer-wu",
        )
        assert await event(bot, "issue_comment", payload) == 202
        async with asyncio.timeout(30):
            while not [
                c for c in world.gh.comments(OWNER, "broken", 7) if c["user"]["type"] == "Bot"
            ]:
                await asyncio.sleep(0.05)
    (reply,) = [
        c["body"] for c in world.gh.comments(OWNER, "broken", 7) if c["user"]["type"] == "Bot"
    ]
    assert "was not run" in reply and "validation check run" in reply
    (run,) = world.gh.check_runs(OWNER, "broken", name="instruct-lab-bot/validate")
    assert run["conclusion"] == "failure"
    annotations = [
        a
        for h in world.gh.check_run_history(run["id"])
        for a in (h.get("output") or {}).get("annotations", [])
    ]
    assert annotations and all(a["path"].endswith("qna.yaml") for a in annotations)
    assert all(a["start_line"] >= 1 for a in annotations)


async def test_required_labels(world: World) -> None:
    settings = replace(world.settings, required_labels=("skill", "knowledge"))
    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    async with run_bot(settings, workers=0) as bot:
        await comment_as(world, bot, "writer-wu", f"{MENTION} generate")
        (reply,) = await wait_replies(world, 1)
    assert "`skill`" in reply and "`knowledge`" in reply
    (run,) = world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/generate")
    assert run["conclusion"] == "action_required"
    assert await jobs(world) == []


# -- cancel, retry, status ----------------------------------------------------------------


async def test_cancel_running_job_kills_its_process_group(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replace(world.settings, heartbeat_interval=0.3, lease_timeout=5.0, kill_grace=1.0)
    monkeypatch.setenv("ILAB_STANDIN_MODE", "hang")
    monkeypatch.setenv("ILAB_STANDIN_CHILD", "1")
    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    async with run_bot(settings) as bot:
        await comment_as(world, bot, "writer-wu", f"{MENTION} generate")
        async with asyncio.timeout(30):
            while not world.record.entries():
                await asyncio.sleep(0.05)
        await comment_as(world, bot, "writer-wu", f"{MENTION} cancel")
        result = await world.result_comment()
        await comment_as(world, bot, "writer-wu", f"{MENTION} status")
        status = (await wait_replies(world, 3))[-1]
    (invocation,) = world.record.entries()
    assert invocation["child_pid"]  # it did start a helper
    # pids inside the sandbox are its own namespace's: find survivors by their environment
    assert not processes_with_env(str(world.record.path)), "ilab or its helper survived"
    run = world.check_run()
    assert run["conclusion"] == "cancelled"
    assert "writer-wu" in result["body"] and "cancelled" in result["body"]
    (job,) = await jobs(world)
    assert job.state is State.CANCELLED
    assert "| cancelled |" in status


async def test_retry_after_failure_and_check_run_rerun(
    world: World, monkeypatch: pytest.MonkeyPatch, webhook_example: Callable[..., Any]
) -> None:
    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    monkeypatch.setenv("ILAB_STANDIN_MODE", "fail")
    async with run_bot(world.settings) as bot:
        await comment_as(world, bot, "writer-wu", f"{MENTION} generate")
        await world.result_comment()
        monkeypatch.setenv("ILAB_STANDIN_MODE", "ok")
        await comment_as(world, bot, "writer-wu", f"{MENTION} retry")
        async with asyncio.timeout(60):
            while len(world.result_comments()) < 2:
                await asyncio.sleep(0.05)
        # GitHub's "Re-run" button on the failed check run does the same
        failed = [r for r in world.gh.check_runs(OWNER, REPO) if r["conclusion"] == "failure"]
        rerun = webhook_example("check_run", "rerequested")
        rerun["check_run"].update(
            id=failed[0]["id"],
            name="instruct-lab-bot/generate",
            external_id=failed[0]["external_id"],
            head_sha=world.remote.head_sha,
        )
        rerun["installation"] = {"id": world.gh.installation_id}
        rerun["repository"].update(name=REPO, full_name=f"{OWNER}/{REPO}")
        rerun["repository"]["owner"]["login"] = OWNER
        rerun["sender"]["login"] = "writer-wu"
        assert await event(bot, "check_run", rerun) == 202
        async with asyncio.timeout(60):
            while len(world.result_comments()) < 3:
                await asyncio.sleep(0.05)
    found = await jobs(world)
    states = sorted(str(j.state) for j in found)
    assert states == ["failed", "succeeded", "succeeded"]
    # what the result reply shows: the worker's ilab and the generate run's pipeline/teacher
    assert {(j.ilab_version, j.pipeline, j.teacher_model) for j in found} == {
        (STANDIN_VERSION, "simple", "")
    }


# -- pull request events -----------------------------------------------------------------


def pr_event(world: World, action: str, example: dict[str, Any], **pull: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(json.dumps(example))
    payload["action"] = action
    payload["installation"] = {"id": world.gh.installation_id}
    payload["repository"].update(name=REPO, full_name=f"{OWNER}/{REPO}")
    payload["repository"]["owner"]["login"] = OWNER
    payload["pull_request"].update(number=PR, state="open", labels=[])
    payload["pull_request"]["head"].update(sha=world.remote.head_sha, ref=world.remote.head_ref)
    payload["pull_request"]["base"]["ref"] = "main"
    payload["pull_request"]["user"]["login"] = "contributor"
    payload["pull_request"].update(pull)
    return payload


async def test_welcome_once_and_validation_on_open(
    world: World, webhook_example: Callable[..., Any]
) -> None:
    opened = pr_event(world, "opened", webhook_example("pull_request", "opened"))
    async with run_bot(world.settings, workers=0) as bot:
        delivery = str(uuid.uuid4())
        assert await event(bot, "pull_request", opened, delivery=delivery) == 202
        assert await event(bot, "pull_request", opened, delivery=delivery) == 200
        assert await event(bot, "pull_request", opened) == 202  # GitHub's redelivery: new id
        reopened = dict(opened, action="reopened")
        assert await event(bot, "pull_request", reopened) == 202
        async with asyncio.timeout(30):
            while not world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/validate"):
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
    welcomes = [b for b in replies(world) if "Thanks for the contribution" in b]
    assert len(welcomes) == 1 and "@contributor" in welcomes[0]
    runs = world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/validate")
    assert runs[0]["conclusion"] == "success"


async def test_new_push_supersedes_and_close_cancels(
    world: World, webhook_example: Callable[..., Any]
) -> None:
    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    async with run_bot(world.settings, workers=0) as bot:  # no worker: jobs stay queued
        await comment_as(world, bot, "writer-wu", f"{MENTION} generate")
        async with asyncio.timeout(30):
            while not await jobs(world):
                await asyncio.sleep(0.05)
        new_sha = add_pr_commit(world.remote, PR, {"README.md": "# changed\n"})
        push_head(world.gh, world.remote, new_sha, [*world.remote.changed_files, "README.md"])
        pushed = pr_event(world, "synchronize", webhook_example("pull_request", "synchronize"))
        pushed["pull_request"]["head"]["sha"] = new_sha
        assert await event(bot, "pull_request", pushed) == 202
        async with asyncio.timeout(30):
            while (await jobs(world))[0].state is State.QUEUED:
                await asyncio.sleep(0.05)
        await comment_as(world, bot, "writer-wu", f"{MENTION} generate")
        async with asyncio.timeout(30):
            while len(await jobs(world)) < 2:
                await asyncio.sleep(0.05)
        closed = pr_event(world, "closed", webhook_example("pull_request", "closed"))
        closed["pull_request"]["head"]["sha"] = new_sha
        assert await event(bot, "pull_request", closed) == 202
        async with asyncio.timeout(30):
            while any(j.state is State.QUEUED for j in await jobs(world)):
                await asyncio.sleep(0.05)
    states = {j.head_sha: j.state for j in await jobs(world)}
    assert states == {world.remote.head_sha: State.SUPERSEDED, new_sha: State.CANCELLED}
    titles = [
        r["output"]["title"]
        for r in world.gh.check_runs(OWNER, REPO)
        if r["name"] == "instruct-lab-bot/generate"
    ]
    assert "Superseded by a new push" in titles


# -- precheck -----------------------------------------------------------------------------

PRECHECK_SEEDS = [
    SkillSeed(question="--help", answer="Prints help."),
    SkillSeed(question="-x is not a flag here", answer="Right."),
    SkillSeed(question="Quote \"this\" and 'that'", answer="Quoted."),
    SkillSeed(question="Line one\nline two | pipe", answer="Two lines."),
    SkillSeed(question="Ünïcödé 日本語 $(touch /tmp/ilab-bot-precheck-pwned)", answer="Safe."),
]


async def test_precheck_asks_each_question_intact(
    world: World, taxonomy_remote: TaxonomyFactory
) -> None:
    remote = taxonomy_remote(
        repo="taxonomy", pr_files=leaf_files(PR_SKILL_DIR, skill_qna(PRECHECK_SEEDS))
    )
    world.remote = remote
    publish_pull(world.gh, remote)
    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    pwned = Path("/tmp/ilab-bot-precheck-pwned")
    pwned.unlink(missing_ok=True)
    async with run_bot(world.settings) as bot:
        await comment_as(world, bot, "writer-wu", f"{MENTION} precheck")
        comment = await world.result_comment()
    questions = [e["question"] for e in world.record.entries() if e.get("command") == "model chat"]
    assert sorted(questions) == sorted(s.question for s in PRECHECK_SEEDS)
    assert not pwned.exists()
    body = comment["body"]
    assert "| Question | Contributor's answer | Model's answer |" in body
    assert body.count("This is a stand-in answer to:") == len(PRECHECK_SEEDS)
    assert "precheck.yaml" in body and "precheck.html" in body
    (run,) = world.gh.check_runs(OWNER, REPO, name="instruct-lab-bot/precheck")
    assert run["conclusion"] == "success"
    assert [(j.ilab_version, j.pipeline) for j in await jobs(world)] == [(STANDIN_VERSION, "")]


async def test_the_former_name_is_obeyed_with_a_one_line_note(world: World) -> None:
    former = f"@{world.settings.legacy_usernames[0]}"
    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    async with run_bot(world.settings, workers=0) as bot:
        await comment_as(world, bot, "writer-wu", f"{former} help")
        note, help_reply = await wait_replies(world, 2)
    assert "\n" not in note and f"`{MENTION}`" in note and f"`{former}`" in note
    assert f"`{MENTION} precheck`" in help_reply  # obeyed, and told the new name

    world.gh.set_permission(OWNER, REPO, "writer-wu", "write")
    without = replace(world.settings, legacy_usernames=())
    async with run_bot(without, workers=0) as bot:
        before = max((int(c["id"]) for c in world.bot_comments()), default=0)
        await comment_as(world, bot, "writer-wu", f"{former} help")
        await settled(world)
    assert replies(world, before) == []  # no alias: the old name is just text
