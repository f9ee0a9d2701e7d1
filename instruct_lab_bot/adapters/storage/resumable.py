"""Resumable multipart uploads for big files (a trained model: gigabytes).

An upload interrupted by anything (a killed worker, a timeout, a lost connection) is left in
S3 rather than aborted; the next attempt at the same key, by any process, finds it with
ListMultipartUploads, lists its parts with ListParts and sends only the parts S3 does not
already hold with the same content (a part's ETag is the MD5 of its bytes), then completes
it. No state is kept outside S3, so another worker that takes the job over resumes the upload.
At most `max_concurrency` parts of `part_size` bytes are in memory at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

#: Called after each part S3 holds (sent now or found there): (part number, bytes).
OnPart = Callable[[int, int], None]


@dataclass(frozen=True)
class LargeUpload:
    """How a big upload went: its size, and how many parts were sent or found already."""

    size: int
    parts_sent: int
    parts_reused: int


@dataclass(frozen=True)
class _Target:
    client: S3Client
    bucket: str
    key: str
    upload_id: str


async def find_upload(client: S3Client, bucket: str, key: str) -> str | None:
    """The newest unfinished multipart upload of exactly `key`, if any."""
    found: list[tuple[str, str]] = []
    pages = client.get_paginator("list_multipart_uploads")
    async for page in pages.paginate(Bucket=bucket, Prefix=key):
        for upload in page.get("Uploads", []):
            if upload.get("Key") == key and "UploadId" in upload:
                found.append((str(upload.get("Initiated", "")), upload["UploadId"]))
    return max(found)[1] if found else None


async def held_parts(client: S3Client, bucket: str, key: str, upload_id: str) -> dict[int, str]:
    """Part number → ETag (quotes stripped) of the parts S3 holds for the upload."""
    held: dict[int, str] = {}
    pages = client.get_paginator("list_parts")
    async for page in pages.paginate(Bucket=bucket, Key=key, UploadId=upload_id):
        for part in page.get("Parts", []):
            held[part["PartNumber"]] = part["ETag"].strip('"')
    return held


async def upload_resumable(
    target: _Target,
    src: IO[bytes],
    part_size: int,
    concurrency: int,
    on_part: OnPart | None = None,
) -> LargeUpload:
    """Send the parts of `src` S3 does not hold yet, then complete the upload."""
    held = await held_parts(target.client, target.bucket, target.key, target.upload_id)
    etags: dict[int, str] = {}
    slots = asyncio.Semaphore(concurrency)
    size = sent = 0

    async def send(number: int, chunk: bytes) -> None:
        nonlocal sent
        try:
            answer = await target.client.upload_part(
                Bucket=target.bucket,
                Key=target.key,
                UploadId=target.upload_id,
                PartNumber=number,
                Body=chunk,
            )
            etags[number] = answer["ETag"]
            sent += 1
            if on_part:
                on_part(number, len(chunk))
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        for number in itertools.count(1):
            await slots.acquire()
            chunk = await asyncio.to_thread(src.read, part_size)
            if not chunk:
                slots.release()
                break
            size += len(chunk)
            md5 = await asyncio.to_thread(_md5, chunk)
            if held.get(number) == md5:
                etags[number] = f'"{md5}"'
                slots.release()
                if on_part:
                    on_part(number, len(chunk))
                continue
            group.create_task(send(number, chunk))
    parts: list[CompletedPartTypeDef] = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
    await target.client.complete_multipart_upload(
        Bucket=target.bucket,
        Key=target.key,
        UploadId=target.upload_id,
        MultipartUpload={"Parts": parts},
    )
    return LargeUpload(size, sent, len(etags) - sent)


def _md5(chunk: bytes) -> str:
    return hashlib.md5(chunk, usedforsecurity=False).hexdigest()


def target(client: S3Client, bucket: str, key: str, upload_id: str) -> _Target:
    return _Target(client, bucket, key, upload_id)
