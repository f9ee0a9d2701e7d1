"""Artifacts in a local folder, served by the bot's own aiohttp server under ``/artifacts/``
with HMAC-signed, expiring links (``artifact_routes``): the embedded default store."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import quote, urlsplit

from aiohttp import web

from instruct_lab_bot.adapters.storage.errors import StorageError
from instruct_lab_bot.core.artifacts import (
    EXPIRES_RE,
    INLINE_TYPES,
    guess_content_type,
    sign_artifact,
    validate_key,
    verify_artifact,
)

_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'"

#: The key for signed links: the bytes, or how to get them (read once, e.g. from Redis).
SigningKey = bytes | Callable[[], Awaitable[bytes]]


class CachedKey:
    """A signing key fetched at most once (until a fetch succeeds)."""

    def __init__(self, source: SigningKey) -> None:
        if not source:
            raise ValueError("the artifact signing key must not be empty")
        self._value = source if isinstance(source, bytes) else b""
        self._fetch = None if isinstance(source, bytes) else source

    async def get(self) -> bytes:
        if not self._value and self._fetch is not None:
            value = await self._fetch()
            if not value:
                raise ValueError("the artifact signing key must not be empty")
            self._value = value
        return self._value


class LocalStore:
    """Artifacts in a local folder, served by the bot's server with signed, expiring links."""

    def __init__(
        self,
        root: Path,
        public_url: str,
        signing_key: SigningKey,
        link_expiry: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signing_key = CachedKey(signing_key)
        if link_expiry < 1:
            raise ValueError("link expiry must be at least one second")
        if urlsplit(public_url).scheme not in ("http", "https"):
            raise ValueError(f"public URL must be http(s), got {public_url!r}")
        self._root = root.absolute()
        self._public_url = public_url.rstrip("/")
        self._link_expiry = link_expiry
        self._clock = clock

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> int:
        """Copy ``path`` in (in a thread, chunked). The server derives the type from the name."""
        validate_key(key)

        def copy(out: IO[bytes]) -> None:
            with path.open("rb") as src:
                while chunk := src.read(1024 * 1024):
                    out.write(chunk)

        return await self._write(key, copy)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        validate_key(key)
        return await self._write(key, lambda out: out.write(data))

    async def link(self, key: str) -> str:
        validate_key(key)
        expires = int(self._clock()) + self._link_expiry
        sig = sign_artifact(key, expires, await self._signing_key.get())
        return f"{self._public_url}/artifacts/{quote(key, safe='/')}?expires={expires}&sig={sig}"

    async def exists(self, key: str) -> bool:
        validate_key(key)
        return await asyncio.to_thread((self._root / key).is_file)

    async def read_head(self, key: str, limit: int) -> bytes | None:
        validate_key(key)

        def read() -> bytes | None:
            try:
                path = _resolve_inside(self._root, key)
            except _Escapes:
                return None
            if path is None:
                return None
            with path.open("rb") as src:
                return src.read(limit)

        return await asyncio.to_thread(read)

    async def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        try:
            return await asyncio.to_thread((self._root / key).read_bytes)
        except OSError as exc:
            raise StorageError(
                f"could not read {key}: {exc.strerror or type(exc).__name__}"
            ) from exc

    async def get_file(self, key: str, path: Path) -> int:
        """Copy ``key`` to ``path`` (atomically: a temp file beside it, then a rename)."""
        validate_key(key)

        def copy() -> int:
            source = _resolve_inside(self._root, key)
            if source is None:
                raise FileNotFoundError(errno.ENOENT, "no such artifact")
            with source.open("rb") as src:
                return _atomic_download(path, src.read)

        try:
            return await asyncio.to_thread(copy)
        except (OSError, _Escapes) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else None
            raise StorageError(f"could not read {key}: {reason or type(exc).__name__}") from exc

    async def list_keys(self, prefix: str) -> list[str]:
        """Every stored key starting with ``prefix`` (a plain string prefix, as in S3), sorted."""
        if prefix:
            validate_key(prefix.rstrip("/"))

        def walk() -> list[str]:
            top = self._root / prefix.rpartition("/")[0]
            if not top.resolve().is_relative_to(self._root.resolve()) or not top.is_dir():
                return []
            keys = []
            for path in top.rglob("*"):
                if path.name.startswith(".") or not path.is_file() or path.is_symlink():
                    continue
                key = path.relative_to(self._root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
            return sorted(keys)

        return await asyncio.to_thread(walk)

    async def delete(self, key: str) -> None:
        validate_key(key)
        try:
            await asyncio.to_thread((self._root / key).unlink, missing_ok=True)
        except OSError as exc:
            raise StorageError(
                f"could not delete {key}: {exc.strerror or type(exc).__name__}"
            ) from exc

    async def aclose(self) -> None:
        """Nothing to release; present for the Protocol."""

    async def _write(self, key: str, writer: Callable[[IO[bytes]], object]) -> int:
        try:
            return await asyncio.to_thread(_atomic_write, self._root, key, writer)
        except OSError as exc:
            raise StorageError(
                f"could not store {key}: {exc.strerror or type(exc).__name__}"
            ) from exc


def _atomic_write(root: Path, key: str, writer: Callable[[IO[bytes]], object]) -> int:
    """Write through a temp file and rename, so readers never see a half-written artifact."""
    dest = root / key
    # Checked before mkdir so a symlinked folder cannot make us create directories elsewhere.
    if not dest.parent.resolve().is_relative_to(root.resolve()):
        raise PermissionError(errno.EACCES, "the path leaves the artifact folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            writer(out)
            size = out.tell()
        tmp.chmod(0o644)
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def _atomic_download(path: Path, read: Callable[[int], bytes]) -> int:
    """Write chunks from ``read`` to ``path`` through a temp file beside it; return the size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := read(1024 * 1024):
                out.write(chunk)
            size = out.tell()
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


class _Escapes(Exception):
    """The requested path resolves outside the artifact root (e.g. through a symlink)."""


def _resolve_inside(root: Path, key: str) -> Path | None:
    """The real path of ``root/key`` if it is a regular file inside ``root``; None if missing."""
    real_root = root.resolve()
    try:
        real = (real_root / key).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, dangling or looping symlink
        return None
    if not real.is_relative_to(real_root):
        raise _Escapes(key)
    # FileResponse serves a .gz/.br sibling when the client accepts it: keep those inside too.
    for suffix in (".gz", ".br"):
        sibling = real.with_name(real.name + suffix)
        if sibling.is_symlink() and not sibling.resolve().is_relative_to(real_root):
            raise _Escapes(key)
    return real if real.is_file() else None


def _artifact_headers(key: str) -> dict[str, str]:
    content_type = guess_content_type(key)
    name = PurePosixPath(key).name
    inline = content_type.startswith(INLINE_TYPES)
    disposition = "inline" if inline else f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    return {
        "Content-Type": content_type,
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        # Also for non-HTML: harmless, and it keeps any browser-rendered artifact inert.
        "Content-Security-Policy": _HTML_CSP,
        # The URL carries the signature; don't leak it to sites linked from an artifact.
        "Referrer-Policy": "no-referrer",
    }


def _plain(status: int, text: str) -> web.Response:
    return web.Response(
        status=status, text=text + "\n", headers={"X-Content-Type-Options": "nosniff"}
    )


def artifact_routes(
    root: Path, signing_key: SigningKey, clock: Callable[[], float] = time.time
) -> list[web.RouteDef]:
    """Routes serving ``LocalStore`` files at ``GET /artifacts/{key}`` for signed, live links."""
    secret = CachedKey(signing_key)
    base = root.absolute()

    async def serve(request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        try:
            validate_key(key)
        except ValueError:
            return _plain(400, "invalid artifact path")
        expires_text = request.query.get("expires", "")
        sig = request.query.get("sig", "")
        if not EXPIRES_RE.fullmatch(expires_text) or not sig:
            return _plain(403, "this artifact link is not signed")
        expires = int(expires_text)
        if clock() > expires:
            return _plain(403, "this artifact link has expired; ask the bot for a new one")
        if not verify_artifact(key, expires, sig, await secret.get(), clock()):
            return _plain(403, "this artifact link is invalid")
        try:
            path = await asyncio.to_thread(_resolve_inside, base, key)
        except _Escapes:
            return _plain(403, "this artifact is not available")
        if path is None:
            return _plain(404, "artifact not found")
        return web.FileResponse(path, headers=_artifact_headers(key))

    return [web.get("/artifacts/{key:.+}", serve)]
