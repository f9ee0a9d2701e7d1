"""OpenTelemetry: one trace per job, from the webhook through the dispatcher to the worker.

The trace context travels inside the stream entries (`traceparent`), so the worker continues
the webhook's trace even on another host. Configured by the standard `OTEL_*` variables; with
none of them set no provider is installed and spans are non-recording no-ops.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_ENABLING = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "")
    if exporter == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(exporter) or any(env.get(name) for name in _ENABLING)


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install an SDK provider exporting over OTLP/HTTP when `OTEL_*` asks for it."""
    if not tracing_requested(environ):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    env = os.environ if environ is None else environ
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource)
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
            current.set_attributes(
                {f"ilab_bot.{k}": v for k, v in attributes.items() if v not in (None, "")}
            )
        yield current


def add_trace_ids(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: the trace and span ids in every log line written inside a span."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event["trace_id"] = format(ctx.trace_id, "032x")
        event["span_id"] = format(ctx.span_id, "016x")
    return event


def server_middlewares(force: bool | None = None) -> list[Any]:
    """The aiohttp server instrumentation, only when tracing is on (it costs per request)."""
    if not (tracing_requested() if force is None else force):
        return []
    from opentelemetry.instrumentation.aiohttp_server import create_aiohttp_middleware

    return [create_aiohttp_middleware(trace.get_tracer_provider())]
