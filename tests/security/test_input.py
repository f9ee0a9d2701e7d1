"""Bad input gets a 4xx, never a 500, a crash, a leaked secret or unbounded storage.

Issue 12: finding 12 (wrong-typed fields in signed payloads), finding 11 (unbounded Redis
growth), unsigned bodies hashed before the 401, settings errors echoing the Redis password,
commands run from inside code fences and HTML comments, the status API's contract.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import schemathesis
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, GenerationMode
from schemathesis.core.result import Ok

from instruct_lab_bot.adapters.redis.keys import (
    DEAD_STREAM,
    DEAD_STREAM_MAX_AGE,
    EVENTS_STREAM,
    STREAM_MAX_AGE,
    WORKER_GROUP,
    job_key,
    jobs_stream,
)
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import min_id
from instruct_lab_bot.core.comment_parser import mentions, parse_commands
from instruct_lab_bot.core.jobs import FIELD_LIMITS, MAX_JOB_FILES, State
from instruct_lab_bot.core.settings import SettingsError, parse_settings
from instruct_lab_bot.core.webhooks import (
    MAX_BODY_BYTES,
    CheckRunIntent,
    CommandIntent,
    Delivery,
    PullRequestIntent,
    WebhookError,
    classify,
)
from instruct_lab_bot.services.server import create_app
from testkit.payloads import pr_comment
from tests.fixtures.bot import BOT_NAME, MENTION, make_settings, post_webhook
from tests.fixtures.github import REPO_ROOT, WebhookExample
from tests.test_queue import make_job

GENERATE_STREAM = jobs_stream("generate")  # the generate pool's jobs stream

HOOK = "/api/github/hook"
USERNAME = BOT_NAME


@pytest.fixture
async def server(redis_url: str, artifacts_dir: Path) -> AsyncIterator[TestServer]:
    settings_ = make_settings(redis_url=redis_url, artifacts_url=f"file://{artifacts_dir}")
    test_server = TestServer(create_app(settings_, dispatcher=False))
    await test_server.start_server()
    yield test_server
    await test_server.close()


# --- Finding 12: wrong-typed fields in a correctly signed payload -> 400, never 500 ----------


@pytest.fixture(scope="module")
def real_deliveries(webhook_example: WebhookExample) -> list[Delivery]:
    """Real Octokit examples, shaped so that classification reaches every field it reads.

    Built once: building them per example (six deep copies) took 90% of the fuzzing's time,
    which under load ran into the suite's 120 s timeout."""
    comment = pr_comment(
        webhook_example("issue_comment", "created"), body=f"@{USERNAME} generate --x"
    )
    check_run = webhook_example("check_run", "rerequested")
    check_run["check_run"]["name"] = "instruct-lab-bot/generate"
    check_run["check_run"]["pull_requests"] = [{"number": 7}]
    action = webhook_example("check_run", "requested_action")
    action["check_run"]["name"] = "instruct-lab-bot/generate"
    pulls = [webhook_example("pull_request", name) for name in ("opened", "synchronize", "labeled")]
    payloads = [("issue_comment", comment), ("check_run", check_run), ("check_run", action)]
    payloads += [("pull_request", pull) for pull in pulls]
    for _event, payload in payloads:
        payload.setdefault("installation", {"id": 1})
    return [Delivery(event, "d-1", payload) for event, payload in payloads]


def _paths(node: Any, prefix: tuple[str | int, ...] = (), depth: int = 4) -> list[tuple[Any, ...]]:
    """Every path into a payload (object keys and list indexes), up to `depth` levels."""
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if depth == 0:
        return found
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key), depth - 1)
    elif isinstance(node, list):
        for index, value in enumerate(node[:2]):
            found += _paths(value, (*prefix, index), depth - 1)
    return found


_WRONG = st.sampled_from(
    [None, 0, 7, -1, 1.5, True, "", "x", f"{MENTION} generate", [], [1], ["a"], {}, {"a": 1}]
)
_DELETE = object()


def _mutate(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    parent: Any = payload
    for part in path[:-1]:
        parent = parent[part]
    if value is _DELETE and isinstance(parent, dict):
        del parent[path[-1]]
    elif value is not _DELETE:
        parent[path[-1]] = value


def _classify_safely(delivery: Delivery) -> object:
    """classify, where a refusal must be a 400; anything else raised fails the test."""
    try:
        return classify(delivery, USERNAME)
    except WebhookError as exc:
        assert exc.status == 400, exc.message
        return exc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_classifier_fuzzed_with_wrong_types(
    real_deliveries: list[Delivery], data: st.DataObject
) -> None:
    """Property: real payloads with any fields set to a wrong type (or deleted) classify to
    an intent, "nothing to do", or WebhookError(400) with a message; nothing else."""
    delivery = data.draw(st.sampled_from(real_deliveries), label="delivery")
    payload = copy.deepcopy(delivery.payload)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(payload)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        _mutate(payload, path, data.draw(st.one_of(_WRONG, st.just(_DELETE)), label="value"))
    outcome = _classify_safely(Delivery(delivery.event, delivery.delivery_id, payload))
    allowed = (CommandIntent, PullRequestIntent, CheckRunIntent, WebhookError, type(None))
    assert isinstance(outcome, allowed)
    if isinstance(outcome, CommandIntent | PullRequestIntent | CheckRunIntent):
        json.loads(outcome.to_json())  # storable as it is


_CRASHERS: list[tuple[str, str | None, tuple[str, ...], Any, str | None]] = [
    ("pull_request", "opened", ("pull_request", "user"), 5, "pull_request.user"),
    ("pull_request", "opened", ("pull_request", "labels"), 5, "pull_request.labels"),
    ("pull_request", "synchronize", ("repository", "private"), "yes", "repository.private"),
    ("check_run", "rerequested", ("check_run", "pull_requests"), 5, "check_run.pull_requests"),
    ("check_run", "rerequested", ("action",), ["rerequested"], None),
    ("issue_comment", None, ("issue", "number"), "7", "issue.number"),
    ("issue_comment", None, ("comment", "author_association"), [], "comment.author_association"),
]


@pytest.mark.parametrize(("event", "action", "path", "value", "named"), _CRASHERS)
async def test_signed_payload_with_wrong_types_is_400(
    server: TestServer,
    webhook_example: WebhookExample,
    event: str,
    action: str | None,
    path: tuple[str, ...],
    value: Any,
    named: str | None,
) -> None:
    """Finding 12: these answered 500 (AttributeError/TypeError in the classifier)."""
    if event == "issue_comment":
        example = webhook_example("issue_comment", "created")
        payload = pr_comment(example, body=f"{MENTION} x")
    else:
        payload = webhook_example(event, action)
        payload.setdefault("installation", {"id": 1})
        if event == "check_run":
            payload["check_run"]["name"] = "instruct-lab-bot/generate"
    _mutate(payload, path, value)
    async with aiohttp.ClientSession() as session:
        status, body = await post_webhook(session, str(server.make_url(HOOK)), event, payload)
    if named is None:  # an action that is not a string: nothing the bot acts on
        assert status == 202, body
        return
    assert status == 400, body
    assert named in body["error"] and "must be" in body["error"]


# --- Unsigned or oversized bodies are refused before they are read -------------------------


async def _post_streaming(
    server: TestServer, headers: dict[str, str], total: int, *, length: bool
) -> tuple[int, int]:
    """POST `total` bytes in 1 MiB chunks over a raw connection, stopping as soon as the
    server answers: (status, bytes sent before the answer)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = [f"POST {HOOK} HTTP/1.1", f"Host: {server.host}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {total}" if length else "Transfer-Encoding: chunked")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    sent = 0
    chunk = b" " * (1 << 20)

    async def send() -> None:
        nonlocal sent
        while sent < total:
            piece = chunk[: total - sent]
            writer.write(piece if length else b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            sent += len(piece)
        if not length:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sender = asyncio.create_task(send())
    status_line = await reader.readline()
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    writer.close()
    return int(status_line.split()[1]), sent


def _headers(signature: str | None) -> dict[str, str]:
    headers = {"X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": str(uuid.uuid4())}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return headers


@pytest.mark.parametrize("signature", [None, "", "sha256=zz", "sha1=" + "0" * 40])
async def test_unsigned_body_refused_before_it_is_read(
    server: TestServer, signature: str | None
) -> None:
    """A 24 MB body without a well-formed signature: 401 before the body was sent (it was
    read in full and hashed before the fix)."""
    total = 24 << 20
    status, sent = await _post_streaming(server, _headers(signature), total, length=True)
    assert status == 401
    assert sent < total


async def test_oversized_bodies_are_413(server: TestServer) -> None:
    """By Content-Length before reading; without one, cut off once past the limit."""
    well_formed = "sha256=" + "0" * 64
    total = MAX_BODY_BYTES + (1 << 20)
    status, sent = await _post_streaming(server, _headers(well_formed), total, length=True)
    assert status == 413 and sent < total
    status, sent = await _post_streaming(server, _headers(well_formed), total, length=False)
    assert status == 413


# --- Settings errors never echo a secret -------------------------------------------------

_URL_SETTINGS = (
    "GITHUB_API_URL",
    "GITHUB_GIT_URL",
    "REDIS_URL",
    "ARTIFACTS_URL",
    "S3_ENDPOINT_URL",
    "PUBLIC_URL",
)
_BAD_URLS = (
    "redis://:hunter2@host:bad",
    "http://admin:hunter2@host:99999/x",
    "ftp://admin:hunter2@host/",
    "https://:hunter2@",
    "http://admin:hunter2@[::1/",
    "s3://admin:hunter2@bucket/prefix",
    "gopher://hunter2@host",
)


@pytest.mark.parametrize("name", _URL_SETTINGS)
@pytest.mark.parametrize("value", _BAD_URLS)
def test_settings_errors_never_echo_url_passwords(name: str, value: str) -> None:
    env = {"ILAB_BOT_WEBHOOK_SECRET": "s" * 40, f"ILAB_BOT_{name}": value}
    with pytest.raises(SettingsError) as info:
        parse_settings(env, require_github=False)
    message = str(info.value)
    assert f"ILAB_BOT_{name}" in message
    assert "hunter2" not in message
    assert "hunter2" not in repr(info.value.problems)


# --- Comments: commands only in paragraph text, as CommonMark renders it --------------------

_HIDDEN = {
    "list-item fence": f"- ```\n  {MENTION} generate\n  ```",
    "fence in a numbered item": f"1. logs:\n   ~~~\n   {MENTION} generate\n   ~~~",
    "longer fence around a shorter one": f"````\n```\n{MENTION} generate\n````",
    "fence with an info string": f"```text\n{MENTION} generate\n```",
    "unclosed fence": f"```\n{MENTION} generate",
    "HTML comment": f"<!--\n{MENTION} generate\n-->",
    "HTML comment inside a paragraph": f"see <!-- hidden\n{MENTION} generate -->",
    "HTML block": f"<details>\n{MENTION} generate\n</details>",
    "lazy quote continuation": f"> you wrote\n{MENTION} generate",
    "quote in a list": f"- > {MENTION} generate",
    "code span over two lines": f"`run\n{MENTION} generate`",
}


@pytest.mark.parametrize("body", _HIDDEN.values(), ids=_HIDDEN.keys())
def test_no_command_hidden_in_code_html_or_quotes(body: str) -> None:
    """These started jobs before: the line-based parser saw `@bot generate` at a line start."""
    assert parse_commands(body, USERNAME) == []
    assert not mentions(body, USERNAME)


def test_commands_in_paragraphs_still_found() -> None:
    body = (
        f"Thanks!\n  {MENTION} generate --x\n\n```\ncode\n```\n<!-- note -->\n\n"
        f"*looks good*\n{MENTION} precheck"
    )
    found = [(c.name, c.args, c.line) for c in parse_commands(body, USERNAME)]
    assert found == [("generate", ("--x",), 2), ("precheck", (), 10)]


_COMMANDISH = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=60),
        st.sampled_from([f"{MENTION} generate", f"  {MENTION} retry x", "", "```", "~~~", "-->"]),
    ),
    max_size=20,
).map("\n".join)


def _wrap_fence(body: str) -> str:
    longest = max((len(run) for run in re.findall("`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{body}\n{fence}"


_CONTAINERS: dict[str, Callable[[str], str]] = {
    "fence": _wrap_fence,
    "list-item fence": lambda b: "- " + _wrap_fence(b).replace("\n", "\n  "),
    "indented code": lambda b: "intro\n\n" + "\n".join("    " + line for line in b.split("\n")),
    "block quote": lambda b: "\n".join("> " + line for line in b.split("\n")),
    "HTML comment": lambda b: "<!--\n" + b.replace("-->", "") + "\n-->",
}


@settings(max_examples=300, deadline=None, database=None)
@given(body=_COMMANDISH, container=st.sampled_from(sorted(_CONTAINERS)))
def test_nothing_inside_a_container_is_a_command(body: str, container: str) -> None:
    """Property: whatever a code block, quote or HTML comment holds, it runs no command."""
    body = body.replace("\r", "")
    assert parse_commands(_CONTAINERS[container](body), USERNAME) == []


# --- Finding 11: bounded job records and event entries; streams trimmed by age ------------

MEGABYTE = "a" * (1 << 20)


async def _largest_value(queue: Queue, key: str) -> int:
    values = await cast(Any, queue.redis).hvals(key)
    return max(len(v) for v in values)


async def test_megabyte_comment_argument_is_not_stored(
    server: TestServer, redis_url: str, webhook_example: WebhookExample
) -> None:
    """A 1 MB argument in a command comment: the stored intent stays small (it was 1 MB)."""
    example = webhook_example("issue_comment", "created")
    payload = pr_comment(example, body=f"{MENTION} generate {MEGABYTE} {'b ' * 5000}")
    async with aiohttp.ClientSession() as session:
        status, _body = await post_webhook(
            session, str(server.make_url(HOOK)), "issue_comment", payload
        )
    assert status == 202
    queue = Queue.from_url(redis_url)
    try:
        ((_id, fields),) = cast(Any, await queue.redis.xrange(EVENTS_STREAM))
        assert len(fields["intent"]) < 16_000
        assert int(cast(Any, await queue.redis.memory_usage(EVENTS_STREAM))) < 64_000
    finally:
        await queue.aclose()


async def test_job_record_fields_are_bounded(redis_url: str) -> None:
    """Error texts, stage, files list and dead-letter reasons are capped however they are
    written (create, update, transition, finish, dead letter)."""
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    files = [f"compositional_skills/s{n}/{'x' * 200}/qna.yaml" for n in range(5000)]
    job = make_job().evolve(files=",".join(files), stage=MEGABYTE, error=MEGABYTE)
    await queue.create_job(job)
    assert await _largest_value(queue, job_key(job.id)) <= FIELD_LIMITS["files"]
    stored = await queue.get_job(job.id)
    assert stored is not None
    kept = stored.files.split(",")
    assert 0 < len(kept) <= MAX_JOB_FILES and set(kept) <= set(files)  # whole paths only
    await queue.update_job(job.id, stage=MEGABYTE, error=MEGABYTE)
    await queue.enqueue_job(job)
    (entry,) = await queue.read(GENERATE_STREAM, WORKER_GROUP, "w1", block_ms=100)
    await queue.start_job(job.id, "w1")
    await queue.transition(job.id, State.RUNNING, stage=MEGABYTE)
    assert await queue.finish_job(entry, job, "w1", State.FAILED, error=MEGABYTE)
    assert await _largest_value(queue, job_key(job.id)) <= FIELD_LIMITS["files"]
    dead = make_job("j2")
    await queue.create_job(dead)
    await queue.enqueue_job(dead)
    (entry,) = await queue.read(GENERATE_STREAM, WORKER_GROUP, "w1", block_ms=100)
    assert await queue.dead_letter(entry, dead, MEGABYTE)
    assert await _largest_value(queue, job_key(dead.id)) <= FIELD_LIMITS["error"]
    ((_id, fields),) = cast(Any, await queue.redis.xrange(DEAD_STREAM))
    assert len(fields["reason"]) <= FIELD_LIMITS["error"]
    await queue.aclose()


async def test_old_stream_entries_are_trimmed_by_age(redis_url: str) -> None:
    """Entries older than the age bound go at the next append, however short the stream
    (before, only length trimmed them, at ~100k entries)."""
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    old = [f"{n}-0" for n in range(1, 301)]  # 1970: older than any bound
    for stream in (EVENTS_STREAM, GENERATE_STREAM, DEAD_STREAM):
        for entry_id in old:
            await queue.redis.xadd(stream, {"v": "1", "old": "1"}, id=entry_id)
    assert await queue.add_event("d-new", {"type": "commands", "intent": "{}"})
    job = make_job()
    await queue.create_job(job)
    await queue.enqueue_job(job)
    (entry,) = await queue.read(GENERATE_STREAM, WORKER_GROUP, "w1", count=1000, block_ms=100)
    assert await queue.dead_letter(entry, job, "gave up")
    for stream in (EVENTS_STREAM, GENERATE_STREAM, DEAD_STREAM):
        remaining = cast(Any, await queue.redis.xrange(stream))
        assert remaining and not any("old" in fields for _id, fields in remaining), stream
    recent = min_id(STREAM_MAX_AGE)
    assert int(recent.split("-")[0]) > 0
    assert DEAD_STREAM_MAX_AGE >= STREAM_MAX_AGE
    await queue.aclose()


# --- The status API conforms to its OpenAPI description (schemathesis) ---------------------

STATUS_API = REPO_ROOT / "docs" / "status-api.openapi.yaml"


def _fuzz_status_api(base_url: str, examples: int) -> list[str]:
    """Generated requests (schema-valid and schema-violating) for every operation; returns
    the failures: a 5xx, an undocumented status or content type, a body off its schema, a
    valid request refused or an invalid one accepted."""
    schema = schemathesis.openapi.from_path(str(STATUS_API))
    failures: list[str] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise AssertionError(f"invalid operation in {STATUS_API.name}: {result.err()}")
        operation = result.ok()
        failures += _fuzz_operation(operation, GenerationMode.POSITIVE, base_url, examples)
        if list(operation.iter_parameters()):  # else nothing to violate
            failures += _fuzz_operation(operation, GenerationMode.NEGATIVE, base_url, examples)
    return failures


def _fuzz_operation(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, base_url: str, examples: int
) -> list[str]:
    failures: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case[Any]) -> None:
        try:
            case.call_and_validate(base_url=base_url)
        except BaseExceptionGroup as exc:  # how schemathesis reports failed checks
            failures.append(f"{operation.label} ({mode.value}): {exc}")

    check()
    return failures


async def test_status_api_conforms_to_its_description(server: TestServer, redis_url: str) -> None:
    """Before: `state` values undocumented (valid requests "refused"), and 404s undocumented
    and text/plain. Now no failure; every answer is documented JSON, never a 5xx."""
    queue = Queue.from_url(redis_url)
    await queue.create_job(make_job("public1"))
    await queue.create_job(make_job("private1").evolve(private=True, owner="secret"))
    await queue.aclose()
    base_url = str(server.make_url("/")).rstrip("/")
    failures = await asyncio.to_thread(_fuzz_status_api, base_url, 40)
    assert not failures, "\n\n".join(failures[:5])


async def test_unknown_api_paths_answer_json_404(server: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/api/v1/nope", "/api/v1/jobs/a%2Fb", "/api/v1/repos/o/r/pulls/9999999999"):
            async with session.get(server.make_url(path)) as response:
                assert response.status == 404
                assert response.content_type == "application/json"
                assert (await response.json())["error"]
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with session.post(server.make_url("/api/v1/jobs")) as response:
            assert response.status == 405 and response.content_type == "application/json"
