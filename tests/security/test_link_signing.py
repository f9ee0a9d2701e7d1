"""Finding 8: artifact links were signed with sha256(webhook secret), and any webhook secret
was accepted. A public signed link allowed an offline guess of a weak secret, then forged
webhooks. Now links have their own key (`ILAB_BOT_LINK_SIGNING_KEY`, or 32 random bytes
generated once and shared through Redis) and the webhook secret must be >= 32 characters.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.storage import link_signing_key, open_store
from instruct_lab_bot.core.artifacts import parse_artifacts_url, sign_artifact
from instruct_lab_bot.core.settings import SettingsError, parse_settings
from instruct_lab_bot.services.server import create_app
from tests.fixtures.bot import WEBHOOK_SECRET, make_settings


def settings_error(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        parse_settings(env, require_github=False)
    return str(info.value)


def test_a_short_webhook_secret_is_refused_without_echoing_it() -> None:
    weak = "hunter2-but-31-characters-long!"
    assert len(weak) == 31
    text = settings_error({"ILAB_BOT_WEBHOOK_SECRET": weak})
    assert "ILAB_BOT_WEBHOOK_SECRET: must be at least 32 characters" in text
    assert weak not in text and "hunter2" not in text
    ok = parse_settings({"ILAB_BOT_WEBHOOK_SECRET": weak + "x"}, require_github=False)
    assert ok.webhook_secret.value == weak + "x"


@pytest.mark.parametrize(
    "bad", ["ab" * 31, base64.b64encode(b"k" * 31).decode(), "not a key at all!"]
)
def test_a_weak_or_malformed_link_key_is_refused_without_echoing_it(bad: str) -> None:
    env = {"ILAB_BOT_WEBHOOK_SECRET": WEBHOOK_SECRET, "ILAB_BOT_LINK_SIGNING_KEY": bad}
    text = settings_error(env)
    assert "ILAB_BOT_LINK_SIGNING_KEY" in text and bad not in text


@pytest.mark.parametrize(
    "encode",
    [
        bytes.hex,
        lambda raw: base64.b64encode(raw).decode(),
        lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ],
)
def test_link_key_in_hex_or_base64(encode: object) -> None:
    raw = secrets.token_bytes(32)
    text = encode(raw)  # type: ignore[operator]
    env = {"ILAB_BOT_WEBHOOK_SECRET": WEBHOOK_SECRET, "ILAB_BOT_LINK_SIGNING_KEY": text}
    settings = parse_settings(env, require_github=False)
    assert link_signing_key(settings, _never) == raw
    assert text in settings.secrets()  # redacted wherever it would show


async def _never() -> bytes:
    raise AssertionError("a configured key is never fetched from Redis")


def _signature(link: str) -> tuple[str, int, str]:
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    return parts.path.removeprefix("/artifacts/"), int(query["expires"][0]), query["sig"][0]


async def test_links_use_a_shared_random_key_not_the_webhook_secret(
    redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        redis_url=redis_url,
        artifacts_url=f"file://{tmp_path}",
    )
    queues = [Queue.from_url(redis_url), Queue.from_url(redis_url)]
    server = TestServer(create_app(settings, dispatcher=False), host="127.0.0.1")
    await server.start_server()
    settings = make_settings(
        redis_url=redis_url,
        artifacts_url=f"file://{tmp_path}",
        public_url=str(server.make_url("")).rstrip("/"),
    )
    stores = [
        open_store(
            parse_artifacts_url(settings.artifacts_url),
            public_url=settings.public_url,
            signing_key=link_signing_key(settings, queue.shared_link_key),
            link_expiry=3600,
            s3_endpoint_url=None,
        )
        for queue in queues
    ]
    try:
        await stores[0].put_bytes("o/r/1/job/ilab.log", b"log\n", "text/plain")
        links = [await store.link("o/r/1/job/ilab.log") for store in stores]
        key, expires, sig = _signature(links[0])
        # not derivable from the webhook secret (the old scheme) ...
        old_key = hashlib.sha256(b"artifact-links\0" + WEBHOOK_SECRET.encode()).digest()
        old = sign_artifact(key, expires, old_key)
        assert sig != old
        # ... one key shared by every process (two workers and the server) ...
        assert _signature(links[1])[2] == sig
        shared = await queues[0].shared_link_key()
        assert len(shared) == 32 and shared != old_key
        async with aiohttp.ClientSession() as http:
            async with http.get(URL(links[0], encoded=True)) as resp:
                assert (resp.status, await resp.read()) == (200, b"log\n")
            forged = links[0].replace(sig, old)
            async with http.get(URL(forged, encoded=True)) as resp:
                assert resp.status == 403
    finally:
        for store in stores:
            await store.aclose()
        for queue in queues:
            await queue.aclose()
        await server.close()
