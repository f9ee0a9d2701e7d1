"""Issue 12 on Kubernetes: `ILAB_BOT_SANDBOX=runner` runs `ilab` in a container of its own
that holds no secrets (`instruct-lab-bot ilab-runner`).

Every test starts the runner as a real process. The end-to-end attacks start it the way a
pod does, in a pid namespace of its own with no capabilities (bubblewrap plays the container
runtime's part there; it hides no file), next to a real worker process holding every secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from instruct_lab_bot.adapters import sandbox
from instruct_lab_bot.adapters.runner import RunLimits, RunResult
from instruct_lab_bot.adapters.runner_client import RunnerClient, RunnerRefused
from instruct_lab_bot.adapters.sandbox import SandboxUnavailable, check_sandbox, ilab_command
from instruct_lab_bot.core.ilab import PROFILES
from instruct_lab_bot.core.precheck import Seed
from instruct_lab_bot.core.runner_protocol import (
    line_batches,
    path_arguments,
    secrets_in_environment,
)
from instruct_lab_bot.core.settings import SettingsError, parse_runner_settings, parse_settings
from instruct_lab_bot.services import precheck
from testkit.harness import run_bot
from tests.fixtures.bot import WorkerProcess, make_settings, processes_with_env
from tests.fixtures.world import World

CLI = str(Path(sys.executable).with_name("instruct-lab-bot"))
#: A program that says it started and then waits to be stopped (optionally ignoring SIGTERM).
SLEEPER = "import signal, sys, time\n{ignore}print('started', flush=True)\ntime.sleep(3600)\n"


@dataclass
class Runner:
    """A running `instruct-lab-bot ilab-runner` and the log lines it wrote so far."""

    process: asyncio.subprocess.Process
    socket: Path
    jobs_root: Path
    env: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def client(self) -> RunnerClient:
        return RunnerClient(self.socket)

    async def event(self, name: str) -> dict[str, Any]:
        """The next log event called `name` (everything it logs goes to one pipe)."""
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the runner exited before {name}: {self.events}")
            with_event = json.loads(line) if line.startswith(b"{") else {"text": line.decode()}
            self.events.append(with_event)
            if with_event.get("event") == name:
                return with_event


StartRunner = Callable[..., Awaitable[Runner]]


@pytest.fixture
async def start_runner(tmp_path: Path) -> AsyncIterator[StartRunner]:
    started: list[Runner] = []

    async def start(
        ilab: tuple[str, ...], jobs_root: Path, *, container: tuple[Path, ...] | None = None
    ) -> Runner:
        folder = tmp_path / f"runner-{len(started)}"  # its cwd: no `.env` of the bot's here
        folder.mkdir()
        jobs_root.mkdir(parents=True, exist_ok=True)
        socket = folder / "ilab-runner.sock"
        runner_env = {
            "PATH": os.environ["PATH"],
            "HOME": str(folder),
            "ILAB_BOT_ILAB_COMMAND": shlex.join(ilab),
            "ILAB_BOT_ILAB_ENV": "ILAB_STANDIN_*",
            "ILAB_BOT_LOG_FORMAT": "json",
        }
        argv = [CLI, "ilab-runner", "--socket", str(socket), "--jobs-root", str(jobs_root)]
        if container is not None:
            argv = [*as_container(tmp_path, (jobs_root, folder, *container)), *argv]
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=runner_env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        runner = Runner(process, socket, jobs_root, runner_env)
        started.append(runner)
        await runner.event("runner.listening")
        return runner

    yield start
    for runner in started:
        if runner.process.returncode is None:
            runner.process.send_signal(signal.SIGTERM)
            await runner.process.communicate()


def as_container(hidden: Path, shared: tuple[Path, ...]) -> list[str]:
    """What the pod gives the runner's container: its own processes and /proc, no
    capabilities, a read-only image, and of the test's folder (`hidden`, where the worker
    keeps its files) only the `shared` volumes."""
    bwrap = shutil.which("bwrap")
    assert bwrap, "bubblewrap plays the container runtime here"
    out = [bwrap, "--unshare-user", "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/"]
    out += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", str(hidden)]
    for path in shared:
        out += ["--bind", str(path), str(path)]
    return [*out, "--"]


def sleeper(ignore_term: bool = False) -> tuple[str, ...]:
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else ""
    return (sys.executable, "-c", SLEEPER.format(ignore=ignore))


async def run_in(
    runner: Runner, argv: list[str], cwd: Path, env: dict[str, str] | None = None, **kw: Any
) -> tuple[RunResult, list[str]]:
    lines: list[str] = []
    result = await runner.client.run(
        argv,
        cwd=cwd,
        env=env or {"HOME": str(cwd)},
        on_line=lambda _stream, line: lines.append(line),
        limits=kw.pop("limits", RunLimits(timeout=60, kill_grace=2)),
        **kw,
    )
    return result, lines


# --------------------------------------------------------------------------------------------
# What the runner refuses


def test_secrets_in_the_environment_are_found() -> None:
    env = {
        "ILAB_BOT_GITHUB_PRIVATE_KEY": "pem",
        "ILAB_BOT_GITHUB_APP_ID": "1",
        "ILAB_BOT_WEBHOOK_SECRET": "s",
        "AWS_SECRET_ACCESS_KEY": "k",
        "ILAB_BOT_REDIS_URL": "redis://:pw@redis:6379/0",
        "REDIS_URL_OK": "redis://redis:6379/0",
        "ILAB_BOT_ILAB_COMMAND": "ilab",
        "HF_HOME": "/cache",
    }
    assert secrets_in_environment(env) == [
        "AWS_SECRET_ACCESS_KEY",
        "ILAB_BOT_GITHUB_APP_ID",
        "ILAB_BOT_GITHUB_PRIVATE_KEY",
        "ILAB_BOT_REDIS_URL",
        "ILAB_BOT_WEBHOOK_SECRET",
    ]


@pytest.mark.parametrize(
    "secret",
    [
        ("ILAB_BOT_GITHUB_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----"),
        ("ILAB_BOT_REDIS_URL", "redis://:hunter2hunter2@redis:6379/0"),
    ],
)
def test_the_runner_refuses_to_start_with_a_secret(tmp_path: Path, secret: tuple[str, str]) -> None:
    name, value = secret
    done = subprocess.run(
        [CLI, "ilab-runner", "--socket", str(tmp_path / "s"), "--jobs-root", str(tmp_path)],
        env={"PATH": os.environ["PATH"], name: value},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert name in done.stderr and "must hold no secrets" in done.stderr
    assert value not in done.stderr + done.stdout
    assert not (tmp_path / "s").exists()


def test_settings_of_the_runner_mode() -> None:
    env = {"ILAB_BOT_SANDBOX": "runner", "ILAB_BOT_RUNNER_SOCKET": "/run/bot/r.sock"}
    settings = parse_settings({**env, "ILAB_BOT_WEBHOOK_SECRET": "w" * 32}, require_github=False)
    assert (settings.sandbox, settings.runner_socket) == ("runner", Path("/run/bot/r.sock"))
    with pytest.raises(
        SettingsError, match="ILAB_BOT_RUNNER_SOCKET: 'r\\.sock' is not an absolute"
    ):
        parse_settings({**env, "ILAB_BOT_RUNNER_SOCKET": "r.sock"}, require_github=False)
    # The runner needs (and reads) no secret: only its own few settings.
    runner = parse_runner_settings(
        {"ILAB_BOT_ILAB_COMMAND": "/opt/ilab/bin/ilab --x", "ILAB_BOT_ILAB_ENV": "HF_*", **env}
    )
    assert (runner.ilab_command, runner.ilab_env) == (("/opt/ilab/bin/ilab", "--x"), ("HF_*",))
    assert runner.sandbox == "bwrap", "settings outside RUNNER_FIELDS are not read"
    with pytest.raises(SettingsError, match="ILAB_BOT_ILAB_ENV"):
        parse_runner_settings({"ILAB_BOT_ILAB_ENV": "ILAB_BOT_*"})


def test_path_arguments() -> None:
    args = ["data", "generate", "--taxonomy-path", "/w/t", "--output-dir=/w/o", "-x", "a/../b"]
    assert path_arguments([*args, "--", "/etc/passwd is a question"]) == ["/w/t", "/w/o", "a/../b"]
    assert path_arguments(["..", ".", "~root", "./x", "plain", "--pipeline", "simple"]) == [
        "..",
        ".",
        "~root",
        "./x",
    ]


async def test_the_runner_refuses_requests_outside_its_rules(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """Nothing runs unless the program is the runner's own ilab command, every path lies in
    the jobs folder and every variable is allow-listed."""
    record = tmp_path / "ran"
    ilab = (sys.executable, "-c", f"open({str(record)!r}, 'a').write('ran')")
    jobs = tmp_path / "jobs"
    runner = await start_runner(ilab, jobs)
    job = jobs / "job-1"
    job.mkdir()
    (job / "escape").symlink_to(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    refused = {
        "a shell": (["/bin/sh", "-c", "id"], job, {}),
        "another program": ([sys.executable, "-c", "print(1)"], job, {}),
        "cwd outside": ([*ilab], outside, {}),
        "cwd through a symlink": ([*ilab], job / "escape", {}),
        "a .. path": ([*ilab, "--output-dir", f"{job}/../../elsewhere"], job, {}),
        "a path outside": ([*ilab, "--taxonomy-path", "/etc"], job, {}),
        "an option=path outside": ([*ilab, "--output-dir=/etc"], job, {}),
        "HOME outside": ([*ilab], job, {"HOME": str(outside)}),
        "a variable not listed": ([*ilab], job, {"OPENAI_API_KEY": "k"}),
        "the bot's settings": ([*ilab], job, {"ILAB_BOT_WEBHOOK_SECRET": "s"}),
        "PATH": ([*ilab], job, {"PATH": str(outside)}),
    }
    for why, (argv, cwd, env) in refused.items():
        with pytest.raises(RunnerRefused, match="the ilab runner refused"):
            await run_in(runner, argv, cwd, {"HOME": str(job), **env})
        assert not record.exists(), why
    result, _ = await run_in(runner, [*ilab, "--output-dir", str(job / "out")], job)
    assert (result.outcome, result.exit_code, record.read_text()) == ("exited", 0, "ran")


# --------------------------------------------------------------------------------------------
# Runs: output, cancel, a worker that dies


async def test_lines_and_result_come_back(start_runner: StartRunner, tmp_path: Path) -> None:
    script = "import os, sys; print('out', os.environ['ILAB_STANDIN_X']); sys.exit(3)"
    ilab = (sys.executable, "-c", script)
    runner = await start_runner(ilab, tmp_path / "jobs")
    env = {"HOME": str(runner.jobs_root), "ILAB_STANDIN_X": "y"}
    result, lines = await run_in(runner, list(ilab), runner.jobs_root, env)
    assert (result.outcome, result.exit_code, lines) == ("exited", 3, ["out y"])


class Batches:
    """An `on_line` that takes a pipe read's lines at once (`BatchSink`), as the worker's."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, _stream: str, line: str) -> None:
        self.calls.append([line])

    def lines(self, _stream: str, lines: list[str]) -> None:
        self.calls.append(lines)


async def test_output_crosses_the_socket_in_batches(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """Issue 17: one message per pipe read, not per line; every line, in order."""
    script = "import sys; sys.stdout.write(''.join(f'line {i}\\n' for i in range(5000)))"
    ilab = (sys.executable, "-c", script)
    runner = await start_runner(ilab, tmp_path / "jobs")
    sink = Batches()
    result = await runner.client.run(
        list(ilab),
        cwd=runner.jobs_root,
        env={"HOME": str(runner.jobs_root)},
        on_line=sink,
        limits=RunLimits(timeout=60, kill_grace=2),
    )
    assert result.exit_code == 0
    assert [line for call in sink.calls for line in call] == [f"line {i}" for i in range(5000)]
    assert len(sink.calls) < 100  # a 49 KB write arrives in a few pipe reads


def test_line_batches_keep_order_within_the_budget() -> None:
    lines = [f"{i}" * (i % 7) for i in range(500)] + ["x" * 50]
    groups = line_batches(lines, budget=40)
    assert [line for group in groups for line in group] == lines
    assert all(sum(len(line) + 1 for line in group) <= 40 for group in groups[:-1])
    assert groups[-1] == ["x" * 50]  # longer than the budget: alone
    assert line_batches(lines[:3], budget=40) == [lines[:3]]


async def test_what_ilab_writes_is_handed_back_to_the_workers_group(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """The worker (another uid, same group) must upload and delete even a private folder."""
    script = (
        "import os; os.makedirs('out/private', mode=0o700); "
        "os.close(os.open('out/private/data', os.O_CREAT | os.O_WRONLY, 0o600))"
    )
    ilab = (sys.executable, "-c", script)
    runner = await start_runner(ilab, tmp_path / "jobs")
    job = runner.jobs_root / "job-1"
    (job / "home").mkdir(parents=True)
    result, _ = await run_in(runner, list(ilab), job, {"HOME": str(job / "home")})
    assert result.exit_code == 0
    assert (job / "out" / "private").stat().st_mode & 0o070 == 0o070
    assert (job / "out" / "private" / "data").stat().st_mode & 0o060 == 0o060


@pytest.mark.parametrize("ignore_term", [False, True])
async def test_cancel_kills_the_run(
    start_runner: StartRunner, tmp_path: Path, ignore_term: bool
) -> None:
    runner = await start_runner(sleeper(ignore_term), tmp_path / "jobs")
    needle = f"cancel-{ignore_term}-{tmp_path.name}"
    cancel = asyncio.Event()

    def on_line(_stream: str, line: str) -> None:
        assert processes_with_env(needle), "the run is not there"
        cancel.set()

    result = await runner.client.run(
        list(sleeper(ignore_term)),
        cwd=runner.jobs_root,
        env={"HOME": str(runner.jobs_root), "ILAB_STANDIN_NEEDLE": needle},
        on_line=on_line,
        limits=RunLimits(timeout=600, kill_grace=2.0),
        cancel=cancel,
    )
    assert result.outcome == "cancelled"
    assert result.signal == (signal.SIGKILL if ignore_term else signal.SIGTERM)
    assert not processes_with_env(needle)


async def test_a_worker_dying_mid_run_kills_the_run(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """The worker process is SIGKILLed while `ilab` runs: its connection closes and the runner
    stops the run (and answers the next request as before)."""
    runner = await start_runner(sleeper(ignore_term=True), tmp_path / "jobs")
    needle = f"orphan-{tmp_path.name}"
    request = {
        "op": "run",
        "argv": list(sleeper(ignore_term=True)),
        "cwd": str(runner.jobs_root),
        "env": {"HOME": str(runner.jobs_root), "ILAB_STANDIN_NEEDLE": needle},
        "timeout": 600,
        "kill_grace": 2.0,
        "max_line": 1024,
    }
    payload = json.dumps(request).encode() + b"\n"
    worker_code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(runner.socket)!r})\n"
        f"s.sendall({payload!r})\n"
        "sys.stdout.buffer.write(s.makefile('rb').readline()); sys.stdout.flush()\n"
        "sys.stdin.read()\n"
    )
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", worker_code, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert worker.stdout is not None
    assert b'"lines":["started"]' in await worker.stdout.readline()
    assert processes_with_env(needle)
    worker.kill()
    await worker.wait()
    await runner.event("runner.done")
    assert not processes_with_env(needle)
    assert (await runner.client.version())["ilab_command"] == list(sleeper(ignore_term=True))


async def test_a_stopping_runner_leaves_no_run_behind(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    runner = await start_runner(sleeper(ignore_term=True), tmp_path / "jobs")
    needle = f"stopped-{tmp_path.name}"

    def on_line(_stream: str, _line: str) -> None:
        assert processes_with_env(needle)
        runner.process.send_signal(signal.SIGTERM)

    with pytest.raises(ConnectionError, match="closed the connection"):
        await runner.client.run(
            list(sleeper(ignore_term=True)),
            cwd=runner.jobs_root,
            env={"HOME": str(runner.jobs_root), "ILAB_STANDIN_NEEDLE": needle},
            on_line=on_line,
            limits=RunLimits(timeout=600, kill_grace=10.0),
        )
    assert await runner.process.wait() == 0
    assert not processes_with_env(needle)


async def test_a_detached_child_does_not_outlive_ilab_in_the_runner(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """The stand-in's fork attack (new session, double fork) run by the runner: nothing of it
    is left once the run's result is back."""
    script = "import os; from testkit.ilab_attacks import fork_attack; fork_attack(os.environ)"
    ilab = (sys.executable, "-c", script)
    runner = await start_runner(ilab, tmp_path / "jobs")
    needle = f"fork-{tmp_path.name}"
    env = {"HOME": str(runner.jobs_root), "ILAB_STANDIN_NEEDLE": needle}
    try:
        result, _ = await run_in(runner, list(ilab), runner.jobs_root, env)
        assert (result.outcome, result.exit_code) == ("exited", 0)
        assert not processes_with_env(needle), "a detached child survived the run"
    finally:
        for pid in processes_with_env(needle):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# The worker in runner mode


async def test_check_sandbox_asks_the_runner(
    start_runner: StartRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "RUNNER_START_WAIT", 0.0)  # no runner: give up at once
    ilab = sleeper()
    jobs = tmp_path / "jobs"
    settings = make_settings(
        sandbox="runner", runner_socket=tmp_path / "nobody.sock", ilab_command=ilab
    )
    with pytest.raises(SandboxUnavailable, match="does not answer"):
        await check_sandbox(replace(settings, work_dir=jobs / "work"))
    runner = await start_runner(ilab, jobs)
    settings = replace(settings, runner_socket=runner.socket, work_dir=jobs / "work")
    assert await check_sandbox(settings) is None
    with pytest.raises(SandboxUnavailable, match="ILAB_BOT_ILAB_COMMAND"):
        await check_sandbox(replace(settings, ilab_command=("ilab",)))
    with pytest.raises(SandboxUnavailable, match="does not hold ILAB_BOT_WORK_DIR"):
        await check_sandbox(replace(settings, work_dir=tmp_path / "work"))
    command = ilab_command(settings, [*ilab, "x"], workspace=jobs / "work" / "j", cwd=jobs)
    assert command.argv == [*ilab, "x"], "the runner applies its own limits"
    assert "PATH" not in command.env and command.env["HOME"] == str(jobs / "work" / "j" / "home")


async def test_precheck_chat_goes_through_the_runner(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """`ilab model chat` takes the same path; a question after `--` is data, even one that
    looks like a path outside the jobs folder."""
    ilab = (sys.executable, "-c", "import os, sys; print(os.getppid(), sys.argv[-1])")
    runner = await start_runner(ilab, tmp_path / "jobs")
    settings = make_settings(
        sandbox="runner",
        runner_socket=runner.socket,
        ilab_command=ilab,
        work_dir=runner.jobs_root / "work",
    )
    job = runner.jobs_root / "work" / "job"
    job.mkdir(parents=True)
    seed = Seed("q.yaml", "/etc/passwd: what is in it?", "Users.", "")
    answer = await precheck.ask(
        settings, seed, cwd=job, workspace=job, cancel=None, profile=PROFILES[-1]
    )
    assert answer.error == ""
    assert answer.answer == f"{runner.process.pid} /etc/passwd: what is in it?"


def published(world: World, comment: dict[str, Any], log: str) -> str:
    run = world.check_run()
    parts = [comment["body"], str(run.get("output")), log]
    root = Path(world.settings.artifacts_url.removeprefix("file://"))
    parts += [p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()]
    return "\n".join(parts)


@pytest.mark.parametrize("mode", ["attack-environ", "attack-files"])
async def test_ilab_in_the_runner_cannot_reach_the_workers_secrets(
    world: World,
    start_runner: StartRunner,
    worker_processes: Callable[..., WorkerProcess],
    tmp_path: Path,
    mode: str,
) -> None:
    """A real generate job: webhook → dispatcher → a worker process holding every secret in
    its environment and a `.env` in its folder → the runner → the hostile stand-in. What the
    stand-in finds is published (comment, check run, artifacts): none of it is a secret, and
    the only environment it can read is the runner's own."""
    settings = world.settings
    runner = await start_runner(
        settings.ilab_command, settings.work_dir, container=(world.record.path.parent,)
    )
    world.settings = settings = replace(settings, sandbox="runner", runner_socket=runner.socket)
    (tmp_path / ".env").write_text(f"ILAB_BOT_WEBHOOK_SECRET={settings.webhook_secret.value}\n")
    (tmp_path / "app-key.pem").write_text(settings.github_private_key.value)
    worker = worker_processes(
        settings,
        ILAB_STANDIN_MODE=mode,
        ILAB_STANDIN_ATTACK_PATHS=f"{tmp_path / '.env'},{tmp_path / 'app-key.pem'}",
    )
    await worker.registered(settings.redis_url)
    async with run_bot(settings, workers=0) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
    assert world.record.entries(), "the stand-in never ran"
    text = published(world, comment, worker.log_path.read_text(errors="replace"))
    name = mode.removeprefix("attack-")
    assert f"ATTACK {name}: blocked" in text or f"LEAKED {name}" in text, "the attack ran"
    for secret in (
        settings.webhook_secret.value,
        settings.github_private_key.value.splitlines()[1],
        "aws-secret-for-test",  # in the worker's environment (the world fixture sets it)
    ):
        assert secret not in text
    # What the stand-in could read at all: the runner's own (secret-free) variables.
    seen = set(re.findall(rf"LEAKED {name}: pid \d+: ([A-Za-z_][A-Za-z0-9_]*)=", text))
    assert seen <= {*runner.env, "PWD"}, seen  # PWD: set by the "container runtime" (bwrap)
    assert f"LEAKED {name}" not in re.sub(rf"LEAKED {name}: pid \d+: ", "", text)
