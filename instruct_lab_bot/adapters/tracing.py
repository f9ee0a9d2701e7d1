"""OpenTelemetry: one trace per job, from the webhook through the dispatcher to the worker.

The trace context travels inside the stream entries (`traceparent`), so the worker continues
the webhook's trace even on another host. Configured by the standard `OTEL_*` variables; with
none of them set no provider is installed and spans are non-recording no-ops.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED = frozenset({"/metrics", "/healthz", "/readyz"})
_EXCLUDED_URLS = "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS"  # regexes searched in the path
_ALL_EXCLUDED_URLS = "OTEL_PYTHON_EXCLUDED_URLS"
_SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
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
    """A SERVER span per request, only when tracing is on (no middleware at all otherwise:
    it costs per request). Probes and scrapes (`UNTRACED`) get no span."""
    if not (tracing_requested() if force is None else force):
        return []
    return [_library_middleware()]


@functools.cache
def _library_middleware() -> Any:
    """opentelemetry-instrumentation-aiohttp-server's plain middleware, for our app factory.

    Its middleware reads a tracer, meters and the excluded-URL list that only
    `AioHttpServerInstrumentor.instrument()` sets up; `uninstrument()` right after gives the
    process its own `web.Application` back, so nothing stays patched. The library's settings
    are read during that call: `UNTRACED` joins any excluded URLs the operator configured, and
    spans use the stable HTTP attribute names unless `OTEL_SEMCONV_STABILITY_OPT_IN` says
    otherwise.
    """
    from opentelemetry.instrumentation.aiohttp_server import (
        AioHttpServerInstrumentor,
        create_aiohttp_middleware,
    )

    configured = os.environ.get(_EXCLUDED_URLS, os.environ.get(_ALL_EXCLUDED_URLS, ""))
    untraced = ",".join(f"^{re.escape(path)}$" for path in sorted(UNTRACED))
    settings = {
        _EXCLUDED_URLS: f"{untraced},{configured}" if configured else untraced,
        _SEMCONV_OPT_IN: os.environ.get(_SEMCONV_OPT_IN, "http"),
    }
    with _environment(settings), warnings.catch_warnings():
        # instrument() defines its (here unused) `web.Application` subclass; aiohttp warns.
        warnings.filterwarnings("ignore", "Inheritance class", DeprecationWarning)
        instrumentor = AioHttpServerInstrumentor()
        instrumentor.instrument()
        instrumentor.uninstrument()
    return create_aiohttp_middleware()


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a library's set-up, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
