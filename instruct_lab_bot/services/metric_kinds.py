"""One-line metric registration for the metrics modules (`metrics.py`, `serving/chat_metrics.py`).

Every metric is `instruct_lab_bot_<name>` in the process's own registry; series whose label
values are known up front are created at zero (a counter that first appears at 1 looks flat to
`rate()`/`increase()`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

NS = "instruct_lab_bot"


def gauge(registry: CollectorRegistry, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
    """The gauge `instruct_lab_bot_<name>`."""
    return Gauge(f"{NS}_{name}", doc, list(labels), registry=registry)


def counter(
    registry: CollectorRegistry,
    name: str,
    doc: str,
    labels: Sequence[str] = (),
    zero: Iterable[Sequence[str]] = (),
) -> Counter:
    """The counter `instruct_lab_bot_<name>`, with a series at zero for each label tuple in
    `zero`."""
    metric = Counter(f"{NS}_{name}", doc, list(labels), registry=registry)
    for values in zero:
        metric.labels(*values)
    return metric
