"""Install the baselines on first use, pinned, into `.cache/` (git-ignored).

arq and saq go into the project's venv (pip, pinned); `@octokit/webhooks` (Probot's webhook
engine) is installed with npm into `.cache/bench-node`. A baseline that cannot be
installed raises `Unavailable`, and its rows say "n/a" with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .common import BENCH_DIR, CACHE

# saq 0.26.4 imports typing_extensions without declaring it.
QUEUE_PACKAGES = ("arq==0.28.0", "saq==0.26.4", "typing_extensions")
OCTOKIT = ("@octokit/webhooks", "14.2.0")


class Unavailable(Exception):
    """A baseline that could not be installed or started; the message says why."""


def _run(argv: list[str], what: str, timeout: float = 300) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise Unavailable(f"{what} failed: {last[0][:200]}")


def queue_python() -> Path:
    """This interpreter, once arq and saq (pinned) import in it; pip-installs them if not.

    They share the project's venv (redis-py is pinned to 5.x for arq), so both sides of each
    comparison use the same Redis client library.
    """
    python = Path(sys.executable)
    probe = "import arq, saq, importlib.metadata as m; print(m.version('arq'), m.version('saq'))"
    wanted = " ".join(p.split("==")[1] for p in QUEUE_PACKAGES if "==" in p)
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    if found.returncode == 0 and found.stdout.strip() == wanted:
        return python
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *QUEUE_PACKAGES,
        ],
        "pip install " + " ".join(QUEUE_PACKAGES),
    )
    return python


def octokit_server(cache: Path = CACHE) -> list[str]:
    """argv of a Node server running Probot's webhook engine (`createNodeMiddleware`)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise Unavailable("node/npm are not installed")
    prefix = cache / "bench-node"
    name, version = OCTOKIT
    manifest = prefix / "node_modules" / name / "package.json"
    installed = json.loads(manifest.read_text()).get("version") if manifest.exists() else None
    if installed != version:
        prefix.mkdir(parents=True, exist_ok=True)
        _run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                f"{name}@{version}",
            ],
            f"npm install {name}@{version}",
        )
    # ESM resolves packages next to the script, so the script runs from the install prefix.
    script = prefix / "octokit_server.mjs"
    script.write_bytes((BENCH_DIR / "octokit_server.mjs").read_bytes())
    return [node, str(script)]


def wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise Unavailable("wrk is not installed (apt-get install wrk)")
    return found
