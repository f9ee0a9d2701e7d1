"""`instruct-lab-bot doctor` and the start-up preflight, against real services with one
planted fault at a time.

Healthy: the GitHub emulator knows the App's key, Redis runs with `appendonly yes`, artifacts
go to a moto S3 bucket, `ilab` is the stand-in and bubblewrap is on PATH. Each fault changes
one setting and must produce exactly one FAIL line (with its fix) and a non-zero exit.
`DOCTOR_OUTPUT=<dir>` keeps each run's output (the README shows them).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from instruct_lab_bot.cli import load_settings
from instruct_lab_bot.core import preflight
from instruct_lab_bot.core.preflight import report
from instruct_lab_bot.services.doctor import run_checks
from testkit.github_emulator import AppKey, GitHubEmulator, generate_app_key
from testkit.redis_server import running_redis
from tests.fixtures.bot import ROOT, WEBHOOK_SECRET
from tests.fixtures.redis import free_port
from tests.fixtures.s3 import S3Server

BOT = str(Path(sys.executable).with_name("instruct-lab-bot"))


@pytest.fixture(scope="module")
def persistent_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_redis(tmp_path_factory.mktemp("redis-aof"), appendonly=True) as server:
        yield server.url


@pytest.fixture
def healthy(
    github: GitHubEmulator,
    github_app_key: AppKey,
    persistent_redis: str,
    s3_server: S3Server,
    s3_bucket: str,
    ilab_standin: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ILAB_BOT_")}
    env.update(
        {
            "ILAB_BOT_GITHUB_APP_ID": str(github_app_key.app_id),
            "ILAB_BOT_GITHUB_PRIVATE_KEY": github_app_key.private_key_pem,
            "ILAB_BOT_GITHUB_API_URL": github.url,
            "ILAB_BOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "ILAB_BOT_REDIS_URL": persistent_redis,
            "ILAB_BOT_ARTIFACTS_URL": f"s3://{s3_bucket}/bot",
            "ILAB_BOT_S3_ENDPOINT_URL": s3_server.endpoint_url,
            "ILAB_BOT_ILAB_COMMAND": ilab_standin,
            "ILAB_BOT_SANDBOX_READABLE": str(ROOT),
            "ILAB_BOT_LOG_FORMAT": "console",
        }
    )
    return env


async def run(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        BOT,
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def doctor_here(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """`doctor` without a new interpreter: the same settings, checks and report."""
    monkeypatch.setenv("PATH", env["PATH"])  # the sandbox check looks bwrap up on PATH
    settings = load_settings(env, dotenv=None)
    text, ok = report(await run_checks(settings, "all"))
    monkeypatch.undo()
    return (0 if ok else 1), text + "\n"


def keep(name: str, output: str) -> None:
    target = os.environ.get("DOCTOR_OUTPUT")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / f"{name}.txt").write_text(output)


def corrupt(pem: str) -> str:
    lines = pem.strip().splitlines()
    lines[5] = lines[5][:10] + "AAAA" + lines[5][14:]  # still PEM-shaped, no longer a key
    return "\n".join(lines) + "\n"


def faults(tmp_path: Path, redis_server: str) -> dict[str, tuple[dict[str, str], str]]:
    """Each planted fault: the settings it changes and the FAIL line's start."""
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    return {
        "corrupt-key": ({"GITHUB_PRIVATE_KEY": "<corrupt>"}, "FAIL private key: "),
        "other-apps-key": ({"GITHUB_PRIVATE_KEY": "<other>"}, "FAIL github app: GitHub refused"),
        "github-unreachable": (
            {"GITHUB_API_URL": f"http://127.0.0.1:{free_port()}"},
            "FAIL github app: GET /app",
        ),
        "short-secret": ({"WEBHOOK_SECRET": "too-short"}, "FAIL settings: ILAB_BOT_WEBHOOK"),
        "redis-down": ({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "FAIL redis: "),
        "redis-not-persistent": ({"REDIS_URL": redis_server}, "FAIL redis persistence: off"),
        "store-unwritable": (
            {"ARTIFACTS_URL": f"file://{not_a_dir}/artifacts"},
            "FAIL object store: ",
        ),
        "bucket-missing": ({"ARTIFACTS_URL": "s3://no-such-bucket/bot"}, "FAIL object store: "),
        "ilab-missing": ({"ILAB_COMMAND": "/opt/nowhere/ilab"}, "FAIL ilab: "),
        "no-bwrap": ({"PATH": str(tmp_path / "empty-bin")}, "FAIL sandbox: "),
    }


async def test_healthy_then_each_planted_fault_fails_its_own_check(
    healthy: dict[str, str],
    tmp_path: Path,
    redis_server: str,
    github_app_key: AppKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, output = await run(healthy, tmp_path, "doctor")
    keep("healthy", output)
    assert code == 0, output
    lines = output.strip().splitlines()
    assert all(line.startswith("ok ") for line in lines[:-1]), output
    assert lines[-1] == f"all {len(lines) - 1} checks passed"

    replacements = {
        "<corrupt>": corrupt(github_app_key.private_key_pem),
        "<other>": generate_app_key(github_app_key.app_id).private_key_pem,
    }
    (tmp_path / "empty-bin").mkdir()
    for name, (changes, expected) in faults(tmp_path, redis_server).items():
        env = dict(healthy)
        for key, value in changes.items():
            env[key if key == "PATH" else f"ILAB_BOT_{key}"] = replacements.get(value, value)
        # The CLI once (above, and for a settings problem); the other faults in this process,
        # through the same checks and report (a process each would add a minute to the tests).
        if name == "short-secret":
            code, output = await run(env, tmp_path, "doctor")
        else:
            code, output = await doctor_here(env, monkeypatch)
        keep(name, output)
        failures = [line for line in output.splitlines() if line.startswith("FAIL")]
        assert code == 1, (name, output)
        assert len(failures) == 1 and failures[0].startswith(expected), (name, output)
        assert "(fix: " in failures[0], (name, output)
        assert "PRIVATE KEY" not in output and WEBHOOK_SECRET not in output


@pytest.mark.parametrize("role", ["server", "worker"])
async def test_a_corrupt_key_stops_start_up_with_a_clear_message(
    healthy: dict[str, str], tmp_path: Path, github_app_key: AppKey, role: str
) -> None:
    env = {**healthy, "ILAB_BOT_GITHUB_PRIVATE_KEY": corrupt(github_app_key.private_key_pem)}
    env["ILAB_BOT_PORT"] = str(free_port())
    extra = ["--metrics-port", "0"] if role == "worker" else []
    code, output = await run(env, tmp_path, role, *extra)
    assert code == 2, output
    assert "the private key does not parse" in output
    assert f"{role} not started" in output


def test_redis_verdicts() -> None:
    assert not preflight.redis_version("6.0.16").ok
    assert preflight.redis_version("7.2.4").ok
    assert preflight.redis_persistence("no", "3600 1").ok
    assert preflight.redis_persistence(None, None).ok  # managed Redis hides CONFIG
    assert not preflight.redis_persistence("no", "").ok


async def test_a_healthy_server_says_where_it_listens(
    healthy: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**healthy, "ILAB_BOT_HOST": "127.0.0.1", "ILAB_BOT_PORT": str(port)}
    env["ILAB_BOT_PUBLIC_URL"] = "https://bot.example.org"
    process = await asyncio.create_subprocess_exec(
        BOT,
        "server",
        "--no-dispatcher",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not any("listening on" in line for line in seen):
                line = (await process.stdout.readline()).decode()
                assert line, "the server exited:\n" + "".join(seen)
                seen.append(line)
    finally:
        process.terminate()
        await process.wait()
    assert any("preflight.ok" in line and "github app" in line for line in seen)
    expected = (
        f"listening on http://127.0.0.1:{port} (webhook: https://bot.example.org/api/github/hook,"
        " status: https://bot.example.org/)"
    )
    assert any(expected in line for line in seen), "".join(seen)


@pytest.mark.parametrize("answer", ["secondary rate limit", "502"])
async def test_a_rate_limited_or_failing_github_is_not_a_refused_key(
    healthy: dict[str, str], github: GitHubEmulator, answer: str
) -> None:
    """A 403 that is a rate limit (or a 502) says nothing about the key: reported, not fatal,
    so a worker restarted during such a stretch starts (the chaos run found this)."""
    settings = load_settings(healthy, dotenv=None)
    outage = github.secondary_rate_limit() if answer != "502" else github.outage(502)
    try:
        results = await run_checks(settings, "server")
    finally:
        outage.lift()
    (app,) = [r for r in results if r.name == "github app"]
    assert not app.ok and not app.fatal, app
    assert "refused the App JWT" not in app.detail
