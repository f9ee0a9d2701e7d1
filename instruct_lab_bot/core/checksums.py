"""`checksums.json` (pure): the size and sha256 of every file a job stored, written beside its
outputs so a later job (train on a generate job's data) verifies what it downloads."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

CHECKSUMS_NAME = "checksums.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


class ChecksumError(ValueError):
    """A checksums file that cannot be trusted, or a file that does not match it."""


@dataclass(frozen=True)
class Checksum:
    size: int
    sha256: str


def file_checksum(src: IO[bytes]) -> Checksum:
    """Size and sha256 of an open file, read in chunks (call it in a thread)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return Checksum(size, digest.hexdigest())


def render_checksums(files: Mapping[str, Checksum], **facts: int | str) -> str:
    """The checksums file; `facts` are stored beside the file list (e.g. a checkpoint's
    epoch) and read back with `checksum_facts`."""
    data = {name: {"size": c.size, "sha256": c.sha256} for name, c in sorted(files.items())}
    return json.dumps({"version": 1, **facts, "files": data}, indent=2) + "\n"


def checksum_facts(text: str | bytes) -> dict[str, int | str]:
    """The facts stored beside the files (only int and str values; others are dropped)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if k not in ("files", "version") and isinstance(v, int | str) and not isinstance(v, bool)
    }


def parse_checksums(text: str | bytes) -> dict[str, Checksum]:
    """The files listed; ChecksumError if the text is not a checksums file."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChecksumError(f"{CHECKSUMS_NAME} is not JSON: {exc}") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise ChecksumError(f"{CHECKSUMS_NAME} lists no files")
    found: dict[str, Checksum] = {}
    for name, entry in files.items():
        size = entry.get("size") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ChecksumError(f"{CHECKSUMS_NAME}: {name}: bad size")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ChecksumError(f"{CHECKSUMS_NAME}: {name}: bad sha256")
        found[str(name)] = Checksum(size, digest)
    return found


def verify(name: str, expected: Checksum | None, actual: Checksum) -> None:
    """ChecksumError unless `actual` is what the checksums file says of `name`."""
    if expected is None:
        raise ChecksumError(f"{name} is not listed in {CHECKSUMS_NAME}")
    if expected != actual:
        raise ChecksumError(
            f"{name} does not match its checksum (expected {expected.size} bytes, sha256 "
            f"{expected.sha256[:12]}…; got {actual.size} bytes, {actual.sha256[:12]}…)"
        )
