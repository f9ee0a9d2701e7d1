"""Each benchmark's core runs with tiny sizes and produces numbers (no timing assertions).

`make bench` takes minutes; these take seconds and keep the scripts working as the code they
measure changes. Real parts throughout: our Redis, real server and worker processes, real
subprocesses.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import redis

from bench import (
    burst,
    chat_proxy,
    concurrent_jobs,
    dispatch,
    github_calls,
    idle,
    ingest,
    model_upload,
    output_pump,
    queue_throughput,
)
from bench.__main__ import Figure, console, run_figure, table
from bench.common import Row, bot_argv, bot_env, free_port
from instruct_lab_bot.adapters.redis.keys import EVENTS_STREAM


def _numbers(rows: list[Row]) -> None:
    assert rows
    for row in rows:
        assert row.met in ("yes", "no", "info"), row
        assert any(ch.isdigit() for ch in row.ours), row


async def test_ingest_stores_one_event_per_command_and_reports(
    redis_url: str, tmp_path: Path
) -> None:
    secret = "smoke-secret-" + "5" * 32
    payloads = ingest.bodies(tmp_path, secret)
    port = free_port()
    server = ingest.Server(
        "ours",
        bot_argv("server", "--no-dispatcher"),
        bot_env(redis_url, tmp_path, port, secret),
        f"http://127.0.0.1:{port}/healthz",
    )
    results = ingest.Results({}, {}, {}, {})
    with ingest.serving(server, tmp_path) as url:
        pid = ingest.listener_pid(port)
        rate = ingest._loadgen(url, payloads["command"], tmp_path, "rate", 0.2)
        closed = ingest._loadgen(url, payloads["plain"], tmp_path, "closed", 0.3)
        used = ingest.cpu_seconds(pid)  # the server's, since it started
    assert used > 0
    stored = redis.Redis.from_url(redis_url).xlen(EVENTS_STREAM)
    assert rate.requests > 0 and rate.ok == rate.requests
    assert closed.requests > 0 and closed.ok == closed.requests
    assert stored == rate.requests  # the plain comments stored nothing
    for kind, result in (("command", rate), ("plain", closed)):
        results.throughput[("ours", kind)] = result
        results.throughput[("bare", kind)] = result
        results.cpu[("ours", kind)] = results.cpu[("bare", kind)] = used / result.requests
    for processes in ingest.SCALING:  # `server --workers N`: the same numbers, as rows
        results.throughput[(f"ours-{processes}", "command")] = rate
    results.p99["ours"] = rate
    results.p99["bare"] = rate
    found = ingest.rows(results, payloads)
    assert [r.met for r in found if "octokit" in r.figure] == ["n/a", "n/a"]
    _numbers([r for r in found if "octokit" not in r.figure])


async def test_dispatch_latencies_are_measured(redis_url: str, tmp_path: Path) -> None:
    floor = await dispatch.spawn_floor(tmp_path, 3)
    ours = await dispatch.ours(redis_url, tmp_path, 3)
    assert len(floor) == len(ours["job"]) == len(ours["ilab"]) == 3
    assert all(0 < v < 10 for v in floor + ours["job"] + ours["ilab"])
    found = dispatch.rows(
        {"floor": {"ilab": floor}, "ours": ours, "saq": ours, "arq": ours}, {}, None
    )
    _numbers([r for r in found if r.met != "n/a"])


async def test_queue_throughput_ours_and_raw(redis_url: str, tmp_path: Path) -> None:
    results = {
        (system, 1): queue_throughput.run_one(system, 1, 30, redis_url, tmp_path)
        for system in ("ours", "raw")
    }
    for result in results.values():
        assert result.done == result.count == 30
        assert result.drain_rate > 0 and result.enqueue_rate > 0
    _numbers([r for r in queue_throughput.rows(results, {}) if r.met != "n/a"])


async def test_queue_baselines_arq_and_saq(redis_url: str, tmp_path: Path) -> None:
    for system in ("saq", "arq"):
        result = queue_throughput.run_one(system, 1, 20, redis_url, tmp_path)
        assert result.done == 20
    latencies = dispatch.baseline("saq", redis_url, tmp_path, 2)
    assert len(latencies["job"]) == len(latencies["ilab"]) == 2
    assert all(v > 0 for v in latencies["job"] + latencies["ilab"])


async def test_output_pump_reads_everything_with_bounded_memory(tmp_path: Path) -> None:
    size = 1 << 20
    assert output_pump.cat_rate(size) > 0
    result = output_pump.ours(size // 8, 30.0)
    assert result["complete"]
    assert result["lines"] > 100
    assert result["hwm_kb"] > 0 and result["rss_before_kb"] > 0


async def test_idle_footprint_of_real_processes() -> None:
    found = await idle.measure(quick=True)
    assert len(found) == 3
    for row in found[:2]:
        rss = float(row.ours.split()[0])
        assert 0 < rss < 1000


async def test_github_calls_counts_the_calls_of_one_job(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILAB_BOT_REDIS_URL", redis_url)
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "1")  # measure() sets it; restored after
    total, routes = await github_calls.measure(1.0, 0.5)
    assert total == sum(routes.values()) > 0
    assert len(github_calls.rows(1.0, 0.5, total, routes)) == 1


def test_rows_for_a_scaled_ten_minute_job() -> None:
    routes = Counter(
        {
            "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions": 1,
            "GET /repos/{owner}/{repo}/pulls/{pull_number}": 1,
            "POST /repos/{owner}/{repo}/check-runs": 1,
            "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}": 22,
            "POST /repos/{owner}/{repo}/issues/{issue_number}/comments": 1,
        }
    )
    (calls,) = github_calls.rows(30.0, 1.5, sum(routes.values()), routes)
    assert calls.figure.startswith("GitHub calls for one job (10-min job")
    assert (calls.ours, calls.target, calls.met) == ("26", "≤ 25 (5 + 1 per interval)", "no")
    assert "25 writes" in calls.note


def test_concurrent_jobs_rows_and_the_sliding_window() -> None:
    assert concurrent_jobs.sliding_max([0.0, 0.5, 1.0, 2.9, 3.0, 3.1], 3.0) == 5
    assert concurrent_jobs.sliding_max([], 3.0) == 0
    run = concurrent_jobs.Run(50, 20.0, 90.0, 78, 0, 50, 49, 400, 250)
    writes, delivered = concurrent_jobs.rows(run)
    assert (writes.ours, writes.met) == ("78", "yes")
    assert (delivered.ours, delivered.met) == ("49/50", "no")  # one PR without its one comment


def test_table_and_a_failing_figure(tmp_path: Path) -> None:
    broken = Figure("no_such_figure", "broken figure", 30)
    rows, seconds = run_figure(broken, True, tmp_path)
    assert rows[0].met == "n/a" and "exit" in rows[0].note
    assert seconds >= 0
    rows.append(Row("a | b", "1", "2", "0.50", "≥ 1", "no", "why"))
    assert "a \\| b" in table(rows, notes=True)
    assert "broken figure" in console(rows)


async def test_burst_counts_stored_deliveries_and_drains(tmp_path: Path) -> None:
    config = burst.BurstConfig(rate=40.0, seconds=1.0, pulls=4, workers=0)
    result = await burst.run_burst(config, tmp_path)
    assert result.sent == 40
    assert result.server_errors == 0
    assert result.accepted_commands == 20 == result.stored  # the plain comments stored nothing
    assert result.stored_once
    assert result.jobs == {"queued": 4}  # one per PR; the other 16 commands repeat one
    files = result.github_calls.get("GET /repos/{owner}/{repo}/pulls/{pull_number}/files", 0)
    assert files < 20  # a repetition does not read the PR's files
    assert all(line for line in result.lines())


def test_each_baseline_has_its_own_environment_keyed_by_its_lock(tmp_path: Path) -> None:
    """arq pins redis-py 5; the product's venv has current redis-py and neither arq nor saq."""
    import importlib.util
    import subprocess

    from bench import baselines

    assert importlib.util.find_spec("arq") is None and importlib.util.find_spec("saq") is None
    assert int(redis.__version__.split(".")[0]) >= 6
    pythons = {s: baselines.queue_python(s) for s in baselines.QUEUE_SYSTEMS}
    assert len({p.parent.parent for p in pythons.values()}) == 2
    for system, python in pythons.items():
        assert python.parent.parent.name.startswith(f"bench-{system}-")
        probe = f"import {system}, redis; print(redis.__version__)"
        done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        if system == "arq":
            assert done.stdout.startswith("5.")
    lock = tmp_path / "x.txt"
    lock.write_text("a==1\n")
    first = baselines.env_dir("x", lock, root=tmp_path)
    lock.write_text("a==2\n")
    assert baselines.env_dir("x", lock, root=tmp_path) != first


async def test_model_upload_is_measured_against_s3transfer() -> None:
    rows = await model_upload.measure(quick=True)
    assert [r.baseline != "—" for r in rows] == [True, True]
    _numbers(rows)


async def test_chat_proxy_figures_are_measured() -> None:
    rows = await chat_proxy.measure(quick=True)
    assert [r.figure.split(":")[0] for r in rows] == ["chat", "chat"]
    _numbers(rows)
