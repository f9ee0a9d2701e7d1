"""The adapter's Lua scripts: read from the `lua/` files shipped in the package, once per
process, and registered once per Redis client.

A script may start with `-- include: NAME` lines to share a library file (e.g. `end_job`):
each such line is replaced by that file's text, so Redis still gets one self-contained script.
"""

from __future__ import annotations

import functools
import re
import weakref
from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

_INCLUDE = re.compile(r"^-- include: (\w+)$", re.MULTILINE)
_registered: weakref.WeakKeyDictionary[aioredis.Redis, dict[str, AsyncScript]] = (
    weakref.WeakKeyDictionary()
)


@functools.cache
def source(name: str) -> str:
    """The text of `lua/NAME.lua`, its includes expanded."""
    text = resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")
    return _INCLUDE.sub(lambda match: source(match.group(1)).rstrip(), text)


def script(client: aioredis.Redis, name: str) -> AsyncScript:
    """`lua/NAME.lua` registered on `client` (EVALSHA, loading it again if Redis forgot it)."""
    scripts = _registered.setdefault(client, {})
    if name not in scripts:
        scripts[name] = client.register_script(source(name))
    return scripts[name]
