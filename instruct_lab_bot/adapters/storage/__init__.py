"""Artifact store adapter: where generated data goes and how reviewers reach it.

Two backends share one small Protocol so the worker never knows which is in use:

* ``LocalStore`` (``local``) writes under a folder; the bot's own aiohttp server serves it under
  ``/artifacts/`` with HMAC-signed, expiring links (``artifact_routes``). The embedded default.
* ``S3Store`` (``s3``) uploads to S3 or an S3-compatible store (MinIO, Ceph, moto) and hands out
  presigned GET links.

Every failure of the backend surfaces as ``StorageError`` whose message is safe to show on a PR.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from instruct_lab_bot.adapters.storage.errors import StorageError
from instruct_lab_bot.adapters.storage.local import LocalStore, SigningKey
from instruct_lab_bot.adapters.storage.s3 import S3Config, S3Store
from instruct_lab_bot.core.artifacts import ArtifactsLocation
from instruct_lab_bot.core.setting_values import decode_signing_key
from instruct_lab_bot.core.settings import Settings

__all__ = ["ArtifactStore", "SigningKey", "StorageError", "open_store"]


class ArtifactStore(Protocol):
    """What the worker needs from an object store."""

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> int:
        """Stream ``path`` to ``key``; return the number of bytes stored."""
        ...

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        """Store a small in-memory blob (e.g. the index page)."""
        ...

    async def link(self, key: str) -> str:
        """A URL a reviewer can open in a browser; it expires."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def read_head(self, key: str, limit: int) -> bytes | None:
        """At most the first ``limit`` bytes of ``key`` (for the browser viewer); None if
        there is no such object."""
        ...

    async def get_file(self, key: str, path: Path) -> int:
        """Stream ``key`` into ``path`` (atomically: complete or absent); return its size.
        A missing key or a failed transfer raises ``StorageError``."""
        ...

    async def list_keys(self, prefix: str) -> list[str]:
        """Every stored key starting with ``prefix`` (a plain string prefix), sorted."""
        ...

    async def aclose(self) -> None: ...


def open_store(
    location: ArtifactsLocation,
    *,
    public_url: str,
    signing_key: SigningKey,
    link_expiry: int,
    s3_endpoint_url: str | None,
) -> LocalStore | S3Store:
    """Build the store the settings ask for; the caller owns it and must ``aclose`` it.

    Both also read back and delete (`get_bytes`, `delete`), which only the preflight uses."""
    if location.scheme == "s3":
        return S3Store(S3Config(location.bucket, location.prefix, s3_endpoint_url, link_expiry))
    if location.root is None:
        raise ValueError("a file artifacts location needs a root directory")
    return LocalStore(location.root, public_url, signing_key, link_expiry)


def link_signing_key(settings: Settings, shared: Callable[[], Awaitable[bytes]]) -> SigningKey:
    """`ILAB_BOT_LINK_SIGNING_KEY` when set; otherwise the key every process shares through
    Redis (`shared`, called once when the first link is signed or checked)."""
    if settings.link_signing_key:
        return decode_signing_key(settings.link_signing_key.value)
    return shared
