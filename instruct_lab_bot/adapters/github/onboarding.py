"""App-level calls made before the bot runs: the manifest conversion and preflight checks.

Neither goes through `GitHubApp.request`: the conversion has no App yet (the one-time code is
its credential, and a code converts once, so it is never retried), and preflight wants the
plain answer of one attempt to explain it to an admin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import gidgethub.apps

from instruct_lab_bot.adapters.github.errors import GitHubError
from instruct_lab_bot.adapters.github.rate_limits import rate_limit_wait

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"


async def convert_manifest_code(
    session: aiohttp.ClientSession, api_url: str, code: str, *, limit: float = 30.0
) -> dict[str, Any]:
    """`POST /app-manifests/{code}/conversions`: the new App, its key and webhook secret."""
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    headers = {"Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION}
    try:
        async with session.post(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=limit)
        ) as response:
            if response.status != 201:
                raise GitHubError(
                    f"GitHub refused the manifest code: HTTP {response.status} "
                    "(codes expire after an hour and convert once: run `app create` again)",
                    status=response.status,
                )
            data = await response.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GitHubError(f"GitHub unreachable: {type(exc).__name__}", transient=True) from exc
    if not isinstance(data, dict):
        raise GitHubError("GitHub's answer to the conversion is not an object")
    return data


def app_jwt(app_id: str, private_key: str) -> str:
    """A signed App JWT; `ValueError` with the reason when the key does not parse."""
    try:
        return str(gidgethub.apps.get_jwt(app_id=app_id, private_key=private_key))
    except Exception as exc:  # cryptography/pyjwt raise several types for a bad key
        raise ValueError(f"the private key does not parse ({type(exc).__name__})") from None


async def get_app(
    session: aiohttp.ClientSession, api_url: str, jwt: str, *, limit: float = 30.0
) -> dict[str, Any]:
    """`GET /app` as the App: proves GitHub accepts the id and key together."""
    headers = {
        "Accept": ACCEPT,
        "X-GitHub-Api-Version": API_VERSION,
        "Authorization": f"Bearer {jwt}",
    }
    try:
        async with session.get(
            f"{api_url.rstrip('/')}/app",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=limit),
        ) as response:
            if response.status != 200:
                raise GitHubError(
                    f"HTTP {response.status}",
                    status=response.status,
                    transient=await _passing(response),
                )
            data = await response.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GitHubError(f"unreachable: {type(exc).__name__}", transient=True) from exc
    return data if isinstance(data, dict) else {}


async def _passing(response: aiohttp.ClientResponse) -> bool:
    """A refusal that says nothing about the key: GitHub down (5xx) or a rate limit (a 403
    with `retry-after` or a rate-limit message, 429)."""
    if response.status >= 500 or response.status == 408:
        return True
    if response.status not in (403, 429):
        return False
    text = (await response.text(errors="replace"))[:2000]
    return rate_limit_wait(response.status, dict(response.headers), text) is not None
