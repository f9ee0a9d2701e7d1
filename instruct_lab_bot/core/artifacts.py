"""Artifacts, the pure part: where they go (the artifacts URL), what a safe object key is,
content types, the job's index page, and signed links for the local store."""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

# S3's limit on the full object key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024


_CONTENT_TYPES = {
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    # text/yaml rather than application/yaml so browsers show the file instead of downloading it.
    ".yaml": "text/yaml; charset=utf-8",
    ".yml": "text/yaml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".gz": "application/gzip",
}


INLINE_TYPES = ("text/", "application/json")


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


EXPIRES_RE = re.compile(r"[0-9]{1,12}")


_SIGNATURE_CONTEXT = b"instruct-lab-bot artifact link v1\n"


@dataclass(frozen=True)
class ArtifactsLocation:
    """Parsed ``ILAB_BOT_ARTIFACTS_URL``: an S3 bucket+prefix, or a local folder."""

    scheme: Literal["s3", "file"]
    bucket: str = ""
    prefix: str = ""
    root: Path | None = None


def parse_artifacts_url(url: str) -> ArtifactsLocation:
    """Parse ``s3://bucket[/prefix]`` or ``file:///abs/dir`` / ``file://./relative/dir``.

    A relative file path stays relative here (this function is pure); ``open_store`` and
    ``artifact_routes`` anchor it to the working directory.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("s3", "file"):
        shown = parts.scheme or "nothing"
        raise ValueError(f"artifacts URL must start with s3:// or file://, not {shown!r}")
    if parts.query or parts.fragment:
        raise ValueError("artifacts URL must not have a query or fragment")
    if "@" in parts.netloc:
        raise ValueError("artifacts URL must not contain credentials; use AWS_* variables")
    if parts.scheme == "s3":
        return _parse_s3(parts.netloc, parts.path)
    return _parse_file(parts.netloc, parts.path)


def _parse_s3(bucket: str, path: str) -> ArtifactsLocation:
    if not bucket:
        raise ValueError("artifacts URL s3:// needs a bucket, e.g. s3://my-bucket/prefix")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
    prefix = path.strip("/")
    if prefix:
        try:
            validate_key(prefix)
        except ValueError as exc:
            raise ValueError(f"invalid prefix in artifacts URL: {exc}") from None
    return ArtifactsLocation(scheme="s3", bucket=bucket, prefix=prefix)


def _parse_file(host: str, path: str) -> ArtifactsLocation:
    # file:///abs and file://localhost/abs are absolute; file://./x and file://../x are relative.
    if host in ("", "localhost"):
        text = unquote(path)
    elif host in (".", ".."):
        text = host + unquote(path)
    else:
        raise ValueError(
            f"ambiguous file URL host {host!r}: write file:///absolute/dir or file://./relative/dir"
        )
    if not text.strip("/"):
        raise ValueError("artifacts URL file:// needs a directory, e.g. file://./var/artifacts")
    if "\x00" in text:
        raise ValueError("artifacts directory must not contain NUL")
    return ArtifactsLocation(scheme="file", root=Path(text))


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object name, else raise ValueError.

    The same key names a file under the local root, a URL path and an S3 object, so it must
    be harmless in all three: relative, ``/``-separated, no dot segments, no control characters.
    """
    if not key:
        raise ValueError("artifact key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError("artifact key is too long")
    if key.startswith("/"):
        raise ValueError(f"artifact key must be relative: {key!r}")
    if "\\" in key:
        raise ValueError(f"artifact key must not contain a backslash: {key!r}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise ValueError(f"artifact key must not contain control characters: {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"artifact key has an empty or dot segment: {key!r}")
    return key


def guess_content_type(name: str) -> str:
    """Content type from the file name, choosing types browsers display rather than download."""
    suffix = PurePosixPath(name).suffix.lower()
    return _CONTENT_TYPES.get(suffix, "application/octet-stream")


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def render_index_html(
    title: str, entries: list[tuple[str, str, int]], views: Mapping[str, str] | None = None
) -> str:
    """A small index page for one job's files: ``(name, href, size)`` rows, all escaped, with
    a `view` link where ``views`` has one for the name (the bot's jsonl/yaml viewer).

    File names come from generated output, so nothing is trusted; hrefs must be http(s) or
    relative (the served CSP blocks scripts as a second line of defence).
    """
    rows = []
    for name, href, size in entries:
        view = (views or {}).get(name, "")
        for link in (href, view):
            if urlsplit(link).scheme not in ("", "http", "https"):
                raise ValueError(f"refusing a non-http link in the index: {link!r}")
        viewer = f' · <a href="{html.escape(view)}">view</a>' if view else ""
        rows.append(
            f'<tr><td><a href="{html.escape(href)}">{html.escape(name)}</a>{viewer}</td>'
            f'<td title="{size} bytes">{html.escape(_human_size(size))}</td></tr>'
        )
    safe_title = html.escape(title)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{safe_title}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}"
        "td,th{padding:.2em 1em;text-align:left}td+td{text-align:right}</style>"
        f"</head><body><h1>{safe_title}</h1>"
        "<table><thead><tr><th>File</th><th>Size</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>\n"
    )


def sign_artifact(key: str, expires: int, signing_key: bytes) -> str:
    """Hex HMAC-SHA256 binding a key to its expiry time (unix seconds)."""
    message = _SIGNATURE_CONTEXT + f"{key}\n{expires}".encode()
    return hmac.new(signing_key, message, hashlib.sha256).hexdigest()


def verify_artifact(key: str, expires: int, sig: str, signing_key: bytes, now: float) -> bool:
    """True if ``sig`` was made by ``sign_artifact`` for this key and has not expired."""
    if now > expires:
        return False
    expected = sign_artifact(key, expires, signing_key).encode()
    return hmac.compare_digest(expected, sig.encode("utf-8", "surrogateescape"))


_STABLE_CONTEXT = b"instruct-lab-bot stable job link v1\n"


def sign_stable(job_id: str, name: str, signing_key: bytes) -> str:
    """Hex HMAC-SHA256 binding a job and one of its file names, without expiry: the bot's
    stable link (`/jobs/<id>/files/<name>`) re-signs a short-lived storage link on each visit,
    and the signature keeps other jobs' files (job ids are on the status page) out of reach."""
    message = _STABLE_CONTEXT + f"{job_id}\n{name}".encode()
    return hmac.new(signing_key, message, hashlib.sha256).hexdigest()


def verify_stable(job_id: str, name: str, sig: str, signing_key: bytes) -> bool:
    expected = sign_stable(job_id, name, signing_key).encode()
    return hmac.compare_digest(expected, sig.encode("utf-8", "surrogateescape"))


def stable_link(public_url: str, job_id: str, name: str, sig: str, *, view: bool = False) -> str:
    """`<public_url>/jobs/<id>/files/<name>?sig=…` (or `/view/` for the browser viewer)."""
    kind = "view" if view else "files"
    return f"{public_url.rstrip('/')}/jobs/{job_id}/{kind}/{quote(name)}?sig={sig}"


def viewable(name: str) -> bool:
    """Files the browser viewer shows: JSON lines and YAML."""
    return name.endswith((".jsonl", ".yaml", ".yml"))
