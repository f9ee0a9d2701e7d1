"""`instruct-lab-bot server|worker|ilab-runner|replay|dlq|app|relay|doctor`: the one place
that reads the environment."""

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
from typing import TYPE_CHECKING, Any

import aiohttp

from instruct_lab_bot import __version__
from instruct_lab_bot.core.app_manifest import DEFAULT_APP_NAME
from instruct_lab_bot.core.messages import doctor as doctor_text
from instruct_lab_bot.core.settings import Settings, SettingsError, parse_settings
from instruct_lab_bot.services import logs

if TYPE_CHECKING:
    from instruct_lab_bot.services.ilab_runner import RunnerConfig


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
    require_secret: bool = True,
) -> Settings:
    """`Settings` from `environ` (default: the process environment) over `.env`."""
    env: dict[str, str] = dict(read_dotenv(dotenv)) if dotenv else {}
    env.update(os.environ if environ is None else environ)
    return parse_settings(
        env,
        require_github=require_github,
        require_secret=require_secret,
        read_file=lambda p: Path(p).read_text(),
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

    _add_runner_parser(sub)

    _add_admin_parsers(sub)
    _add_onboarding_parsers(sub)
    return parser


def _add_admin_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_runner_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runner = sub.add_parser(
        "ilab-runner",
        help="run ilab for the worker in a container with no secrets (ILAB_BOT_SANDBOX=runner)",
    )
    runner.add_argument("--socket", type=Path, required=True, help="Unix socket to listen on")
    runner.add_argument(
        "--jobs-root",
        type=Path,
        required=True,
        help="the folder shared with the worker (its ILAB_BOT_WORK_DIR or a parent): every "
        "path ilab is given must lie in it",
    )


def _add_onboarding_parsers(sub: Any) -> None:
    app = sub.add_parser("app", help="register the bot's GitHub App (manifest flow)")
    app_sub = app.add_subparsers(dest="app_command", required=True, metavar="ACTION")
    create = app_sub.add_parser(
        "create", help="open a local page that registers the App and writes .env (0600)"
    )
    create.add_argument("--name", default=DEFAULT_APP_NAME, help="the App's name on GitHub")
    create.add_argument("--org", default=None, help="register it for this organization")
    create.add_argument(
        "--github-url", default=None, help="GitHub's website (default ILAB_BOT_GITHUB_GIT_URL)"
    )
    create.add_argument(
        "--api-url",
        default=None,
        help="GitHub's API (default: api.github.com, or <github-url>/api/v3 for Enterprise)",
    )
    create.add_argument("--public-url", default=None, help="default ILAB_BOT_PUBLIC_URL")
    create.add_argument("--webhook-url", default=None, help="e.g. a relay channel's URL")
    create.add_argument("--env-file", type=Path, default=Path(".env"))
    create.add_argument("--key-file", type=Path, default=None, help="key to this file (0600)")
    create.add_argument("--force", action="store_true", help="replace existing files")
    create.add_argument("--port", type=int, default=0, help="local page's port (default: any)")
    relay = sub.add_parser(
        "relay", help="replay webhooks from a smee.io-style channel to a local server"
    )
    relay.add_argument("channel", help="the channel URL, e.g. https://smee.io/abc123")
    relay.add_argument(
        "--target", default=None, help="default http://127.0.0.1:<PORT>/api/github/hook"
    )
    doctor = sub.add_parser("doctor", help="check the configuration and every service it names")
    doctor.add_argument("--role", choices=("server", "worker", "all"), default="all")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ilab-runner":
        return start_ilab_runner(args.socket, args.jobs_root)
    before_app = args.command in ("app", "relay")
    try:
        settings = load_settings(
            require_github=args.command not in ("replay", "dlq") and not before_app,
            require_secret=not before_app,
        )
    except SettingsError as exc:
        if args.command == "doctor":
            print("\n".join(doctor_text.settings_problem(p) for p in exc.problems))
            return 1
        print(f"instruct-lab-bot: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.secrets())
    if args.command in ("app", "relay"):
        try:
            if args.command == "app":
                return asyncio.run(create_app(settings, args))
            return asyncio.run(relay(settings, args.channel, args.target))
        except KeyboardInterrupt:
            return 130
    if args.command == "doctor":
        return asyncio.run(doctor(settings, args.role))
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
    import structlog
    from aiohttp import web

    from instruct_lab_bot.adapters.tracing import configure_tracing
    from instruct_lab_bot.services.doctor import startup_preflight
    from instruct_lab_bot.services.server import create_app
    from instruct_lab_bot.services.serving import open_serving_backend

    if not asyncio.run(startup_preflight(settings, "server")):
        print("instruct-lab-bot: server not started: see preflight.failed", file=sys.stderr)
        return 2
    configure_tracing("instruct-lab-bot-server")
    announce = doctor_text.listening(settings.host, settings.port, settings.public_url)
    web.run_app(
        create_app(settings, dispatcher=dispatcher, serving=open_serving_backend),
        host=settings.host,
        port=settings.port,
        print=lambda _: structlog.get_logger(__name__).info(announce),
        shutdown_timeout=30,
    )
    return 0


def start_worker(settings: Settings, concurrency: int, metrics_port: int) -> int:
    """The worker process: not dumpable (its secrets stay out of /proc), ilab sandboxed."""
    from instruct_lab_bot.adapters.sandbox import SandboxUnavailable, set_non_dumpable
    from instruct_lab_bot.core.ilab import UnsupportedIlab

    set_non_dumpable()
    if settings.sandbox == "runner":
        os.umask(0o002)  # the runner (another uid, same group) writes in the job folders
    try:
        return asyncio.run(run_worker(settings, concurrency, metrics_port))
    except (SandboxUnavailable, UnsupportedIlab) as exc:
        print(f"instruct-lab-bot: worker not started: {exc}", file=sys.stderr)
        return 2


async def run_worker(settings: Settings, concurrency: int, metrics_port: int = 0) -> int:
    import structlog

    from instruct_lab_bot.adapters.processes import become_subreaper
    from instruct_lab_bot.adapters.tracing import configure_tracing
    from instruct_lab_bot.services.doctor import startup_preflight
    from instruct_lab_bot.services.metrics import WorkerMetrics, serve_metrics
    from instruct_lab_bot.services.worker.app import open_worker

    if not await startup_preflight(settings, "worker"):
        print("instruct-lab-bot: worker not started: see preflight.failed", file=sys.stderr)
        return 2
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


def start_ilab_runner(socket: Path, jobs_root: Path) -> int:
    """The ilab runner: refuses to start with any of the bot's secrets in its environment."""
    from instruct_lab_bot.adapters.processes import become_subreaper
    from instruct_lab_bot.adapters.sandbox import limits_of
    from instruct_lab_bot.core.settings import parse_runner_settings
    from instruct_lab_bot.services.ilab_runner import (
        RunnerConfig,
        RunnerRefusesToStart,
        check_environment,
    )

    try:
        check_environment(os.environ)
        settings = parse_runner_settings(os.environ)
        logs.configure(settings.log_format, ())
        become_subreaper()  # ilab's orphans re-parent here, so each run's end finds them
        os.umask(0o002)  # what ilab writes stays writable for the worker (same group)
        config = RunnerConfig(
            ilab_command=settings.ilab_command,
            jobs_root=jobs_root.resolve(),
            allow_env=settings.ilab_env,
            limits=limits_of(settings),
            path=os.environ.get("PATH", os.defpath),
        )
        return asyncio.run(run_ilab_runner(config, socket))
    except (RunnerRefusesToStart, SettingsError) as exc:
        print(f"instruct-lab-bot: ilab runner not started: {exc}", file=sys.stderr)
        return 2


async def run_ilab_runner(config: RunnerConfig, socket: Path) -> int:
    from instruct_lab_bot.services.ilab_runner import serve_runner

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve_runner(config, socket):
        await stop.wait()
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


async def create_app(settings: Settings, args: argparse.Namespace) -> int:
    """`app create`: the manifest flow; prints where to go and where things went, no secret."""
    from instruct_lab_bot.services.app_setup import (
        AppSetupError,
        AppSetupOptions,
        create_github_app,
    )

    github_url = (args.github_url or settings.github_git_url).rstrip("/")
    api_url = args.api_url or (
        settings.github_api_url
        if args.github_url is None or github_url == "https://github.com"
        else f"{github_url}/api/v3"
    )
    options = AppSetupOptions(
        github_url=github_url,
        api_url=api_url,
        public_url=args.public_url or settings.public_url,
        env_path=args.env_file,
        name=args.name,
        org=args.org,
        webhook_url=args.webhook_url,
        teams=bool(settings.allowed_teams),
        key_file=args.key_file,
        force=args.force,
        port=args.port,
    )
    try:
        creds = await create_github_app(
            options, lambda url: print(f"Open {url} in a browser on this machine.", flush=True)
        )
    except (AppSetupError, ValueError) as exc:
        print(f"instruct-lab-bot: app create: {exc}", file=sys.stderr)
        return 1
    print(
        f"App {creds.slug or creds.app_id} (id {creds.app_id}) registered; "
        f"credentials written to {args.env_file} (mode 0600)."
    )
    return 0


async def doctor(settings: Settings, role: str) -> int:
    """`doctor`: one line per check, a fix for each failure; non-zero when any failed."""
    from instruct_lab_bot.core.preflight import report
    from instruct_lab_bot.services.doctor import run_checks

    text, ok = report(await run_checks(settings, role))
    print(text)
    return 0 if ok else 1


async def relay(settings: Settings, channel: str, target: str | None) -> int:
    """`relay`: smee.io-style channel → this machine's webhook endpoint, until interrupted."""
    from instruct_lab_bot.services.relay import run_relay

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    await run_relay(channel, target or f"http://{host}:{settings.port}/api/github/hook")
    return 0


if __name__ == "__main__":
    sys.exit(main())
