"""Redis over TLS with one ACL user per role, loaded from the shipped `k8s/redis/users.acl`.

A webhook-only server, a dispatcher and a worker each connect with their own user over TLS
(server certificate verified against the test's CA, client certificates required); a job runs
end to end; no command of theirs was refused (`ACL LOG` is empty); then the worker's user is
refused what its role does not need.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import NoPermissionError

from instruct_lab_bot.adapters.redis.connection import RedisTls, connect
from instruct_lab_bot.adapters.redis.keys import (
    EVENTS_STREAM,
    JOBS_STREAM,
    PREFIX,
    delivery_key,
)
from instruct_lab_bot.adapters.redis.serving import ServeRecords
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.serving import ModelRef
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.server import create_app
from instruct_lab_bot.services.serving.local import LocalBackend
from instruct_lab_bot.services.serving.local_worker import LocalLimits, LocalServeWorker
from instruct_lab_bot.services.worker.app import open_worker
from testkit.harness import run_bot
from testkit.redis_server import RedisServer, free_port
from testkit.tls_certs import TlsFiles, make_certificates
from tests.fixtures.bot import ROOT
from tests.fixtures.world import World
from tests.test_serving_local import TeacherLauncher

ACL_FILE = ROOT / "k8s" / "redis" / "users.acl"
ROLES = ("ilab-webhook", "ilab-dispatcher", "ilab-worker")
ADMIN_PASSWORD = "admin-password-for-the-test-only"


def password(role: str) -> str:
    return f"{role}-password-for-the-test"


@dataclass
class SecureRedis:
    server: RedisServer
    certs: TlsFiles

    def url(self, role: str) -> str:
        return f"rediss://{role}:{password(role)}@127.0.0.1:{self.server.port}/0"

    def settings(self, base: Settings, role: str) -> Settings:
        return replace(
            base,
            redis_url=self.url(role),
            redis_ca_file=str(self.certs.ca),
            redis_cert_file=str(self.certs.client_cert),
            redis_key_file=str(self.certs.client_key),
        )

    def admin(self) -> redis.Redis:
        return redis.Redis(
            port=self.server.port,
            password=ADMIN_PASSWORD,
            ssl=True,
            ssl_ca_certs=str(self.certs.ca),
            ssl_certfile=str(self.certs.client_cert),
            ssl_keyfile=str(self.certs.client_key),
            decode_responses=True,
        )


def acl_with_passwords(directory: Path) -> Path:
    """The shipped ACL file, each role's line given its password, and an admin default user."""
    lines = []
    for line in ACL_FILE.read_text().splitlines():
        if line.startswith("user "):
            role = line.split()[1]
            assert role in ROLES, role
            line += f" >{password(role)}"
        lines.append(line)
    lines.append(f"user default on >{ADMIN_PASSWORD} ~* &* +@all")
    path = directory / "users.acl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def secure_redis(tmp_path: Path) -> Iterator[SecureRedis]:
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    server = RedisServer(
        tmp_path / "redis",
        port=port,
        tls_client=context,
        extra=[
            *("--port", "0", "--tls-port", str(port)),
            *("--tls-cert-file", str(certs.server_cert)),
            *("--tls-key-file", str(certs.server_key)),
            *("--tls-ca-cert-file", str(certs.ca)),
            *("--tls-auth-clients", "yes"),
            *("--aclfile", str(acl_with_passwords(tmp_path))),
        ],
    )
    server.start()
    try:
        yield SecureRedis(server, certs)
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def webhook_only(settings: Settings) -> AsyncIterator[str]:
    """`server --no-dispatcher` in this loop; its webhook URL."""
    runner = web.AppRunner(create_app(settings, dispatcher=False), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    try:
        yield f"http://{settings.host}:{settings.port}/api/github/hook"
    finally:
        await runner.cleanup()


async def test_each_role_runs_a_job_over_tls_with_its_own_user_and_nothing_more(
    world: World, secure_redis: SecureRedis
) -> None:
    base = world.settings
    dispatcher = secure_redis.settings(base, "ilab-dispatcher")
    webhook = replace(secure_redis.settings(base, "ilab-webhook"), port=free_port())
    worker_settings = secure_redis.settings(base, "ilab-worker")
    async with (
        run_bot(dispatcher, workers=0) as bot,
        webhook_only(webhook) as hook,
        open_worker(worker_settings) as worker,
    ):
        running = asyncio.create_task(worker.run(bot.stop))
        assert (await world.comment(hook, f"@{base.username} generate"))[0] == 202
        comment = await world.result_comment(timeout=90)
        bot.stop.set()
        await running
    assert "succeeded" in comment["body"]
    with secure_redis.admin() as admin:
        refused = admin.acl_log()
        (job_id,) = admin.zrange(f"{PREFIX}pr:instructlab/taxonomy#7", 0, -1)
        assert admin.hget(f"{PREFIX}job:{job_id}", "state") == State.SUCCEEDED.value
    denied = [(r["username"], r["reason"], r["object"]) for r in refused]
    assert denied == [], "\n".join(map(str, denied))  # every role had all it used

    client = connect(secure_redis.url("ilab-worker"), tls_files(secure_redis.certs))
    try:
        for command in (
            ("FLUSHALL",),
            ("CONFIG", "GET", "*"),
            ("KEYS", "*"),
            ("SCAN", "0"),
            ("DEL", JOBS_STREAM),  # cannot delete streams
            ("XRANGE", EVENTS_STREAM, "-", "+"),  # cannot read the webhooks' contents
            ("GET", delivery_key("x")),
            ("ZRANGE", f"{PREFIX}replies:user:someone", "0", "-1"),
        ):
            with pytest.raises(NoPermissionError):
                await client.execute_command(*command)  # type: ignore[no-untyped-call]
        assert await client.xlen(EVENTS_STREAM) >= 1  # only the count, for its gauges
    finally:
        await client.aclose()


def tls_files(certs: TlsFiles, *, with_client_cert: bool = True) -> RedisTls:
    if not with_client_cert:
        return RedisTls(str(certs.ca))
    return RedisTls(str(certs.ca), str(certs.client_cert), str(certs.client_key))


async def test_tls_refuses_an_unknown_server_and_a_client_without_certificate(
    secure_redis: SecureRedis, tmp_path: Path
) -> None:
    other_ca = make_certificates(tmp_path / "other", ca_name="someone else")
    clients: list[aioredis.Redis] = [
        connect(secure_redis.url("ilab-worker"), tls_files(other_ca)),  # server not trusted
        connect(
            secure_redis.url("ilab-worker"),
            tls_files(secure_redis.certs, with_client_cert=False),  # Redis wants a client cert
        ),
    ]
    for client in clients:
        try:
            with pytest.raises((redis.ConnectionError, ssl.SSLError, OSError)):
                await client.ping()
        finally:
            await client.aclose()
    good = connect(secure_redis.url("ilab-worker"), tls_files(secure_redis.certs))
    try:
        assert await good.ping()
    finally:
        await good.aclose()


async def test_local_serving_works_with_the_server_and_worker_users(
    secure_redis: SecureRedis,
) -> None:
    """The `local` serving backend's server side (as `ilab-dispatcher` and `ilab-webhook`) and
    serve worker (as `ilab-worker`) with the shipped ACL: everything they use is allowed."""
    tls = tls_files(secure_redis.certs)
    clients = {role: connect(secure_redis.url(role), tls) for role in ROLES}
    worker = LocalServeWorker(
        ServeRecords(clients["ilab-worker"]), TeacherLauncher(), LocalLimits(600, 1, 30), name="w"
    )
    worker.check_every = 0.01
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        for number, role in enumerate(("ilab-dispatcher", "ilab-webhook"), start=7):
            pull = RepoRef("instructlab", "taxonomy").pull(number)
            backend = LocalBackend(ServeRecords(clients[role]), poll_interval=0.01)
            await backend.deploy(ModelRef(pull, "train-1", "p/model/", "/p/model/"))
            assert await backend.ready_url(pull, within=60)
            assert await backend.remove(pull)
    finally:
        stop.set()
        await task
        for client in clients.values():
            await client.aclose()
    with secure_redis.admin() as admin:
        denied = [(r["username"], r["reason"], r["object"]) for r in admin.acl_log()]
    assert denied == [], "\n".join(map(str, denied))
