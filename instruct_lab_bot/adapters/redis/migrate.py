"""Key-name migration: the keys from before the hash tag (`ilab-bot:…`) renamed to
`{ilab-bot}:…`, once, by the first process that starts after the upgrade.

Safe to run at every start: it costs one EXISTS when there is nothing to move. Only one
server holds legacy keys (a Cluster deployment starts with the tag), and RENAMENX never
overwrites a key a new process already wrote. The per-role ACL users (k8s/redis/users.acl)
may only probe for the legacy keys: finding some, they log what to do (start one process once
with an administrator's Redis user) and go on.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import NoPermissionError, ResponseError

from instruct_lab_bot.adapters.redis.connection import is_cluster
from instruct_lab_bot.adapters.redis.keys import LEGACY_PREFIX, PREFIX

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
