"""What Redis says about itself, for the preflight: its version and persistence settings."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError


async def redis_facts(url: str, *, limit: float = 10.0) -> tuple[str, str | None, str | None]:
    """(version, appendonly, save); the last two None when CONFIG is refused (managed Redis).

    Raises `ConnectionError` when Redis cannot be reached or refuses the login.
    """
    client = aioredis.Redis.from_url(url, socket_timeout=limit, socket_connect_timeout=limit)
    try:
        try:
            info = await client.info("server")
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"unreachable ({type(exc).__name__})") from None
        version = str(info.get("redis_version", ""))
        try:
            config = await client.config_get("appendonly")
            config.update(await client.config_get("save"))
        except ResponseError:  # CONFIG renamed or denied by an ACL
            return version, None, None
        return version, _text(config.get("appendonly")), _text(config.get("save"))
    finally:
        await client.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
