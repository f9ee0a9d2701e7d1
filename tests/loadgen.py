"""Load generator run as its own process: POST signed deliveries from a JSONL plan.

Each line: {"event", "delivery", "body", "signature"}. Prints {status: count} as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path

import aiohttp


async def send(url: str, plan: list[dict[str, str]], concurrency: int) -> Counter[str]:
    statuses: Counter[str] = Counter()
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for request in plan:
        queue.put_nowait(request)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            request = queue.get_nowait()
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": request["event"],
                "X-GitHub-Delivery": request["delivery"],
                "X-Hub-Signature-256": request["signature"],
            }
            try:
                async with session.post(url, data=request["body"].encode(), headers=headers) as r:
                    await r.read()
                    statuses[str(r.status)] += 1
            except aiohttp.ClientError as exc:
                statuses[type(exc).__name__] += 1

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("plan", type=Path)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    plan = [json.loads(line) for line in args.plan.read_text().splitlines() if line]
    print(json.dumps(asyncio.run(send(args.url, plan, args.concurrency))))


if __name__ == "__main__":
    main()
