"""Metrics, traces and logs of one real job (issue 5), with real parts only.

- Metrics: after a job run by the in-process server (with its dispatcher) and a real
  `instruct-lab-bot worker --metrics-port N` process, both `/metrics` pages are scraped over
  HTTP, parsed with prometheus-client's parser, checked by `promtool check metrics`, and the
  values must have moved; no label value may name a PR, sha or job.
- Traces: an in-memory exporter sees one trace from the webhook's server span through the
  dispatcher to the worker's spans, and log lines written inside spans carry its trace id; a
  real worker process configured by `OTEL_*` exports its spans over OTLP/HTTP to a real
  receiver under that same trace; with no `OTEL_*` nothing records and nothing is printed.
- Logs: the JSON log of a whole job holds no private key, installation token, webhook secret or
  status-page token; `Redactor` is unit-tested on token shapes, PEM blocks and set secrets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import Attributes
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from instruct_lab_bot.adapters import tracing
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.settings import Secret, Settings
from instruct_lab_bot.services import logs
from instruct_lab_bot.services.app_keys import METRICS, QUEUE
from testkit.harness import RunningBot, run_bot
from tests.fixtures.bot import WorkerProcess
from tests.fixtures.redis import free_port
from tests.fixtures.world import World
from tests.test_grafana import promtool

REACTIONS = "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"
#: Label names whose values are numbers by design (bucket bounds, HTTP statuses, exit codes).
NUMERIC_LABELS = {"le", "quantile", "status", "code"}
STATUS_TOKEN = "status-page-token-5b1e7c0d"
Families = dict[str, Metric]


# --------------------------------------------------------------------------- shared helpers


async def get_text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, url
        if url.endswith("/metrics"):  # what Prometheus reads to pick its parser
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return await response.text()


def parse_metrics(text: str) -> Families:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families: Families) -> Iterator[Sample]:
    for family in families.values():
        yield from family.samples


def value(families: Families, sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels`."""
    found = [
        s.value
        for s in samples(families)
        if s.name == sample and labels.items() <= s.labels.items()
    ]
    assert found, f"no sample {sample}{labels}"
    return sum(found)


def label_values(families: Families, sample: str, label: str) -> set[str]:
    return {s.labels[label] for s in samples(families) if s.name == sample and label in s.labels}


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float | None = 30
) -> None:
    """Wait (bounded) for `check()`; a wait for a state, not a timing assertion. `None`: only
    the test's own timeout bounds it."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def worker_metrics(worker: WorkerProcess) -> Families:
    return parse_metrics(await get_text(worker_url(worker) + "/metrics"))


def worker_url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.metrics_port}"


async def wait_until_serving(worker: WorkerProcess) -> None:
    async def up() -> bool:
        assert worker.process.poll() is None, worker.log_path.read_text()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(worker_url(worker) + "/healthz") as response,
            ):
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    # A worker that dies fails `up` at once; a slow start (over 30 s under load) is no failure.
    await eventually(up, "the worker's /metrics port", timeout=None)


async def run_job(world: World, bot: RunningBot, worker: WorkerProcess | None = None) -> str:
    """Comment `generate`, wait for its result on the PR (and in the worker's metrics); the job
    id. The comment's 👀 reaction fails once with a 502 (retried), so error panels have data."""
    world.gh.inject("POST", REACTIONS, status=502)
    status, _ = await world.comment(bot)
    assert status == 202
    await world.result_comment()
    queue = Queue.from_url(world.settings.redis_url)
    try:
        (job_id,) = await queue.pr_job_ids(RepoRef("instructlab", "taxonomy").pull(7))
    finally:
        await queue.aclose()
    if worker is not None:  # the worker counts the job just after it comments

        async def counted() -> bool:
            families = await worker_metrics(worker)
            completed = "instruct_lab_bot_jobs_completed_total"
            return value(families, completed, conclusion="success") >= 1

        await eventually(counted, "the worker to count the job")
    return job_id


async def refresh_queue_gauges(bot: RunningBot) -> None:
    """The queue gauges refresh on a timer (10 s); refresh now, after the job."""
    await bot.app[METRICS].queue.refresh(bot.app[QUEUE])


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def concrete_values(world: World, job_id: str) -> list[str]:
    """Strings that must never be a label value or part of one."""
    remote = world.remote
    return [remote.head_sha, remote.head_sha[:7], remote.base_sha, job_id, str(world.comment_id)]


def assert_bounded_labels(families: Families, forbidden: Sequence[str]) -> None:
    """No label names a PR, sha, job or comment: routes are templates, the rest are words."""
    for sample in samples(families):
        for label, text in sample.labels.items():
            where = f"{sample.name}{{{label}={text!r}}}"
            assert not any(f in text for f in forbidden), where
            if label == "route":
                assert re.fullmatch(r"(/([a-z_-]+|\{[a-z_]+\}))+", text), where
            elif label == "worker":
                pass  # the worker's consumer name (host-pid-suffix): bounded by live processes
            elif label in ("ilab_version", "profile"):
                assert re.fullmatch(r"\d+\.\d+(\.\d+)?|unknown", text), where  # a release
            elif label not in NUMERIC_LABELS:
                assert not re.search(r"\d{2,}|[0-9a-f]{7,}", text), where


# --------------------------------------------------------------------------- metrics


async def test_metrics_move_after_a_real_job(
    world: World,
    worker_processes: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "0.5")
    worker = worker_processes(world.settings, metrics_port=free_port())
    await wait_until_serving(worker)
    await worker.registered(world.settings.redis_url)
    async with run_bot(world.settings, workers=0) as bot:
        job_id = await run_job(world, bot, worker)
        await refresh_queue_gauges(bot)
        server_text = await get_text(bot.url + "/metrics")
        worker_text = await get_text(worker_url(worker) + "/metrics")

    for name, text in (("server", server_text), ("worker", worker_text)):
        checked = promtool_check_metrics(text)
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"
    server, work = parse_metrics(server_text), parse_metrics(worker_text)

    ns = "instruct_lab_bot_"
    # server: the delivery, its command, the job it queued
    assert value(server, ns + "webhooks_received_total", event="issue_comment", outcome="queued")
    assert value(server, ns + "webhook_handling_seconds_count") >= 1
    assert value(server, ns + "webhook_signature_failures_total") == 0
    assert value(server, ns + "commands_total", command="generate", outcome="received") == 1
    assert value(server, ns + "commands_total", command="generate", outcome="accepted") == 1
    assert value(server, ns + "jobs_enqueued_total", command="generate") == 1
    # worker: the job, its subprocess, its uploads
    assert value(work, ns + "jobs_started_total", command="generate") == 1
    assert value(work, ns + "jobs_completed_total", command="generate", conclusion="success") == 1
    assert value(work, ns + "jobs_completed_total", conclusion="failure") == 0
    assert value(work, ns + "job_duration_seconds_count", command="generate") == 1
    assert value(work, ns + "job_duration_seconds_sum", command="generate") > 0
    assert value(work, ns + "job_queue_wait_seconds_count", command="generate") == 1
    assert value(work, ns + "subprocess_exits_total", command="generate", code="0") == 1
    assert value(work, ns + "artifact_bytes_uploaded_total") > 0
    assert value(work, ns + "worker_busy_jobs") == 0
    assert value(work, ns + "worker_concurrency") == 1
    # GitHub calls from both processes, by route template and status
    calls = ns + "github_api_calls_total"
    server_routes = label_values(server, calls, "route")
    worker_routes = label_values(work, calls, "route")
    assert REACTIONS in server_routes
    assert value(server, calls, route=REACTIONS, status="502") == 1
    assert value(server, calls, route=REACTIONS, status="201") == 1
    assert "/app/installations/{installation_id}/access_tokens" in server_routes | worker_routes
    assert "/repos/{owner}/{repo}/check-runs/{check_run_id}" in worker_routes
    assert "/repos/{owner}/{repo}/issues/{number}/comments" in worker_routes
    for families in (server, work):
        assert 0 < value(families, ns + "github_rate_limit_remaining") <= world.gh.rate_limit
    # queue-wide gauges, from Redis: the same truth from any process
    for families in (server, work):
        assert label_values(families, ns + "queue_length", "stream") == {"events", "jobs"}
        assert label_values(families, ns + "queue_pending", "stream") == {"events", "jobs"}
        assert label_values(families, ns + "queue_lag", "stream") == {"events", "jobs"}
        for gauge in ("queue_oldest_age_seconds", "dead_letters", "workers_live"):
            assert ns + gauge in families
    assert value(server, ns + "queue_length", stream="jobs") == 1
    assert value(server, ns + "queue_pending", stream="jobs") == 0
    assert value(server, ns + "queue_lag", stream="jobs") == 0
    assert value(server, ns + "dead_letters") == 0
    assert value(server, ns + "workers_live") >= 1
    assert label_values(server, ns + "worker_last_heartbeat_timestamp_seconds", "worker")

    forbidden = concrete_values(world, job_id)
    assert_bounded_labels(server, forbidden)
    assert_bounded_labels(work, forbidden)
    print_metrics(server, work)
    # the real worker process's own JSON log holds no secret either
    tokens = [t for issued in world.gh.tokens.values() for t in issued]
    worker_log = worker.log_path.read_text()
    assert '"event": "job.finished"' in worker_log
    assert_no_secret(worker_log, [*world.settings.secrets(), *tokens], private_key(world))


def print_metrics(*scrapes: Families) -> None:
    """One line per metric (for the issue's closing note)."""
    seen: dict[str, Metric] = {}
    for families in scrapes:
        for name, family in families.items():
            if name.startswith("instruct_lab_bot_") and not name.endswith("_created"):
                seen.setdefault(name, family)
    print()
    for name, family in sorted(seen.items()):
        labels = sorted(
            {k for s in family.samples for k in s.labels if k not in ("le", "quantile")}
        )
        suffix = "_total" if family.type == "counter" else ""
        print(f"{name}{suffix} {family.type} [{', '.join(labels)}]: {family.documentation}")


# --------------------------------------------------------------------------- traces


class SwitchProvider(trace.TracerProvider):
    """The process's TracerProvider for the whole session (OpenTelemetry lets a process set
    one, once): the SDK's while a test captures, otherwise no-op tracers, exactly as in a
    process without `OTEL_*` (so no other test sees spans, trace ids or traceparents)."""

    def __init__(self, sdk: TracerProvider) -> None:
        self.sdk = sdk
        self.on = False

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        if not self.on:
            return trace.NoOpTracer()
        return self.sdk.get_tracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )


@dataclass
class SpanCapture:
    exporter: InMemorySpanExporter
    provider: SwitchProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture(scope="session")
def span_provider() -> Iterator[SpanCapture]:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    provider = SwitchProvider(sdk)
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "another TracerProvider was set first"
    yield SpanCapture(exporter, provider)
    sdk.shutdown()


@pytest.fixture
def spans(span_provider: SpanCapture) -> Iterator[SpanCapture]:
    """Capture the spans of one test (the tracer is looked up per span, so this switches)."""
    span_provider.exporter.clear()
    span_provider.provider.on = True
    try:
        yield span_provider
    finally:
        span_provider.provider.on = False
        span_provider.exporter.clear()


@pytest.fixture
def json_log() -> Iterator[Callable[[Settings], io.StringIO]]:
    """Route structlog's output into a buffer as JSON lines; restore the defaults after."""

    def configure(settings: Settings) -> io.StringIO:
        buffer = io.StringIO()
        logs.configure("json", settings.secrets(), stream=buffer)
        return buffer

    try:
        yield configure
    finally:
        structlog.reset_defaults()


def log_events(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def span_tree(spans: Sequence[ReadableSpan]) -> str:
    """The spans as an indented tree (children in start order), with their bot attributes."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans if s.context}
    for item in spans:
        parent = item.parent.span_id if item.parent and item.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(item)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for item in sorted(by_parent.get(parent, []), key=lambda s: s.start_time or 0):
            attributes = {
                k.removeprefix("ilab_bot."): v
                for k, v in (item.attributes or {}).items()
                if k.startswith("ilab_bot.") or k == "http.route"
            }
            took = ((item.end_time or 0) - (item.start_time or 0)) / 1e9
            shown = " ".join(f"{k}={v}" for k, v in attributes.items())
            lines.append(f"{'  ' * depth}{item.name} ({took:.3f}s) {shown}".rstrip())
            walk(item.context.span_id if item.context else None, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


async def test_one_trace_from_webhook_to_worker(
    world: World,
    spans: SpanCapture,
    json_log: Callable[[Settings], io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "0.5")
    buffer = json_log(world.settings)
    async with run_bot(world.settings, workers=1, tracing=True) as bot:
        job_id = await run_job(world, bot)
        await eventually(lambda: _finished(spans, "job"), "the job span to end", timeout=10)

    finished = spans.spans()
    webhook = [
        s for s in finished if s.kind is SpanKind.SERVER and s.name == "POST /api/github/hook"
    ]
    (root,) = webhook
    assert root.context is not None and root.parent is None
    assert dict(root.attributes or {})["http.route"] == "/api/github/hook"
    assert dict(root.attributes or {})["http.response.status_code"] == 202
    trace_id = root.context.trace_id
    in_trace = [s for s in finished if s.context and s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    wanted = {"dispatch", "permission_check", "job", "git.fetch", "ilab.run", "artifacts.upload"}
    assert wanted <= names, f"missing {wanted - names}; trace has {sorted(names)}"
    assert {s.context.trace_id for s in finished if s.name in wanted and s.context} == {trace_id}
    (job_span,) = [s for s in in_trace if s.name == "job"]
    attributes = dict(job_span.attributes or {})
    assert attributes["ilab_bot.job_id"] == job_id
    assert attributes["ilab_bot.repo"] == "instructlab/taxonomy"
    assert attributes["ilab_bot.pr"] == 7
    assert attributes["ilab_bot.command"] == "generate"
    (dispatch,) = [s for s in in_trace if s.name == "dispatch"]
    assert dispatch.parent is not None and dispatch.parent.span_id == root.context.span_id
    run = next(s for s in in_trace if s.name == "ilab.run")
    assert dict(run.attributes or {})["ilab_bot.exit_code"] == "0"
    for child in ("git.fetch", "ilab.run", "artifacts.upload"):
        (item,) = [s for s in in_trace if s.name == child]
        assert item.parent is not None and job_span.context is not None
        assert item.parent.span_id == job_span.context.span_id, child

    # log lines written inside the job's spans carry its trace id
    events = log_events(buffer)
    trace_hex = format(trace_id, "032x")
    inside = [e for e in events if e.get("job_id") == job_id]
    assert {"job.started", "job.uploaded", "job.finished"} <= {e["event"] for e in inside}
    assert all(e.get("trace_id") == trace_hex for e in inside), inside
    taken = [e for e in events if e["event"] == "dispatcher.event"]
    assert taken and taken[0]["trace_id"] == trace_hex
    print(f"\nspan tree of one job (trace {trace_hex}):\n{span_tree(in_trace)}")


async def _finished(capture: SpanCapture, name: str) -> bool:
    return any(s.name == name for s in capture.spans())


def test_record_span_keeps_the_real_times_under_the_current_span(spans: SpanCapture) -> None:
    """For waits known only afterwards (queue wait): real start and end, current parent."""
    with tracing.span("job", job_id="j1") as job:
        tracing.record_span("queue.wait", 1_700_000_000.25, 1_700_000_002.5, stream="jobs")
    (wait,) = [s for s in spans.spans() if s.name == "queue.wait"]
    assert wait.start_time is not None and wait.end_time is not None
    # epoch seconds as floats carry about a microsecond of precision, not a nanosecond
    assert abs(wait.start_time - 1_700_000_000_250_000_000) < 1000
    assert abs(wait.end_time - 1_700_000_002_500_000_000) < 1000
    assert wait.parent is not None and wait.parent.span_id == job.get_span_context().span_id
    assert dict(wait.attributes or {}) == {"ilab_bot.stream": "jobs"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


@dataclass
class OtlpReceiver:
    """A real OTLP/HTTP endpoint (protobuf over `POST /v1/traces`) collecting what it gets."""

    url: str
    spans: list[ReceivedSpan]


@pytest.fixture
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    received: list[ReceivedSpan] = []

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest.FromString(body)
        for resource_spans in message.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for item in scope_spans.spans:
                    attributes = {a.key: _any_value(a.value) for a in item.attributes}
                    received.append(
                        ReceivedSpan(
                            resource.get("service.name", ""),
                            item.name,
                            item.trace_id.hex(),
                            item.span_id.hex(),
                            item.parent_span_id.hex(),
                            attributes,
                        )
                    )
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield OtlpReceiver(f"http://127.0.0.1:{port}", received)
    finally:
        await runner.cleanup()


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


async def test_trace_continues_in_a_worker_process(
    world: World,
    spans: SpanCapture,
    otlp_receiver: OtlpReceiver,
    worker_processes: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trace context crosses Redis into another process: a real `instruct-lab-bot worker`
    configured by the standard `OTEL_*` variables exports its spans over OTLP/HTTP, under the
    trace the webhook started in this process."""
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "0.5")
    worker = worker_processes(
        world.settings,
        metrics_port=free_port(),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    await wait_until_serving(worker)
    await worker.registered(world.settings.redis_url)
    async with run_bot(world.settings, workers=0, tracing=True) as bot:
        job_id = await run_job(world, bot, worker)

    async def exported() -> bool:
        return {"job", "artifacts.upload"} <= {s.name for s in otlp_receiver.spans}

    await eventually(exported, "the worker's spans over OTLP")
    (root,) = [s for s in spans.spans() if s.name == "POST /api/github/hook"]
    (dispatch,) = [s for s in spans.spans() if s.name == "dispatch"]
    assert root.context is not None and dispatch.context is not None
    trace_hex = format(root.context.trace_id, "032x")
    (job,) = [s for s in otlp_receiver.spans if s.name == "job"]
    assert job.service == "instruct-lab-bot-worker"
    assert job.trace_id == trace_hex
    assert job.parent_id == format(dispatch.context.span_id, "016x")
    assert job.attributes["ilab_bot.job_id"] == job_id
    children = {s.name for s in otlp_receiver.spans if s.parent_id == job.span_id}
    assert {"git.fetch", "ilab.run", "artifacts.upload"} <= children
    # the worker's own log lines inside the job carry the same trace id
    inside = [e for e in worker.events() if e.get("job_id") == job_id]
    assert inside and all(e.get("trace_id") == trace_hex for e in inside)


def test_tracing_off_by_default_costs_nothing_and_prints_nothing() -> None:
    """With no `OTEL_*` variable: no provider, no middleware, non-recording spans, no trace ids
    in log lines, nothing printed (checked in a fresh interpreter: this one has a provider)."""
    code = """
import io, sys
import structlog
from aiohttp import web
from opentelemetry import trace
from instruct_lab_bot.services import logs
from instruct_lab_bot.adapters import tracing
assert not tracing.configure_tracing("instruct-lab-bot-server")
assert tracing.server_middlewares() == []
buffer = io.StringIO()
logs.configure("json", stream=buffer)
with tracing.span("job", job_id="j") as current:
    assert not current.is_recording()
    assert tracing.current_traceparent() == ""
    structlog.get_logger().info("inside.span")
sys.stdout.write(buffer.getvalue())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (line,) = done.stdout.splitlines()
    event = json.loads(line)
    assert event["event"] == "inside.span" and "trace_id" not in event


# --------------------------------------------------------------------------- logs


async def test_job_log_holds_no_secret(
    world: World,
    json_log: Callable[[Settings], io.StringIO],
    worker_processes: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole job's JSON log (server, dispatcher, worker in this process; and a real worker
    process's own log) never shows a private key, token or secret."""
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "0.5")
    settings = dataclasses.replace(world.settings, status_auth=Secret(f"bearer:{STATUS_TOKEN}"))
    world.settings = settings
    buffer = json_log(settings)
    async with run_bot(settings, workers=1) as bot:
        job_id = await run_job(world, bot)
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{bot.url}/api/v1/jobs/{job_id}",
                headers={"Authorization": f"Bearer {STATUS_TOKEN}"},
            ) as response,
        ):
            assert response.status == 200
    text = buffer.getvalue()
    events = log_events(buffer)
    names = {e["event"] for e in events}
    assert {"dispatcher.event", "job.queued", "job.started", "job.finished"} <= names
    assert any(e.get("delivery_id") for e in events if e["event"] == "dispatcher.event")
    in_job = [e for e in events if e["event"] in ("job.started", "job.uploaded", "job.finished")]
    assert in_job and all(
        (e["job_id"], e["repo"], e["pr"], e["command"])
        == (job_id, "instructlab/taxonomy", 7, "generate")
        for e in in_job
    )

    tokens = [t for issued in world.gh.tokens.values() for t in issued]
    assert tokens, "the job used no installation token: the check below would prove nothing"
    secrets = [*settings.secrets(), STATUS_TOKEN, *tokens]
    assert_no_secret(text, secrets, private_key(world))


def private_key(world: World) -> str:
    return world.settings.github_private_key.value


def assert_no_secret(text: str, secrets: Sequence[str], private_key: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret leaked: {secret[:12]}…"
    assert "PRIVATE KEY" not in text
    body = [line for line in private_key.splitlines() if line and "-----" not in line]
    assert body and not [line for line in body if line in text]


# --------------------------------------------------------------------------- Redactor


def test_redactor_on_token_shapes_pem_blocks_and_secrets() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7k3\nq9ZyD0wH\n"
        "-----END RSA PRIVATE KEY-----"
    )
    redactor = Redactor(["webhook-secret-value", "abc"])  # too short to redact safely
    shapes = {
        "ghs_" + "A1b2" * 9: "installation token",
        "ghp_" + "Z9y8" * 9: "personal token",
        "gho_" + "k" * 36: "OAuth token",
        "ghu_" + "u" * 36: "user-to-server token",
        "ghr_" + "r" * 36: "refresh token",
        "github_pat_" + "11ABCDE0Y" + "_" + "x" * 59: "fine-grained token",
        "v1." + "0123456789abcdef" * 2 + "01234567": "legacy installation token",
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiI0MiJ9.c2lnbmF0dXJl": "app JWT",
    }
    for token, kind in shapes.items():
        event = {"event": "github.retry", "error": f"refused {token}, retrying", "n": 3}
        out = redactor(None, "info", dict(event))
        assert token not in out["error"], kind
        assert out["error"] == "refused ***, retrying", kind
        assert out["n"] == 3
    out = redactor(None, "error", {"event": "app.key_invalid", "detail": f"bad key:\n{pem}\n"})
    assert "PRIVATE KEY" not in out["detail"] and "MIIEow" not in out["detail"]
    assert out["detail"] == "bad key:\n***\n"
    out = redactor(None, "info", {"event": "x", "why": "secret is webhook-secret-value!"})
    assert out["why"] == "secret is ***!"
    # nested values, exceptions and objects whose repr shows a secret
    token = "ghs_" + "Q" * 36
    out = redactor(
        None,
        "info",
        {
            "event": "x",
            "headers": {"authorization": f"token {token}"},
            "argv": ["git", f"https://x-access-token:{token}@github.com/o/r"],
            "error": RuntimeError(f"401 for {token}"),
            "abc": "abc stays (short secrets are not redacted)",
        },
    )
    rendered = json.dumps(out, default=repr)
    assert token not in rendered and "webhook-secret-value" not in rendered
    assert out["abc"] == "abc stays (short secrets are not redacted)"
    # credentials in URLs and Authorization headers, whatever the token looks like
    out = redactor(
        None,
        "info",
        {
            "url": "https://user:opaque-pass_123@example.com/x",
            "header": "Authorization: Bearer opaque.token-value",
        },
    )
    assert "opaque-pass_123" not in out["url"] and out["url"].endswith("@example.com/x")
    assert "opaque.token-value" not in out["header"]
    # ordinary words next to "token" survive
    out = redactor(None, "info", {"event": "github.token_refreshed", "text": "token refreshed"})
    assert out == {"event": "github.token_refreshed", "text": "token refreshed"}


def test_redactor_hides_the_whole_userinfo_of_a_url() -> None:
    """Redis URLs carry a password with an empty user (`redis://:pw@host`); a bare token can
    stand where the user goes. Everything before the `@` becomes `***`, the host stays."""
    redactor = Redactor()
    cases = {
        "redis://:s3cret-pw@redis:6379/0": "redis://***@redis:6379/0",
        "rediss://default:s3cret-pw@redis:6380": "rediss://***@redis:6380",
        "https://opaque-token@github.com/o/r.git": "https://***@github.com/o/r.git",
        "mail bob@example.com at https://example.com/x": "mail bob@example.com at https://example.com/x",
    }
    for text, redacted in cases.items():
        assert redactor.redact(f"cannot connect to {text}") == f"cannot connect to {redacted}"


def test_redactor_covers_each_line_of_a_multiline_secret() -> None:
    """Part of a PEM key (one base64 line, e.g. in a parser's error) is redacted too."""
    key_line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
    secret = f"-----BEGIN PRIVATE KEY-----\n{key_line}\nAbCd\n-----END PRIVATE KEY-----\n"
    redactor = Redactor([secret])
    out = redactor(None, "error", {"event": "x", "error": f"cannot parse {key_line!r}"})
    assert key_line not in out["error"]


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_configured_logger_redacts_in_both_formats(log_format: str) -> None:
    buffer = io.StringIO()
    logs.configure(log_format, ["webhook-secret-value"], stream=buffer)
    try:
        structlog.get_logger("t").info("test.event", secret="webhook-secret-value", n=1)
    finally:
        structlog.reset_defaults()
    line = buffer.getvalue()
    assert "test.event" in line and "webhook-secret-value" not in line
    if log_format == "json":
        assert json.loads(line)["secret"] == "***"
