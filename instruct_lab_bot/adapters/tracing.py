"""OpenTelemetry: one trace per job, from the webhook through the dispatcher to the worker.

The trace context travels inside the stream entries (`traceparent`), so the worker continues
the webhook's trace even on another host. Configured by the standard `OTEL_*` variables; with
none of them set no provider is installed and spans are non-recording no-ops.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any

from aiohttp import web
from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED = frozenset({"/metrics", "/healthz", "/readyz"})
_ENABLING = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "")
    if exporter == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(exporter) or any(env.get(name) for name in _ENABLING)


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install an SDK provider when `OTEL_*` asks for it: OTLP/HTTP (the default exporter)
    and/or `console` (`OTEL_TRACES_EXPORTER=console`, for a look on a terminal)."""
    if not tracing_requested(environ):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    env = os.environ if environ is None else environ
    names = {n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()}
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource)
    if "console" in names:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    if "otlp" in names or "console" not in names:  # OTLP unless only `console` was asked
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def tracer() -> Tracer:
    return trace.get_tracer("instruct_lab_bot")


def current_traceparent() -> str:
    """The W3C `traceparent` of the current span ('' when nothing records)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


@contextlib.contextmanager
def continue_trace(traceparent: str) -> Iterator[None]:
    """Make `traceparent` the parent of spans started inside (e.g. from a stream entry)."""
    if not traceparent:
        yield
        return
    carrier: MutableMapping[str, str] = {"traceparent": traceparent}
    token = context.attach(_PROPAGATOR.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Span]:
    """A child span of the current one, with bot attributes (job id, repo, PR, command)."""
    with tracer().start_as_current_span(name) as current:
        if current.is_recording():
            current.set_attributes(_attributes(attributes))
        yield current


def record_span(name: str, start: float, end: float, **attributes: Any) -> None:
    """A child span for something already over, with its real times (epoch seconds): the
    wait in the queue, say, which is only known once the job starts."""
    current = tracer().start_span(name, start_time=int(start * 1e9))
    if current.is_recording():
        current.set_attributes(_attributes(attributes))
    current.end(end_time=int(max(start, end) * 1e9))


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {f"ilab_bot.{k}": v for k, v in attributes.items() if v not in (None, "")}


def add_trace_ids(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: the trace and span ids in every log line written inside a span."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event["trace_id"] = format(ctx.trace_id, "032x")
        event["span_id"] = format(ctx.span_id, "016x")
    return event


def server_middlewares(force: bool | None = None) -> list[Any]:
    """A server span per request, only when tracing is on (it costs per request).

    Our own small middleware rather than opentelemetry-instrumentation-aiohttp-server's
    `create_aiohttp_middleware()`: in its newest release (0.66b1) that middleware reads module
    globals (tracer, meters, excluded URLs) that only `AioHttpServerInstrumentor().instrument()`
    sets, and that call replaces `web.Application` for the whole process; it also pins the
    semantic conventions to an older SDK. Probes and scrapes (`UNTRACED`) get no span.
    """
    if not (tracing_requested() if force is None else force):
        return []
    return [_server_span]


@web.middleware
async def _server_span(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`POST /api/github/hook` as a SERVER span, continuing a caller's `traceparent`."""
    if request.path in UNTRACED:
        return await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    attributes = {"http.request.method": request.method, "url.path": request.path}
    if route:
        attributes["http.route"] = route
    with tracer().start_as_current_span(
        f"{request.method} {route}".strip(),
        context=propagate.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes=attributes,
    ) as current:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _set_http_status(current, exc.status)
            raise
        _set_http_status(current, response.status)
        return response


def _set_http_status(current: Span, status: int) -> None:
    current.set_attribute("http.response.status_code", status)
    if status >= 500:
        current.set_status(Status(StatusCode.ERROR))
