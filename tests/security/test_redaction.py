"""Finding 7: `ilab` output went unredacted into the PR comment, the check run and `ilab.log`.

The `ilab` stand-in's `leak-secrets` mode prints each kind of secret in every way ilab prints
(log lines, a progress bar, plain output, the failure message, a precheck answer), as a tool
that came across them would. None may appear in what leaves the bot: the result comment, every
check-run payload GitHub received (the emulator records them), the uploaded `ilab.log`, the
precheck artifacts, or the status API. Every other text is redacted by the same `Redactor`.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.settings import Secret, Settings, parse_settings
from testkit.harness import run_bot
from tests.fixtures.bot import MENTION, WEBHOOK_SECRET
from tests.fixtures.world import World

STATUS_TOKEN = "status-token-" + secrets.token_hex(12)
LINK_KEY = secrets.token_hex(32)
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/" + secrets.token_hex(9)
LINK = re.compile(r"\]\((http[^)\s]+)\)")


def leaks(settings: Settings) -> dict[str, str]:
    """What the stand-in prints (the form) → the part that must never show (the value)."""
    pem_line = next(
        line for line in settings.github_private_key.value.splitlines() if len(line) > 40
    )
    token = "ghs_" + secrets.token_hex(18)
    aws_id = "AKIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    return {
        settings.webhook_secret.value: settings.webhook_secret.value,
        pem_line: pem_line,
        STATUS_TOKEN: STATUS_TOKEN,
        LINK_KEY: LINK_KEY,
        S3_SECRET: S3_SECRET,
        token: token,
        aws_id: aws_id,
        "https://bot:url-passw0rd-9f1@teacher.example/v1": "url-passw0rd-9f1",
        "redis://:redis-passw0rd-77c@redis:6379/0": "redis-passw0rd-77c",
        "Authorization: Bearer opaque-bearer-v4lue-31": "opaque-bearer-v4lue-31",
        "aws_secret_access_key=another-aws-s3cret-value": "another-aws-s3cret-value",
        "OPENAI_API_KEY: sk-" + "x1" * 16: "sk-" + "x1" * 16,
    }


@pytest.fixture
def leaky(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    world.settings = replace(
        world.settings,
        status_auth=Secret(f"bearer:{STATUS_TOKEN}"),
        link_signing_key=Secret(LINK_KEY),
        s3_secret_key=Secret(S3_SECRET),
    )
    printed = leaks(world.settings)
    # Beside the stand-in's record: a folder the sandbox shows ilab (its /tmp is private).
    leak_file = world.record.path.parent / "leaks.txt"
    leak_file.write_text("\n".join(printed) + "\n", encoding="utf-8")
    monkeypatch.setenv("ILAB_STANDIN_MODE", "leak-secrets")
    monkeypatch.setenv("ILAB_STANDIN_LEAK_FILE", str(leak_file))
    return printed


async def fetch(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 200, url
        return await resp.text()


def assert_clean(where: str, text: str, values: list[str]) -> None:
    found = [value for value in values if value in text]
    assert not found, f"{where} shows {found}"


async def status_api(url: str) -> str:
    jobs = json.loads(await fetch(f"{url}/api/v1/jobs?limit=50", STATUS_TOKEN))
    texts = [json.dumps(jobs)]
    for job in jobs["jobs"]:
        texts.append(await fetch(f"{url}/api/v1/jobs/{job['id']}", STATUS_TOKEN))
    return "\n".join(texts)


async def test_generate_output_with_secrets_never_leaves_the_bot(
    world: World, leaky: dict[str, str]
) -> None:
    values = list(leaky.values())
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
        links = {url.split("?")[0].rsplit("/", 1)[-1]: url for url in LINK.findall(comment["body"])}
        log = await fetch(links["ilab.log"])
        status = await status_api(bot.url)
    history = world.gh.check_run_history(world.check_run()["id"])
    assert_clean("ilab.log", log, values)
    assert_clean("the result comment", comment["body"], values)
    assert_clean("a check-run payload", json.dumps(history), values)
    assert_clean("the status API", status, values)
    assert_clean("other bot comments", json.dumps(world.bot_comments()), values)
    assert "Using credentials ***" in log and "request failed: ***" in log  # it did print them
    assert "***" in comment["body"] and "failed" in comment["body"]


async def test_precheck_answers_with_secrets_are_redacted(
    world: World, leaky: dict[str, str]
) -> None:
    values = list(leaky.values())
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot, f"{MENTION} precheck"))[0] == 202
        comment = await world.result_comment()
        links = {url.split("?")[0].rsplit("/", 1)[-1]: url for url in LINK.findall(comment["body"])}
        artifacts = [await fetch(links[name]) for name in ("precheck.yaml", "precheck.html")]
    assert "The server said: \\*\\*\\*" in comment["body"]  # markdown-escaped `***`
    assert_clean("the precheck comment", comment["body"], values)
    for text in artifacts:
        assert "The server said: ***" in text
        assert_clean("a precheck artifact", text, values)


def test_settings_secrets_name_every_configured_secret() -> None:
    env = {
        "ILAB_BOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ILAB_BOT_REDIS_URL": "redis://:redis-passw0rd-77c@redis:6379/0",
        "ILAB_BOT_STATUS_AUTH": f"basic:admin:{STATUS_TOKEN}",
        "ILAB_BOT_LINK_SIGNING_KEY": LINK_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    }
    settings = parse_settings(env, require_github=False)
    assert set(settings.secrets()) == {
        WEBHOOK_SECRET,
        "redis-passw0rd-77c",
        STATUS_TOKEN,
        LINK_KEY,
        S3_SECRET,
    }
    assert S3_SECRET not in repr(settings)
    text = Redactor(settings.secrets()).redact(" ".join(settings.secrets()))
    assert set(text.split()) == {"***"}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("AKIAIOSFODNN7EXAMPLE in a log", "*** in a log"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = ***"),
        ('{"password": "hunter2-long"}', '{"password": "***"}'),
        ("REDIS_PASSWORD=abc123xyz", "REDIS_PASSWORD=***"),
        ("redis://:pa55word@redis:6379/0", "redis://***@redis:6379/0"),
        ("token hf_" + "a" * 34, "token ***"),
        ("max_tokens=512, password is required", "max_tokens=512, password is required"),
    ],
)
def test_redactor_covers_aws_keys_and_secret_assignments(text: str, shown: str) -> None:
    assert Redactor().redact(text) == shown
