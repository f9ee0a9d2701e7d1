"""The GitHub App manifest the bot registers itself with, and what the conversion gives back.

GitHub's manifest flow (docs.github.com "Registering a GitHub App from a manifest"): a form
POSTs the manifest to `<github>/settings/apps/new?state=…` (or an organization's
`/organizations/<org>/settings/apps/new`), the admin confirms, GitHub redirects to the
manifest's `redirect_url` with `?code=…&state=…`, and `POST /app-manifests/{code}/conversions`
trades the code (valid one hour, once) for the App's id, private key and webhook secret.

The permissions are exactly what the code calls (listed per call in the README, "Registering
the GitHub App"): check runs (write), PR comments and 👀 reactions (issues,
write: GitHub files PR conversations under issues), the PR and its files (pull requests,
read: the bot never edits a PR), the taxonomy's contents (read), and, only when
`ILAB_BOT_ALLOWED_TEAMS` is set, team membership (members, read).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from instruct_lab_bot.core.settings import PREFIX, Secret

WEBHOOK_PATH = "/api/github/hook"
CALLBACK_PATH = "/callback"
DEFAULT_APP_NAME = "instructlab-bot"

BASE_PERMISSIONS: Mapping[str, str] = {
    "checks": "write",  # instruct-lab-bot/generate and /validate check runs
    "contents": "read",  # changed files, qna.yaml contents, git fetch of the PR head
    "issues": "write",  # comments and 👀 reactions on PR conversations
    "metadata": "read",  # always granted; listed so the manifest says it
    "pull_requests": "read",  # the PR, its head, its files and labels (read, never written)
}
TEAM_PERMISSIONS: Mapping[str, str] = {"members": "read"}  # team membership checks
# `installation` events reach every App without subscribing (GitHub refuses them here).
EVENTS: tuple[str, ...] = ("check_run", "issue_comment", "pull_request")
_ORG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_STATE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def permissions(*, teams: bool) -> dict[str, str]:
    """The App's permissions; `members: read` only when team gates are configured."""
    return {**BASE_PERMISSIONS, **(TEAM_PERMISSIONS if teams else {})}


def manifest(
    *, name: str, public_url: str, webhook_url: str, redirect_url: str, teams: bool
) -> dict[str, Any]:
    """The manifest GitHub reads from the form (a private App: only its owner installs it)."""
    return {
        "name": name,
        "url": public_url,
        "description": "Runs InstructLab data generation for taxonomy pull requests.",
        "hook_attributes": {"url": webhook_url, "active": True},
        "redirect_url": redirect_url,
        "public": False,
        "default_permissions": permissions(teams=teams),
        "default_events": list(EVENTS),
    }


def new_app_url(github_url: str, org: str | None, state: str) -> str:
    """Where the form posts: github.com or an Enterprise Server, a user's or an org's App."""
    if org is not None and not _ORG.match(org):
        raise ValueError(f"not an organization name: {org!r}")
    base = github_url.rstrip("/")
    where = f"/organizations/{quote(org)}" if org else ""
    return f"{base}{where}/settings/apps/new?{urlencode({'state': state})}"


def check_callback(query: Mapping[str, str], state: str) -> str:
    """The code from GitHub's redirect, after checking that it answers our own form."""
    if not _STATE.match(state) or query.get("state") != state:
        raise ValueError("the state parameter does not match this session's (a forged request?)")
    code = query.get("code", "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", code):
        raise ValueError("GitHub's redirect carried no usable code")
    return code


@dataclass(frozen=True)
class AppCredentials:
    """What the conversion returns that the bot needs; secrets held as `Secret`."""

    app_id: str
    slug: str
    html_url: str
    private_key: Secret
    webhook_secret: Secret

    @classmethod
    def from_conversion(cls, data: Mapping[str, Any]) -> AppCredentials:
        app_id, pem, secret = data.get("id"), data.get("pem"), data.get("webhook_secret")
        if not isinstance(app_id, int) or not isinstance(pem, str) or "PRIVATE KEY" not in pem:
            raise ValueError("GitHub's answer lacks the App id or private key")
        if not isinstance(secret, str) or not secret:
            raise ValueError("GitHub's answer lacks the webhook secret")
        return cls(
            app_id=str(app_id),
            slug=str(data.get("slug") or ""),
            html_url=str(data.get("html_url") or ""),
            private_key=Secret(pem),
            webhook_secret=Secret(secret),
        )


def env_lines(creds: AppCredentials, *, key_file: str | None) -> str:
    """The `.env` text: the key inline (one line, `\\n`-escaped) or as a file's path."""
    lines = [f"{PREFIX}GITHUB_APP_ID={creds.app_id}"]
    if key_file is not None:
        lines.append(f"{PREFIX}GITHUB_PRIVATE_KEY_FILE={key_file}")
    else:
        escaped = creds.private_key.value.strip().replace("\n", "\\n")
        lines.append(f'{PREFIX}GITHUB_PRIVATE_KEY="{escaped}"')
    lines.append(f"{PREFIX}WEBHOOK_SECRET={creds.webhook_secret.value}")
    return "\n".join(lines) + "\n"
