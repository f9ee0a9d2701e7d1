"""Model stash: a 2 GB model file to an S3 endpoint (a moto server on this machine).

ours: `S3Store.put_large_file` (resumable multipart: ListMultipartUploads/ListParts first,
parts of 8 MiB, 4 in flight, each read in a thread); baseline: s3transfer's TransferManager
(what `aws s3 cp` uses) with the same part size and concurrency, in the same run against the
same server. Each upload runs in a child process that reads its own VmRSS/VmHWM; the object is
deleted after each run so the server's memory does not grow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

from .common import ROOT, Row, figure_main, free_port, ratio, stop, verdict

MB = 1 << 20
TARGET_RSS_MB = 100.0
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench-access-key",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def write_model(path: Path, size: int) -> None:
    block = os.urandom(8 * MB)
    with path.open("wb") as out:
        left, n = size, 0
        while left:
            chunk = (n.to_bytes(8, "big") + block)[: min(left, len(block))]
            out.write(chunk)
            left -= len(chunk)
            n += 1


def start_moto(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / "moto.log").open("wb")
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310
                return proc, url
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError("moto server did not start")


def upload(which: str, url: str, bucket: str, path: Path) -> dict[str, float]:
    env = {**os.environ, **CREDENTIALS, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "bench.upload_child", which, url, bucket, str(path)]
    done = subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def measure(quick: bool) -> list[Row]:
    size = 24 * MB if quick else 2048 * MB
    os.environ.update(CREDENTIALS)
    with tempfile.TemporaryDirectory(prefix="ilab-bench-upload-") as tmp:
        work = Path(tmp)
        path = work / "model.safetensors"
        write_model(path, size)
        write_model(work / "warm-up", 9 * MB)
        proc, url = start_moto(work)
        try:
            s3 = boto3.client("s3", endpoint_url=url)
            s3.create_bucket(Bucket="bench")
            results = {}
            for which in ("s3transfer", "ours"):
                results[which] = upload(which, url, "bench", path)
                s3.delete_object(Bucket="bench", Key=f"bench/{which}.safetensors")
        finally:
            stop(proc)
    return rows(results, size)


def rows(results: dict[str, dict[str, float]], size: int) -> list[Row]:
    mine, base = results["ours"], results["s3transfer"]
    rate, base_rate = mine["bytes"] / mine["seconds"], base["bytes"] / base["seconds"]
    growth = (mine["hwm_kb"] - mine["rss_before_kb"]) / 1024
    base_growth = (base["hwm_kb"] - base["rss_before_kb"]) / 1024
    return [
        Row(
            f"model upload, {size / MB:,.0f} MB to S3 (moto) (MB/s) vs s3transfer",
            f"{rate / MB:,.1f}",
            f"{base_rate / MB:,.1f}",
            ratio(rate, base_rate),
            "≥ s3transfer",
            verdict(rate >= base_rate),
            f"8 MiB parts, 4 in flight, both; ours {mine['seconds']:.1f} s, "
            f"s3transfer {base['seconds']:.1f} s",
        ),
        Row(
            "model upload: uploader RSS growth (MB)",
            f"{growth:.1f}",
            f"{base_growth:.1f}",
            ratio(growth, base_growth),
            f"< {TARGET_RSS_MB:.0f} MB",
            verdict(growth < TARGET_RSS_MB),
            f"VmHWM − VmRSS before, after a warm-up upload; s3transfer {base_growth:.1f} MB",
        ),
    ]


if __name__ == "__main__":
    figure_main(measure, __doc__)
