"""The bot as a deployment runs it: `instruct-lab-bot server` and `worker` processes (so that
`kill -9` is a real crash), configured by environment only, behind a round-robin proxy."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..redis_server import free_port
from .redis_backends import RedisBackend

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout


def _bot_binary() -> str:
    return str(Path(sys.executable).with_name("instruct-lab-bot"))


def standin_binary() -> str:
    return str(Path(sys.executable).with_name("ilab-standin"))


@dataclass
class BotProcess:
    """One bot process that may be killed and started again with the same settings."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.log.parent,  # no developer's .env is read
            )
        self.starts += 1

    def kill9(self) -> None:
        """SIGKILL: no handler runs, leases and pending entries are left as a crash leaves them
        (bubblewrap's --die-with-parent takes the job's `ilab` down with it)."""
        if self.process is not None and self.alive:
            self.process.kill()
            self.process.wait()

    def stop(self, grace: float = 10.0) -> None:
        if self.process is None or not self.alive:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill9()


@dataclass(frozen=True)
class FleetConfig:
    servers: int = 2
    workers: int = 4
    concurrency: int = 2  # jobs per worker process
    standin_duration: float = 1.0  # seconds the `ilab` stand-in "generates"
    redis: str = "sentinel"  # or "single" (see redis_backends)


@dataclass
class Fleet:
    """Redis, server and worker processes, all under `var`."""

    var: Path
    redis: RedisBackend
    servers: list[BotProcess] = field(default_factory=list)
    workers: list[BotProcess] = field(default_factory=list)

    @property
    def server_ports(self) -> list[int]:
        return [int(s.env["ILAB_BOT_PORT"]) for s in self.servers]

    def add_servers(self, count: int, env: Mapping[str, str]) -> None:
        for n in range(count):
            port = free_port()
            argv = [_bot_binary(), "server"]
            port_env = {**env, "ILAB_BOT_PORT": str(port)}
            self.servers.append(self._process(f"server-{n}", argv, port_env))

    def add_workers(self, count: int, concurrency: int, env: Mapping[str, str]) -> None:
        for n in range(count):
            argv = [_bot_binary(), "worker", "--concurrency", str(concurrency)]
            argv += ["--metrics-port", "0"]
            work = {"ILAB_BOT_WORK_DIR": str(self.var / f"work-{n}")}  # a host's own disk
            self.workers.append(self._process(f"worker-{n}", argv, {**env, **work}))

    def _process(self, name: str, argv: list[str], env: Mapping[str, str]) -> BotProcess:
        folder = self.var / name
        folder.mkdir(parents=True, exist_ok=True)
        return BotProcess(name, argv, dict(env), folder / "bot.log")

    def start_all(self) -> None:
        for process in (*self.servers, *self.workers):
            if not process.alive:
                process.start()

    def stop_all(self) -> None:
        for process in (*self.servers, *self.workers):
            process.stop()

    def crashed(self) -> list[str]:
        """Processes that exited on their own (not killed by the driver): a bug to report."""
        return [p.name for p in (*self.servers, *self.workers) if p.process and not p.alive]


def bot_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ILAB_BOT_* or PYTEST_* of its own, plus
    `settings` (keys without the ILAB_BOT_ prefix)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ILAB_BOT_", "PYTEST", "ILAB_"))
    }
    env.update({f"ILAB_BOT_{k}": v for k, v in settings.items()})
    return env


def chaos_settings(
    *, redis_url: str, github_url: str, git_url: str, public_url: str, var: Path
) -> dict[str, str]:
    """Production code paths with short leases and intervals, so a run takes a minute."""
    return {
        "GITHUB_API_URL": github_url,
        "GITHUB_GIT_URL": git_url,
        "REDIS_URL": redis_url,
        "ARTIFACTS_URL": f"file://{var / 'artifacts'}",
        "PUBLIC_URL": public_url,
        "HOST": "127.0.0.1",
        "ILAB_COMMAND": shlex.join([standin_binary()]),
        "GENERATE_ARGS": "--sdg-scale-factor 2 --pipeline simple",
        "JOB_TIMEOUT": "120",
        "PROGRESS_INTERVAL": "1",
        "KILL_GRACE": "1",
        "MAX_DELIVERIES": "25",  # the driver kills far more often than production sees
        "HEARTBEAT_INTERVAL": "0.5",
        "LEASE_TIMEOUT": "5",  # short, yet longer than a heartbeat delayed by a loaded machine
        "SHUTDOWN_GRACE": "0.5",
        "GITHUB_TIMEOUT": "10",
        "GITHUB_RETRY_DEADLINE": "30",  # the stretches of GitHub failures last seconds
        "GITHUB_WRITES_PER_MINUTE": "100000",  # one installation gets all 200 PRs here
        "RECONCILE_INTERVAL": "off",
        "LOG_FORMAT": "json",
        "SANDBOX_READABLE": str(ROOT),  # the stand-in's editable install
        "ILAB_ENV": "ILAB_STANDIN_*",
    }
