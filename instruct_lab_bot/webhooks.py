"""Webhook deliveries → intents (pure).

The signature is checked on the raw bytes before anything is parsed, so an unsigned body never
reaches the JSON parser. Classification keeps only the fields later stages need: the stream
entry is small, and nothing downstream re-reads an untrusted payload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from .commands import Command, parse_commands

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_DELIVERY = re.compile(r"[A-Za-z0-9-]{1,100}")
_EVENT = re.compile(r"[a-z_]{1,64}")


class WebhookError(Exception):
    """A delivery the bot refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Delivery:
    event: str
    delivery_id: str
    payload: dict[str, Any]


def verify_signature(body: bytes, header: str | None, secret: bytes) -> None:
    """Constant-time HMAC-SHA256 check of `X-Hub-Signature-256`."""
    if not header:
        raise WebhookError(401, "missing X-Hub-Signature-256 header")
    match = _SIGNATURE.fullmatch(header.strip())
    if not match:
        raise WebhookError(400, "malformed X-Hub-Signature-256 header (expected sha256=<hex>)")
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match.group(1).lower()):
        raise WebhookError(401, "signature does not match the payload")


def sign(body: bytes, secret: bytes) -> str:
    """The header value GitHub would send; used by `replay` and the tests."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def parse_delivery(
    body: bytes,
    *,
    event: str | None,
    delivery_id: str | None,
    signature: str | None,
    secret: bytes,
) -> Delivery:
    """Verify, then parse. Raises `WebhookError` with the status to answer."""
    if not event or not _EVENT.fullmatch(event):
        raise WebhookError(400, "missing or malformed X-GitHub-Event header")
    if not delivery_id or not _DELIVERY.fullmatch(delivery_id):
        raise WebhookError(400, "missing or malformed X-GitHub-Delivery header")
    verify_signature(body, signature, secret)
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookError(400, f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookError(400, "body is not a JSON object")
    return Delivery(event, delivery_id, payload)


@dataclass(frozen=True)
class CommandIntent:
    """Commands from one new PR comment, with what is needed to act on them."""

    installation_id: int
    owner: str
    repo: str
    pr_number: int
    comment_id: int
    requester: str
    author_association: str
    commands: tuple[Command, ...]

    kind = "commands"

    def to_json(self) -> str:
        data = asdict(self)
        data["commands"] = [asdict(c) for c in self.commands]
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CommandIntent:
        data = json.loads(text)
        data["commands"] = tuple(
            Command(name=c["name"], args=tuple(c["args"]), line=c["line"]) for c in data["commands"]
        )
        return cls(**data)


Intent = CommandIntent


def _get(payload: dict[str, Any], *path: str) -> Any:
    node: Any = payload
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise WebhookError(400, f"payload lacks {'.'.join(path)}")
        node = node[part]
    return node


def _typed(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WebhookError(400, f"payload field {name} has the wrong type")
    return value


def classify(delivery: Delivery, username: str) -> Intent | None:
    """What the bot should do about a delivery; None means nothing (answer 2xx, queue nothing)."""
    if delivery.event == "issue_comment":
        return _classify_comment(delivery.payload, username)
    return None


def _classify_comment(payload: dict[str, Any], username: str) -> CommandIntent | None:
    if payload.get("action") != "created":
        return None
    issue = _get(payload, "issue")
    if not isinstance(issue, dict) or not issue.get("pull_request"):
        return None  # a plain issue, not a PR
    comment = _get(payload, "comment")
    user = _get(payload, "comment", "user")
    if not isinstance(user, dict) or user.get("type") == "Bot":
        return None
    body = comment.get("body") if isinstance(comment, dict) else None
    if not isinstance(body, str):
        return None
    commands = parse_commands(body, username)
    if not commands:
        return None
    installation = payload.get("installation")
    if not isinstance(installation, dict):
        raise WebhookError(400, "payload lacks installation (is this a GitHub App webhook?)")
    return CommandIntent(
        installation_id=_typed(installation.get("id"), int, "installation.id"),
        owner=_typed(_get(payload, "repository", "owner", "login"), str, "repository.owner.login"),
        repo=_typed(_get(payload, "repository", "name"), str, "repository.name"),
        pr_number=_typed(_get(payload, "issue", "number"), int, "issue.number"),
        comment_id=_typed(_get(payload, "comment", "id"), int, "comment.id"),
        requester=_typed(user.get("login"), str, "comment.user.login"),
        author_association=str(comment.get("author_association", "NONE")),
        commands=tuple(commands),
    )
