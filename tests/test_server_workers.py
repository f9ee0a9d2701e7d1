"""`instruct-lab-bot server --workers N`: N processes on one port (SO_REUSEPORT), every 2xx
still means stored, and SIGTERM to the parent stops them all. Real processes and Redis."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import aiohttp
import pytest
import redis

from bench.common import bot_argv, bot_env, free_port, running, wait_http
from instruct_lab_bot.adapters.redis.keys import EVENTS_STREAM
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import sign
from testkit.payloads import pr_comment
from testkit.testdata import ensure_testdata, load_webhook_examples

ROOT = Path(__file__).resolve().parent.parent


def _listeners(port: int) -> set[int]:
    done = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    )
    return {int(part.split(",", 1)[0]) for part in done.stdout.split("pid=")[1:]}


def _example() -> dict[str, object]:
    index = load_webhook_examples(ensure_testdata(ROOT / ".cache"))
    examples = [e for entry in index if entry["name"] == "issue_comment" for e in entry["examples"]]
    created: dict[str, object] = next(e for e in examples if e.get("action") == "created")
    return created


async def test_two_processes_share_the_port_and_store_every_accepted_delivery(
    redis_url: str, tmp_path: Path
) -> None:
    secret = "workers-secret-" + "7" * 32
    port = free_port()
    env = bot_env(redis_url, tmp_path, port, secret)
    argv = bot_argv("server", "--no-dispatcher", "--workers", "2")
    with running(argv, env=env, cwd=tmp_path, log=tmp_path / "server.log") as parent:
        wait_http(f"http://127.0.0.1:{port}/healthz", parent)
        listeners = _listeners(port)
        while len(listeners) < 2:  # the second process may bind a moment after the first
            assert parent.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            listeners = _listeners(port)
        assert parent.pid not in listeners and len(listeners) == 2
        accepted = 0
        async with aiohttp.ClientSession() as session:
            for number in range(40):  # new connections: the kernel spreads them
                body = f"@{Settings().username} generate"
                payload = pr_comment(_example(), body=body, comment_id=5_000 + number)
                data = json.dumps(payload).encode()
                headers = {
                    "X-GitHub-Event": "issue_comment",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": sign(data, secret.encode()),
                    "Content-Type": "application/json",
                    "Connection": "close",
                }
                url = f"http://127.0.0.1:{port}/api/github/hook"
                async with session.post(url, data=data, headers=headers) as response:
                    accepted += response.status == 202
        assert accepted == 40
        assert redis.Redis.from_url(redis_url).xlen(EVENTS_STREAM) == 40
        parent.terminate()
        assert parent.wait(timeout=60) == 0
    assert not _listeners(port)


def test_workers_must_be_positive(tmp_path: Path) -> None:
    done = subprocess.run(
        bot_argv("server", "--workers", "0"),
        env=bot_env("redis://127.0.0.1:9/0", tmp_path, free_port(), "s" * 40),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "--workers" in done.stderr


@pytest.fixture(autouse=True)
def _clean(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).delete(EVENTS_STREAM)
