"""Install the baselines on first use, each in its OWN environment, never in the product's venv.

arq and saq each get a venv, `@octokit/webhooks` (Probot's webhook engine) an npm directory,
under `~/.cache/instruct-lab-bot/bench-<name>-<hash of its lock>`: the lock files are in
`bench/locks/` (every package pinned), so a changed lock makes a new environment and an
unchanged one is reused. The bench runs them as subprocesses by path, so a baseline's
dependencies (arq needs redis-py < 6) never constrain the product's. An environment is built in
a temporary directory and renamed into place, so concurrent runs never see half of one. A
baseline that cannot be installed raises `Unavailable`, and its rows say "n/a" with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .common import BENCH_DIR

LOCKS = BENCH_DIR / "locks"
QUEUE_SYSTEMS = ("arq", "saq")
ENV_ROOT = Path(
    os.environ.get("ILAB_BOT_BENCH_CACHE", str(Path.home() / ".cache" / "instruct-lab-bot"))
)


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


def lock_key(*locks: Path) -> str:
    digest = hashlib.sha256()
    for lock in locks:
        digest.update(lock.name.encode() + b"\0" + lock.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def env_dir(name: str, *locks: Path, root: Path | None = None) -> Path:
    return (root or ENV_ROOT) / f"bench-{name}-{lock_key(*locks)}"


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """`target` if it is complete; else built by `build(tmp)` in a sibling dir, then renamed."""
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        with contextlib.suppress(OSError):  # another run finished first: keep theirs
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not (target / ".complete").exists():
        raise Unavailable(f"{target.name} was not built")
    return target


def queue_python(system: str, root: Path | None = None) -> Path:
    """The interpreter of `system`'s own venv (arq or saq), built from its lock on first use.

    The venv's python is a symlink to this machine's interpreter, so the venv still works once
    renamed into place; nothing in it is run through a script's shebang.
    """
    if system not in QUEUE_SYSTEMS:
        raise ValueError(f"no such queue baseline: {system}")
    lock = LOCKS / f"{system}.txt"

    def build(tmp: Path) -> None:
        _run([sys.executable, "-m", "venv", "--clear", str(tmp)], f"venv for {system}", 120)
        _run(
            [
                str(tmp / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "-r",
                str(lock),
            ],
            f"pip install -r bench/locks/{system}.txt",
        )
        _run([str(tmp / "bin" / "python"), "-c", f"import {system}"], f"import {system}", 60)

    return _build_once(env_dir(system, lock, root=root), build) / "bin" / "python"


def octokit_server(root: Path | None = None) -> list[str]:
    """argv of a Node server running Probot's webhook engine (`createNodeMiddleware`)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise Unavailable("node/npm are not installed")
    locks = (LOCKS / "octokit" / "package.json", LOCKS / "octokit" / "package-lock.json")

    def build(tmp: Path) -> None:
        for lock in locks:
            shutil.copyfile(lock, tmp / lock.name)
        _run(
            [npm, "ci", "--prefix", str(tmp), "--no-audit", "--no-fund", "--ignore-scripts"],
            "npm ci @octokit/webhooks (bench/locks/octokit)",
        )

    prefix = _build_once(env_dir("octokit", *locks, root=root), build)
    # ESM resolves packages next to the script, so the script runs from the install prefix.
    script = prefix / "octokit_server.mjs"
    source = (BENCH_DIR / "octokit_server.mjs").read_bytes()
    if not script.exists() or script.read_bytes() != source:
        script.write_bytes(source)
    return [node, str(script)]


def wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise Unavailable("wrk is not installed (apt-get install wrk)")
    return found
