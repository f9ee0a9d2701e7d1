"""The key layout: one hash tag, every script's keys declared, and the rename of the keys from
before the tag."""

from __future__ import annotations

import re
from importlib import resources

import redis.asyncio as aioredis

from instruct_lab_bot.adapters.redis.keys import (
    DISPATCH_GROUP,
    EVENTS_STREAM,
    LEGACY_PREFIX,
    PREFIX,
)
from instruct_lab_bot.adapters.redis.queue import Queue


def test_no_script_builds_a_key() -> None:
    """Every key a script touches comes from KEYS (declared, so a Cluster can route the call):
    no string is built inside Lua (`..`), and no command takes a key from ARGV."""
    folder = resources.files("instruct_lab_bot.adapters.redis").joinpath("lua")
    for path in folder.iterdir():
        code = [line.split("--", 1)[0] for line in path.read_text().splitlines()]
        text = "\n".join(code)
        assert ".." not in text, path.name
        for call in re.findall(r"redis\.call\('(\w+)',\s*([^,)]+)", text):
            command, first = call
            if command not in ("TIME",):
                assert first.startswith("KEYS[") or first in (
                    "key",
                    "entry",
                    "job_key",
                    "active_key",
                ), (path.name, command, first)


async def test_keys_from_before_the_hash_tag_are_renamed_once_at_start(redis_url: str) -> None:
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await raw.xadd(LEGACY_PREFIX + "events", {"v": "1", "delivery": "d1"})
        await raw.xgroup_create(LEGACY_PREFIX + "events", DISPATCH_GROUP, id="0")
        await raw.hset(LEGACY_PREFIX + "job:j1", mapping={"state": "queued"})
        await raw.set(LEGACY_PREFIX + "delivery:d1", "1", ex=600)
        queue = Queue.from_url(redis_url)
        try:
            await queue.ensure_groups()
            await queue.ensure_groups()  # again: nothing left to move
        finally:
            await queue.aclose()
        assert await raw.keys(LEGACY_PREFIX + "*") == []
        assert await raw.hget(PREFIX + "job:j1", "state") == "queued"
        assert 0 < await raw.ttl(PREFIX + "delivery:d1") <= 600
        (group,) = await raw.xinfo_groups(EVENTS_STREAM)  # the group moved with its stream
        assert group["name"] == DISPATCH_GROUP and group["lag"] == 1
    finally:
        await raw.aclose()
