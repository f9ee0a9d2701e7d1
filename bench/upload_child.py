"""One upload of FILE to a moto S3 endpoint in a process of its own, so its memory can be read
from /proc/self/status: `ours` (S3Store.put_large_file: resumable, parallel parts) or `s3transfer`
(boto3's TransferManager, the same part size and concurrency).

Prints one JSON object: bytes, seconds, rss_before_kb, hwm_kb.
Usage: python -m bench.upload_child ours|s3transfer ENDPOINT BUCKET FILE
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from s3transfer.manager import TransferManager

from bench.pump_child import reset_peak, status_kb
from instruct_lab_bot.adapters.storage.s3 import S3Config, S3Store

PART = 8 * 1024 * 1024
CONCURRENCY = 4


async def ours(endpoint: str, bucket: str, path: Path) -> int:
    store = S3Store(
        S3Config(bucket, "", endpoint, 3600, part_size=PART, max_concurrency=CONCURRENCY)
    )
    try:
        report = await store.put_large_file("bench/ours.safetensors", path)
    finally:
        await store.aclose()
    return report.size


def baseline(endpoint: str, bucket: str, path: Path) -> int:
    client = boto3.client("s3", endpoint_url=endpoint)
    config = TransferConfig(
        multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=CONCURRENCY
    )
    with TransferManager(client, config) as manager:
        manager.upload(str(path), bucket, "bench/s3transfer.safetensors").result()
    return path.stat().st_size


def main() -> None:
    which, endpoint, bucket, file = sys.argv[1:5]
    path = Path(file)
    if which == "ours":
        asyncio.run(ours(endpoint, bucket, path.with_name("warm-up")))  # imports, client
    rss_before = status_kb("VmRSS")
    reset_peak()
    started = time.perf_counter()
    if which == "ours":
        size = asyncio.run(ours(endpoint, bucket, path))
    else:
        size = baseline(endpoint, bucket, path)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "bytes": size,
                "seconds": seconds,
                "rss_before_kb": rss_before,
                "hwm_kb": status_kb("VmHWM"),
            }
        )
    )


if __name__ == "__main__":
    main()
