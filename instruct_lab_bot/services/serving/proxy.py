"""The chat proxy and the chat page, in the server process.

- `GET /chat/<owner>/<repo>/<pr>?token=…`: the chat page (signed link, or the status page's
  auth, which gets a fresh link token).
- `POST /chat/<owner>/<repo>/<pr>/v1/chat/completions`: OpenAI-compatible, streamed (SSE passed
  through chunk by chunk as the model writes) or not; `Authorization: Bearer <token>`.
- `GET /chat/<owner>/<repo>/<pr>/v1/models`: the one model, for OpenAI clients.

Each request passes, in order: the PR's chat record (404 none, 410 closed PR), the credential
(401), the size limit (413), the request check (400), the rate and concurrency limits per
person and per model (429 + Retry-After), the cold start (`ILAB_BOT_CHAT_COLD_START_TIMEOUT`,
504), the answer timeout (`ILAB_BOT_CHAT_ANSWER_TIMEOUT`).
"""

from __future__ import annotations

import json
import secrets
import time

import aiohttp
import structlog
from aiohttp import web

from instruct_lab_bot.core.chat_access import ChatRecord, link_token, token_allows, user_key
from instruct_lab_bot.core.chat_limits import WINDOW
from instruct_lab_bot.core.chat_request import (
    ChatRequest,
    ChatRequestError,
    completion_tokens,
    prepare,
    sse_delta,
)
from instruct_lab_bot.core.messages import serving as texts
from instruct_lab_bot.core.pages.chat_html import csp, render_chat
from instruct_lab_bot.core.pages.status_html import render_error
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.status_auth import parse_status_auth
from instruct_lab_bot.services.serving.backend import ServingError
from instruct_lab_bot.services.serving.chat import (
    ChatService,
    ColdStartTimeout,
    ModelGone,
    Upstream,
)

log = structlog.get_logger(__name__)

CHAT = web.AppKey("chat", ChatService)
MAX_LINE = 1024 * 1024  # of one server-sent event line kept for counting tokens
_PR = r"/chat/{owner:[A-Za-z0-9-]{1,39}}/{repo:[A-Za-z0-9._-]{1,100}}/{number:[0-9]{1,9}}"
STATUS_AUTH = "status-auth"
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store, private",
}


def chat_routes() -> list[web.RouteDef]:
    return [
        web.get(_PR, chat_page),
        web.post(_PR + "/v1/chat/completions", completions),
        web.get(_PR + "/v1/models", models),
    ]


class Refused(Exception):
    """A request answered with an error (status, message, metric reason)."""

    def __init__(self, status: int, message: str, reason: str, retry_after: float = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        self.retry_after = retry_after


def _pull(request: web.Request) -> PullRequestRef:
    info = request.match_info
    return RepoRef(info["owner"], info["repo"]).pull(int(info["number"]))


async def _record(chat: ChatService, request: web.Request) -> ChatRecord:
    record = await chat.records.get(_pull(request))
    if record is None:
        raise Refused(404, texts.NOT_SERVED, "not_served")
    if record.closed:
        raise Refused(410, texts.PR_CLOSED, "closed")
    return record


def _status_auth_ok(chat: ChatService, request: web.Request) -> bool:
    auth = parse_status_auth(chat.settings.status_auth.value)
    return auth is not None and auth.allows(request.headers.get("Authorization"))


async def _credential(chat: ChatService, request: web.Request, record: ChatRecord) -> str:
    """The token the request proves access with; raises 401."""
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    token = token.strip() if kind.lower() == "bearer" else ""
    token = token or request.query.get("token", "")
    key = await chat.key.get()
    if token and token_allows(record, token, key, chat.clock()):
        return token
    if _status_auth_ok(chat, request):
        return STATUS_AUTH
    raise Refused(401, texts.INVALID_LINK, "unauthorized")


def _api_error(error: Refused) -> web.Response:
    kind = "rate_limit_exceeded" if error.status == 429 else "invalid_request_error"
    body = {"error": {"message": error.message, "type": kind, "code": error.reason}}
    response = web.json_response(body, status=error.status, headers=_HEADERS)
    if error.retry_after:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="instruct-lab-bot chat"'
    return response


async def chat_page(request: web.Request) -> web.Response:
    chat = request.app[CHAT]
    try:
        record = await _record(chat, request)
        token = await _credential(chat, request, record)
    except Refused as error:
        chat.metrics.proxy_errors.labels(error.reason).inc()
        page = render_error(error.status, error.message)
        return web.Response(
            text=page, status=error.status, content_type="text/html", headers=_HEADERS
        )
    if token == STATUS_AUTH:  # signed in on the status page: a fresh link token
        expires = int(chat.clock()) + chat.settings.chat_link_ttl
        token = link_token(record, expires, await chat.key.get())
    nonce = secrets.token_urlsafe(16)
    endpoint = request.path.rstrip("/") + "/v1/chat/completions"
    page = render_chat(record, endpoint, token, nonce)
    headers = {**_HEADERS, "Content-Security-Policy": csp(nonce)}
    return web.Response(text=page, content_type="text/html", charset="utf-8", headers=headers)


async def models(request: web.Request) -> web.Response:
    chat = request.app[CHAT]
    try:
        record = await _record(chat, request)
        await _credential(chat, request, record)
    except Refused as error:
        chat.metrics.proxy_errors.labels(error.reason).inc()
        return _api_error(error)
    served = {"id": record.model_name, "object": "model", "owned_by": "instruct-lab-bot"}
    return web.json_response({"object": "list", "data": [served]}, headers=_HEADERS)


async def completions(request: web.Request) -> web.StreamResponse:
    chat = request.app[CHAT]
    started = time.perf_counter()
    try:
        record = await _record(chat, request)
        token = await _credential(chat, request, record)
        asked = await _read_request(chat, request, record)
    except Refused as error:
        chat.metrics.proxy_errors.labels(error.reason).inc()
        return _api_error(error)
    user = user_key(token, request.remote or "unknown")
    s = chat.settings
    refused = await chat.records.take_request(
        user, record.pull, s.chat_user_rate, s.chat_model_rate, WINDOW
    ) or chat.limits.admit(user, str(record.pull))
    if refused is not None:
        which, wait = refused
        chat.metrics.proxy_errors.labels("limited").inc()
        return _api_error(Refused(429, texts.limited(which, wait), "limited", wait))
    try:
        return await _answer(chat, request, record, asked, started)
    except Refused as error:
        chat.metrics.proxy_errors.labels(error.reason).inc()
        chat.metrics.requests.labels(record.model_name, "error").inc()
        return _api_error(error)
    finally:
        chat.limits.release(user, str(record.pull))


async def _read_request(chat: ChatService, request: web.Request, record: ChatRecord) -> ChatRequest:
    limit = chat.settings.chat_max_request_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, texts.too_large(limit), "too_large")
    raw = bytearray()
    async for chunk in request.content.iter_any():  # a body sent in parts is read whole
        raw += chunk
        if len(raw) > limit:
            raise Refused(413, texts.too_large(limit), "too_large")
    try:
        return prepare(bytes(raw), record.model_name, chat.settings.chat_max_tokens)
    except ChatRequestError as exc:
        raise Refused(exc.status, exc.message, "bad_request") from None


async def _upstream(chat: ChatService, record: ChatRecord) -> Upstream:
    try:
        return await chat.upstream(record.pull)
    except ColdStartTimeout:
        timeout = chat.settings.chat_cold_start_timeout
        raise Refused(504, texts.cold_start_timeout(timeout), "cold_start_timeout") from None
    except ModelGone:
        raise Refused(404, texts.NOT_SERVED, "not_served") from None
    except ServingError as exc:
        message = texts.serving_failed(str(exc), exc.not_your_fault)
        raise Refused(503, message, "serving_error") from None


async def _answer(
    chat: ChatService,
    request: web.Request,
    record: ChatRecord,
    asked: ChatRequest,
    started: float,
) -> web.StreamResponse:
    upstream = await _upstream(chat, record)
    body = dict(asked.body, model=upstream.model or record.model_name)
    timeout = aiohttp.ClientTimeout(total=chat.settings.chat_answer_timeout)
    url = upstream.base + "/chat/completions"
    try:
        async with chat.session.post(url, json=body, timeout=timeout) as answer:
            if answer.status != 200:
                raise Refused(502, await _upstream_error(chat, answer), "upstream_error")
            if asked.stream:
                return await _stream(chat, request, record, answer, started)
            return await _whole(chat, record, answer, started)
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_error"
        message = f"the model server failed to answer ({type(exc).__name__})"
        raise Refused(504 if reason == "upstream_timeout" else 502, message, reason) from None


async def _upstream_error(chat: ChatService, answer: aiohttp.ClientResponse) -> str:
    raw = await answer.content.read(2000)
    text = raw.decode("utf-8", "replace").strip()
    redacted = Redactor(chat.settings.secrets()).redact(text)[:500]
    return f"the model server answered HTTP {answer.status}: {redacted}"


async def _stream(
    chat: ChatService,
    request: web.Request,
    record: ChatRecord,
    answer: aiohttp.ClientResponse,
    started: float,
) -> web.StreamResponse:
    """Pass the server-sent events through as they arrive, counting tokens on the way."""
    response = web.StreamResponse(
        headers={**_HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    counter = _TokenCounter(chat, started)
    redacting = _RedactedLines(Redactor(chat.settings.secrets()))
    outcome = "ok"
    try:
        async for chunk in answer.content.iter_any():
            counter.feed(chunk)
            passed = redacting.feed(chunk)  # whole lines, as they came: never held for more
            if passed:
                await response.write(passed)
        if tail := redacting.flush():
            await response.write(tail)
    except ConnectionResetError:  # the reader left: stop, which frees the model's slot
        outcome = "error"
        chat.metrics.proxy_errors.labels("client_gone").inc()
        return response
    except (aiohttp.ClientError, TimeoutError) as exc:  # the model stopped mid-answer
        outcome = "error"
        reason = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_error"
        chat.metrics.proxy_errors.labels(reason).inc()
        message = f"the model server stopped answering ({type(exc).__name__})"
        await response.write(b"data: " + json.dumps({"error": {"message": message}}).encode())
        await response.write(b"\n\n")
    finally:
        chat.metrics.tokens.labels(record.model_name).inc(counter.tokens)
        chat.metrics.requests.labels(record.model_name, outcome).inc()
    await response.write_eof()
    return response


class _RedactedLines:
    """The stream, a whole line at a time, each through the one redactor: an event is one
    line, so what a model says (or echoes) passes only redacted. A secret split over two
    events is not seen whole (each event is one token); answers read whole are redacted as
    a whole (`_whole`)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor, self.rest = redactor, b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.rest + chunk
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > MAX_LINE:  # no line end in sight: pass what there is
            cut = len(data)
        self.rest = data[cut:]
        return self._redact(data[:cut])

    def flush(self) -> bytes:
        tail, self.rest = self.rest, b""
        return self._redact(tail)

    def _redact(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self.redactor.redact(data.decode("utf-8", "replace")).encode()


class _TokenCounter:
    """Counts the answer tokens of a server-sent event stream fed in pieces."""

    def __init__(self, chat: ChatService, started: float) -> None:
        self.chat, self.started = chat, started
        self.tokens, self.buffer = 0, b""

    def feed(self, chunk: bytes) -> None:
        *lines, rest = (self.buffer + chunk).split(b"\n")
        for line in lines:
            if sse_delta(line) is None:
                continue
            if self.tokens == 0:
                self.chat.metrics.first_token.observe(time.perf_counter() - self.started)
            self.tokens += 1
        self.buffer = rest[-MAX_LINE:]  # a line longer than any event is not one to count


async def _whole(
    chat: ChatService, record: ChatRecord, answer: aiohttp.ClientResponse, started: float
) -> web.Response:
    raw = await answer.content.read(1024 * 1024)
    try:
        data = json.loads(raw)
    except ValueError:
        raise Refused(502, "the model server's answer was not JSON", "upstream_error") from None
    chat.metrics.first_token.observe(time.perf_counter() - started)
    chat.metrics.tokens.labels(record.model_name).inc(completion_tokens(data))
    chat.metrics.requests.labels(record.model_name, "ok").inc()
    redacted = Redactor(chat.settings.secrets()).value(data)
    return web.json_response(redacted, headers=_HEADERS)
