"""The ceiling for any aiohttp webhook: read the body, answer 202. Nothing else.

Usage: python -m bench.bare_server PORT
"""

from __future__ import annotations

import sys

from aiohttp import web


async def hook(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202)


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post("/api/github/hook", hook)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
