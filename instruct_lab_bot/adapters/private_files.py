"""Files that hold secrets (`.env`, the App's key): created 0600, never readable by others.

The file is opened with `O_CREAT | O_EXCL` and mode 0600, so there is no moment at which it
exists with wider permissions (a `write_text` then `chmod` would leave one). Replacing one
(`force`) writes a new 0600 file beside it and renames it over the old, so a reader sees the
old or the new content, never half of either.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MODE = 0o600


class FileExists(Exception):
    """The target exists and overwriting was not asked for."""


def write_private(path: Path, text: str, *, force: bool = False) -> None:
    """Write `text` to `path` with mode 0600; refuse an existing file unless `force`."""
    if path.exists() or path.is_symlink():
        if not force:
            raise FileExists(f"{path} exists (use --force to replace it)")
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        _create(temp, text)
        try:
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return
    _create(path, text)


def _create(path: Path, text: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, MODE)
    try:
        os.fchmod(fd, MODE)  # the umask can only narrow the mode; say it exactly anyway
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)
        raise
