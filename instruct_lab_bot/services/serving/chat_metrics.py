"""Metrics of serving PR models for chat.

`model` labels name a served model (its backend name): bounded by how many are served at once,
since a model's series are removed when it is (`forget`)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Histogram

from instruct_lab_bot.core.serving import ServedModel, ServeState
from instruct_lab_bot.services.metric_kinds import NS, counter, gauge

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
PROXY_ERRORS = (
    "bad_request", "unauthorized", "not_served", "closed", "too_large", "limited",
    "cold_start_timeout", "serving_error", "upstream_error", "upstream_timeout", "client_gone",
)  # fmt: skip


class ChatMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.served = gauge(
            r, "models_served", "PR models the serving backend has, by state", ["state"]
        )
        for state in ServeState:
            self.served.labels(state.value)
        self.cold_starts = counter(
            r, "model_cold_starts", "Requests that had to wait for a model to start"
        )
        self.cold_start_seconds = Histogram(
            f"{NS}_model_cold_start_seconds", "Wait for a model to answer after a cold start",
            buckets=TTFT_BUCKETS, registry=r,
        )  # fmt: skip
        self.first_token = Histogram(
            f"{NS}_chat_time_to_first_token_seconds",
            "From a chat request reaching the proxy to the first answer token leaving it",
            buckets=TTFT_BUCKETS, registry=r,
        )  # fmt: skip
        self.requests = counter(
            r, "chat_requests", "Chat requests through the proxy", ["model", "outcome"]
        )
        self.tokens = counter(
            r, "chat_tokens", "Answer tokens streamed through the proxy", ["model"]
        )
        self.proxy_errors = counter(
            r, "chat_proxy_errors", "Chat requests the proxy refused or failed", ["reason"],
            zero=[(reason,) for reason in PROXY_ERRORS],
        )  # fmt: skip

    def observe_served(self, models: list[ServedModel]) -> None:
        for state in ServeState:
            self.served.labels(state.value).set(sum(1 for m in models if m.state is state))

    def forget(self, model: str) -> None:
        """Drop a removed model's series (its label value is gone for good)."""
        for outcome in ("ok", "error"):
            with contextlib.suppress(KeyError):
                self.requests.remove(model, outcome)
        with contextlib.suppress(KeyError):
            self.tokens.remove(model)
