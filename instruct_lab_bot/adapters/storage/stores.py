"""Artifact store adapter: where generated data goes and how reviewers reach it.

Two backends share one small Protocol so the worker never knows which is in use:

* ``LocalStore`` writes under a folder; the bot's own aiohttp server serves it under ``/artifacts/``
  with HMAC-signed, expiring links (``artifact_routes``). This is the embedded default.
* ``S3Store`` uploads to S3 or an S3-compatible store (MinIO, Ceph, moto) and hands out presigned
  GET links.

Every failure of the backend surfaces as ``StorageError`` whose message is safe to show on a PR.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from aiohttp import web
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from instruct_lab_bot.core.artifacts import (
    EXPIRES_RE,
    INLINE_TYPES,
    MAX_KEY_BYTES,
    ArtifactsLocation,
    guess_content_type,
    sign_artifact,
    validate_key,
    verify_artifact,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

T = TypeVar("T")

# SigV4 presigned URLs are valid for at most 7 days; S3 rejects a longer X-Amz-Expires.
S3_MAX_LINK_EXPIRY = 7 * 24 * 3600
# S3 refuses multipart parts below 5 MiB (except the last) and uploads of more than 10 000 parts.
S3_MIN_PART_SIZE = 5 * 1024 * 1024
S3_MAX_PARTS = 10_000

_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'"


class StorageError(Exception):
    """The object store failed; the message names the key and the reason, never credentials."""


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

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- local store


class LocalStore:
    """Artifacts in a local folder, served by the bot's server with signed, expiring links."""

    def __init__(
        self,
        root: Path,
        public_url: str,
        signing_key: bytes,
        link_expiry: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not signing_key:
            raise ValueError("the artifact signing key must not be empty")
        if link_expiry < 1:
            raise ValueError("link expiry must be at least one second")
        if urlsplit(public_url).scheme not in ("http", "https"):
            raise ValueError(f"public URL must be http(s), got {public_url!r}")
        self._root = root.absolute()
        self._public_url = public_url.rstrip("/")
        self._signing_key = signing_key
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
        sig = sign_artifact(key, expires, self._signing_key)
        return f"{self._public_url}/artifacts/{quote(key, safe='/')}?expires={expires}&sig={sig}"

    async def exists(self, key: str) -> bool:
        validate_key(key)
        return await asyncio.to_thread((self._root / key).is_file)

    async def aclose(self) -> None:
        """Nothing to release; present for the Protocol."""

    async def _write(self, key: str, writer: Callable[[IO[bytes]], object]) -> int:
        try:
            return await asyncio.to_thread(_atomic_write, self._root, key, writer)
        except OSError as exc:
            raise StorageError(f"could not store {key}: {_describe(exc)}") from exc


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
    root: Path, signing_key: bytes, clock: Callable[[], float] = time.time
) -> list[web.RouteDef]:
    """Routes serving ``LocalStore`` files at ``GET /artifacts/{key}`` for signed, live links."""
    if not signing_key:
        raise ValueError("the artifact signing key must not be empty")
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
        if not verify_artifact(key, expires, sig, signing_key, clock()):
            return _plain(403, "this artifact link is invalid")
        try:
            path = await asyncio.to_thread(_resolve_inside, base, key)
        except _Escapes:
            return _plain(403, "this artifact is not available")
        if path is None:
            return _plain(404, "artifact not found")
        return web.FileResponse(path, headers=_artifact_headers(key))

    return [web.get("/artifacts/{key:.+}", serve)]


# --------------------------------------------------------------------------- S3 store


class S3Store:
    """Artifacts in an S3 bucket, reached through presigned GET links.

    One client is opened lazily and kept for the store's life. Files are streamed: at most
    ``max_concurrency`` parts of ``part_size`` bytes are in memory at once. The multipart upload is
    our own short loop rather than aioboto3's ``upload_fileobj`` because the latter leaves its
    uploader tasks and the unfinished upload behind when it is cancelled (which is what a timeout
    does); ours aborts the upload on any failure or cancellation.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint_url: str | None,
        link_expiry: int,
        *,
        region_name: str | None = None,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        multipart_threshold: int = 8 * 1024 * 1024,
        part_size: int = 8 * 1024 * 1024,
        max_concurrency: int = 4,
    ) -> None:
        if link_expiry < 1:
            raise ValueError("link expiry must be at least one second")
        if part_size < S3_MIN_PART_SIZE:
            raise ValueError(f"part size must be at least {S3_MIN_PART_SIZE} bytes")
        if multipart_threshold < 1 or max_concurrency < 1:
            raise ValueError("multipart threshold and concurrency must be positive")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._endpoint_url = endpoint_url
        # SigV4 caps presigned links at 7 days; a longer setting silently becomes 7 days.
        self._link_expiry = min(link_expiry, S3_MAX_LINK_EXPIRY)
        self._region_name = region_name
        self._timeout = timeout
        self._threshold = multipart_threshold
        self._part_size = part_size
        self._max_concurrency = max_concurrency
        self._config = _client_config(endpoint_url, connect_timeout, read_timeout, max_attempts)
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    def object_key(self, key: str) -> str:
        """The full S3 key for an artifact key (prefix included)."""
        validate_key(key)
        full = f"{self._prefix}/{key}" if self._prefix else key
        if len(full.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise ValueError("artifact key is too long once prefixed")
        return full

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> int:
        s3_key = self.object_key(key)
        ctype = content_type or guess_content_type(key)

        async def upload(client: S3Client) -> int:
            src = await asyncio.to_thread(path.open, "rb")
            try:
                size = os.fstat(src.fileno()).st_size
                if size < self._threshold:
                    body = await asyncio.to_thread(src.read)
                    await client.put_object(
                        Bucket=self._bucket, Key=s3_key, Body=body, ContentType=ctype
                    )
                    return len(body)
                return await self._multipart(client, s3_key, src, size, ctype)
            finally:
                await asyncio.to_thread(src.close)

        return await self._run("upload", key, upload)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        s3_key = self.object_key(key)

        async def upload(client: S3Client) -> int:
            await client.put_object(
                Bucket=self._bucket, Key=s3_key, Body=data, ContentType=content_type
            )
            return len(data)

        return await self._run("upload", key, upload)

    async def link(self, key: str) -> str:
        s3_key = self.object_key(key)

        async def presign(client: S3Client) -> str:
            return await client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": s3_key},
                ExpiresIn=self._link_expiry,
            )

        return await self._run("link", key, presign)

    async def exists(self, key: str) -> bool:
        s3_key = self.object_key(key)

        async def head(client: S3Client) -> bool:
            try:
                await client.head_object(Bucket=self._bucket, Key=s3_key)
            except ClientError as exc:
                if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True

        return await self._run("check", key, head)

    async def aclose(self) -> None:
        self._closed = True
        async with self._lock:
            self._client = None
            await self._stack.aclose()

    async def _get_client(self) -> S3Client:
        async with self._lock:
            if self._closed:
                raise StorageError("the artifact store is closed")
            if self._client is None:
                session = aioboto3.Session()
                self._client = await self._stack.enter_async_context(
                    session.client(
                        "s3",
                        endpoint_url=self._endpoint_url,
                        region_name=self._region_name,
                        config=self._config,
                    )
                )
            return self._client

    async def _run(self, action: str, key: str, op: Callable[[S3Client], Awaitable[T]]) -> T:
        """Run one operation under the overall timeout, mapping failures to StorageError."""
        try:
            async with asyncio.timeout(self._timeout):
                return await op(await self._get_client())
        except TimeoutError as exc:
            raise StorageError(f"{action} of {key} timed out after {self._timeout:g} s") from exc
        except (BotoCoreError, ClientError, aiohttp.ClientError, OSError, ExceptionGroup) as exc:
            raise StorageError(f"{action} of {key} failed: {_describe(exc)}") from exc

    async def _multipart(
        self, client: S3Client, s3_key: str, src: IO[bytes], size: int, content_type: str
    ) -> int:
        created = await client.create_multipart_upload(
            Bucket=self._bucket, Key=s3_key, ContentType=content_type
        )
        upload_id = created["UploadId"]
        try:
            part_size = max(self._part_size, -(-size // S3_MAX_PARTS))
            parts, sent = await self._upload_parts(client, s3_key, upload_id, src, part_size)
            await client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=s3_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self._abort(client, s3_key, upload_id)
            raise
        return sent

    async def _upload_parts(
        self, client: S3Client, s3_key: str, upload_id: str, src: IO[bytes], part_size: int
    ) -> tuple[list[CompletedPartTypeDef], int]:
        """Read and send parts with bounded concurrency; a failed part cancels the rest."""
        etags: dict[int, str] = {}
        slots = asyncio.Semaphore(self._max_concurrency)
        sent = 0

        async def send(number: int, chunk: bytes) -> None:
            try:
                resp = await client.upload_part(
                    Bucket=self._bucket,
                    Key=s3_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                )
                etags[number] = resp["ETag"]
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            for number in itertools.count(1):
                await slots.acquire()
                chunk = await asyncio.to_thread(src.read, part_size)
                if not chunk:
                    slots.release()
                    break
                sent += len(chunk)
                group.create_task(send(number, chunk))
        parts: list[CompletedPartTypeDef] = [
            {"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)
        ]
        return parts, sent

    async def _abort(self, client: S3Client, s3_key: str, upload_id: str) -> None:
        """Best effort, bounded: an unfinished multipart upload otherwise costs storage forever."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await client.abort_multipart_upload(
                    Bucket=self._bucket, Key=s3_key, UploadId=upload_id
                )


def _client_config(
    endpoint_url: str | None, connect_timeout: float, read_timeout: float, max_attempts: int
) -> AioConfig:
    extra: dict[str, Any] = {}
    if endpoint_url:
        # S3-compatible stores (MinIO, Ceph, moto) want path-style addressing, and several of
        # them reject the CRC checksums botocore >= 1.36 sends by default.
        extra = {
            "s3": {"addressing_style": "path"},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
    return AioConfig(
        signature_version="s3v4",
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        **extra,
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BaseException) -> str:
    """A short reason safe for a PR comment: error codes and kinds, never request details."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, ClientError):
        return f"the object store answered {_error_code(exc) or 'an error'}"
    if isinstance(exc, NoCredentialsError):
        return "no object store credentials are configured"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return "could not connect to the object store"
    if isinstance(exc, ReadTimeoutError):
        return "the object store did not answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


# --------------------------------------------------------------------------- factory


def open_store(
    location: ArtifactsLocation,
    *,
    public_url: str,
    signing_key: bytes,
    link_expiry: int,
    s3_endpoint_url: str | None,
) -> ArtifactStore:
    """Build the store the settings ask for; the caller owns it and must ``aclose`` it."""
    if location.scheme == "s3":
        return S3Store(location.bucket, location.prefix, s3_endpoint_url, link_expiry)
    if location.root is None:
        raise ValueError("a file artifacts location needs a root directory")
    return LocalStore(location.root, public_url, signing_key, link_expiry)
