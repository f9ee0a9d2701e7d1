"""`instruct-lab-bot doctor` and the start-up preflight: every outside thing the bot needs,
checked once, one line each.

A server needs the App (key, JWT accepted), the webhook secret, Redis and the object store
(it serves local artifacts); a worker needs the same plus `ilab` and its sandbox. At start-up
the same checks run and are logged; only `fatal` failures (a configuration that waiting
cannot fix: a key that does not parse, an App that refuses its key, no `ilab`, no sandbox)
stop the process, so a GitHub or Redis outage during a deploy does not crash-loop it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable

import aiohttp
import structlog

from instruct_lab_bot.adapters.github import GitHubError
from instruct_lab_bot.adapters.github.onboarding import app_jwt, get_app
from instruct_lab_bot.adapters.ilab_version import detect_ilab, find_ilab
from instruct_lab_bot.adapters.redis.connection import RedisTls
from instruct_lab_bot.adapters.redis.preflight import redis_facts
from instruct_lab_bot.adapters.sandbox import FIX as SANDBOX_FIX
from instruct_lab_bot.adapters.sandbox import SandboxUnavailable, check_sandbox
from instruct_lab_bot.adapters.storage import StorageError, link_signing_key, open_store
from instruct_lab_bot.core import preflight
from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.ilab import UnsupportedIlab
from instruct_lab_bot.core.messages import doctor as text
from instruct_lab_bot.core.preflight import CheckResult, failed, passed
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.kubeflow.preflight import check_kubeflow

log = structlog.get_logger(__name__)
ROLES = ("server", "worker", "all")
PROBE_KEY = "preflight/doctor-{}.txt"


async def run_checks(
    settings: Settings, role: str = "all", *, run_ilab: bool = True
) -> list[CheckResult]:
    """Every check for `role`, at once (a worker's start waits for the slowest, not the sum),
    reported in a fixed order; none raises. `run_ilab=False` (start-up) only finds `ilab`
    rather than starting it (a second or more on a GPU image, at every restart)."""
    checks = [check_github(settings), check_redis(settings), _one(check_store(settings))]
    if role in ("worker", "all"):
        checks += [_one(check_ilab(settings, run=run_ilab)), _one(check_sandbox_works(settings))]
        if settings.train_backend == "kubeflow":
            checks.append(_one(check_kubeflow(settings)))
    github, redis, *rest = await asyncio.gather(*checks)
    secret = preflight.webhook_secret(settings.webhook_secret.value)
    return [*github, secret, *redis, *(r for group in rest for r in group)]


async def _one(check: Awaitable[CheckResult]) -> list[CheckResult]:
    return [await check]


async def check_github(settings: Settings) -> list[CheckResult]:
    try:
        jwt = app_jwt(settings.github_app_id, settings.github_private_key.value)
    except ValueError as exc:
        return [failed("private key", str(exc), text.FIX_KEY, fatal=True)]
    key = passed("private key", "parses, signs an App JWT")
    try:
        async with aiohttp.ClientSession() as session:
            app = await get_app(session, settings.github_api_url, jwt, limit=15.0)
    except GitHubError as exc:
        if exc.status in (401, 403, 404) and not exc.transient:  # not a rate limit
            detail = f"GitHub refused the App JWT (GET /app: {exc})"
            return [key, failed("github app", detail, text.FIX_APP_REFUSED, fatal=True)]
        detail = f"GET /app at {settings.github_api_url}: {exc}"
        return [key, failed("github app", detail, text.FIX_GITHUB_UNREACHABLE)]
    name = app.get("slug") or app.get("name") or "?"
    return [key, passed("github app", f"{name} (id {app.get('id')}), JWT accepted")]


async def check_redis(settings: Settings) -> list[CheckResult]:
    try:
        tls = RedisTls(settings.redis_ca_file, settings.redis_cert_file, settings.redis_key_file)
        version, appendonly, save = await redis_facts(settings.redis_url, tls)
    except OSError as exc:
        return [failed("redis", str(exc), text.FIX_REDIS_UNREACHABLE)]
    return [preflight.redis_version(version), preflight.redis_persistence(appendonly, save)]


async def check_store(settings: Settings) -> CheckResult:
    """Write, read back and delete one small object where artifacts go."""
    key = PROBE_KEY.format(secrets.token_hex(6))
    payload = secrets.token_bytes(32)
    try:
        store = open_store(
            parse_artifacts_url(settings.artifacts_url),
            public_url=settings.public_url,
            signing_key=link_signing_key(settings, _no_shared_key),
            link_expiry=settings.link_expiry,
            s3_endpoint_url=settings.s3_endpoint_url,
        )
    except ValueError as exc:
        return failed("object store", str(exc), text.FIX_STORE, fatal=True)
    try:
        await store.put_bytes(key, payload, "text/plain")
        if await store.get_bytes(key) != payload:
            return failed("object store", "read back other bytes than written", text.FIX_STORE)
        await store.delete(key)
    except StorageError as exc:
        return failed("object store", str(exc), text.FIX_STORE)
    finally:
        await store.aclose()
    return passed("object store", f"write, read and delete in {settings.artifacts_url}")


async def _no_shared_key() -> bytes:
    """The probe signs no link, so it never fetches the key shared through Redis."""
    raise RuntimeError("the preflight signs no link")


async def check_ilab(settings: Settings, *, run: bool = True) -> CheckResult:
    """`run`: `ilab --version` the way jobs run it (sandbox or runner) and a supported
    release; else only that the program is there (a worker detects its release as it opens)."""
    try:
        if not run:
            if settings.sandbox == "runner":  # ilab is in the runner's container, not here
                return passed("ilab", "in the ilab runner's container (asked at start-up)")
            return passed("ilab", f"found at {find_ilab(settings.ilab_command)}")
        try:
            release = await detect_ilab(settings)
        except SandboxUnavailable:  # the sandbox check reports that; here, is ilab there?
            found = find_ilab(settings.ilab_command)
            return passed("ilab", f"found at {found} (version not asked: no sandbox to ask in)")
    except (RuntimeError, UnsupportedIlab) as exc:
        return failed("ilab", str(exc), text.FIX_ILAB, fatal=True)
    supported = "" if release.supported else ", unsupported: ILAB_BOT_ILAB_ALLOW_UNSUPPORTED"
    return passed("ilab", f"ilab {release.version} (profile {release.profile.name}{supported})")


async def check_sandbox_works(settings: Settings) -> CheckResult:
    try:
        warning = await check_sandbox(settings)
    except (SandboxUnavailable, OSError) as exc:
        detail = str(exc).removesuffix(SANDBOX_FIX).rstrip(": ")  # the fix comes once, below
        return failed("sandbox", detail, SANDBOX_FIX, fatal=True)
    if warning:
        return passed("sandbox", "off (ILAB_BOT_SANDBOX=off): " + warning)
    return passed("sandbox", "bubblewrap runs a command in the sandbox")


async def startup_preflight(settings: Settings, role: str) -> bool:
    """Log every check; False when a fatal one failed (the process must not start)."""
    results = await run_checks(settings, role, run_ilab=False)
    for result in results:
        if result.ok:
            log.info("preflight.ok", check=result.name, detail=result.detail)
        else:
            log.error("preflight.failed", check=result.name, detail=result.detail, fix=result.fix)
    return not any(r.fatal and not r.ok for r in results)
