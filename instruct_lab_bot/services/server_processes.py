"""Running the webhook server: one process, or `--workers N` processes on one port.

With N > 1 the server forks N processes that each bind the port with SO_REUSEPORT (the kernel
spreads new connections among them), each with its own event loop, Redis pool and dispatcher
task (issue 17: ingest scales with cores). Each keeps its own /metrics: a scrape sees one.
"""

from __future__ import annotations

import contextlib
import os
import signal

from instruct_lab_bot.core.messages import doctor as doctor_text
from instruct_lab_bot.core.settings import Settings


def serve(settings: Settings, *, dispatcher: bool, workers: int) -> int:
    if workers > 1:
        return _serve_in_processes(settings, dispatcher, workers)
    _serve(settings, dispatcher, reuse_port=False)
    return 0


def _serve(settings: Settings, dispatcher: bool, *, reuse_port: bool) -> None:
    import structlog
    from aiohttp import web

    from instruct_lab_bot.adapters.tracing import configure_tracing
    from instruct_lab_bot.services.server import create_app
    from instruct_lab_bot.services.serving import open_serving_backend

    configure_tracing("instruct-lab-bot-server")
    announce = doctor_text.listening(settings.host, settings.port, settings.public_url)
    web.run_app(
        create_app(settings, dispatcher=dispatcher, serving=open_serving_backend),
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port,
        print=lambda _: structlog.get_logger(__name__).info(announce),
        shutdown_timeout=30,
        access_log=None,  # no line per request (issue 17); the webhook metrics count them
    )


def _serve_in_processes(settings: Settings, dispatcher: bool, workers: int) -> int:
    """`workers` forked server processes on one port (SO_REUSEPORT: the kernel spreads the
    connections), each with its own event loop and dispatcher task. The parent forwards
    SIGTERM/SIGINT; when one process ends, the others are stopped too (a supervisor restarts
    the whole). Each process keeps its own /metrics (a scrape sees one of them)."""
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns here
            code = 1
            try:
                _serve(settings, dispatcher, reuse_port=True)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)

    def forward(sig: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    pid, status = os.wait()
    first = os.waitstatus_to_exitcode(status)
    children.remove(pid)
    forward(signal.SIGTERM, None)
    for child in children:
        os.waitpid(child, 0)
    return first
