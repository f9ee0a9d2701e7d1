"""Artifacts in S3 or an S3-compatible store (MinIO, Ceph, moto), reached through presigned
GET links."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from instruct_lab_bot.adapters.storage.errors import StorageError
from instruct_lab_bot.adapters.storage.resumable import (
    LargeUpload,
    OnPart,
    find_upload,
    target,
    upload_resumable,
)
from instruct_lab_bot.core.artifacts import MAX_KEY_BYTES, guess_content_type, validate_key

if TYPE_CHECKING:  # aioboto3 is imported when a store is made: a server on local files never
    # pays for it (~40 MB of boto), and `from botocore.exceptions` alone is small
    from aiobotocore.config import AioConfig
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

T = TypeVar("T")

# SigV4 presigned URLs are valid for at most 7 days; S3 rejects a longer X-Amz-Expires.
S3_MAX_LINK_EXPIRY = 7 * 24 * 3600
# S3 refuses multipart parts below 5 MiB (except the last) and uploads of more than 10 000 parts.
S3_MIN_PART_SIZE = 5 * 1024 * 1024
S3_MAX_PARTS = 10_000


@dataclass(frozen=True)
class S3Config:
    """Where artifacts go and how uploads behave. ``timeout`` bounds one whole operation;
    ``connect_timeout``, ``read_timeout`` and ``max_attempts`` are botocore's, per request."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    link_expiry: int
    region_name: str | None = None
    timeout: float = 300.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    multipart_threshold: int = 8 * 1024 * 1024
    part_size: int = 8 * 1024 * 1024
    max_concurrency: int = 4

    def __post_init__(self) -> None:
        if self.link_expiry < 1:
            raise ValueError("link expiry must be at least one second")
        if self.part_size < S3_MIN_PART_SIZE:
            raise ValueError(f"part size must be at least {S3_MIN_PART_SIZE} bytes")
        if self.multipart_threshold < 1 or self.max_concurrency < 1:
            raise ValueError("multipart threshold and concurrency must be positive")


class S3Store:
    """Artifacts in an S3 bucket, reached through presigned GET links.

    One client is opened lazily and kept for the store's life. Files are streamed: at most
    ``max_concurrency`` parts of ``part_size`` bytes are in memory at once. The multipart upload is
    our own short loop rather than aioboto3's ``upload_fileobj`` because the latter leaves its
    uploader tasks and the unfinished upload behind when it is cancelled (which is what a timeout
    does); ours aborts the upload on any failure or cancellation.
    """

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._prefix = config.prefix.strip("/")
        # SigV4 caps presigned links at 7 days; a longer setting silently becomes 7 days.
        self._link_expiry = min(config.link_expiry, S3_MAX_LINK_EXPIRY)
        self._client_config = _client_config(config)
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
                if size < self.config.multipart_threshold:
                    body = await asyncio.to_thread(src.read)
                    await client.put_object(
                        Bucket=self.config.bucket, Key=s3_key, Body=body, ContentType=ctype
                    )
                    return len(body)
                return await self._multipart(client, s3_key, src, size, ctype)
            finally:
                await asyncio.to_thread(src.close)

        return await self._run("upload", key, upload)

    async def put_large_file(
        self,
        key: str,
        path: Path,
        content_type: str | None = None,
        on_part: OnPart | None = None,
    ) -> LargeUpload:
        """A resumable multipart upload (`resumable`): an interrupted one is continued, by
        this or any process, instead of restarted. Not bounded by `timeout`: the caller
        bounds it (a model takes as long as its gigabytes take)."""
        s3_key = self.object_key(key)
        ctype = content_type or guess_content_type(key)
        bucket = self.config.bucket

        async def upload(client: S3Client) -> LargeUpload:
            upload_id = await find_upload(client, bucket, s3_key)
            if upload_id is None:
                created = await client.create_multipart_upload(
                    Bucket=bucket, Key=s3_key, ContentType=ctype
                )
                upload_id = created["UploadId"]
            size = (await asyncio.to_thread(path.stat)).st_size
            part_size = max(self.config.part_size, -(-size // S3_MAX_PARTS))
            where = target(client, bucket, s3_key, upload_id)
            concurrency = self.config.max_concurrency
            return await upload_resumable(where, path, part_size, concurrency, on_part)

        return await self._run("upload", key, upload, bounded=False)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        s3_key = self.object_key(key)

        async def upload(client: S3Client) -> int:
            await client.put_object(
                Bucket=self.config.bucket, Key=s3_key, Body=data, ContentType=content_type
            )
            return len(data)

        return await self._run("upload", key, upload)

    async def link(self, key: str) -> str:
        s3_key = self.object_key(key)

        async def presign(client: S3Client) -> str:
            return await client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.config.bucket, "Key": s3_key},
                ExpiresIn=self._link_expiry,
            )

        return await self._run("link", key, presign)

    async def exists(self, key: str) -> bool:
        s3_key = self.object_key(key)

        async def head(client: S3Client) -> bool:
            try:
                await client.head_object(Bucket=self.config.bucket, Key=s3_key)
            except ClientError as exc:
                if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True

        return await self._run("check", key, head)

    async def read_head(self, key: str, limit: int) -> bytes | None:
        s3_key = self.object_key(key)

        async def get(client: S3Client) -> bytes | None:
            try:
                answer = await client.get_object(
                    Bucket=self.config.bucket, Key=s3_key, Range=f"bytes=0-{max(limit, 1) - 1}"
                )
            except ClientError as exc:
                if _error_code(exc) in ("404", "NoSuchKey", "NotFound", "InvalidRange"):
                    return None if _error_code(exc) != "InvalidRange" else b""
                raise
            async with answer["Body"] as body:
                return bytes(await body.read())

        return await self._run("read", key, get)

    async def get_bytes(self, key: str) -> bytes:
        s3_key = self.object_key(key)

        async def get(client: S3Client) -> bytes:
            answer = await client.get_object(Bucket=self.config.bucket, Key=s3_key)
            async with answer["Body"] as body:
                return bytes(await body.read())

        return await self._run("download", key, get)

    async def get_file(self, key: str, path: Path) -> int:
        """Stream ``key`` to ``path`` (a temp file beside it, renamed when complete)."""
        s3_key = self.object_key(key)

        async def get(client: S3Client) -> int:
            answer = await client.get_object(Bucket=self.config.bucket, Key=s3_key)
            body = answer["Body"]  # aiobotocore's StreamingBody: read(amt) in chunks
            async with body:
                return await _stream_to_file(path, body.read)

        return await self._run("download", key, get)

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix`` (without the store's own prefix), sorted."""
        if prefix:
            validate_key(prefix.rstrip("/"))
        full = f"{self._prefix}/{prefix}" if self._prefix else prefix
        strip = len(self._prefix) + 1 if self._prefix else 0

        async def listing(client: S3Client) -> list[str]:
            keys: list[str] = []
            pages = client.get_paginator("list_objects_v2")
            async for page in pages.paginate(Bucket=self.config.bucket, Prefix=full):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
            return sorted(keys)

        return await self._run("list", prefix or "/", listing)

    async def delete(self, key: str) -> None:
        s3_key = self.object_key(key)

        async def remove(client: S3Client) -> None:
            await client.delete_object(Bucket=self.config.bucket, Key=s3_key)

        await self._run("delete", key, remove)

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
                import aioboto3  # heavy: imported once a store is used (see TYPE_CHECKING)

                session = aioboto3.Session()
                self._client = await self._stack.enter_async_context(
                    session.client(
                        "s3",
                        endpoint_url=self.config.endpoint_url,
                        region_name=self.config.region_name,
                        config=self._client_config,
                    )
                )
            return self._client

    async def _run(
        self,
        action: str,
        key: str,
        op: Callable[[S3Client], Awaitable[T]],
        *,
        bounded: bool = True,
    ) -> T:
        """Run one operation under the overall timeout (unless not `bounded`: the caller's
        own), mapping failures to StorageError."""
        limit = self.config.timeout if bounded else None
        try:
            async with asyncio.timeout(limit):
                return await op(await self._get_client())
        except TimeoutError as exc:
            raise StorageError(
                f"{action} of {key} timed out after {self.config.timeout:g} s"
            ) from exc
        except (BotoCoreError, ClientError, aiohttp.ClientError, OSError, ExceptionGroup) as exc:
            raise StorageError(f"{action} of {key} failed: {_describe(exc)}") from exc

    async def _multipart(
        self, client: S3Client, s3_key: str, src: IO[bytes], size: int, content_type: str
    ) -> int:
        created = await client.create_multipart_upload(
            Bucket=self.config.bucket, Key=s3_key, ContentType=content_type
        )
        upload_id = created["UploadId"]
        try:
            part_size = max(self.config.part_size, -(-size // S3_MAX_PARTS))
            parts, sent = await self._upload_parts(client, s3_key, upload_id, src, part_size)
            await client.complete_multipart_upload(
                Bucket=self.config.bucket,
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
        slots = asyncio.Semaphore(self.config.max_concurrency)
        sent = 0

        async def send(number: int, chunk: bytes) -> None:
            try:
                resp = await client.upload_part(
                    Bucket=self.config.bucket,
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
                    Bucket=self.config.bucket, Key=s3_key, UploadId=upload_id
                )


async def _stream_to_file(path: Path, read: Callable[[int], Awaitable[bytes]]) -> int:
    """Write what ``read`` yields to ``path`` atomically (temp file beside it, then rename)."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    fd, tmp_name = await asyncio.to_thread(
        tempfile.mkstemp, dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await read(1024 * 1024):
                await asyncio.to_thread(out.write, chunk)
            size = out.tell()
        await asyncio.to_thread(tmp.replace, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # noqa: ASYNC240 - one unlink, also on cancellation
        raise
    return size


def _client_config(config: S3Config) -> AioConfig:
    """botocore retries each S3 request itself ("standard" mode: throttling, 5xx, timeouts,
    with the body rewound): it knows S3's error codes, so uploads do not retry on top."""
    from aiobotocore.config import AioConfig  # heavy: see TYPE_CHECKING

    extra: dict[str, Any] = {}
    if config.endpoint_url:
        # S3-compatible stores (MinIO, Ceph, moto) want path-style addressing, and several of
        # them reject the CRC checksums botocore >= 1.36 sends by default.
        extra = {
            "s3": {"addressing_style": "path"},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
    return AioConfig(
        signature_version="s3v4",
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        retries={"max_attempts": config.max_attempts, "mode": "standard"},
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
