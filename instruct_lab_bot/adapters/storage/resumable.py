"""Resumable multipart uploads for big files (a trained model: gigabytes).

An upload interrupted by anything (a killed worker, a timeout, a lost connection) is left in
S3 rather than aborted; the next attempt at the same key, by any process, finds it with
ListMultipartUploads, lists its parts with ListParts and sends only the parts S3 does not
already hold with the same content (a part's ETag is the MD5 of its bytes), then completes
it. No state is kept outside S3, so another worker that takes the job over resumes the upload.
Parts are streamed from the file, `max_concurrency` at a time: memory does not grow with
the file or the part size.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

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
    path: Path,
    part_size: int,
    concurrency: int,
    on_part: OnPart | None = None,
) -> LargeUpload:
    """Send the parts of `path` S3 does not hold yet, then complete the upload. Each part is
    streamed from the file (`PartReader`), so memory does not grow with the part size."""
    held = await held_parts(target.client, target.bucket, target.key, target.upload_id)
    size = (await asyncio.to_thread(path.stat)).st_size
    count = max(1, -(-size // part_size))
    etags: dict[int, str] = {}
    slots = asyncio.Semaphore(concurrency)
    sent = 0

    async def send(number: int, offset: int, length: int) -> None:
        nonlocal sent
        try:
            md5 = await asyncio.to_thread(_md5_of, path, offset, length)
            if held.get(number) == md5:
                etags[number] = f'"{md5}"'
            else:
                with PartReader(path, offset, length) as body:
                    answer = await target.client.upload_part(
                        Bucket=target.bucket,
                        Key=target.key,
                        UploadId=target.upload_id,
                        PartNumber=number,
                        Body=cast("IO[bytes]", body),  # a file object botocore streams
                        ContentLength=length,
                    )
                etags[number] = answer["ETag"]
                sent += 1
            if on_part:
                on_part(number, length)
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        for number in range(1, count + 1):
            await slots.acquire()
            offset = (number - 1) * part_size
            group.create_task(send(number, offset, min(part_size, size - offset)))
    await _complete(target, etags)
    return LargeUpload(size, sent, len(etags) - sent)


async def _complete(target: _Target, etags: dict[int, str]) -> None:
    parts: list[CompletedPartTypeDef] = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
    await target.client.complete_multipart_upload(
        Bucket=target.bucket,
        Key=target.key,
        UploadId=target.upload_id,
        MultipartUpload={"Parts": parts},
    )


class PartReader(io.RawIOBase):
    """`length` bytes of a file from `offset`, as a seekable file of its own (what botocore
    streams as a request body, rewinding it to sign it and on a retry)."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._offset, self._length, self._pos = offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = min(max(base + pos, 0), self._length)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        self._file.seek(self._offset + self._pos)
        got = self._file.readinto(memoryview(buffer)[:want])
        self._pos += got or 0
        return got or 0

    def close(self) -> None:
        self._file.close()
        super().close()


def _md5_of(path: Path, offset: int, length: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as src:
        src.seek(offset)
        left = length
        while left > 0 and (chunk := src.read(min(left, 1024 * 1024))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def target(client: S3Client, bucket: str, key: str, upload_id: str) -> _Target:
    return _Target(client, bucket, key, upload_id)
