"""A real Prometheus (Debian's `/usr/bin/prometheus`) scrapes a real server and a real worker
process every second through one job; then every PromQL expression of the dashboards and the
alert rules is evaluated by it over its HTTP API.

Every expression must parse; every dashboard panel must return data, so a panel that queries a
metric (or label) nobody exports fails here rather than showing "No data" in production; the
alert rules load into Prometheus, evaluate cleanly, and none fires after a healthy job.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from testkit.harness import run_bot
from tests.fixtures.bot import WorkerProcess
from tests.fixtures.redis import free_port
from tests.fixtures.world import World
from tests.test_grafana import RULES, alert_queries, dashboard_queries, expand_variables
from tests.test_observability import (
    eventually,
    refresh_queue_gauges,
    run_job,
    wait_until_serving,
)

PROMETHEUS = Path("/usr/bin/prometheus")
NAMESPACE = "instruct-lab-bot"  # what the ServiceMonitors' namespace label would be
#: Panels allowed to be empty after one successful job (with one retried GitHub 502), and why.
#: Empty today: every panel has data after a normal job.
#: panel query → why it may have no data in this run
MAY_BE_EMPTY: dict[str, str] = {
    f"overview.json panel 18 (Chat requests and answer tokens per model) {ref}": (
        "per-model series exist only while a PR model is served; this run serves none "
        "(tests/test_chat.py reads them from /metrics)"
    )
    for ref in ("A", "B")
}


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    async def api(self, path: str, **params: str) -> Any:
        """One HTTP API call; the `data` of a successful answer (parse errors fail the test)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/{path}", params=params) as response,
        ):
            body = await response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    async def scalar(self, expr: str) -> float:
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else math.nan

    async def scraped_after(self, moment: float, targets: int) -> None:
        """Wait until all `targets` are up and each has been scraped since `moment`."""

        async def fresh() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            up = await self.scalar("count(up == 1)")
            oldest = await self.scalar("min(timestamp(up))")
            return up == targets and oldest > moment

        await eventually(fresh, "Prometheus to scrape every target", timeout=20)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Awaitable[Prometheus]]]:
    """Start Prometheus scraping `{job: host:port}` every second, with our alert rules."""
    if not PROMETHEUS.is_file():
        pytest.fail(
            f"{PROMETHEUS} is missing: install Debian's `prometheus` package "
            "(`make test` does: apt-get install --no-install-recommends prometheus)"
        )
    started: list[subprocess.Popen[bytes]] = []

    async def start(targets: dict[str, str]) -> Prometheus:
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE}}],
                }
                for job, target in targets.items()
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        log = tmp_path / "prometheus.log"
        process = _spawn(
            [
                str(PROMETHEUS),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            log,
        )
        started.append(process)
        server = Prometheus(f"http://127.0.0.1:{port}", process, log)

        async def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(server.url + "/-/ready") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(ready, "Prometheus to start", timeout=20)
        return server

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)


async def test_every_dashboard_and_alert_query_against_a_real_prometheus(
    world: World,
    prometheus: Callable[[dict[str, str]], Awaitable[Prometheus]],
    worker_processes: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "0.5")
    worker = worker_processes(world.settings, metrics_port=free_port())
    await wait_until_serving(worker)
    await worker.registered(world.settings.redis_url)
    async with run_bot(world.settings, workers=0) as bot:
        prom = await prometheus(
            {
                "instruct-lab-bot-server": f"127.0.0.1:{world.settings.port}",
                "instruct-lab-bot-worker": f"127.0.0.1:{worker.metrics_port}",
            }
        )
        # Every series that exists at start (zero-initialized) has a sample before the job.
        await prom.scraped_after(time.time(), targets=2)
        await run_job(world, bot, worker)
        await refresh_queue_gauges(bot)
        # Two scrapes after the job: rate() needs two samples of what it changed.
        for _ in range(2):
            await prom.scraped_after(time.time(), targets=2)
        evaluated_from = time.time()
        results = {
            query.where: await prom.query(expand_variables(query.expr))
            for query in dashboard_queries()
        }
        namespaces = await prom.api(
            "label/namespace/values", **{"match[]": "instruct_lab_bot_workers_live"}
        )
        alerts = {query.where: await prom.query(query.expr) for query in alert_queries()}
        await _rules_evaluated_after(prom, evaluated_from)
        rules = await prom.api("rules")

    print()
    empty = []
    for where, result in results.items():
        shown = ", ".join(_sample(item) for item in result[:4]) or "EMPTY"
        print(f"{where}: {shown}")
        if not result and where not in MAY_BE_EMPTY:
            empty.append(where)
    assert not empty, f"dashboard panels without data: {empty}"
    assert namespaces == [NAMESPACE]  # the dashboards' `namespace` variable has its value

    # The numbers a job must move, not only "some data" (the series a job moves exist at zero
    # from the start and have a sample before the job and two after it).
    def values(where_prefix: str) -> list[float]:
        found = [w for w in results if w.startswith(where_prefix)]
        assert found, where_prefix
        return [float(item["value"][1]) for where in found for item in results[where]]

    assert values("overview.json panel 5 ") == [1]  # job success ratio
    assert max(values("overview.json panel 11 ")) > 0  # jobs finished by conclusion
    assert max(values("overview.json panel 12 ")) > 0  # commands, jobs enqueued
    assert max(values("workers.json panel 1 ")) >= 1  # live workers
    assert max(values("workers.json panel 3 ")) >= 1  # jobs started (increase() extrapolates)
    assert max(values("workers.json panel 4 ")) > 0  # artifact bytes uploaded
    assert max(values("workers.json panel 11 ")) > 0  # upload throughput
    assert 0 < max(values("github-api.json panel 1 ")) <= world.gh.rate_limit
    assert values("overview.json panel 6 ") == [0]  # dead letters
    for quantile in (
        "overview.json panel 9 ",
        "overview.json panel 10 ",
        "overview.json panel 13 ",
    ):
        assert not [v for v in values(quantile) if v <= 0], quantile
        assert [v for v in values(quantile) if not math.isnan(v)], quantile

    # Alert rules: load (Prometheus would not start otherwise), evaluate without error, and
    # none fires after a healthy job.
    assert all(not result for result in alerts.values()), alerts
    loaded = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in loaded} == {w.removeprefix("alert ") for w in alerts}
    for rule in loaded:
        assert rule["health"] == "ok", rule
        assert rule["state"] == "inactive", rule


async def _rules_evaluated_after(prom: Prometheus, moment: float) -> None:
    """Wait until Prometheus has evaluated every rule group since `moment`."""

    async def evaluated() -> bool:
        groups = (await prom.api("rules"))["groups"]
        return bool(groups) and all(_epoch(group["lastEvaluation"]) > moment for group in groups)

    await eventually(evaluated, "the alert rules to be evaluated", timeout=20)


def _epoch(rfc3339: str) -> float:
    """Prometheus's UTC timestamps carry nanoseconds; Python parses microseconds."""
    head, _, fraction = rfc3339.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{fraction[:6]:0<6}+00:00").timestamp()


def _sample(item: dict[str, Any]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items()))
    return f"{{{labels}}} {float(item['value'][1]):.4g}"
