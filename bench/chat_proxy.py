"""The chat proxy's cost: time to first token and time per token of a streamed answer, through
the bot's proxy vs straight to the model server, in the same run.

Three processes besides this client: the stand-in model server (`testkit.fake_teacher`, a real
OpenAI-compatible HTTP server that streams one server-sent event per word), the bot's server
app (`create_app`, no dispatcher, the chat proxy in front of that model through a fixed
backend) and its Redis. The client alternates direct and proxied requests, one at a time, each
a long question (the stand-in's answer repeats it, so ~N tokens per answer), and times the
first content event and the whole answer from its own send time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp

from instruct_lab_bot.core.chat_request import sse_delta

from .common import (
    ROOT,
    Row,
    figure_main,
    free_port,
    ms,
    percentile,
    ratio,
    redis_server,
    running,
    tail,
    wait_http,
)

MODEL = "bench-pr-model"
OWNER, REPO, NUMBER = "instructlab", "taxonomy", 7


async def _answer(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], words: int
) -> tuple[float, float, int]:
    """(seconds to the first token, seconds to the end, tokens) of one streamed answer."""
    question = " ".join(f"word{i}" for i in range(words))
    body = {"model": MODEL, "messages": [{"role": "user", "content": question}], "stream": True}
    started = time.perf_counter()
    first, tokens = 0.0, 0
    async with session.post(url, json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}: {await response.text()}")
        async for line in response.content:
            if sse_delta(line) is not None:
                tokens += 1
                if tokens == 1:
                    first = time.perf_counter() - started
    return first, time.perf_counter() - started, tokens


Results = dict[str, list[tuple[float, float, int]]]


async def _run(direct: str, proxied: str, token: str, requests: int, words: int) -> Results:
    found: Results = {"direct": [], "proxy": []}
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # warm both paths (connections, the proxy's model lookup)
            await _answer(session, direct, {}, words)
            await _answer(session, proxied, auth, words)
        for _ in range(requests):
            found["direct"].append(await _answer(session, direct, {}, words))
            found["proxy"].append(await _answer(session, proxied, auth, words))
    return found


async def measure(quick: bool) -> list[Row]:
    requests, words = (5, 20) if quick else (200, 200)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ilab-bench-chat-")))
        redis_url = stack.enter_context(redis_server())
        model_port, proxy_port = free_port(), free_port()
        model_log, proxy_log = work / "model.log", work / "proxy.log"
        model = stack.enter_context(
            running(
                [
                    sys.executable,
                    "-m",
                    "testkit.fake_teacher",
                    "--port",
                    str(model_port),
                    "--model",
                    MODEL,
                ],
                cwd=ROOT,
                log=model_log,
            )
        )
        upstream = f"http://127.0.0.1:{model_port}/v1"
        wait_http(upstream + "/models", model)
        token_file = work / "token"
        proxy = stack.enter_context(
            running(
                [
                    sys.executable,
                    "-m",
                    "bench.chat_server",
                    str(proxy_port),
                    redis_url,
                    upstream,
                    str(work),
                    str(token_file),
                ],
                cwd=ROOT,
                log=proxy_log,
                env=dict(os.environ),
            )
        )
        wait_http(f"http://127.0.0.1:{proxy_port}/healthz", proxy)
        while not token_file.exists():
            if proxy.poll() is not None:
                raise RuntimeError(f"the proxy exited: {tail(proxy_log)}")
            await asyncio.sleep(0.05)
        token = token_file.read_text().strip()
        proxied = f"http://127.0.0.1:{proxy_port}/chat/{OWNER}/{REPO}/{NUMBER}/v1/chat/completions"
        found = await _run(upstream + "/chat/completions", proxied, token, requests, words)
    return rows(found)


def rows(found: Results) -> list[Row]:
    proxy = found["proxy"]
    tokens = proxy[0][2]
    note = f"{len(proxy)} streamed answers each way, alternating, {tokens} tokens each"

    def per_token(results: list[tuple[float, float, int]]) -> list[float]:
        return [(total - first) / max(1, count - 1) for first, total, count in results]

    ttft = {k: percentile([r[0] for r in v], 50) for k, v in found.items()}
    ttft99 = {k: percentile([r[0] for r in v], 99) for k, v in found.items()}
    token_time = {k: percentile(per_token(v), 50) for k, v in found.items()}
    overhead = token_time["proxy"] - token_time["direct"]
    return [
        Row(
            "chat: time to first token through the proxy vs direct (p50)",
            ms(ttft["proxy"]), ms(ttft["direct"]), ratio(ttft["proxy"], ttft["direct"]),
            note=f"{note}; p99 proxy {ms(ttft99['proxy'])}, direct {ms(ttft99['direct'])}",
        ),
        Row(
            "chat: time per streamed token through the proxy vs direct (p50)",
            f"{token_time['proxy'] * 1e6:.1f} µs", f"{token_time['direct'] * 1e6:.1f} µs",
            ratio(token_time["proxy"], token_time["direct"]),
            note=f"{note}; the proxy adds {overhead * 1e6:.1f} µs per token (p50 difference)",
        ),
    ]  # fmt: skip


if __name__ == "__main__":
    figure_main(measure, __doc__.splitlines()[0] if __doc__ else None)
