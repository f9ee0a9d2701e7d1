"""GitHub's App manifest flow for the emulator: the web form and what the conversion checks.

The web half (`POST /settings/apps/new?state=…` with a `manifest` form field, answered by a
redirect to the manifest's `redirect_url` with `?code=…&state=…`) is GitHub's website, not its
REST API, so the OpenAPI description does not cover it; the emulator checks the manifest with
GitHub's documented rules instead: the fields it requires, permission names and levels from
the description's own `app-permissions` schema, and each subscribed event's permission
(GitHub refuses an event whose permission the App lacks).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from testkit.openapi import OpenAPISpec

# docs.github.com "Webhook events and payloads": the permission each event needs.
EVENT_PERMISSIONS: Mapping[str, str] = {
    "check_run": "checks",
    "check_suite": "checks",
    "issue_comment": "issues",
    "issues": "issues",
    "pull_request": "pull_requests",
    "pull_request_review": "pull_requests",
    "push": "contents",
    "status": "statuses",
}
NOT_SUBSCRIBABLE = frozenset(
    {"installation", "installation_repositories", "github_app_authorization"}
)


@dataclass
class ManifestFlow:
    """Codes handed out by the form, each good for one conversion."""

    spec: OpenAPISpec
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)

    def problems(self, manifest: Any) -> list[str]:
        """What GitHub's form would refuse about this manifest (empty: accepted)."""
        if not isinstance(manifest, dict):
            return ["the manifest is not a JSON object"]
        found = [f"{key} is required" for key in ("url",) if not manifest.get(key)]
        for key in ("url", "redirect_url"):
            if key in manifest and urlsplit(str(manifest[key])).scheme not in ("http", "https"):
                found.append(f"{key} must be an http(s) URL")
        hook = manifest.get("hook_attributes")
        if not isinstance(hook, dict) or not str(hook.get("url", "")).startswith("http"):
            found.append("hook_attributes.url is required")
        perms = manifest.get("default_permissions") or {}
        schema = self.spec.schema("app-permissions")["properties"]
        for name, level in perms.items():
            allowed = schema.get(name, {}).get("enum")
            if allowed is None or level not in allowed:
                found.append(f"default_permissions.{name}: {level!r} is not a permission level")
        for event in manifest.get("default_events") or []:
            needed = EVENT_PERMISSIONS.get(event)
            if event in NOT_SUBSCRIBABLE or needed is None:
                found.append(f"default_events: {event!r} cannot be subscribed to")
            elif needed not in perms:
                found.append(f"default_events: {event!r} needs the {needed} permission")
        return found

    def submit(self, form_manifest: str, state: str | None) -> tuple[int, str]:
        """The form's POST: (302, redirect URL with the code) or (422, why)."""
        try:
            manifest = json.loads(form_manifest)
        except ValueError:
            return 422, "the manifest is not JSON"
        problems = self.problems(manifest)
        if problems:
            return 422, "; ".join(problems)
        self.received.append(manifest)
        code = secrets.token_hex(10)
        self.pending[code] = manifest
        query = {"code": code, **({"state": state} if state is not None else {})}
        target = manifest.get("redirect_url") or manifest["url"]
        return 302, f"{target}?{urlencode(query)}"

    def take(self, code: str) -> dict[str, Any] | None:
        """The manifest a code stands for, once (a code converts once)."""
        return self.pending.pop(code, None)
