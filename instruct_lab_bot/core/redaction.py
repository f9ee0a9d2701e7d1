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
_TOKEN_STARTS = (
    *("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "v1."),
    *("eyJ", "AKIA", "ASIA", "hf_", "sk-"),
)
_ASSIGNMENT_WORDS = ("secret", "passw", "api", "access", "private")


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
        """Each pattern runs only where the literal it cannot match without is present
        (`str` searches are ~100 × faster than these regexes' scans; issue 17: ilab's output
        is redacted a 256 KiB chunk at a time)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        if "-----BEGIN " in text:
            text = _PEM.sub("***", text)
        if "://" in text:
            text = _URL_CREDENTIALS.sub("***@", text)
        # What (?i) matches: casefold also maps ſ → s and the Kelvin sign → k; re's (?i) also
        # lets the dotless ı match i (checked over all of Unicode by the tests).
        folded = text.casefold().replace("ı", "i")
        if "authorization" in folded:
            text = _AUTH_HEADER.sub(r"\1***", text)
        if any(word in folded for word in _ASSIGNMENT_WORDS):
            text = _SECRET_ASSIGNMENT.sub(r"\1***", text)
        if any(start in text for start in _TOKEN_STARTS):
            text = _TOKENISH.sub("***", text)
        return text

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
