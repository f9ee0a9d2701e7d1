"""grafana/: dashboards, provisioning and alert rules, checked offline.

Every PromQL expression (dashboard panels and alert rules) is parsed by the real `promtool`
(Debian's `prometheus` package), the alert rules run through `promtool test rules` against
synthetic series, and every metric they name must be one the bot exports (and every exported
metric must be on some dashboard), so a renamed metric cannot leave a blank panel behind.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
RULES = GRAFANA / "alerts" / "instruct-lab-bot.rules.yml"
RULES_TEST = GRAFANA / "alerts" / "instruct-lab-bot.rules.test.yml"

#: Every metric the bot exports (name → type), as agreed for issue 5. Dashboards and alerts may
#: name only these; each must appear on a dashboard.
METRICS: dict[str, str] = {
    # server
    "instruct_lab_bot_webhooks_received_total": "counter",
    "instruct_lab_bot_webhook_signature_failures_total": "counter",
    "instruct_lab_bot_webhook_handling_seconds": "histogram",
    "instruct_lab_bot_commands_total": "counter",
    "instruct_lab_bot_jobs_enqueued_total": "counter",
    "instruct_lab_bot_replies_silenced_total": "counter",
    "instruct_lab_bot_jobs_queued_without_worker_total": "counter",
    # worker
    "instruct_lab_bot_jobs_started_total": "counter",
    "instruct_lab_bot_jobs_completed_total": "counter",
    "instruct_lab_bot_job_duration_seconds": "histogram",
    "instruct_lab_bot_job_queue_wait_seconds": "histogram",
    "instruct_lab_bot_worker_busy_jobs": "gauge",
    "instruct_lab_bot_worker_concurrency": "gauge",
    "instruct_lab_bot_worker_info": "gauge",
    "instruct_lab_bot_subprocess_exits_total": "counter",
    "instruct_lab_bot_artifact_bytes_uploaded_total": "counter",
    "instruct_lab_bot_check_run_progress_skipped_total": "counter",
    "instruct_lab_bot_model_bytes_uploaded_total": "counter",
    "instruct_lab_bot_train_device_seconds_total": "counter",
    "instruct_lab_bot_github_api_calls_total": "counter",
    "instruct_lab_bot_github_rate_limit_remaining": "gauge",
    "instruct_lab_bot_github_quota_waiting": "gauge",
    "instruct_lab_bot_dispatcher_events_held_for_quota_total": "counter",
    # queue-wide, computed from Redis by every process
    "instruct_lab_bot_queue_length": "gauge",
    "instruct_lab_bot_queue_pending": "gauge",
    "instruct_lab_bot_queue_lag": "gauge",
    "instruct_lab_bot_queue_oldest_age_seconds": "gauge",
    "instruct_lab_bot_dead_letters": "gauge",
    "instruct_lab_bot_workers_live": "gauge",
    "instruct_lab_bot_worker_last_heartbeat_timestamp_seconds": "gauge",
    # per worker pool (capability), computed from Redis by every process
    "instruct_lab_bot_pool_waiting_jobs": "gauge",
    "instruct_lab_bot_pool_running_jobs": "gauge",
    "instruct_lab_bot_pool_oldest_age_seconds": "gauge",
    "instruct_lab_bot_pool_workers_live": "gauge",
    # Redis seen by every process: outages, reconnects, restarts and failovers (issue 18)
    "instruct_lab_bot_redis_up": "gauge",
    "instruct_lab_bot_redis_changes_total": "counter",
    # serving PR models for chat (issue 15)
    "instruct_lab_bot_models_served": "gauge",
    "instruct_lab_bot_model_cold_starts_total": "counter",
    "instruct_lab_bot_model_cold_start_seconds": "histogram",
    "instruct_lab_bot_chat_time_to_first_token_seconds": "histogram",
    "instruct_lab_bot_chat_requests_total": "counter",
    "instruct_lab_bot_chat_tokens_total": "counter",
    "instruct_lab_bot_chat_proxy_errors_total": "counter",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
REQUIRED_ALERTS = {
    "InstructLabBotQueueStuck",
    "InstructLabBotDeadLetters",
    "InstructLabBotJobFailureRatioHigh",
    "InstructLabBotGitHubRateLimitLow",
    "InstructLabBotNoLiveWorkers",
    "InstructLabBotPoolWithoutWorker",
    "InstructLabBotWebhookSignatureFailures",
    "InstructLabBotModelStuckNotReady",
}
METRIC_NAME = re.compile(r"\binstruct_lab_bot_[a-z0-9_]+\b")
RATE_OF = re.compile(r"\b(?:rate|irate|increase)\(\s*(instruct_lab_bot_[a-z0-9_]+)")
GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
#: Grafana's interval variables → a duration Prometheus accepts.
INTERVALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it lives, for messages."""

    where: str
    expr: str


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Dashboard file name → parsed JSON."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[Query]:
    """Every PromQL target of every dashboard (with Grafana variables left in)."""
    found: list[Query] = []
    for name, dashboard in load_dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                where = f"{name} panel {panel['id']} ({panel['title']}) {target['refId']}"
                found.append(Query(where, target["expr"]))
    return found


def alert_queries() -> list[Query]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [
        Query(f"alert {rule['alert']}", rule["expr"])
        for group in document["groups"]
        for rule in group["rules"]
    ]


def expand_variables(expr: str) -> str:
    """Replace Grafana variables the way Grafana would for a plain Prometheus query.

    Interval variables become durations; template variables become `.*` (their "All" value),
    which is what every dashboard variable of ours uses inside a `=~` matcher.
    """

    def value(match: re.Match[str]) -> str:
        return INTERVALS.get(match.group(1), ".*")

    return GRAFANA_VARIABLE.sub(value, expr)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is missing: install Debian's `prometheus` package "
            "(apt-get install --no-install-recommends prometheus)"
        )
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


def base_metric(name: str) -> str:
    """The exported metric a series belongs to (`..._seconds_bucket` → `..._seconds`)."""
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and METRICS.get(base) == "histogram":
            return base
    return name


def known_metric(name: str) -> bool:
    return base_metric(name) in METRICS


def is_counter_like(name: str) -> bool:
    """Counters and histogram series: the only things rate() and increase() make sense of."""
    if METRICS.get(name) == "counter":
        return True
    return any(
        name.endswith(suffix) and METRICS.get(name.removesuffix(suffix)) == "histogram"
        for suffix in HISTOGRAM_SUFFIXES
    )


# --------------------------------------------------------------------------- dashboards


def test_three_dashboards_with_unique_uids() -> None:
    dashboards = load_dashboards()
    titles = {d["title"] for d in dashboards.values()}
    assert titles == {
        "instruct-lab-bot / Overview",
        "instruct-lab-bot / Workers",
        "instruct-lab-bot / GitHub API",
    }
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards.items():
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"]), name
        assert dashboard["schemaVersion"] >= 36, name
        assert "instruct-lab-bot" in dashboard["tags"], name


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS.glob("*.json")))
def test_dashboard_layout_and_datasource(name: str) -> None:
    dashboard = load_dashboards()[name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    cells: dict[tuple[int, int], int] = {}
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = cells.setdefault((x, y), panel["id"])
                assert other == panel["id"], f"{name}: panels {other} and {panel['id']} overlap"
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"{name}: panel {panel['title']!r} has no description"
        # One datasource variable everywhere: provisioning, the sidecar and a UI import all work.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert 'namespace=~"$namespace"' in target["expr"], (panel["title"], target["expr"])


def test_dashboard_queries_name_only_exported_metrics() -> None:
    for query in dashboard_queries():
        names = METRIC_NAME.findall(query.expr)
        assert names, f"{query.where}: no instruct_lab_bot metric in {query.expr}"
        unknown = [n for n in names if not known_metric(n)]
        assert not unknown, f"{query.where}: nobody exports {unknown}"


def test_every_exported_metric_is_on_a_dashboard() -> None:
    shown = {
        base_metric(name)
        for query in dashboard_queries()
        for name in METRIC_NAME.findall(query.expr)
    }
    missing = sorted(set(METRICS) - shown)
    assert not missing, f"exported but on no dashboard: {missing}"


@pytest.mark.parametrize("source", ["dashboards", "alerts"])
def test_rate_only_on_counters_and_counters_only_in_rate(source: str) -> None:
    queries = dashboard_queries() if source == "dashboards" else alert_queries()
    for query in queries:
        for name in RATE_OF.findall(query.expr):
            assert is_counter_like(name), f"{query.where}: rate/increase of gauge {name}"
        for match in METRIC_NAME.finditer(query.expr):
            if not is_counter_like(match.group()):
                continue
            before = query.expr[: match.start()]
            assert re.search(r"\b(?:rate|irate|increase)\(\s*$", before), (
                f"{query.where}: counter {match.group()} used without rate()/increase()"
            )


def test_histogram_quantiles_keep_the_le_label() -> None:
    for query in dashboard_queries() + alert_queries():
        for match in re.finditer(
            r"histogram_quantile\(\s*[0-9.]+\s*,\s*sum by \(([^)]*)\)", query.expr
        ):
            labels = [label.strip() for label in match.group(1).split(",")]
            assert "le" in labels, f"{query.where}: histogram_quantile without `le`"
        if "histogram_quantile" in query.expr:
            assert "_bucket" in query.expr, query.where


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    """promtool has no offline query parser, but it parses every rule's expression: wrap each
    dashboard query (variables expanded as Grafana would) in a recording rule and check those."""
    rules = []
    for index, query in enumerate(dashboard_queries()):
        rules.append({"record": f"dashboard:query_{index}", "expr": expand_variables(query.expr)})
    assert not any("$" in rule["expr"] for rule in rules)
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# --------------------------------------------------------------------------- alert rules


def test_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(RULES), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    """Each alert fires on its situation, not on its look-alike (see the .rules.test.yml)."""
    result = run_promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname:\s*(\w+)", RULES_TEST.read_text(encoding="utf-8")))
    assert tested >= REQUIRED_ALERTS


def test_alert_rules_cover_the_issue_and_are_actionable() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert set(rule["annotations"]) >= {"summary", "description"}, rule["alert"]
        assert "for" in rule, rule["alert"]
        names = METRIC_NAME.findall(rule["expr"])
        assert names and all(known_metric(n) for n in names), rule["alert"]
        # Queue-wide gauges come from every replica: summing them would count them N times.
        for name in (
            "queue_length",
            "queue_pending",
            "queue_lag",
            "dead_letters",
            "workers_live",
            "pool_waiting_jobs",
            "pool_workers_live",
        ):
            assert f"sum(instruct_lab_bot_{name}" not in rule["expr"].replace(" ", ""), rule[
                "alert"
            ]


# --------------------------------------------------------------------------- provisioning


def test_provisioning_files() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/instruct-lab-bot.yml").read_text(encoding="utf-8")
    )
    assert datasources["apiVersion"] == 1
    (prometheus,) = datasources["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"].startswith("http")
    providers = yaml.safe_load(
        (GRAFANA / "provisioning/dashboards/instruct-lab-bot.yml").read_text(encoding="utf-8")
    )
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


def test_kustomization_ships_every_dashboard() -> None:
    """grafana/kustomization.yaml turns the dashboards into ConfigMaps for the Grafana sidecar."""
    document = yaml.safe_load((GRAFANA / "kustomization.yaml").read_text(encoding="utf-8"))
    sources = {
        entry.split("=", 1)[1]
        for generator in document["configMapGenerator"]
        for entry in generator["files"]
    }
    assert sources == {f"dashboards/{p.name}" for p in DASHBOARDS.glob("*.json")}
    assert document["generatorOptions"]["labels"]["grafana_dashboard"] == "1"
