"""`serve`, `chat <question>` and `serve stop` through the real harness: GitHub emulator, real
Redis, the server's dispatcher, the chat proxy and a real OpenAI-compatible model server
(`testkit.serving_standin`); closing the PR removes the model and its links answer 410."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import aiohttp

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.model_manifest import MODEL_DIR, ModelFile, ModelManifest
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.services.precheck import seeds_in_text
from instruct_lab_bot.services.serving.chat_app import no_serving
from testkit.harness import run_bot
from testkit.serving_standin import StandinBackend, standin_factory
from testkit.taxonomy import file_at
from tests.fixtures.bot import MENTION
from tests.fixtures.world import World
from tests.test_commands_e2e import (
    OWNER,
    PR,
    REPO,
    comment_as,
    event,
    pr_event,
    settled,
    wait_replies,
)
from tests.test_redis_tls_acl import (  # noqa: F401 - the fixture
    ADMIN_PASSWORD,
    SecureRedis,
    password,
    secure_redis,
    tls_files,
)

PULL = RepoRef(OWNER, REPO).pull(PR)
LINK = re.compile(r"\[open the chat page\]\((?P<url>[^)]+)\)")


async def seed_train_job(world: World, artifacts: Path, queue: Queue | None = None) -> Job:
    """A succeeded train job with its model's manifest where a train job leaves it."""
    queue = queue or Queue.from_url(world.settings.redis_url)
    job = Job("train00000000000000000001", "train", world.gh.installation_id, OWNER, REPO, PR,
              "maintainer-mo", head_sha=world.remote.head_sha, base_branch="main",
              state=State.SUCCEEDED, source_job="gen00000000000000000001")  # fmt: skip
    try:
        assert (await queue.create_job(job)).status == "created"
        await queue.update_job(job.id, state=State.SUCCEEDED.value)
    finally:
        await queue.aclose()
    manifest = ModelManifest(job.id, job.source_job, "granite-7b-lab", "0.26.1",
                             (ModelFile("model.gguf", 4, "0" * 64),))  # fmt: skip
    folder = artifacts / (job.artifact_key_prefix() + MODEL_DIR)
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(manifest.to_json())
    return job


async def test_serve_chat_stop_and_close(
    world: World, tmp_path: Path, webhook_example: Callable[..., Any]
) -> None:
    backend = StandinBackend()
    bot_login = "maintainer-mo"
    async with run_bot(world.settings, workers=0, serving=standin_factory(backend)) as bot:
        await comment_as(world, bot, bot_login, f"{MENTION} serve")
        (reply,) = await wait_replies(world, 1)
        assert "no trained model" in reply and f"{MENTION} train" in reply
        train = await seed_train_job(world, tmp_path / "artifacts")

        after = await comment_as(world, bot, bot_login, f"{MENTION} serve")
        (reply,) = await wait_replies(world, 1, after)
        assert f"train job `{train.id}`" in reply and "granite-7b-lab" in reply
        assert f"{bot.url}/chat/{OWNER}/{REPO}/{PR}/v1" in reply and "curl -N" in reply
        assert "scales to zero" in reply and "serve stop" in reply
        assert "ilb-" not in reply  # the API token is never posted on the PR
        (deployed,) = backend.deployed
        assert deployed.train_job == train.id and deployed.storage_uri.endswith("/model/")
        link = LINK.search(reply)
        assert link is not None
        async with aiohttp.ClientSession() as session, session.get(link["url"]) as page:
            assert page.status == 200
            html = await page.text()
        assert train.id in html and "granite-7b-lab" in html
        questions = [
            seed.question
            for path in world.remote.changed_files
            if path.endswith("qna.yaml")
            for seed in seeds_in_text(path, file_at(world.remote, world.remote.head_sha, path))
        ]
        assert questions and escape(" ".join(questions[0].split())) in html  # one-click prompts

        after = await comment_as(world, bot, bot_login, f"{MENTION} chat What is <b>this</b>?")
        (answer,) = await wait_replies(world, 1, after)
        assert "**Question:** What is \\<b\\>this\\</b\\>?" in answer
        assert "The stand-in teacher's answer to: What is <b>this</b>?" in answer  # in a code block
        assert train.id in answer and backend.cold_starts == 1

        after = await comment_as(world, bot, bot_login, f"{MENTION} serve stop")
        (stopped,) = await wait_replies(world, 1, after)
        assert "Stopped serving" in stopped and backend.removed == [PULL]
        async with aiohttp.ClientSession() as session, session.get(link["url"]) as page:
            assert page.status == 404

        # `chat` with nothing served serves it first; closing the PR removes it
        after = await comment_as(world, bot, bot_login, f"{MENTION} chat Hello")
        (answer,) = await wait_replies(world, 1, after)
        assert "answer to: Hello" in answer and len(backend.deployed) == 2
        world.gh.update_pull(OWNER, REPO, PR, state="closed")
        closed = pr_event(world, "closed", webhook_example("pull_request", "closed"),
                          state="closed")  # fmt: skip
        assert await event(bot, "pull_request", closed) == 202
        await settled(world)
        assert await backend.list_served() == [] and backend.removed == [PULL, PULL]
        after = await comment_as(world, bot, bot_login, f"{MENTION} serve")
        (refused,) = await wait_replies(world, 1, after)
        assert "closed" in refused


async def test_serving_not_set_up_and_cluster_refusal(world: World, tmp_path: Path) -> None:
    async with run_bot(world.settings, workers=0, serving=no_serving) as bot:
        await comment_as(world, bot, "maintainer-mo", f"{MENTION} serve")
        (reply,) = await wait_replies(world, 1)
        assert "not set up" in reply and "not caused by your pull request" in reply
    await seed_train_job(world, tmp_path / "artifacts")
    backend = StandinBackend(refuse="exceeded quota: gpu (namespace ilab-serving)")
    async with run_bot(world.settings, workers=0, serving=standin_factory(backend)) as bot:
        after = await comment_as(world, bot, "maintainer-mo", f"{MENTION} serve")
        (reply,) = await wait_replies(world, 1, after)
        assert "exceeded quota" in reply and "not caused by your pull request" in reply
        after = await comment_as(world, bot, "reader-rae", f"{MENTION} chat hi")
        (denied,) = await wait_replies(world, 1, after)
        assert "answer to" not in denied


async def test_serve_and_chat_need_nothing_the_dispatchers_redis_user_lacks(
    world: World,
    secure_redis: SecureRedis,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """With `k8s/redis/users.acl` loaded: serve, chat through the page's proxy, serve stop,
    and Redis refuses the `ilab-dispatcher` user nothing."""
    settings = secure_redis.settings(world.settings, "ilab-dispatcher")
    admin_url = secure_redis.url("ilab-dispatcher").replace(
        f"ilab-dispatcher:{password('ilab-dispatcher')}", f"default:{ADMIN_PASSWORD}"
    )
    tls = tls_files(secure_redis.certs)
    await seed_train_job(world, tmp_path / "artifacts", Queue.from_url(admin_url, tls=tls))
    backend = StandinBackend()
    async with run_bot(settings, workers=0, serving=standin_factory(backend)) as bot:
        await comment_as(world, bot, "maintainer-mo", f"{MENTION} serve")
        (reply,) = await wait_replies(world, 1)
        link = LINK.search(reply)
        assert link is not None, reply
        token = link["url"].split("token=")[1]
        api = f"{bot.url}/chat/{OWNER}/{REPO}/{PR}/v1/chat/completions"
        body = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
        async with aiohttp.ClientSession() as session:
            async with session.get(link["url"]) as page:
                assert page.status == 200
            async with session.post(
                api, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as answer:
                assert answer.status == 200 and b"Hi" in await answer.read()
        after = await comment_as(world, bot, "maintainer-mo", f"{MENTION} serve stop")
        (stopped,) = await wait_replies(world, 1, after)
        assert "Stopped serving" in stopped
    with secure_redis.admin() as admin:
        denied = [(r["username"], r["reason"], r["object"]) for r in admin.acl_log()]
    assert denied == [], "\n".join(map(str, denied))
