"""`instruct-lab-bot server|worker|replay`: the one place that reads the environment."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp

from instruct_lab_bot import __version__
from instruct_lab_bot.core.settings import Settings, SettingsError, parse_settings
from instruct_lab_bot.services import logs


def read_dotenv(path: Path) -> dict[str, str]:
    """Values from a `.env` file; the process environment wins over it."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv: Path | None = Path(".env"),
    require_github: bool = True,
) -> Settings:
    """`Settings` from `environ` (default: the process environment) over `.env`."""
    env: dict[str, str] = dict(read_dotenv(dotenv)) if dotenv else {}
    env.update(os.environ if environ is None else environ)
    return parse_settings(
        env, require_github=require_github, read_file=lambda p: Path(p).read_text()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instruct-lab-bot",
        description="GitHub App that runs InstructLab data generation for taxonomy PRs. "
        "Settings come from ILAB_BOT_* environment variables (and .env); see the README.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = sub.add_parser("server", help="receive GitHub webhooks and dispatch jobs")
    server.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="only receive webhooks; run dispatchers elsewhere",
    )

    worker = sub.add_parser("worker", help="run jobs from the queue")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=9100,
        metavar="PORT",
        help="serve /metrics and /healthz on this port (default 9100; 0 turns it off)",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="jobs this process runs at once (default 1: one per GPU host)",
    )

    dlq = sub.add_parser("dlq", help="dead-letter queue: jobs that kept killing their worker")
    dlq.add_argument("action", choices=("list", "show", "requeue", "drop"))
    dlq.add_argument("entry", nargs="?", help="dead-letter entry id (show, requeue, drop)")

    replay = sub.add_parser(
        "replay", help="sign a stored webhook payload and POST it to a running server"
    )
    replay.add_argument("payload", type=Path, help="JSON payload file")
    replay.add_argument("--event", required=True, help="X-GitHub-Event, e.g. issue_comment")
    replay.add_argument(
        "--url",
        default=None,
        help="webhook URL (default http://<ILAB_BOT_HOST>:<ILAB_BOT_PORT>/api/github/hook)",
    )
    replay.add_argument("--delivery", default=None, help="X-GitHub-Delivery (default: random)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(require_github=args.command not in ("replay", "dlq"))
    except SettingsError as exc:
        print(f"instruct-lab-bot: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.secrets())
    if args.command == "server":
        return run_server(settings, dispatcher=not args.no_dispatcher)
    if args.command == "worker":
        if args.concurrency < 1:
            print("instruct-lab-bot: --concurrency must be at least 1", file=sys.stderr)
            return 2
        return start_worker(settings, args.concurrency, args.metrics_port)
    if args.command == "dlq":
        if args.action != "list" and not args.entry:
            print(f"instruct-lab-bot: dlq {args.action} needs an entry id", file=sys.stderr)
            return 2
        return asyncio.run(dead_letters(settings, args.action, args.entry))
    return asyncio.run(replay(settings, args.payload, args.event, args.url, args.delivery))


async def dead_letters(settings: Settings, action: str, entry: str | None) -> int:
    """Admins: see, requeue (fresh attempts) or drop jobs in the dead-letter stream."""
    from instruct_lab_bot.adapters.redis.queue import Queue

    queue = Queue.from_settings(settings)
    try:
        if action == "list":
            for item in await queue.dead_letters():
                job = await queue.get_job(item.fields.get("job", ""))
                where = f"{job.repo_full_name}#{job.pr_number} {job.command}" if job else "?"
                print(
                    f"{item.id}  job {item.fields.get('job')}  {where}  "
                    f"{item.fields.get('reason', '')[:100]}"
                )
            return 0
        assert entry is not None
        if action == "show":
            found = [i for i in await queue.dead_letters(1000) if i.id == entry]
            if not found:
                print(f"no dead letter {entry}", file=sys.stderr)
                return 1
            job = await queue.get_job(found[0].fields.get("job", ""))
            print(
                json.dumps(
                    {"entry": found[0].fields, "job": job.to_fields() if job else None}, indent=2
                )
            )
            return 0
        if action == "requeue":
            requeued = await queue.requeue_dead(entry)
            print(f"requeued job {requeued.id}" if requeued else f"no dead letter {entry}")
            return 0 if requeued else 1
        dropped = await queue.drop_dead(entry)
        print("dropped" if dropped else f"no dead letter {entry}")
        return 0 if dropped else 1
    finally:
        await queue.aclose()


def run_server(settings: Settings, *, dispatcher: bool = True) -> int:
    from aiohttp import web

    from instruct_lab_bot.adapters.tracing import configure_tracing
    from instruct_lab_bot.services.server import create_app

    configure_tracing("instruct-lab-bot-server")
    web.run_app(
        create_app(settings, dispatcher=dispatcher),
        host=settings.host,
        port=settings.port,
        print=None,
        shutdown_timeout=30,
    )
    return 0


def start_worker(settings: Settings, concurrency: int, metrics_port: int) -> int:
    """The worker process: not dumpable (its secrets stay out of /proc), ilab sandboxed."""
    from instruct_lab_bot.adapters.sandbox import SandboxUnavailable, set_non_dumpable

    set_non_dumpable()
    try:
        return asyncio.run(run_worker(settings, concurrency, metrics_port))
    except SandboxUnavailable as exc:
        print(f"instruct-lab-bot: worker not started: {exc}", file=sys.stderr)
        return 2


async def run_worker(settings: Settings, concurrency: int, metrics_port: int = 0) -> int:
    import structlog

    from instruct_lab_bot.adapters.processes import become_subreaper
    from instruct_lab_bot.adapters.tracing import configure_tracing
    from instruct_lab_bot.services.metrics import WorkerMetrics, serve_metrics
    from instruct_lab_bot.services.worker.app import open_worker

    configure_tracing("instruct-lab-bot-worker")
    # Orphans of ilab's helpers re-parent to the worker, so the runner can find and kill them.
    if not become_subreaper():
        structlog.get_logger(__name__).warning("worker.no_subreaper")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = WorkerMetrics()
    async with contextlib.AsyncExitStack() as stack:
        if metrics_port:
            await stack.enter_async_context(
                serve_metrics(metrics.registry, settings.host, metrics_port)
            )
        worker = await stack.enter_async_context(
            open_worker(settings, concurrency=concurrency, metrics=metrics)
        )
        await worker.run(stop)
    return 0


async def replay(
    settings: Settings, payload: Path, event: str, url: str | None, delivery: str | None
) -> int:
    """Like `probot receive`: reproduce a delivery against a running server."""
    from instruct_lab_bot.core.webhooks import sign

    body = await asyncio.to_thread(payload.read_bytes)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    target = url or f"http://{host}:{settings.port}/api/github/hook"
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, settings.webhook_secret.value.encode()),
        "User-Agent": f"instruct-lab-bot-replay/{__version__}",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(target, data=body, headers=headers) as response,
    ):
        text = await response.text()
        print(f"{response.status} {response.reason}: {text}")
        return 0 if response.status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
