"""Key migrations, run at start: the keys from before the hash tag (`ilab-bot:…`) renamed to
`{ilab-bot}:…`, once, by the first process that starts after the upgrade; and the entries of
the one jobs stream from before worker pools (`{ilab-bot}:jobs`) moved to their pools' streams
(`{ilab-bot}:jobs:<capability>`) by the dispatchers (`migrate_jobs_stream`).

Safe to run at every start: it costs one EXISTS when there is nothing to move. Only one
server holds legacy keys (a Cluster deployment starts with the tag), and RENAMENX never
overwrites a key a new process already wrote. The per-role ACL users (k8s/redis/users.acl)
may only probe for the legacy keys: finding some, they log what to do (start one process once
with an administrator's Redis user) and go on.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import NoPermissionError, ResponseError

from instruct_lab_bot.adapters.redis.connection import is_cluster
from instruct_lab_bot.adapters.redis.keys import (
    LEGACY_JOBS_STREAM,
    LEGACY_PREFIX,
    PREFIX,
    job_key,
    jobs_stream,
)
from instruct_lab_bot.adapters.redis.scripts import script
from instruct_lab_bot.core.command_table import CAPABILITIES, capability_of

log = structlog.get_logger(__name__)
_FIX = "start one bot process once with a Redis user allowed SCAN and RENAMENX on all keys"
_MARKERS = (LEGACY_PREFIX + "events", LEGACY_PREFIX + "jobs")


async def migrate_prefix(client: aioredis.Redis) -> int:
    """Rename every legacy key; how many were renamed."""
    if is_cluster(client):
        return 0
    try:
        if not await client.exists(*_MARKERS):
            return 0
        renamed = 0
        cursor: Any = 0
        while True:
            cursor, names = await client.scan(cursor, match=LEGACY_PREFIX + "*", count=1000)
            for name in names:
                new = PREFIX + str(name)[len(LEGACY_PREFIX) :]
                renamed += int(await client.renamenx(name, new))
            if not int(cursor):
                return renamed
    except NoPermissionError:
        log.error("redis.legacy_keys_not_migrated", fix=_FIX)
        return 0
    except ResponseError as exc:  # a key expired between SCAN and RENAMENX
        if "no such key" not in str(exc).lower():
            raise
        return await migrate_prefix(client)


async def migrate_jobs_stream(client: aioredis.Redis, group: str, maxlen: int, lease: float) -> int:
    """Move what waits in the one jobs stream from before worker pools to the pools' streams
    (`migrate_job_entry.lua`); how many jobs were queued there. Cheap when there is nothing
    (one EXISTS), so dispatchers run it at start and then every lease: a job an old worker
    still runs stays until that worker ends it, hands it back or loses its lease (`lease`
    seconds without a heartbeat). Safe with several processes at once: each entry moves in
    one script, which finds it gone if another process moved it first."""
    try:
        if not await client.exists(LEGACY_JOBS_STREAM):
            return 0
        groups: Any = await client.xinfo_groups(LEGACY_JOBS_STREAM)
        has_group = any(g.get("name") == group for g in groups)
        outcomes: list[str] = []
        after = "-"
        while True:
            batch: Any = await client.xrange(LEGACY_JOBS_STREAM, min=after, count=100)
            for entry_id, fields in batch:
                args = [group, str(entry_id), maxlen, repr(time.time()), lease, int(has_group)]
                outcomes.append(await _move_entry(client, args, fields))
            if len(batch) < 100:
                break
            after = "(" + str(batch[-1][0])
    except NoPermissionError:
        log.error("redis.legacy_jobs_not_migrated", fix="start a dispatcher of this release")
        return 0
    moved = outcomes.count("moved")
    log.warning("redis.jobs_stream_migrated", moved=moved, held=outcomes.count("held"))
    return moved


async def _move_entry(client: aioredis.Redis, args: list[Any], fields: dict[str, str]) -> str:
    job_id = str(fields.get("job", ""))
    stored: Any = await cast(Any, client).hget(job_key(job_id), "command")
    capability = capability_of(str(stored or ""))
    if stored and capability not in CAPABILITIES:  # a kind this release has no pool for
        log.warning("redis.legacy_job_kept", job_id=job_id, command=str(stored))
        return "kept"
    target = jobs_stream(capability or "none")  # no job: the script drops its entry
    keys = [LEGACY_JOBS_STREAM, target, job_key(job_id)]
    return str(await script(client, "migrate_job_entry")(keys=keys, args=args))
