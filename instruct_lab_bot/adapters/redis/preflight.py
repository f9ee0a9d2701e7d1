"""What Redis says about itself, for the preflight: its version and persistence settings."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError, ResponseError

from instruct_lab_bot.adapters.redis.connection import RedisTls, close, connect


async def redis_facts(url: str, tls: RedisTls | None = None) -> tuple[str, str | None, str | None]:
    """(version, appendonly, save) of the primary `url` names (a plain, Sentinel or Cluster
    URL, as the bot connects to it); the last two None when CONFIG is refused (managed Redis).

    Raises `ConnectionError` when Redis cannot be reached or refuses the login.
    """
    client = connect(url, tls)
    try:
        try:
            info = _one_node(await client.info("server"))
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"unreachable ({type(exc).__name__})") from None
        version = str(info.get("redis_version", ""))
        try:
            config = _one_node(await client.config_get("appendonly"))
            config.update(_one_node(await client.config_get("save")))
        except ResponseError:  # CONFIG renamed or denied by an ACL
            return version, None, None
        return version, _text(config.get("appendonly")), _text(config.get("save"))
    finally:
        await close(client)


def _one_node(reply: Any) -> dict[str, Any]:
    """A Cluster client answers per node ({node: reply}); the primaries share one setup."""
    if isinstance(reply, dict) and reply and all(isinstance(v, dict) for v in reply.values()):
        return dict(next(iter(reply.values())))
    return dict(reply or {})


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
