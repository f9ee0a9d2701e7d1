"""Finding 2: `ilab` ran as the bot's own user and could read its secrets.

Each attack runs as a real job (webhook -> dispatcher -> worker -> sandboxed stand-in ->
comment, check run, uploaded log) with the stand-in in one of its `attack-*` modes, and the
test asserts the attack found nothing anywhere the bot publishes. The attack tests read
`ILAB_BOT_SANDBOX` from the environment (default `bwrap`), so
`ILAB_BOT_SANDBOX=off pytest tests/security/test_sandbox.py` shows each of them failing
without the sandbox.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from instruct_lab_bot.adapters.runner import RunLimits, run_streaming
from instruct_lab_bot.adapters.sandbox import (
    SandboxUnavailable,
    check_sandbox,
    ilab_command,
    secret_paths,
    set_non_dumpable,
)
from instruct_lab_bot.core.ilab import PROFILES
from instruct_lab_bot.core.precheck import Seed
from instruct_lab_bot.core.sandbox import (
    FIXED_ENV,
    ResourceLimits,
    SandboxPlan,
    child_env,
    limits_argv,
    parse_env_names,
    parse_size,
    sandbox_argv,
)
from instruct_lab_bot.core.settings import SettingsError, parse_settings
from instruct_lab_bot.services import precheck
from testkit.harness import run_bot
from tests.fixtures.bot import WorkerProcess, make_settings, processes_with_env
from tests.fixtures.world import World

SANDBOX = os.environ.get("ILAB_BOT_SANDBOX", "bwrap")
AWS_SECRET = "aws-secret-for-test"  # in the worker's environment (the world fixture sets it)


def published(world: World, comment: dict[str, Any], stdout: str) -> str:
    """Everything the job made public or logged: comment, check run, artifacts, bot log."""
    run = world.check_run()
    parts = [comment["body"], str(run.get("output")), stdout]
    root = Path(world.settings.artifacts_url.removeprefix("file://"))
    parts += [p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()]
    return "\n".join(parts)


async def attack(
    world: World, mode: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """Run one `generate` job with the stand-in in `mode`; return all it published."""
    world.settings = replace(world.settings, sandbox=SANDBOX)
    monkeypatch.setenv("ILAB_STANDIN_MODE", mode)
    monkeypatch.setenv("ILAB_BOT_GITHUB_PRIVATE_KEY", world.settings.github_private_key.value)
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
    assert world.record.entries(), "the stand-in never ran"
    return published(world, comment, capsys.readouterr().out)


def assert_blocked(name: str, text: str, *secrets: str) -> None:
    assert f"ATTACK {name}: blocked" in text  # the attack ran and its report was published
    assert "LEAKED" not in text
    for secret in secrets:
        assert secret not in text


async def test_ilab_cannot_read_the_workers_environment(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = await attack(world, "attack-environ", monkeypatch, capsys)
    key_line = world.settings.github_private_key.value.splitlines()[1]
    assert_blocked("environ", text, world.settings.webhook_secret.value, AWS_SECRET, key_line)


async def test_ilab_cannot_read_a_worker_process_secrets(
    world: World,
    worker_processes: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real `instruct-lab-bot worker` process, started with its secrets in its environment
    (the stand-in's parent when unsandboxed)."""
    world.settings = replace(world.settings, sandbox=SANDBOX)
    worker = worker_processes(world.settings, ILAB_STANDIN_MODE="attack-environ")
    await worker.registered(world.settings.redis_url)
    async with run_bot(world.settings, workers=0) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment()
    text = published(world, comment, worker.log_path.read_text(errors="replace"))
    key_line = world.settings.github_private_key.value.splitlines()[1]
    assert_blocked("environ", text, world.settings.webhook_secret.value, key_line)


async def test_ilab_cannot_read_the_app_key_file(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The key sits in a folder the sandbox binds writable, so only its mask hides it.
    key_file = world.record.path.parent / "app-key.pem"
    key_file.write_text(world.settings.github_private_key.value)
    world.settings = replace(world.settings, github_private_key_file=str(key_file))
    monkeypatch.setenv("ILAB_STANDIN_ATTACK_PATHS", str(key_file))
    text = await attack(world, "attack-files", monkeypatch, capsys)
    assert_blocked("files", text, world.settings.github_private_key.value.splitlines()[1])


async def test_ilab_cannot_reach_the_workers_redis(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = world.settings.redis_url.split("//", 1)[1].split("/", 1)[0]
    monkeypatch.setenv("ILAB_STANDIN_ATTACK_TARGET", target)
    text = await attack(world, "attack-network", monkeypatch, capsys)
    assert_blocked("network", text, "PONG")


@pytest.fixture
def kill_survivors(world: World) -> Iterator[None]:
    yield
    for pid in processes_with_env(str(world.record.path)):
        os.kill(pid, signal.SIGKILL)


async def test_a_detached_child_does_not_outlive_ilab(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kill_survivors: None,
) -> None:
    text = await attack(world, "attack-fork", monkeypatch, capsys)
    assert "ATTACK fork: blocked" in text
    # The grandchild inherited the stand-in's environment, which names this test's record.
    assert not processes_with_env(str(world.record.path)), "a detached child survived the job"


# --------------------------------------------------------------------------------------------
# The pieces: the argv and environment (pure), limits, start-up checks, PR_SET_DUMPABLE


def test_sandbox_argv_mounts_in_order() -> None:
    plan = SandboxPlan(
        bwrap="/usr/bin/bwrap",
        workspace=Path("/w/job"),
        cwd=Path("/w/job/taxonomy"),
        hide_dirs=(Path("/w"),),
        hide_files=(Path("/etc/bot/key.pem"),),
        readable=(Path("/tmp/checkout"),),
        writable=(Path("/cache"),),
        devices=(Path("/dev/nvidia0"),),
    )
    argv = sandbox_argv(plan, ["ilab", "data", "generate"])
    assert argv[-4:] == ["--", "ilab", "data", "generate"]
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-net", "--die-with-parent"):
        assert flag in argv
    assert "--new-session" in argv
    text = " ".join(argv)
    order = [
        "--ro-bind / /",
        "--dev /dev",
        "--proc /proc",
        "--tmpfs /tmp",
        "--dev-bind /dev/nvidia0 /dev/nvidia0",
        "--ro-bind /tmp/checkout /tmp/checkout",
        "--bind /cache /cache",
        "--tmpfs /w ",
        "--ro-bind /dev/null /etc/bot/key.pem",
        "--bind /w/job /w/job --chdir /w/job/taxonomy",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)  # later mounts win: the workspace over the work dir
    assert "--unshare-net" not in sandbox_argv(replace(plan, network=True), ["x"])


def test_limits_argv() -> None:
    limits = ResourceLimits(memory=1 << 30, processes=64, file_size=None)
    assert limits_argv("/usr/bin/prlimit", limits) == [
        "/usr/bin/prlimit",
        "--data=1073741824",
        "--nproc=64",
        "--core=0",
        "--",
    ]


def test_child_env_is_an_allow_list() -> None:
    bot_env = {
        "PATH": "/opt/bin",
        "HF_HOME": "/models",
        "HF_TOKEN": "hf_secret",
        "OPENAI_API_KEY": "sk-x",
        "OTEL_EXPORTER_OTLP_HEADERS": "auth=x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "ILAB_BOT_WEBHOOK_SECRET": "x",
        "ILAB_STANDIN_MODE": "ok",
        "LANG": "de_DE",
    }
    env = child_env(bot_env, ("HF_HOME", "ILAB_STANDIN_*"), home=Path("/w/home"), path="/bin")
    assert env == {
        **FIXED_ENV,
        "HF_HOME": "/models",
        "ILAB_STANDIN_MODE": "ok",
        "HOME": "/w/home",
        "PATH": "/bin",
        "TMPDIR": "/tmp",
    }
    assert child_env(bot_env, ("ILAB_BOT_*", "ILAB_*"), home=Path("/h"), path="/")[
        "ILAB_STANDIN_MODE"
    ]
    assert "ILAB_BOT_WEBHOOK_SECRET" not in child_env(
        bot_env, ("ILAB_*",), home=Path("/h"), path=""
    )


def test_settings_of_the_sandbox() -> None:
    env = {"ILAB_BOT_WEBHOOK_SECRET": "s" * 32}
    settings = parse_settings(
        {
            **env,
            "ILAB_BOT_ILAB_ENV": "HF_HOME, OPENAI_API_KEY,ILAB_STANDIN_*",
            "ILAB_BOT_ILAB_MEMORY_LIMIT": "16g",
            "ILAB_BOT_ILAB_MAX_PROCESSES": "off",
        },
        require_github=False,
    )
    assert settings.sandbox == "bwrap" and settings.sandbox_network == "none"
    assert settings.ilab_env == ("HF_HOME", "OPENAI_API_KEY", "ILAB_STANDIN_*")
    assert settings.ilab_memory_limit == 16 << 30 and settings.ilab_max_processes is None
    with pytest.raises(SettingsError) as err:
        parse_settings(
            {
                **env,
                "ILAB_BOT_SANDBOX": "none",
                "ILAB_BOT_ILAB_ENV": "ILAB_BOT_WEBHOOK_SECRET",
                "ILAB_BOT_SANDBOX_WRITABLE": "relative/dir",
            },
            require_github=False,
        )
    assert len(err.value.problems) == 3
    assert parse_size("512m") == 512 << 20 and parse_size("off") is None
    with pytest.raises(ValueError):
        parse_env_names("HF HOME")


def test_secret_paths_cover_the_bots_files(tmp_path: Path) -> None:
    settings = make_settings(
        github_private_key_file="/etc/bot/key.pem",
        work_dir=tmp_path / "work",
        artifacts_url="file:///srv/artifacts",
        redis_url="unix:///run/redis/redis.sock",
        sandbox_hide=(Path("/home/bot/.aws"),),
    )
    assert set(secret_paths(settings)) >= {
        Path("/etc/bot/key.pem"),
        tmp_path / "work",
        Path("/srv/artifacts"),
        Path("/run/redis/redis.sock"),
        Path("/home/bot/.aws"),
        Path(".env").resolve(),
    }


async def test_file_size_limit_applies_inside_the_sandbox(tmp_path: Path) -> None:
    settings = make_settings(work_dir=tmp_path, ilab_max_file_size=4096)
    workspace = tmp_path / "job"
    workspace.mkdir()
    command = ilab_command(
        settings,
        ["sh", "-c", "head -c 100000 /dev/zero > big"],
        workspace=workspace,
        cwd=workspace,
    )
    result = await run_streaming(
        command.argv, cwd=workspace, env=command.env, on_line=print, limits=RunLimits(60)
    )
    assert result.exit_code != 0 and (workspace / "big").stat().st_size <= 4096


async def test_worker_refuses_to_start_without_bwrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap there
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        await check_sandbox(make_settings(work_dir=tmp_path, ilab_max_file_size=None))
    settings = make_settings(work_dir=tmp_path, sandbox="off", **dict.fromkeys(LIMIT_FIELDS, None))
    warning = await check_sandbox(settings)
    assert warning and "ILAB_BOT_SANDBOX=off" in warning


LIMIT_FIELDS = ("ilab_memory_limit", "ilab_max_processes", "ilab_max_file_size")


async def test_worker_refuses_to_start_when_namespaces_fail(tmp_path: Path) -> None:
    # A `bwrap` that fails the way it does where user namespaces are not allowed.
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    settings = make_settings(work_dir=tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
        with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace"):
            await check_sandbox(settings)


def test_the_worker_process_is_not_dumpable() -> None:
    """A process of the same (unprivileged) uid cannot read a non-dumpable worker's environ."""
    if os.geteuid() != 0:
        pytest.skip("needs root to put both sides under an unprivileged uid")
    assert {mode: peek_environ(mode) for mode in ("off", "on")} == {"off": True, "on": False}


def peek_environ(mode: str) -> bool:
    """Fork a 'worker' as uid nobody (non-dumpable when `mode` is on); read its environ as
    nobody too. True when the reader could read it."""
    nobody = 65534
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: no exec, so nothing it needs is out of nobody's reach
        try:
            os.setgroups([])
            os.setresgid(nobody, nobody, nobody)
            os.setresuid(nobody, nobody, nobody)
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # changing uid cleared it: set it back
            if mode == "on":
                set_non_dumpable()
            os.write(ready_w, b"x")
            signal.pause()
        finally:
            os._exit(0)
    try:
        os.read(ready_r, 1)
        reader = subprocess.run(
            ["cat", f"/proc/{pid}/environ"],
            user=nobody,
            group=nobody,
            extra_groups=[],
            capture_output=True,
            check=False,
        )
        return reader.returncode == 0 and b"PATH=" in reader.stdout  # pytest's own environment
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)


async def test_precheck_chat_is_sandboxed(tmp_path: Path) -> None:
    """`ilab model chat` (precheck) goes through the same sandbox as `ilab data generate`."""
    # what the parent has that this process was not given (the sandbox's parent: nothing)
    peek = (
        "import os; parent = open(f'/proc/{os.getppid()}/environ', 'rb').read().split(b'\\0'); "
        "print(sorted(set(parent) - {f'{k}={v}'.encode() for k, v in os.environ.items()} - {b''}))"
    )
    settings = make_settings(
        work_dir=tmp_path / "work", ilab_command=(sys.executable, "-c", peek), sandbox=SANDBOX
    )
    seed = Seed("q.yaml", "What?", "That.", "")
    (tmp_path / "work" / "job").mkdir(parents=True)
    answer = await precheck.ask(
        settings,
        seed,
        cwd=tmp_path,
        workspace=tmp_path / "work" / "job",
        cancel=None,
        profile=PROFILES[0],
    )
    assert (answer.answer, answer.error) == ("[]", "")
