"""Webhook deliveries → intents (pure).

The signature is checked on the raw bytes before anything is parsed, so an unsigned body never
reaches the JSON parser. Classification keeps only the fields later stages need: the stream
entry is small, and nothing downstream re-reads an untrusted payload.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import orjson

from instruct_lab_bot.core.comment_parser import Command, parse_commands

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_DELIVERY = re.compile(r"[A-Za-z0-9-]{1,100}")
_EVENT = re.compile(r"[a-z_]{1,64}")
T = TypeVar("T")


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


def signature_digest(header: str | None) -> str:
    """The hex digest of a well-formed `X-Hub-Signature-256`; 401 when it is missing or
    malformed (checked before the body is read, so an unsigned body is never read or hashed)."""
    if not header:
        raise WebhookError(401, "missing X-Hub-Signature-256 header")
    match = _SIGNATURE.fullmatch(header.strip())
    if not match:
        raise WebhookError(401, "malformed X-Hub-Signature-256 header (expected sha256=<hex>)")
    return match.group(1).lower()


def verify_signature(body: bytes, header: str | None, secret: bytes) -> None:
    """Constant-time HMAC-SHA256 check of `X-Hub-Signature-256`."""
    digest = signature_digest(header)
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest):
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
    event, delivery_id = check_delivery(
        body, event=event, delivery_id=delivery_id, signature=signature, secret=secret
    )
    return Delivery(event, delivery_id, parse_payload(body))


def check_delivery(
    body: bytes,
    *,
    event: str | None,
    delivery_id: str | None,
    signature: str | None,
    secret: bytes,
) -> tuple[str, str]:
    """Headers and signature, nothing parsed: the verified (event, delivery id)."""
    checked = check_headers(event=event, delivery_id=delivery_id, signature=signature)
    verify_signature(body, signature, secret)
    return checked


def check_headers(
    *, event: str | None, delivery_id: str | None, signature: str | None
) -> tuple[str, str]:
    """The headers alone, before any of the body is read: (event, delivery id)."""
    if not event or not _EVENT.fullmatch(event):
        raise WebhookError(400, "missing or malformed X-GitHub-Event header")
    if not delivery_id or not _DELIVERY.fullmatch(delivery_id):
        raise WebhookError(400, "missing or malformed X-GitHub-Delivery header")
    signature_digest(signature)
    return event, delivery_id


def parse_payload(body: bytes) -> dict[str, Any]:
    """A verified body as a JSON object (orjson: UTF-8 only, as GitHub sends)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookError(400, f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookError(400, "body is not a JSON object")
    return payload


#: Events `classify` can turn into an intent (plus `ping`, answered "pong").
HANDLED_EVENTS = frozenset({"issue_comment", "pull_request", "check_run", "ping"})
# GitHub serialises `action` first; only that leading key is trusted without parsing.
_LEADING_ACTION = re.compile(rb'\s*\{\s*"action"\s*:\s*"([a-z_]{1,40})"')
# `b"\\u" in body` took ~35 µs on a 10 KB body (CPython's search for a 2-byte needle); a
# memchr for the backslash first, then this regex, answer the same in ~1 / ~17 µs.
_ESCAPE_U = re.compile(rb"\\u")
# What could hide a mention from a plain byte search: any \u escape, and the non-ASCII
# letters that `re.IGNORECASE` matches to ASCII ones (U+0130, U+0131 ~ i; U+017F ~ s;
# U+212A ~ k), raw in UTF-8.
_DISGUISES = (b"\xc4\xb0", b"\xc4\xb1", b"\xc5\xbf", b"\xe2\x84\xaa")


def skip_unparsed(
    body: bytes, event: str, username: str, aliases: Sequence[str] = ()
) -> str | None:
    """For a verified delivery that surely classifies to "nothing to do": its action (the
    metrics label, "" if unknown), so the caller answers without parsing. None: parse it.

    Most traffic is events the bot ignores and comments that do not mention it; deciding on
    the raw bytes saves the JSON parse. Only bodies shaped like an object (`{...}`) skip, so
    the usual malformed bodies still get their 400, but malformed JSON *inside* an ignored
    event's braces is answered 202 unnoticed: harmless, as nothing is stored or acted on.
    """
    stripped = body.strip()
    if not (stripped.startswith(b"{") and stripped.endswith(b"}")) or event == "ping":
        return None
    leading = _LEADING_ACTION.match(body)
    action = leading.group(1).decode() if leading else ""
    if event not in HANDLED_EVENTS:
        return action
    if not leading:
        return None  # unusual shape: let the parser and `classify` decide
    if event == "pull_request":
        return action if action not in PR_ACTIONS else None
    if event == "check_run":
        return action if action not in CHECK_RUN_ACTIONS else None
    if action != "created":
        return action  # an edited or deleted comment never runs a command
    names = (username, *aliases)
    lowered = body.lower()
    if not all(n.isascii() for n in names) or (b"\\" in body and _ESCAPE_U.search(body)):
        return None
    if any(n.lower().encode() in lowered for n in names):
        return None
    if not body.isascii() and any(disguise in body for disguise in _DISGUISES):
        return None  # (byte searches: a regex alternation here cost more than the parse)
    return action


@dataclass(frozen=True)
class _Intent:
    """Common to every intent: where it happened and who asked."""

    installation_id: int
    owner: str
    repo: str
    sender: str

    kind: ClassVar[str] = ""

    def to_json(self) -> str:
        return orjson.dumps(self).decode()


@dataclass(frozen=True)
class CommandIntent(_Intent):
    """Commands from one new comment, with what is needed to act on them."""

    pr_number: int
    comment_id: int
    author_association: str
    commands: tuple[Command, ...]
    on_pull_request: bool = True
    truncated: bool = False  # more commands than the bot takes from one comment
    default_branch: str = ""  # where the repository's own configuration is read from

    kind: ClassVar[str] = "commands"

    @property
    def requester(self) -> str:
        return self.sender


@dataclass(frozen=True)
class PullRequestIntent(_Intent):
    """A PR opened, reopened, pushed to, labelled or closed."""

    action: str
    pr_number: int
    head_sha: str
    head_ref: str
    base_branch: str
    author: str
    labels: tuple[str, ...]
    private: bool = False
    default_branch: str = ""

    kind: ClassVar[str] = "pull_request"


@dataclass(frozen=True)
class CheckRunIntent(_Intent):
    """ "Re-run" or an action button on one of the bot's check runs."""

    action: str
    check_run_id: int
    external_id: str
    name: str
    identifier: str
    head_sha: str
    pr_numbers: tuple[int, ...]
    default_branch: str = ""

    kind: ClassVar[str] = "check_run"


Intent = CommandIntent | PullRequestIntent | CheckRunIntent
_KINDS: dict[str, type[_Intent]] = {
    c.kind: c for c in (CommandIntent, PullRequestIntent, CheckRunIntent)
}


def intent_from_json(kind: str, text: str) -> Intent:
    """The intent stored in a stream entry by `Intent.to_json`."""
    data = orjson.loads(text)
    if kind == CommandIntent.kind:
        data["commands"] = tuple(
            Command(c["name"], tuple(c["args"]), c["line"], bool(c.get("legacy", False)))
            for c in data["commands"]
        )
    for key in ("labels", "pr_numbers"):
        if key in data:
            data[key] = tuple(data[key])
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown intent kind {kind!r}")
    return cls(**data)  # type: ignore[return-value]


def _get(payload: dict[str, Any], *path: str) -> Any:
    node: Any = payload
    for number, part in enumerate(path):
        if not isinstance(node, dict):
            where = ".".join(path[:number])
            raise WebhookError(400, f"payload field {where} must be an object, not {_kind(node)}")
        if part not in node:
            raise WebhookError(400, f"payload lacks {'.'.join(path)}")
        node = node[part]
    return node


def _kind(value: object) -> str:
    """A JSON type name for error messages (never the value: it is untrusted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list", bool: "a boolean"}


def _typed(value: Any, kind: type[T], name: str) -> T:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise WebhookError(
            400,
            f"payload field {name} must be {_NAMES.get(kind, kind.__name__)}, not {_kind(value)}",
        )
    return value


def _field(payload: dict[str, Any], path: str, kind: type[T]) -> T:
    """The required field at a dotted `path`, of type `kind`, or a 400 saying what is wrong."""
    return _typed(_get(payload, *path.split(".")), kind, path)


def _optional(payload: dict[str, Any], path: str, kind: type[T], default: T) -> T:
    """An optional field: `default` when it (or an object on its path) is absent or null,
    a 400 when it is there with the wrong type."""
    node: Any = payload
    parts = path.split(".")
    for number, part in enumerate(parts):
        if node is None:
            return default
        if not isinstance(node, dict):
            where = ".".join(parts[:number])
            raise WebhookError(400, f"payload field {where} must be an object, not {_kind(node)}")
        node = node.get(part)
    return default if node is None else _typed(node, kind, path)


def _default_branch(payload: dict[str, Any]) -> str:
    return _optional(payload, "repository.default_branch", str, "")


def _where(payload: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(payload.get("installation"), dict):
        raise WebhookError(400, "payload lacks installation (is this a GitHub App webhook?)")
    return {
        "installation_id": _field(payload, "installation.id", int),
        "owner": _field(payload, "repository.owner.login", str),
        "repo": _field(payload, "repository.name", str),
        "sender": _optional(payload, "sender.login", str, ""),
    }


PR_ACTIONS = frozenset({"opened", "reopened", "synchronize", "closed", "labeled"})
CHECK_RUN_ACTIONS = frozenset({"rerequested", "requested_action"})


def classify(
    delivery: Delivery,
    username: str,
    *,
    repos: frozenset[str] = frozenset(),
    command_limit: int = 10,
    aliases: Sequence[str] = (),
) -> Intent | None:
    """What the bot should do about a delivery; None means nothing (answer 2xx, queue nothing).

    `repos`, when given, is the allow-list of `owner/repo` the bot acts in. A field the bot
    needs that is missing or of the wrong type raises `WebhookError(400)`, never anything else.
    """
    payload = delivery.payload
    if repos:
        repository = payload.get("repository")
        name = repository.get("full_name") if isinstance(repository, dict) else None
        if not isinstance(name, str) or name.lower() not in repos:
            return None
    action = payload.get("action")
    if not isinstance(action, str):
        action = None
    if delivery.event == "issue_comment" and action == "created":
        return _classify_comment(payload, (username, *aliases), command_limit)
    if delivery.event == "pull_request" and action in PR_ACTIONS:
        return _classify_pull_request(payload, str(action))
    if delivery.event == "check_run" and action in CHECK_RUN_ACTIONS:
        return _classify_check_run(payload, str(action))
    return None


def _classify_comment(
    payload: dict[str, Any], names: tuple[str, ...], command_limit: int
) -> CommandIntent | None:
    user = _field(payload, "comment.user", dict)
    if user.get("type") == "Bot":
        return None
    body = _optional(payload, "comment.body", str, "")
    commands = parse_commands(body, names[0], limit=command_limit + 1, aliases=names[1:])
    if not commands:
        return None
    where = _where(payload)
    where["sender"] = _field(payload, "comment.user.login", str)
    return CommandIntent(
        **where,
        pr_number=_field(payload, "issue.number", int),
        comment_id=_field(payload, "comment.id", int),
        author_association=_optional(payload, "comment.author_association", str, "NONE"),
        commands=tuple(commands[:command_limit]),
        on_pull_request=bool(_optional(payload, "issue.pull_request", dict, {})),
        truncated=len(commands) > command_limit,
        default_branch=_default_branch(payload),
    )


def _classify_pull_request(payload: dict[str, Any], action: str) -> PullRequestIntent:
    labels = _optional(payload, "pull_request.labels", list, [])
    return PullRequestIntent(
        **_where(payload),
        action=action,
        pr_number=_field(payload, "pull_request.number", int),
        head_sha=_field(payload, "pull_request.head.sha", str),
        head_ref=_field(payload, "pull_request.head.ref", str),
        base_branch=_field(payload, "pull_request.base.ref", str),
        author=_optional(payload, "pull_request.user.login", str, ""),
        labels=tuple(
            _typed(label.get("name"), str, "pull_request.labels[].name")
            for label in labels
            if isinstance(label, dict) and label.get("name") is not None
        ),
        private=_optional(payload, "repository.private", bool, False),
        default_branch=_default_branch(payload),
    )


def _classify_check_run(payload: dict[str, Any], action: str) -> CheckRunIntent | None:
    name = _optional(payload, "check_run.name", str, "")
    if not name.startswith("instruct-lab-bot/"):
        return None  # another app's check run
    pulls = _optional(payload, "check_run.pull_requests", list, [])
    return CheckRunIntent(
        **_where(payload),
        action=action,
        check_run_id=_field(payload, "check_run.id", int),
        external_id=_optional(payload, "check_run.external_id", str, ""),
        name=name,
        identifier=_optional(payload, "requested_action.identifier", str, ""),
        head_sha=_optional(payload, "check_run.head_sha", str, ""),
        pr_numbers=tuple(
            p["number"] for p in pulls if isinstance(p, dict) and _is_int(p.get("number"))
        ),
        default_branch=_default_branch(payload),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
