"""The one redactor: every text that leaves the process (logs, comments, check runs, the
status page, uploaded logs) passes through it, so a secret or a token that a tool echoed is
`***` wherever it would have shown."""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

_TOKENISH = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9_]{20,}"  # GitHub tokens: installation, personal, OAuth, ...
    r"|github_pat_[A-Za-z0-9_]{20,}"  # fine-grained personal access tokens
    r"|v1\.[0-9a-f]{40}"  # legacy installation tokens
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"  # JWTs (the App's own)
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids (long-lived and temporary)
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face tokens
    r"|sk-(?:proj-)?[A-Za-z0-9_-]{20,})"  # OpenAI-style API keys
)


# A value given to a secret-looking name: `aws_secret_access_key = …`, `password: …`,
# `"api_key": "…"`, `REDIS_PASSWORD=…`. The name stays, the value goes. It starts at the
# keyword itself (no open-ended prefix), so it stays linear on long lines.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)((?:secret(?:_access)?_key|password|passwd|api[_-]?key|secret|"
    r"access[_-]?token|private[_-]?key)[\"']?\s{0,3}[=:]\s{0,3}[\"']?)"
    r"(?!\*\*\*)[^\s\"',;}]{4,}"
)


_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


# The whole userinfo of a URL: `user:password@`, `:password@` (Redis) and a bare `token@`.
_URL_CREDENTIALS = re.compile(r"(?<=://)(?:[^/\s:@]+(?::[^/\s@]*)?|:[^/\s@]+)@")


_AUTH_HEADER = re.compile(r"(?i)(authorization\W{1,4}(?:bearer|token|basic)\s+)[^\s\"',;]+")


# Literals each pattern needs: a text without any of them cannot match it.
#: Grouped under a shorter literal each needs (a scan per group, not per token kind).
_TOKEN_STARTS = (
    (b"gh", (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_")),
    (b"IA", (b"AKIA", b"ASIA")),
    *((start, (start,)) for start in (b"github_pat_", b"v1.", b"eyJ", b"hf_", b"sk-")),
)
_ASSIGNMENT_WORDS = (b"secret", b"passw", b"api", b"access", b"private")
#: The letters outside ASCII that re's (?i) matches to a letter of the words above (checked
#: over the Basic Multilingual Plane by the tests): long s, dotless i, dotted capital I.
ODD_LETTERS = {"ſ": "s", "ı": "i", "İ": "i"}
_ODD_LEADS = (b"\xc4", b"\xc5")  # their first UTF-8 byte: one memchr each finds them absent


def _folded(text: str, raw: bytes) -> bytes:
    """`raw` (`text` encoded) with its letters lowered as (?i) would match them to ASCII ones:
    ASCII lowering of the bytes, after mapping the few other letters that match."""
    if not any(lead in raw for lead in _ODD_LEADS):
        return raw.lower()
    odd = [letter for letter in ODD_LETTERS if letter in text]
    for letter in odd:
        text = text.replace(letter, ODD_LETTERS[letter])
    return (encode(text) if odd else raw).lower()


def encode(text: str) -> bytes:
    """UTF-8; a character that has none (a lone surrogate) becomes `?`, as in a log file."""
    return text.encode("utf-8", errors="replace")


_MIN_SECRET = 4  # shorter "secrets" would blank out ordinary words


_MIN_SECRET_LINE = 16  # one line of a multi-line secret (a PEM body line) counts on its own


class Redactor:
    """A processor that replaces known secret values, token-shaped strings (GitHub, JWT, AWS
    access key ids, Hugging Face, OpenAI-style keys), PEM keys, URL credentials, Authorization
    header values and values given to secret-looking names (`password=`, `api_key:`) with `***`.

    It looks into nested dicts, lists and tuples, exceptions, and the `repr` of other objects
    (what the renderers would print), so a token cannot slip out inside a structure.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found: set[str] = set()
        for secret in secrets:
            if len(secret) >= _MIN_SECRET:
                found.add(secret)
            found.update(
                line.strip()
                for line in secret.splitlines()
                if len(line.strip()) >= _MIN_SECRET_LINE and "-----" not in line
            )
        self.secrets = tuple(sorted(found, key=len, reverse=True))  # longest first

    def redact(self, text: str) -> str:
        return self.redact_encoded(text)[0]

    def redact_encoded(self, text: str) -> tuple[str, bytes]:
        """`text` redacted, and encoded as `encode` does (the output pump writes those bytes:
        nothing redacted, nothing is encoded twice).

        Each pattern runs only where the literal it cannot match without is present
        (searches in bytes are ~100 × faster than these regexes' scans; issue 17: ilab's
        output is redacted a 256 KiB chunk at a time)."""
        original = text
        raw = encode(text)
        folded = _folded(text, raw)  # substitutions below add no letters: it stays valid
        for secret in self.secrets:
            text = text.replace(secret, "***")
        if b"-----BEGIN " in raw:
            text = _PEM.sub("***", text)
        if b"://" in raw:
            text = _URL_CREDENTIALS.sub("***@", text)
        if b"authorization" in folded:
            text = _AUTH_HEADER.sub(r"\1***", text)
        if any(word in folded for word in _ASSIGNMENT_WORDS):
            text = _SECRET_ASSIGNMENT.sub(r"\1***", text)
        if any(group in raw and any(s in raw for s in starts) for group, starts in _TOKEN_STARTS):
            text = _TOKENISH.sub("***", text)
        return text, raw if text is original or text == original else encode(text)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        if isinstance(value, BaseException):
            return self.redact(repr(value))
        shown = repr(value)
        redacted = self.redact(shown)
        return value if redacted == shown else redacted

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            event[key] = self.value(value)
        return event
