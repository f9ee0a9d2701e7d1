"""`make bench` / `python -m bench`: every figure, one table, `docs/benchmarks.md`.

Each figure runs as its own process with a time limit, one after the other (they would
disturb each other on two cores); a figure that fails or times out, or whose baseline cannot be
installed, shows "n/a" and why. `--quick` runs tiny sizes (seconds, numbers meaningless) and
never writes the docs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .common import ROOT, Row, load_rows, machine

DOCS = ROOT / "docs" / "benchmarks.md"
# Written by hand and kept as they are: the profile's reading, and `make image-test`'s figures.
KEPT_SECTIONS = ("## Where the time goes", "## Container image")


@dataclass(frozen=True)
class Figure:
    module: str
    title: str
    timeout: float  # seconds, full run
    args: tuple[str, ...] = ()


FIGURES = (
    Figure("ingest", "webhook ingest", 180),
    Figure("dispatch", "dispatch latency", 300),  # the whole path runs again (12 jobs, ~1 s each)
    Figure("feedback", "time to first feedback", 120),
    Figure("queue_throughput", "queue throughput", 180),
    Figure("github_calls", "GitHub calls per job", 150, ("--bench",)),
    Figure("concurrent_jobs", "50 concurrent jobs under GitHub's write limit", 420),
    Figure("output_pump", "output pumping", 150),
    Figure("idle", "idle footprint", 60),
    Figure("model_upload", "model upload", 900),
    Figure("chat_proxy", "chat proxy", 120),
)


def run_figure(figure: Figure, quick: bool, work: Path) -> tuple[list[Row], float]:
    out = work / f"{figure.module}.json"
    log = work / f"{figure.module}.log"
    argv = [sys.executable, "-m", f"bench.{figure.module}", "--json", str(out)]
    argv += ["--quick"] if quick else list(figure.args)
    started = time.monotonic()
    try:
        with log.open("wb") as output:
            done = subprocess.run(
                argv,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=figure.timeout * (2 if quick else 1),
                check=False,
            )
        if done.returncode == 0 and out.exists():
            return load_rows(out), time.monotonic() - started
        reason = f"exit {done.returncode}: {_last_line(log)}"
    except subprocess.TimeoutExpired:
        reason = f"timed out after {figure.timeout:.0f} s"
    return [Row.unavailable(figure.title, reason)], time.monotonic() - started


def _last_line(log: Path) -> str:
    lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    return lines[-1][:300] if lines else "no output"


def table(rows: list[Row], *, notes: bool) -> str:
    head = ["figure", "ours", "baseline", "ratio", "target", "met"]
    body = [[r.figure, r.ours, r.baseline, r.ratio, r.target, r.met] for r in rows]
    if notes:
        head.append("how / why")
        for line, row in zip(body, rows, strict=True):
            line.append(row.note)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body]
    return "\n".join(lines)


def console(rows: list[Row]) -> str:
    cols = [[r.figure, r.ours, r.baseline, r.ratio, r.target, r.met] for r in rows]
    head = ["figure", "ours", "baseline", "ratio", "target", "met"]
    widths = [max(len(str(c[i])) for c in [head, *cols]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*line) for line in [head, ["-" * w for w in widths], *cols])


def write_docs(rows: list[Row], seconds: float) -> None:
    box = machine()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    described = "\n".join(f"- {k}: {v}" for k, v in box.items())
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    old = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    starts = [old.index(section) for section in KEPT_SECTIONS if section in old]
    kept = old[min(starts) :] if starts else ""
    DOCS.write_text(
        f"""# Benchmarks

The latest `make bench` (`python -m bench`): {when}, {seconds:.0f} s in all. Every ratio is
ours ÷ a baseline measured in the same run on the same machine, so it means more than the
absolute numbers, which drift on shared machines. For latencies a ratio below 1 is better.
What each figure measures, and how, is in the docstring of its script in `bench/`.

## Machine

{described}

## Table

{table(rows, notes=True)}

## Method

- Load always comes from another process: `wrk` (Debian) for the maximum request rate, and
  `bench/loadgen.py`, an open-loop client that measures from each request's scheduled send
  time, for the p99 at 1,000 req/s. Everything runs on 127.0.0.1.
- Each script starts its own `redis-server` on a free port (append-only file, fsync every
  second) and never touches another one.
- Baselines are installed by the bench on first use, each in its own environment keyed by
  the hash of its lock in `bench/locks/` (`~/.cache/instruct-lab-bot/bench-<name>-<hash>`):
  arq and saq each in a venv (arq pins redis-py 5, the product uses current redis-py),
  `@octokit/webhooks` with `npm ci`. The bench runs them as subprocesses.
- The GitHub-calls figure runs a 10-minute job at 1/20 scale (30 s, progress every 1.5 s: the
  same 20 progress intervals) so that `make bench` stays under 5 minutes. The 50-job figure
  (`bench/concurrent_jobs.py`) runs 50 such jobs at once at the same scale against the
  emulator refusing writes beyond 80 a (scaled) minute, GitHub's secondary rate limit.
- First feedback (`bench/feedback.py`): the real server, dispatcher and worker against the
  GitHub emulator answering every call after 150 ms ± 50 ms (`GitHubEmulator.set_latency`);
  webhook sent → the emulator answered the 👀 reaction / the queued check run's POST. The
  first comment is cold (token, permission, configuration, validation) and reported apart.
- Ingest scaling: the same server as `server --workers 2` and `--workers 4` (processes on
  one port, SO_REUSEPORT); wrk, Redis and the server processes share the 2 cores.
- `python -m bench.profile_ingest` (not part of `make bench`) samples the server with py-spy
  under wrk and writes `docs/images/ingest-flame.svg`.
- Dispatch: "job started" is the queue's hand-off (enqueue → the job body runs); "ilab
  started" adds the spawn, and the stand-in (`sh -c 'date …'`) alone needs ~2 ms from
  `create_subprocess_exec` to running (the spawn floor in the notes). The whole path runs the
  real server, dispatcher and worker against the local GitHub sandbox, so GitHub's own latency
  is not in it.
- Queue throughput: workers are paused while the queue is filled, then timed draining it; the
  enqueue rate is in the notes. arq's default poll (0.5 s, ≤ 100 job ids per poll) caps it
  near 200 jobs/s. With 4 worker processes on 2 cores every process is CPU-bound.
- Output pumping is capped at 40 s; the rate is over what went through by then.
- Chat proxy: the stand-in model server (`testkit.fake_teacher`, one server-sent event per
  word, TCP_NODELAY like uvicorn/vLLM), the bot's server app with the proxy (a fixed backend:
  no cold start) and this client are separate processes; direct and proxied streamed answers
  alternate one at a time. Time to first token counts from the client's send; time per token
  is (end − first token) ÷ (tokens − 1). The proxy's share of the first token is its checks
  (chat record in Redis, credential, limits, the backend's URL) and one more HTTP hop.
"""
        + ("\n" + kept if kept else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks it all runs")
    parser.add_argument("--only", nargs="*", default=None, help="figure modules to run")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    figures = [f for f in FIGURES if args.only is None or f.module in args.only]
    rows: list[Row] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ilab-bench-") as tmp:
        for figure in figures:
            print(f"… {figure.title}", flush=True)
            found, seconds = run_figure(figure, args.quick, Path(tmp))
            print(f"  {seconds:.0f} s", flush=True)
            rows += found
    total = time.monotonic() - started
    print()
    print(console(rows))
    print(f"\n{total:.0f} s in all")
    if not (args.quick or args.no_docs or args.only):
        write_docs(rows, total)
        print(f"wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
