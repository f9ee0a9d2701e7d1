"""Webhook ingest: signed `issue_comment` deliveries into the real `instruct-lab-bot server`.

Three servers, each a process of its own, get the same signed requests (each with its own
X-GitHub-Delivery) from `wrk`, another process:

- ours: `instruct-lab-bot server --no-dispatcher` (verify, parse, classify, Lua SET NX + XADD
  into Redis with an fsync-every-second append-only file, then 202);
- bare: an aiohttp handler that reads the body and answers 202 (the ceiling for aiohttp);
- octokit: Probot's engine, `@octokit/webhooks` `createNodeMiddleware` on Node (verify,
  parse, dispatch to a handler; it stores nothing).

Two bodies: a comment with the `generate` command (ours must store a job intent) and the same
comment without it (most traffic: verified, classified, answered, nothing stored). Max
throughput comes from `wrk -t1 -c32`; the p99 at 1,000 req/s from an open-loop client
(`bench.loadgen`) that measures from each request's scheduled time. After each of our runs the
events stream must hold one entry per accepted command delivery. Then ours again as
`server --workers 2` and `--workers 4` (processes on one port, SO_REUSEPORT): the scaling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from instruct_lab_bot.adapters.redis.keys import EVENTS_STREAM
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import sign
from testkit.payloads import pr_comment
from testkit.testdata import ensure_testdata, load_webhook_examples

from . import baselines
from .common import (
    CACHE,
    Row,
    bot_argv,
    bot_env,
    figure_main,
    free_port,
    ratio,
    running,
    tail,
    verdict,
    wait_http,
)
from .loadgen import LoadResult, load_result

HOOK = "/api/github/hook"
COMMAND = f"Thanks, looks right.\n\n@{Settings().username} generate"
PLAIN = "Thanks, looks right to me. Merging once CI is green."
RATE = 1000.0
SCALING = (2, 4)  # `server --workers N` processes, measured after the 1-process run
#: The comment id of the bodies: `bench.loadgen` gives each request its own (same width) and
#: signs it again, as the bot stores one comment once (a replayed comment is a duplicate).
COMMENT_ID = 100_000_000_000


@dataclass(frozen=True)
class Body:
    kind: str  # "command" | "plain"
    path: Path
    signature: str
    size: int
    secret: str = ""  # set: each request gets its own comment id (see COMMENT_ID)


def bodies(work: Path, secret: str) -> dict[str, Body]:
    """The smallest real `issue_comment.created` example (Octokit's), as a comment on a PR."""
    index = load_webhook_examples(ensure_testdata(CACHE))
    examples = [e for entry in index if entry["name"] == "issue_comment" for e in entry["examples"]]
    created = [e for e in examples if e.get("action") == "created"]
    example = min(created, key=lambda e: len(json.dumps(e, separators=(",", ":"))))
    out = {}
    for kind, text in (("command", COMMAND), ("plain", PLAIN)):
        payload = pr_comment(example, body=text, comment_id=COMMENT_ID)
        data = json.dumps(payload, separators=(",", ":")).encode()
        path = work / f"{kind}.json"
        path.write_bytes(data)
        out[kind] = Body(kind, path, sign(data, secret.encode()), len(data), secret)
    return out


_WRK_SCRIPT = """
local f = assert(io.open(%(body)s, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"
wrk.headers["X-GitHub-Event"] = "issue_comment"
wrk.headers["X-Hub-Signature-256"] = %(signature)s
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-GitHub-Delivery"] = %(prefix)s .. "-" .. n
  return wrk.format()
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%%d,"duration_us":%%d,"non2xx":%%d,' ..
    '"errors":%%d,"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def max_throughput(url: str, body: Body, seconds: float, work: Path) -> LoadResult:
    """Closed-loop maximum: `wrk`, or our own client process when wrk is missing."""
    try:
        wrk = baselines.wrk()
    except baselines.Unavailable:
        return _loadgen(url, body, work, "closed", seconds)
    script = work / "wrk.lua"
    script.write_text(
        _WRK_SCRIPT
        % {
            "body": _lua_string(str(body.path)),
            "signature": _lua_string(body.signature),
            "prefix": _lua_string(os.urandom(6).hex()),
        }
    )
    argv = [wrk, "-t1", "-c32", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    data = json.loads(line.removeprefix("RESULT "))
    requests = int(data["requests"])
    return LoadResult(
        requests=requests,
        seconds=data["duration_us"] / 1e6,
        statuses={"2xx": requests - data["non2xx"], "other": data["non2xx"]},
        errors=data["errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=0.0,
    )


def _loadgen(url: str, body: Body, work: Path, mode: str, seconds: float) -> LoadResult:
    out = work / "load.json"
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        url,
        str(body.path),
        "--event",
        "issue_comment",
        "--signature",
        body.signature,
        "--mode",
        mode,
        "--rate",
        str(RATE),
        "--duration",
        str(seconds),
        "--json",
        str(out),
    ]
    env = dict(os.environ)
    if body.secret:
        argv += ["--vary-comment", str(COMMENT_ID)]
        env["LOADGEN_WEBHOOK_SECRET"] = body.secret
    cwd = Path(__file__).parent.parent
    subprocess.run(argv, check=True, timeout=seconds + 60, cwd=cwd, env=env)
    return load_result(out)


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    health: str


@contextmanager
def serving(server: Server, work: Path) -> Iterator[str]:
    log = work / f"{server.name}.log"
    with running(server.argv, env=server.env, cwd=work, log=log) as process:
        try:
            wait_http(server.health, process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {tail(log)}") from None
        yield server.health.rsplit("/", 1)[0] + HOOK


@dataclass
class Results:
    throughput: dict[tuple[str, str], LoadResult]
    p99: dict[str, LoadResult]
    problems: dict[str, str]
    stored: dict[str, tuple[int, int]]
    #: CPU seconds the server process used per answered request under wrk (load-independent:
    #: a process that owns a core answers 1 / this many requests a second).
    cpu: dict[tuple[str, str], float] = field(default_factory=dict)


def run_all(redis_url: str, work: Path, quick: bool) -> tuple[Results, dict[str, Body]]:
    secret = os.urandom(32).hex()
    payloads = bodies(work, secret)
    seconds = 1.0 if quick else 4.0
    rate_seconds = 0.3 if quick else 4.0
    servers = _servers(redis_url, work, secret)
    results = Results({}, {}, {}, {})
    client: Any = redis.Redis.from_url(redis_url)  # replies typed Awaitable | Any
    for name, server in servers.items():
        if isinstance(server, str):
            results.problems[name] = server
            continue
        try:
            with serving(server, work) as url:
                max_throughput(url, payloads["plain"], 1, work)  # warm-up, not counted
                pid = listener_pid(int(server.health.rsplit(":", 1)[1].split("/")[0]))
                for kind, body in payloads.items():
                    client.flushall()
                    before = cpu_seconds(pid)
                    result = max_throughput(url, body, seconds, work)
                    results.cpu[(name, kind)] = (cpu_seconds(pid) - before) / max(1, result.ok)
                    results.throughput[(name, kind)] = result
                    if name == "ours" and kind == "command":
                        stored = int(client.xlen(EVENTS_STREAM))
                        results.stored[name] = (stored, result.ok)
                results.p99[name] = _loadgen(url, payloads["command"], work, "rate", rate_seconds)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            results.problems[name] = str(exc)[:300]
    ours = servers["ours"]
    for processes in SCALING:
        name = f"ours-{processes}"
        if not isinstance(ours, Server):
            break
        scaled = Server(name, [*ours.argv, "--workers", str(processes)], ours.env, ours.health)
        try:
            with serving(scaled, work) as url:
                max_throughput(url, payloads["plain"], 1, work)  # warm-up, not counted
                client.flushall()
                result = max_throughput(url, payloads["command"], seconds, work)
                results.throughput[(name, "command")] = result
                results.stored[name] = (int(client.xlen(EVENTS_STREAM)), result.ok)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            results.problems[name] = str(exc)[:300]
    client.close()
    return results, payloads


def listener_pid(port: int) -> int:
    """The process listening on `port` (the server: `bot_argv` may wrap it in a launcher)."""
    done = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split("pid=", 1)[1].split(",", 1)[0])


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (/proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _servers(redis_url: str, work: Path, secret: str) -> dict[str, Server | str]:
    servers: dict[str, Server | str] = {}
    port = free_port()
    servers["ours"] = Server(
        "ours",
        bot_argv("server", "--no-dispatcher"),
        bot_env(redis_url, work, port, secret),
        f"http://127.0.0.1:{port}/healthz",
    )
    port = free_port()
    servers["bare"] = Server(
        "bare",
        [sys.executable, "-m", "bench.bare_server", str(port)],
        {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        f"http://127.0.0.1:{port}/healthz",
    )
    try:
        port = free_port()
        servers["octokit"] = Server(
            "octokit",
            [*baselines.octokit_server(), str(port)],
            {**os.environ, "WEBHOOK_SECRET": secret},
            f"http://127.0.0.1:{port}/healthz",
        )
    except baselines.Unavailable as exc:
        servers["octokit"] = str(exc)
    return servers


def rows(results: Results, payloads: dict[str, Body]) -> list[Row]:
    out: list[Row] = []
    size = payloads["command"].size / 1024
    labels = {"command": f"ingest, command comment ({size:.1f} KB)", "plain": "ingest, non-command"}
    targets = {("command", "bare"): 0.5, ("command", "octokit"): 1.0, ("plain", "bare"): 0.7}
    for kind, label in labels.items():
        ours = results.throughput.get(("ours", kind))
        for base in ("bare", "octokit"):
            figure = f"{label} req/s vs {base}"
            goal = targets.get((kind, base))
            target = "—" if goal is None else f"≥ {goal:.0%} of {base}"
            theirs = results.throughput.get((base, kind))
            if ours is None or theirs is None:
                reason = results.problems.get("ours" if ours is None else base, "not measured")
                out.append(Row.unavailable(figure, reason, target))
                continue
            value = ours.rps / theirs.rps
            note = (
                f"wrk p99 under max load: ours {ours.p99_ms:.1f} ms, {base} {theirs.p99_ms:.1f} ms"
            )
            if ours.ok < ours.requests:
                note += f"; ours answered {ours.requests - ours.ok} non-2xx"
            if kind == "command" and base == "bare" and "ours" in results.stored:
                stored, accepted = results.stored["ours"]
                note += f"; events stream holds {stored} entries for {accepted} accepted"
            out.append(
                Row(
                    figure,
                    f"{ours.rps:,.0f}",
                    f"{theirs.rps:,.0f}",
                    ratio(ours.rps, theirs.rps),
                    target,
                    "info" if goal is None else verdict(value >= goal and ours.ok == ours.requests),
                    note,
                )
            )
    out += cpu_rows(results, labels)
    out += scaling_rows(results, labels["command"])
    ours_p99 = results.p99.get("ours")
    figure = f"ingest, command: p99 at {RATE:,.0f} req/s (open loop)"
    if ours_p99 is None:
        out.append(Row.unavailable(figure, results.problems.get("ours", "?"), "< 10 ms"))
        return out
    bare = results.p99.get("bare")
    octo = results.p99.get("octokit")
    extra = f"; octokit p99 {octo.p99_ms:.2f} ms" if octo else ""
    out.append(
        Row(
            figure,
            f"{ours_p99.p99_ms:.2f} ms",
            f"bare {bare.p99_ms:.2f} ms" if bare else "n/a",
            ratio(ours_p99.p99_ms, bare.p99_ms) if bare else "—",
            "< 10 ms",
            verdict(ours_p99.p99_ms < 10 and ours_p99.ok == ours_p99.requests),
            f"p50 {ours_p99.p50_ms:.2f} ms, {ours_p99.requests} requests at "
            f"{ours_p99.rps:,.0f}/s, {ours_p99.requests - ours_p99.ok} non-2xx{extra}",
        )
    )
    return out


def cpu_rows(results: Results, labels: dict[str, str]) -> list[Row]:
    """Server CPU per request against bare aiohttp's: the same targets as the req/s rows
    (≥ 0.5 × bare is ≤ 2 × its CPU per request), but they hold on a loaded machine too."""
    out: list[Row] = []
    for kind, goal in (("command", 0.5), ("plain", 0.7)):
        figure = f"{labels[kind]}: server CPU per request (µs) vs bare"
        target = f"≤ {1 / goal:.2f} × bare (= ≥ {goal:.0%} of its req/s)"
        ours, bare = results.cpu.get(("ours", kind)), results.cpu.get(("bare", kind))
        if not ours or not bare:
            out.append(Row.unavailable(figure, results.problems.get("ours", "not measured")))
            continue
        octo = results.cpu.get(("octokit", kind))
        extra = f"; octokit {octo * 1e6:.0f} µs (Node)" if octo else ""
        out.append(
            Row(
                figure,
                f"{ours * 1e6:.0f}",
                f"{bare * 1e6:.0f}",
                ratio(ours, bare),
                target,
                verdict(ours <= bare / goal),
                f"utime+stime of the server process over the wrk run ÷ 2xx answers; "
                f"bare ÷ ours = {bare / ours:.2f}{extra}",
            )
        )
    return out


def scaling_rows(results: Results, label: str) -> list[Row]:
    """`server --workers N` against the 1-process server and bare aiohttp (1 process)."""
    one = results.throughput.get(("ours", "command"))
    bare = results.throughput.get(("bare", "command"))
    out: list[Row] = []
    for processes in SCALING:
        name = f"ours-{processes}"
        figure = f"{label} req/s, `server --workers {processes}` vs 1 process"
        mine = results.throughput.get((name, "command"))
        if mine is None or one is None:
            why = results.problems.get(name, results.problems.get("ours", "not measured"))
            out.append(Row.unavailable(figure, why))
            continue
        stored, accepted = results.stored.get(name, (0, 0))
        versus_bare = f"{mine.rps / bare.rps:.2f} × bare (1 process)" if bare else "bare n/a"
        out.append(
            Row(
                figure,
                f"{mine.rps:,.0f}",
                f"{one.rps:,.0f}",
                ratio(mine.rps, one.rps),
                "—",
                "info",
                f"{versus_bare}; p99 {mine.p99_ms:.1f} ms; events stream holds {stored} "
                f"entries for {accepted} accepted; wrk, Redis and the processes share 2 cores",
            )
        )
    return out


async def measure(quick: bool) -> list[Row]:
    from .common import redis_server

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ilab-bench-ingest-")))
        redis_url = stack.enter_context(redis_server())
        results, payloads = run_all(redis_url, work, quick)
    return rows(results, payloads)


if __name__ == "__main__":
    figure_main(measure, __doc__)
