"""One HTTP exchange with GitHub over gidgethub: the request as a value, the response kept
with its headers, and every response reported to the metrics hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import gidgethub.aiohttp
import structlog

from instruct_lab_bot import __version__

log = structlog.get_logger(__name__)
USER_AGENT = f"instruct-lab-bot/{__version__}"
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})

ResponseHook = Callable[[str, int | None, Mapping[str, str]], None]
"""Called as `hook(route_template, status, headers)`; status None when no response came."""


@dataclass(frozen=True)
class ApiCall:
    """One GitHub call: `what` names it in messages ("comment on the pull request"), `url`
    is a URI template filled from `url_vars`, `data` the JSON body of a write."""

    what: str
    method: str
    url: str
    url_vars: Mapping[str, Any]
    data: Any = None

    @property
    def route(self) -> str:
        """The template without its query part: a low-cardinality label for metrics."""
        return self.url.split("{?", 1)[0].replace("{+", "{")


@dataclass(frozen=True)
class Response:
    data: Any
    headers: Mapping[str, str]


class RecordingAPI(gidgethub.aiohttp.GitHubAPI):
    """gidgethub's aiohttp binding, keeping the last status and headers (gidgethub's errors
    do not always carry headers) and reporting each response to the metrics hook."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, route: str, hook: ResponseHook | None
    ) -> None:
        super().__init__(session, USER_AGENT, base_url=base_url)
        self.route = route
        self.hook = hook
        self.status: int | None = None
        self.headers: Mapping[str, str] = {}

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            status, got, data = await super()._request(method, url, headers, body)
        except BaseException:
            self._report(None, {})
            raise
        self.status, self.headers = status, got
        self._report(status, got)
        return status, got, data

    def _report(self, status: int | None, headers: Mapping[str, str]) -> None:
        if self.hook is None:
            return
        try:
            self.hook(self.route, status, headers)
        except Exception:  # metrics must never break a GitHub call
            log.exception("github.response_hook_failed", route=self.route)


async def dispatch(api: RecordingAPI, call: ApiCall, jwt: str | None, token: str | None) -> Any:
    """Send `call` with gidgethub's method for its verb; the JSON answer (None for DELETE)."""
    url, url_vars, data = call.url, call.url_vars, call.data
    if call.method == "GET":
        return await api.getitem(url, url_vars, jwt=jwt, oauth_token=token)
    if call.method == "POST":
        return await api.post(url, url_vars, data=data, jwt=jwt, oauth_token=token)
    if call.method == "PATCH":
        return await api.patch(url, url_vars, data=data, jwt=jwt, oauth_token=token)
    if call.method == "PUT":
        return await api.put(url, url_vars, data=data, jwt=jwt, oauth_token=token)
    await api.delete(url, url_vars, data=data or b"", jwt=jwt, oauth_token=token)
    return None
