"""What every figure script shares: result rows, a private Redis, child processes, percentiles.

Each figure runs as its own process (`python -m bench.<figure> --json out.json`), so one that
crashes or hangs costs its own rows only; `python -m bench` turns the JSON into the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testkit.redis_server import running_redis

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Row:
    """One line of the table. `ratio` is always ours ÷ baseline; `met` is yes/no/info/n/a."""

    figure: str
    ours: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: str = "info"
    note: str = ""

    @classmethod
    def unavailable(cls, figure: str, reason: str, target: str = "—") -> Row:
        return cls(figure, "n/a", "n/a", "n/a", target, "n/a", reason)


def ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}" if baseline > 0 else "—"


def verdict(ok: bool) -> str:
    return "yes" if ok else "no"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# -- figure scripts ---------------------------------------------------------------------------

Measure = Callable[[bool], Coroutine[Any, Any, list[Row]]]


def figure_main(measure: Measure, description: str | None) -> None:
    """`--quick` (tiny sizes, for the smoke test) and `--json PATH`; prints the rows too."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks it runs")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.quick))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    for row in rows:
        print(f"{row.figure}: ours {row.ours}, baseline {row.baseline}, ratio {row.ratio}")


def load_rows(path: Path) -> list[Row]:
    return [Row(**item) for item in json.loads(path.read_text())]


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A child with its output in `log` (or discarded); never through a shell."""
    out: Any = subprocess.DEVNULL
    if log is not None:
        out = log.open("ab")
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    finally:
        if log is not None:
            out.close()


def stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn(argv, env=env, cwd=cwd, log=log)
    try:
        yield process
    finally:
        stop(process)


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll `url` until it answers (any status); fail early if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


# -- Redis ------------------------------------------------------------------------------------


def redis_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "missing"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.split("v=")[1].split()[0] if "v=" in out.stdout else out.stdout.strip()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free loopback port, with an append-only file (fsync every
    second, the usual production setting), so "durably enqueued" means what it does in prod."""
    with (
        tempfile.TemporaryDirectory(prefix="ilab-bench-redis-") as directory,
        running_redis(Path(directory), appendonly=True, appendfsync="everysec") as server,
    ):
        yield server.url


# -- the machine ------------------------------------------------------------------------------


def _first(path: str, key: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _version(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "missing"
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine() -> dict[str, str]:
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _first("/proc/cpuinfo", "model name"),
        "memory": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else mem_kb,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "redis": redis_version(),
        "node": _version(["node", "--version"]),
        "wrk": _version(["wrk", "--version"]).split(" [")[0],
    }


# -- the bot as a real process ----------------------------------------------------------------


def throwaway_pem() -> str:
    """A fresh RSA key in PEM form, so the bot's settings load as they would in production."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def bot_env(redis_url: str, work: Path, port: int, secret: str, **extra: str) -> dict[str, str]:
    """The environment of an `instruct-lab-bot` process on our Redis (ours only, no inherited
    ILAB_BOT_* settings). Run it with cwd=`work` so no developer's `.env` is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ILAB_BOT_")}
    env.update(
        {
            "ILAB_BOT_GITHUB_APP_ID": "4242",
            "ILAB_BOT_GITHUB_PRIVATE_KEY": throwaway_pem(),
            "ILAB_BOT_WEBHOOK_SECRET": secret,
            "ILAB_BOT_GITHUB_API_URL": "http://127.0.0.1:9",
            "ILAB_BOT_REDIS_URL": redis_url,
            "ILAB_BOT_HOST": "127.0.0.1",
            "ILAB_BOT_PORT": str(port),
            "ILAB_BOT_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "ILAB_BOT_ARTIFACTS_URL": f"file://{work / 'artifacts'}",
            "ILAB_BOT_WORK_DIR": str(work / "jobs"),
            "ILAB_BOT_LOG_FORMAT": "json",
            # workers check at start-up that `ilab` runs; these run no job, the stand-in will do
            "ILAB_BOT_ILAB_COMMAND": str(Path(sys.executable).with_name("ilab-standin")),
            # the stand-in's editable install, when this checkout lies under /tmp (a CI clone)
            "ILAB_BOT_SANDBOX_READABLE": str(ROOT),
        }
    )
    env.update({f"ILAB_BOT_{k}": v for k, v in extra.items()})
    return env


def bot_argv(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("instruct-lab-bot")), *args]
