"""Chatting with a PR's served model: credentials, limits, request checks (pure), and the proxy
and chat page through the real server app, a real Redis and a real OpenAI-compatible server
(the stand-in teacher behind `testkit.serving_standin`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from instruct_lab_bot.core.chat_access import (
    ChatRecord,
    api_token,
    bounded_seeds,
    link_token,
    token_allows,
)
from instruct_lab_bot.core.chat_limits import ChatLimits
from instruct_lab_bot.core.chat_request import ChatRequestError, prepare, sse_delta
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages.serving import (
    ServeLinks,
    chat_answer,
    serve_reply,
)
from instruct_lab_bot.core.model_manifest import MODEL_DIR, ModelFile, ModelManifest
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.serving import ServedModel, ServeState
from instruct_lab_bot.core.settings import Secret, Settings
from instruct_lab_bot.services.app_keys import METRICS
from instruct_lab_bot.services.metrics import metrics_response
from instruct_lab_bot.services.server import create_app
from instruct_lab_bot.services.serving.backend import ServingError
from instruct_lab_bot.services.serving.proxy import CHAT
from testkit.serving_standin import StandinBackend, standin_factory
from tests.fixtures.bot import BOT_NAME, make_settings

PULL = RepoRef("instructlab", "taxonomy").pull(7)
KEY = b"k" * 32
SEEDS = [
    "What is a seed?",
    "How do I write a haiku about rain?",
    "Which rhyme scheme does a limerick use?",
]
RECORD = ChatRecord(PULL, "n0nce", "train-1", "pr-model", "granite-7b", "gen-1", ("Q1?",))


# -- credentials, limits, requests (pure) ---------------------------------------------------


def test_link_and_api_tokens_are_bound_to_one_serving() -> None:
    now = 1_000_000.0
    link = link_token(RECORD, int(now) + 60, KEY)
    assert token_allows(RECORD, link, KEY, now)
    assert not token_allows(RECORD, link, KEY, now + 61)  # expired
    again = replace(RECORD, nonce="other")  # `serve` again / `serve stop`: old links die
    assert not token_allows(again, link, KEY, now)
    assert not token_allows(replace(RECORD, pull=PULL.repo.pull(8)), link, KEY, now)
    forged = f"{int(now) + 10**6}.{link.split('.')[1]}"  # a later expiry with the old mac
    assert not token_allows(RECORD, forged, KEY, now)
    token = api_token(RECORD, KEY)
    assert token.startswith("ilb-") and token_allows(RECORD, token, KEY, now + 10**9)
    assert not token_allows(again, token, KEY, now)
    assert not token_allows(RECORD, token, b"x" * 32, now)
    for junk in ("", ".", "abc", "1.2", "ilb-", "x" * 500, f"{int(now) + 60}.{'0' * 64}"):
        assert not token_allows(RECORD, junk, KEY, now)


def test_record_round_trip_and_seeds_bounded() -> None:
    seeds = bounded_seeds(["What  is\nthis?", "What is this?", "", *(f"q{i}" for i in range(30))])
    assert seeds[0] == "What is this?" and len(seeds) == 12
    record = replace(RECORD, seeds=seeds, created_at=5.5)
    assert ChatRecord.from_fields(record.to_fields()) == record
    assert ChatRecord.from_fields(record.closing(9.0).to_fields()).closed


def test_concurrency_slots() -> None:
    limits = ChatLimits.build(1, 2)
    assert limits.admit("u1", "m") is None
    assert limits.admit("u1", "m") == ("user_concurrency", 1.0)
    assert limits.admit("u2", "m") is None
    assert limits.admit("u3", "m") == ("model_concurrency", 1.0)
    assert limits.user_slots.held("u3") == 0  # a refused request holds nothing
    limits.release("u1", "m")
    assert limits.admit("u3", "m") is None


def test_requests_are_checked_and_pinned_to_the_pr_model() -> None:
    raw = json.dumps(
        {
            "model": "someone-elses-model",
            "messages": [{"role": "user", "content": "hi", "name": "x"}],
            "stream": True,
            "max_tokens": 99_999,
            "tools": [{"type": "function"}],
            "temperature": 0.2,
        }
    ).encode()
    asked = prepare(raw, "pr-model", 512)
    assert asked.stream
    assert asked.body == {
        "model": "pr-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 512,
        "temperature": 0.2,
    }
    bad = [b"not json", b"[]", b"{}", b'{"messages": []}', b'{"messages": [{"role": "tool"}]}',
           b'{"messages": [{"role": "user", "content": 5}]}',
           b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
           b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}']  # fmt: skip
    for body in bad:
        with pytest.raises(ChatRequestError) as caught:
            prepare(body, "m", 10)
        assert caught.value.status == 400
    chunk = {"choices": [{"delta": {"content": "tok"}}]}
    assert sse_delta(b"data: " + json.dumps(chunk).encode()) == "tok"
    for line in (b"data: [DONE]", b": ping", b"data: {", b'data: {"choices": []}'):
        assert sse_delta(line) is None


def test_serve_reply_and_chat_answer_texts() -> None:
    served = ServedModel(PULL, "pr-model", "train-1", ServeState.SCALED_TO_ZERO,
                         cold_start_seconds=95)  # fmt: skip
    links = ServeLinks("https://bot/chat/x?token=1.ab", 2_000_000_000, "https://bot/chat/x/v1",
                       "https://bot/repos/x", token_on_status_page=True)  # fmt: skip
    text = serve_reply(BOT_NAME, RECORD, served, links, idle_removal=86400, scale_down_after=600)
    assert "https://bot/chat/x?token=1.ab" in text and "curl -N https://bot/chat/x/v1/" in text
    assert "$ILAB_BOT_CHAT_TOKEN" in text and "status page" in text
    assert "about 1m 35s" in text and "24h 00m 00s without a request" in text
    assert "When no one chats for 10m 00s it scales to zero" in text
    assert "`train-1`" in text and "granite-7b" in text and "gen-1" in text
    odd = serve_reply(BOT_NAME, replace(RECORD, base_model="granite_7b`x"), served, links)
    assert "fine-tuned from `granite_7b'x`" in odd  # a code span: no escapes, not ended early
    nasty = "```\n@someone <img src=x> [link](http://evil)\n" + "x" * 10_000
    answer = chat_answer("why @you?", nasty, RECORD, cut_question=True)
    assert "````" in answer  # the fence is longer than any backtick run inside
    assert "@\u200byou" in answer and "cut: the answer was longer" in answer
    assert len(answer) < 7000 and "first words" in answer


# -- the proxy and the page through the real server ---------------------------------------


@dataclass
class Chat:
    server: TestServer
    backend: StandinBackend
    settings: Settings
    record: ChatRecord
    link: str  # the chat page URL with its token
    token: str  # the link's token

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


def train_job(tmp_path: Path, settings: Settings) -> Job:
    job = Job("train0000000000000001", "train", 1, "instructlab", "taxonomy", 7, "mo",
              head_sha="a" * 40, state=State.SUCCEEDED,
              source_job="gen0000000000000001")  # fmt: skip
    manifest = ModelManifest("train0000000000000001", "gen0000000000000001", "granite-7b-base",
                             "0.26.1", (ModelFile("model.gguf", 4, "0" * 64),))  # fmt: skip
    folder = tmp_path / "artifacts" / (job.artifact_key_prefix() + MODEL_DIR)
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(manifest.to_json())
    return job


@contextlib.asynccontextmanager
async def chat_server(redis_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[Chat]:
    settings = make_settings(
        redis_url=redis_url, artifacts_url=f"file://{tmp_path / 'artifacts'}", **overrides
    )
    backend = StandinBackend()
    app = create_app(settings, dispatcher=False, serving=standin_factory(backend), chat=True)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        chat = app[CHAT]
        await chat.records.delete(PULL)
        record, _served = await chat.deploy(
            PULL, train_job(tmp_path, settings), SEEDS, "maintainer-mo"
        )
        links = await chat.links(record, "")
        token = links.chat_link.split("token=")[1]
        link = str(server.make_url(links.chat_link.split(settings.public_url)[1]))
        yield Chat(server, backend, settings, record, link, token)
    finally:
        await server.close()


def completions_path() -> str:
    return "/chat/instructlab/taxonomy/7/v1/chat/completions"


def ask_body(question: str = "What is a seed?", stream: bool = True) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}], "stream": stream}


async def test_streamed_answer_passes_through_event_by_event(
    redis_url: str, tmp_path: Path
) -> None:
    async with chat_server(redis_url, tmp_path) as chat, aiohttp.ClientSession() as session:
        assert chat.record.base_model == "granite-7b-base"  # read from model/model.json
        assert chat.record.data_job == "gen0000000000000001"
        headers = {"Authorization": f"Bearer {chat.token}"}
        async with session.post(
            chat.url(completions_path()), json=ask_body(), headers=headers
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            words = [sse_delta(line) async for line in response.content]
        text = "".join(w for w in words if w)
        assert text == "The stand-in teacher's answer to: What is a seed?"
        assert len([w for w in words if w]) == len(text.split(" "))  # one event per token
        assert chat.backend.cold_starts == 1
        upstream = chat.backend.server(PULL)
        assert upstream is not None
        sent = [r["body"] for r in upstream.state.requests if r["path"].endswith("completions")]
        assert sent[-1]["model"] == chat.record.model_name  # the id `/v1/models` reported
        # not streamed, with the API token
        token = api_token(chat.record, await chat.server.app[CHAT].key.get())
        async with session.post(
            chat.url(completions_path()), json=ask_body("Hi", stream=False),
            headers={"Authorization": f"Bearer {token}"},
        ) as response:  # fmt: skip
            assert response.status == 200
            body = await response.json()
        assert body["choices"][0]["message"]["content"].endswith("Hi")
        assert chat.backend.cold_starts == 1  # it was up: no second cold start
        metrics = metrics_response(chat.server.app[METRICS].registry).text or ""
        model = chat.record.model_name
        ok = f'instruct_lab_bot_chat_requests_total{{model="{model}",outcome="ok"}} 2.0'
        assert ok in metrics
        assert "instruct_lab_bot_model_cold_starts_total 1.0" in metrics
        assert "instruct_lab_bot_chat_time_to_first_token_seconds_count 2.0" in metrics
        tokens = f'instruct_lab_bot_chat_tokens_total{{model="{model}"}}'
        assert tokens in metrics


async def test_streamed_answers_pass_through_the_redactor(redis_url: str, tmp_path: Path) -> None:
    """What leaves the process is redacted, streamed or not: the stand-in echoes the question,
    so a secret asked about comes back, and must not reach the reader."""
    async with chat_server(redis_url, tmp_path) as chat, aiohttp.ClientSession() as session:
        secret = chat.settings.webhook_secret.value
        question = f"Is {secret} or https://bob:hunter2@example.com the key?"
        headers = {"Authorization": f"Bearer {chat.token}"}
        async with session.post(
            chat.url(completions_path()), json=ask_body(question), headers=headers
        ) as response:
            assert response.status == 200
            raw = await response.read()
    assert secret.encode() not in raw and b"hunter2" not in raw
    text = "".join(sse_delta(line) or "" for line in raw.splitlines())
    assert text.endswith("Is *** or https://***@example.com the key?"), text


async def test_refusals(redis_url: str, tmp_path: Path) -> None:
    async with chat_server(
        redis_url, tmp_path, chat_user_rate=2, chat_max_request_bytes=2048
    ) as chat, aiohttp.ClientSession() as session:  # fmt: skip
        url = chat.url(completions_path())
        ok = {"Authorization": f"Bearer {chat.token}"}

        async def post(body: Any, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
            async with session.post(url, json=body, headers=headers, **kw) as response:
                return response.status, await response.json()

        status, body = await post(ask_body(), {})
        assert status == 401 and "not valid" in body["error"]["message"]
        status, _ = await post(ask_body(), {"Authorization": "Bearer 1.abc"})
        assert status == 401
        status, body = await post({"messages": [{"role": "user", "content": "x" * 4000}]}, ok)
        assert status == 413 and "2048 bytes" in body["error"]["message"]

        async def parts() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse on
            yield b'{"messages": [{"role": "user", "content": "'
            for _ in range(8):
                yield b"x" * 400
            yield b'"}]}'

        async with session.post(url, data=parts(), headers=ok) as response:
            assert response.status == 413
        status, body = await post({"messages": "no"}, ok)
        assert status == 400
        for _ in range(2):  # refused requests do not count against the rate
            status, body = await post(ask_body(stream=False), ok)
            assert status == 200
        async with session.post(url, json=ask_body(), headers=ok) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
            assert "too many requests" in (await response.json())["error"]["message"]
        # another PR: not served
        other = url.replace("/7/", "/8/")
        async with session.post(other, json=ask_body(), headers=ok) as response:
            assert response.status == 404


async def test_concurrency_limit_per_person(redis_url: str, tmp_path: Path) -> None:
    async with chat_server(
        redis_url, tmp_path, chat_user_concurrency=1
    ) as chat, aiohttp.ClientSession() as session:  # fmt: skip
        url = chat.url(completions_path())
        ok = {"Authorization": f"Bearer {chat.token}"}
        async with session.post(url, json=ask_body(stream=False), headers=ok) as response:
            assert response.status == 200  # the server is up
        upstream = chat.backend.server(PULL)
        assert upstream is not None
        upstream.state.hold = threading.Event()
        before = len(upstream.state.requests)
        first = asyncio.create_task(session.post(url, json=ask_body(), headers=ok))
        async with asyncio.timeout(30):  # the first is at the model, holding its slot
            while len(upstream.state.requests) == before:
                await asyncio.sleep(0.02)
        async with session.post(url, json=ask_body(), headers=ok) as response:
            assert response.status == 429
            assert "at once" in (await response.json())["error"]["message"]
        upstream.state.hold.set()
        response = await first
        assert response.status == 200
        await response.read()
        response.release()


async def test_cold_start_after_scale_to_zero_and_closed_pr_answers_410(
    redis_url: str, tmp_path: Path
) -> None:
    async with chat_server(redis_url, tmp_path) as chat, aiohttp.ClientSession() as session:
        url = chat.url(completions_path())
        ok = {"Authorization": f"Bearer {chat.token}"}
        for expected_cold_starts in (1, 2):
            async with session.post(url, json=ask_body(stream=False), headers=ok) as response:
                assert response.status == 200
            assert chat.backend.cold_starts == expected_cold_starts
            chat.backend.scale_to_zero(PULL)
        service = chat.server.app[CHAT]
        await service.pull_closed(PULL)
        assert chat.backend.removed == [PULL] and await chat.backend.list_served() == []
        async with session.post(url, json=ask_body(), headers=ok) as response:
            assert response.status == 410
            assert "closed or merged" in (await response.json())["error"]["message"]
        async with session.get(chat.link) as response:
            assert response.status == 410
            assert "closed or merged" in await response.text()


async def test_model_removed_by_the_backend_or_failing(redis_url: str, tmp_path: Path) -> None:
    async with chat_server(redis_url, tmp_path) as chat, aiohttp.ClientSession() as session:
        ok = {"Authorization": f"Bearer {chat.token}"}
        url = chat.url(completions_path())
        served = chat.backend.models[PULL]
        chat.backend.models[PULL] = replace(served, state=ServeState.FAILED)
        chat.backend.refuse = "image pull failed: quay.io/x/vllm: not found"
        ready_url = chat.backend.ready_url

        async def failing(pull: Any, within: float) -> str:
            raise ServingError(chat.backend.refuse)

        chat.backend.ready_url = failing  # type: ignore[method-assign]
        async with session.post(url, json=ask_body(), headers=ok) as response:
            assert response.status == 503
            message = (await response.json())["error"]["message"]
        assert "image pull failed" in message and "not caused by your pull request" in message
        chat.backend.ready_url = ready_url  # type: ignore[method-assign]
        await chat.backend.remove(PULL)  # removed after its TTL: the record stays
        async with session.post(url, json=ask_body(), headers=ok) as response:
            assert response.status == 404
            assert "No model is being served" in (await response.json())["error"]["message"]


async def test_chat_page_access_and_headers(redis_url: str, tmp_path: Path) -> None:
    status_token = "status-token-0123456789abcdef"
    async with chat_server(
        redis_url, tmp_path, status_auth=Secret(f"bearer:{status_token}")
    ) as chat, aiohttp.ClientSession() as session:  # fmt: skip
        async with session.get(chat.link) as response:
            assert response.status == 200
            page = await response.text()
            csp = response.headers["Content-Security-Policy"]
            assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "script-src 'nonce-" in csp and "connect-src 'self'" in csp
        assert "http" not in page.split("<body>")[1].replace(chat.token, "")  # no outside assets
        assert "granite-7b-base" in page and "What is a seed?" in page
        bare = chat.link.split("?")[0]
        async with session.get(bare) as response:
            assert response.status == 401
        async with session.get(
            bare, headers={"Authorization": f"Bearer {status_token}"}
        ) as response:  # the status page's auth: a page with a fresh link token
            assert response.status == 200
            assert 'data-token="' in await response.text()
        async with session.get(
            chat.url("/chat/instructlab/taxonomy/7/v1/models"),
            headers={"Authorization": f"Bearer {chat.token}"},
        ) as response:
            assert (await response.json())["data"][0]["id"] == chat.record.model_name


def test_chat_page_escapes_what_a_pr_controls() -> None:
    from instruct_lab_bot.core.pages.chat_html import render_chat

    record = replace(RECORD, seeds=('<script>alert(1)</script>"',), base_model="<b>x</b>")
    page = render_chat(record, "/chat/a/b/1/v1/chat/completions", 'tok"en', "nonce1")
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    assert "<b>x</b>" not in page and 'data-token="tok&quot;en"' in page
    assert time.time() > 0


async def test_status_page_lists_models_being_served(redis_url: str, tmp_path: Path) -> None:
    status_token = "status-token-0123456789abcdef"
    signed_in = {"Authorization": f"Bearer {status_token}"}
    async with chat_server(
        redis_url, tmp_path, status_auth=Secret(f"bearer:{status_token}")
    ) as chat, aiohttp.ClientSession() as session:  # fmt: skip
        service = chat.server.app[CHAT]
        token = await service.api_token(chat.record)
        async with session.get(chat.url("/"), headers=signed_in) as response:
            front = await response.text()
        assert 'id="served"' in front and chat.record.model_name in front
        assert "scaled to zero" in front and token not in front
        pr_page = chat.url("/repos/instructlab/taxonomy/pulls/7")
        async with session.get(pr_page, headers=signed_in) as response:
            page = await response.text()
        assert f'<code id="api-token">{token}</code>' in page and "Open the chat page" in page
        # the token from the status page opens the proxy
        async with session.post(
            chat.url(completions_path()), json=ask_body(stream=False),
            headers={"Authorization": f"Bearer {token}"},
        ) as response:  # fmt: skip
            assert response.status == 200
        async with session.get(chat.url("/"), headers=signed_in) as response:
            assert ">ready<" in await response.text()
    async with (
        chat_server(redis_url, tmp_path / "public") as chat,  # no status auth
        aiohttp.ClientSession() as session,
    ):
        pr_page = chat.url("/repos/instructlab/taxonomy/pulls/7")
        async with session.get(pr_page) as response:
            page = await response.text()
        assert chat.record.model_name in page and "ilb-" not in page and "token=" not in page
        service = chat.server.app[CHAT]
        await service.records.put(replace(chat.record, private=True))
        async with session.get(chat.url("/")) as response:
            front = await response.text()
        assert chat.record.model_name not in front and "1 more of private" in front


async def test_serving_the_same_model_again_keeps_links_a_new_model_ends_them(
    redis_url: str, tmp_path: Path
) -> None:
    async with chat_server(redis_url, tmp_path) as chat, aiohttp.ClientSession() as session:
        service = chat.server.app[CHAT]
        url, ok = chat.url(completions_path()), {"Authorization": f"Bearer {chat.token}"}
        train = train_job(tmp_path / "again", chat.settings)
        again, _ = await service.deploy(PULL, train, SEEDS, "maintainer-mo")  # e.g. redelivered
        assert again.nonce == chat.record.nonce
        async with session.post(url, json=ask_body(stream=False), headers=ok) as response:
            assert response.status == 200
        newer = replace(train, id="train0000000000000002")
        await service.deploy(PULL, newer, SEEDS, "maintainer-mo")
        async with session.post(url, json=ask_body(stream=False), headers=ok) as response:
            assert response.status == 401


async def test_a_model_that_stops_mid_answer_ends_the_stream_with_an_error_event(
    redis_url: str, tmp_path: Path
) -> None:
    async with chat_server(
        redis_url, tmp_path, chat_answer_timeout=0.5
    ) as chat, aiohttp.ClientSession() as session:  # fmt: skip
        chat.backend.pause_stream = threading.Event()  # the model writes one word, then hangs
        ok = {"Authorization": f"Bearer {chat.token}"}
        try:
            async with session.post(
                chat.url(completions_path()), json=ask_body(), headers=ok
            ) as response:
                assert response.status == 200
                lines = [line async for line in response.content if line.strip()]
        finally:
            chat.backend.pause_stream.set()
        assert sse_delta(lines[1]) == "The"
        assert b"stopped answering (TimeoutError)" in lines[-1]
        metrics = metrics_response(chat.server.app[METRICS].registry).text or ""
        assert 'instruct_lab_bot_chat_proxy_errors_total{reason="upstream_timeout"} 1.0' in metrics
