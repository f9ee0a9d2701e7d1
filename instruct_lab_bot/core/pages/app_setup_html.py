"""The pages `instruct-lab-bot app create` serves on loopback (pure): the form that posts the
App manifest to GitHub, and the page shown once the App's credentials are written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import urlsplit

from instruct_lab_bot.core.app_manifest import AppCredentials


def form_page(action: str, manifest_json: Mapping[str, Any]) -> str:
    """The local page: one button that posts the manifest to GitHub (no script needed)."""
    value = escape(json.dumps(manifest_json), quote=True)
    host = escape(urlsplit(action).netloc)
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<title>Register instruct-lab-bot</title>"
        "<body style='font:16px system-ui;max-width:40em;margin:2em auto'>"
        "<h1>Register the bot's GitHub App</h1>"
        f"<p>This posts the App's manifest to <b>{host}</b>. Confirm there; GitHub then sends "
        "you back here and the App's id, key and webhook secret are written to your "
        "<code>.env</code> (never shown).</p>"
        f"<form method=post action='{escape(action, quote=True)}'>"
        f"<input type=hidden name=manifest value='{value}'>"
        "<button type=submit id=register>Register on GitHub</button></form></body></html>"
    )


def done_page(creds: AppCredentials, env_path: str) -> str:
    """Shown after the conversion: where things went and what to do next (no secret)."""
    link = escape(creds.html_url, quote=True)
    where = f" from <a href='{link}'>its page</a>" if creds.html_url else ""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>App registered</title>"
        "<body style='font:16px system-ui;max-width:40em;margin:2em auto'>"
        f"<h1>App {escape(creds.slug)} registered</h1>"
        f"<p>Its id, private key and webhook secret are in <code>{escape(env_path)}</code> "
        f"(mode 0600). Next: install it on your taxonomy repository{where}, then run "
        "<code>instruct-lab-bot doctor</code>.</p><p>You can close this tab.</p></body></html>"
    )


def error_page(message: str) -> str:
    """Shown when the redirect is refused or the conversion fails (the reason, no secret)."""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>App not registered</title>"
        "<body style='font:16px system-ui;max-width:40em;margin:2em auto'>"
        f"<h1>The App was not registered</h1><p>{escape(message)}</p></body></html>"
    )
