"""Prometheus metrics: one registry per process object, no module-level globals.

Label values are bounded (event, action, command, conclusion, route template, exit code):
never a PR number, sha or job id. Queue-wide gauges are computed from Redis, so every replica
reports the same truth and dashboards take `max()` across instances.

Series whose label values are known up front (commands, conclusions) are created at zero when
the process starts: a counter that first appears at 1 looks flat to `rate()`/`increase()`, so
the first job after a restart would be missing from every rate panel and duration quantile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.keys import (
    DISPATCH_GROUP,
    EVENTS_STREAM,
    WORKER_GROUP,
    jobs_stream,
)
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.stats import StreamStats
from instruct_lab_bot.core.command_table import CAPABILITIES, GPU_COMMANDS, KNOWN_COMMANDS
from instruct_lab_bot.core.jobs import CONCLUSIONS
from instruct_lab_bot.core.reply_limits import ReplyReason, Silenced, is_limited
from instruct_lab_bot.services.metric_kinds import NS, counter, gauge
from instruct_lab_bot.services.serving.chat_metrics import ChatMetrics

log = structlog.get_logger(__name__)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
JOB_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600)
#: What `generate_latest` writes (newer clients' `CONTENT_TYPE_LATEST` names 1.0.0 instead,
#: which Prometheus before 3.0 does not know).
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


#: A stream's gauges (label `stream`: "events", or "jobs" for all pools together), by the
#: `StreamStats` field each shows: field -> (name, help).
_STREAM_GAUGES = {
    "length": ("queue_length", "Entries in the stream"),
    "pending": ("queue_pending", "Entries delivered, not yet acknowledged"),
    "lag": ("queue_lag", "Entries not yet delivered to the group"),
}
#: A worker pool's gauges (label `capability`): what it shows -> (name, help).
_POOL_GAUGES = {
    "waiting": ("pool_waiting_jobs", "Jobs on the pool's stream no worker has taken yet"),
    "running": ("pool_running_jobs", "Jobs of the pool taken by a worker, not yet finished"),
    "oldest_age": ("pool_oldest_age_seconds", "Age of the pool's oldest job not yet started"),
    "workers_live": ("pool_workers_live", "Live workers that take the pool's jobs"),
}


class QueueGauges:
    """Stream length, pending, lag, oldest queued age, dead letters and live workers."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.streams = {
            field: gauge(r, name, doc, ["stream"]) for field, (name, doc) in _STREAM_GAUGES.items()
        }
        self.oldest_age = gauge(
            r, "queue_oldest_age_seconds", "Age of the oldest job not yet started"
        )
        self.dead_letters = gauge(r, "dead_letters", "Jobs in the dead-letter stream")
        self.workers_live = gauge(r, "workers_live", "Workers with a live registration")
        self.pools = PoolGauges(r)
        self.worker_heartbeat = gauge(
            r, "worker_last_heartbeat_timestamp_seconds", "Last heartbeat of each live worker",
            ["worker"],
        )  # fmt: skip
        self.redis_up = gauge(
            r, "redis_up", "1 if the last read of the queue gauges from Redis worked"
        )
        self.redis_changes = counter(
            r,
            "redis_changes",
            "Redis seen again after an outage (reconnect), or a new server behind the same "
            "address (server: a restart or a failover)",
            ["kind"],
            zero=[("reconnect",), ("server",)],
        )
        self._run_id = ""
        self._down = False

    async def watch_redis(self, queue: Queue) -> None:
        """Count reconnects and server changes (restart, failover); set `redis_up`."""
        run_id = await queue.server_run_id()
        if self._down:
            self.redis_changes.labels("reconnect").inc()
        if self._run_id and run_id != self._run_id:
            self.redis_changes.labels("server").inc()
            log.warning("redis.server_changed", run_id=run_id)
        self._run_id, self._down = run_id, False
        self.redis_up.set(1)

    async def tick(self, queue: Queue) -> None:
        """One refresh; one that fails marks Redis down (`redis_up` 0) until one works."""
        try:
            await self.watch_redis(queue)
            await self.refresh(queue)
        except (RedisError, OSError) as exc:
            log.debug("metrics.refresh_failed", error=repr(exc))
            self.redis_up.set(0)
            self._down = True

    async def refresh(self, queue: Queue) -> None:
        """The events stream, each pool and (`stream="jobs"`) all pools together."""
        self._show("events", await queue.stream_stats(EVENTS_STREAM, DISPATCH_GROUP))
        self._show("jobs", await self.pools.refresh(queue))
        self.oldest_age.set(max(self.pools.oldest_ages.values(), default=0.0))
        self.dead_letters.set(await queue.dead_letter_count())
        workers = await queue.live_workers()
        self.workers_live.set(len(workers))
        self.worker_heartbeat.clear()
        for worker in workers:
            self.worker_heartbeat.labels(worker.get("name", "?")).set(
                float(worker.get("heartbeat_at", 0) or 0)
            )

    def _show(self, stream: str, stats: StreamStats) -> None:
        for field, metric in self.streams.items():
            metric.labels(stream).set(getattr(stats, field))

    async def run(self, queue: Queue, stop: asyncio.Event, interval: float = 10.0) -> None:
        while not stop.is_set():
            await self.tick(queue)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


class PoolGauges:
    """Per worker pool (capability): jobs waiting and running, the oldest waiting job's age,
    and the live workers that take its jobs (alerts fire on a pool with work and none)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauges = {
            key: gauge(registry, name, doc, ["capability"])
            for key, (name, doc) in _POOL_GAUGES.items()
        }
        self.oldest_ages: dict[str, float] = {}

    async def refresh(self, queue: Queue) -> StreamStats:
        """Read every pool; the totals over all pools."""
        live = await queue.live_capabilities()
        length = pending = lag = 0
        for capability in CAPABILITIES:
            stream = jobs_stream(capability)
            stats = await queue.stream_stats(stream, WORKER_GROUP)
            age = await queue.oldest_waiting_age(stream, WORKER_GROUP)
            shown = {
                "waiting": stats.lag,
                "running": stats.pending,
                "oldest_age": age,
                "workers_live": live.get(capability, 0),
            }
            for key, value in shown.items():
                self.gauges[key].labels(capability).set(value)
            self.oldest_ages[capability] = age
            length, pending, lag = length + stats.length, pending + stats.pending, lag + stats.lag
        return StreamStats(length=length, pending=pending, lag=lag)


def _without_worker_counter(registry: CollectorRegistry) -> Counter:
    """Jobs the dispatcher queued for a pool no live worker serves (each also answered so)."""
    return counter(
        registry,
        "jobs_queued_without_worker",
        "Jobs queued for a worker pool (capability) that had no live worker",
        ["capability"],
        zero=[(capability,) for capability in CAPABILITIES],
    )


def _held_for_quota_counter(registry: CollectorRegistry) -> Counter:
    return counter(
        registry,
        "dispatcher_events_held_for_quota",
        "Times an event was left pending (not an attempt) because its installation's "
        "GitHub hourly quota was spent",
    )


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhooks = Counter(
            f"{NS}_webhooks_received",
            "Webhook deliveries received",
            ["event", "action", "outcome"],
            registry=r,
        )
        self.signature_failures = Counter(
            f"{NS}_webhook_signature_failures",
            "Deliveries with a missing or wrong signature",
            registry=r,
        )
        self.handling = Histogram(
            f"{NS}_webhook_handling_seconds",
            "Time to verify, classify and store a delivery",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commands = Counter(
            f"{NS}_commands", "Commands seen in PR comments", ["command", "outcome"], registry=r
        )
        self.jobs_enqueued = Counter(
            f"{NS}_jobs_enqueued", "Jobs put on the jobs stream", ["command"], registry=r
        )
        self.jobs_without_worker = _without_worker_counter(r)
        self.replies_silenced = Counter(
            f"{NS}_replies_silenced",
            "Replies not written: past a reply limit or the replies' write budget",
            ["reason", "limit"],
            registry=r,
        )
        self.events_held_for_quota = _held_for_quota_counter(r)
        self.github = GitHubMetrics(r)
        self.queue = QueueGauges(r)
        self.chat = ChatMetrics(r)
        for reason in ReplyReason:
            if is_limited(reason):
                for limit in Silenced:
                    self.replies_silenced.labels(str(reason), str(limit))
        for command in KNOWN_COMMANDS:
            for outcome in ("received", "accepted", "denied"):
                self.commands.labels(command, outcome)
        for command in GPU_COMMANDS:
            self.jobs_enqueued.labels(command)


class TrainMetrics:
    """`train`: the model bytes stashed and the training time spent, by device (GPU-hours:
    `ilab_bot_train_device_seconds_total{device="cuda"} / 3600`)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.model_bytes = counter(r, "model_bytes_uploaded", "Model bytes stashed")
        self.device_seconds = counter(
            r, "train_device_seconds", "Seconds of training, by device", ["device"],
            zero=[(d,) for d in ("cpu", "cuda", "hpu", "mps", "default")],  # ILAB_BOT_TRAIN_DEVICE
        )  # fmt: skip


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_started = Counter(f"{NS}_jobs_started", "Jobs started", ["command"], registry=r)
        self.jobs_completed = Counter(
            f"{NS}_jobs_completed",
            "Jobs that reached an end state",
            ["command", "conclusion"],
            registry=r,
        )
        self.job_duration = Histogram(
            f"{NS}_job_duration_seconds",
            "Job run time",
            ["command"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            f"{NS}_job_queue_wait_seconds",
            "Time from request to start",
            ["command"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.busy = gauge(r, "worker_busy_jobs", "Jobs running in this process")
        self.concurrency = gauge(r, "worker_concurrency", "Jobs this process may run at once")
        self.exits = Counter(
            f"{NS}_subprocess_exits", "ilab subprocess exits", ["command", "code"], registry=r
        )
        self.artifact_bytes = Counter(f"{NS}_artifact_bytes_uploaded", "Bytes uploaded", registry=r)
        self.train = TrainMetrics(r)
        self.github = GitHubMetrics(r)
        self.queue = QueueGauges(r)
        self.info = gauge(
            r,
            "worker_info",
            "1, labelled with the ilab release this worker found and the profile it drives",
            ["ilab_version", "profile"],
        )
        for command in GPU_COMMANDS:
            self.jobs_started.labels(command)
            self.job_duration.labels(command)
            self.queue_wait.labels(command)
            for conclusion in set(CONCLUSIONS.values()):
                self.jobs_completed.labels(command, conclusion)

    def ilab_detected(self, ilab_version: str, profile: str) -> None:
        """`ilab_bot_worker_info{ilab_version, profile} 1`: which ilab each worker drives."""
        self.info.clear()
        self.info.labels(ilab_version, profile).set(1)


class GitHubMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            f"{NS}_github_api_calls", "GitHub API calls", ["route", "status"], registry=registry
        )
        self.rate_limit_remaining = gauge(
            registry, "github_rate_limit_remaining", "x-ratelimit-remaining of the latest response"
        )
        self.quota_waiting = gauge(
            registry,
            "github_quota_waiting",
            "Installations this process holds back until GitHub's hourly quota resets "
            "(their events stay pending, their results in the outbox)",
        )
        self.progress_skipped = counter(
            registry,
            "check_run_progress_skipped",
            "Check-run progress updates a worker did not send: unchanged (nothing new to "
            "show), spaced (a change within a stage waits), budget (the write budget or "
            "GitHub refused it)",
            ["reason"],
            zero=[("unchanged",), ("spaced",), ("budget",)],
        )

    def watch_quota(self, waiting: Callable[[], int]) -> None:
        """Report `waiting()` (the GitHub adapter's installations waiting for their quota)
        at each scrape."""
        self.quota_waiting.set_function(waiting)

    def observe(self, route: str, status: int | None, headers: Mapping[str, str]) -> None:
        """Callback for the GitHub adapter: one attempt answered (status None: no answer)."""
        self.calls.labels(route, "none" if status is None else str(status)).inc()
        remaining = _header(headers, "x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            self.rate_limit_remaining.set(int(remaining))


def _header(headers: object, name: str) -> str | None:
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    return str(value) if value is not None else None


def metrics_response(registry: CollectorRegistry) -> web.Response:
    return web.Response(body=generate_latest(registry), headers={"Content-Type": TEXT_FORMAT})


@contextlib.asynccontextmanager
async def serve_metrics(
    registry: CollectorRegistry, host: str, port: int
) -> AsyncIterator[web.AppRunner]:
    """A small HTTP endpoint for a process that has no web server of its own (the worker)."""

    async def metrics(_request: web.Request) -> web.Response:
        return metrics_response(registry)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield runner
    finally:
        await runner.cleanup()
