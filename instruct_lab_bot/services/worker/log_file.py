"""`ilab.log`: every output line, redacted, within a size cap that keeps the head and the tail.

`ilab` may print without end (97 MB were seen). The file keeps the first half of the cap as
written; later lines go to tail segments beside it (each a quarter of the cap, at most two
kept, the older dropped when a third starts), so memory stays flat and the last quarter to
half of the output survives. `close` writes a line that says how much was cut and why, then
the kept tail. What is kept is what helps: how the run started and how it ended.
"""

from __future__ import annotations

import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from instruct_lab_bot.core.redaction import encode as encoded

__all__ = ["CappedLog", "cut_notice"]


def cut_notice(lines: int, size: int, limit: int) -> str:
    return (
        f"[instruct-lab-bot: {lines} lines ({size} bytes) of ilab output cut here; the log "
        f"keeps its start and its end within ILAB_BOT_LOG_LIMIT={limit} bytes]"
    )


def _open(path: Path) -> IO[bytes]:
    return path.open("wb")  # `redaction.encode`d, once (by the redactor on the pump's path)


@dataclass
class _Segment:
    path: Path
    out: IO[bytes]
    lines: int = 0
    size: int = 0


class CappedLog:
    """A text log of at most about `limit` bytes (plus one notice line) at `path`."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._file = _open(path)
        self._head_left = limit // 2
        self._segments: deque[_Segment] = deque()
        self._made = 0
        self.cut_lines = 0
        self.cut_bytes = 0

    def write_line(self, line: str) -> None:
        self._write(encoded(line + "\n"), 1)

    def write_lines(self, lines: list[str], data: bytes | None = None) -> None:
        """`write_line` for each of `lines`, in one write when they all go to one place (the
        head, or a tail segment with room): the output pump's path, a chunk at a time.
        `data`, when given, is `lines` joined by `\\n` and `encoded` (the caller has it)."""
        if not lines:
            return
        block = encoded("\n".join(lines)) if data is None else data
        if self._fits(len(block) + 1, lines[-1]):
            self._write(block + b"\n", len(lines))
            return
        for line in lines:  # crosses a boundary: line by line, as write_line cuts
            self.write_line(line)

    def _fits(self, size: int, last: str) -> bool:
        """Whether a block of `size` bytes ending with `last` goes to one place line by line:
        the head if it all fits there, else the open segment if it has room before `last`."""
        if not self._segments:
            return size <= self._head_left
        room = self.limit // 4 - self._segments[-1].size
        return size - len(encoded(last)) - 1 < room

    def _write(self, data: bytes, lines: int) -> None:
        if len(data) <= self._head_left and not self._segments:
            self._file.write(data)
            self._head_left -= len(data)
            return
        segment = self._current()
        segment.out.write(data)
        segment.lines += lines
        segment.size += len(data)

    def _current(self) -> _Segment:
        if self._segments and self._segments[-1].size < self.limit // 4:
            return self._segments[-1]
        if self._segments:
            self._segments[-1].out.close()
        if len(self._segments) == 2:
            dropped = self._segments.popleft()
            dropped.path.unlink(missing_ok=True)
            self.cut_lines += dropped.lines
            self.cut_bytes += dropped.size
        path = self.path.with_name(f"{self.path.name}.tail{self._made}")
        self._made += 1
        self._segments.append(_Segment(path, _open(path)))
        return self._segments[-1]

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self.cut_lines:
                notice = cut_notice(self.cut_lines, self.cut_bytes, self.limit)
                self._file.write(encoded(notice + "\n"))
            for segment in self._segments:
                segment.out.close()
                with segment.path.open("rb") as tail:
                    shutil.copyfileobj(tail, self._file)
        finally:
            for segment in self._segments:
                segment.out.close()
                segment.path.unlink(missing_ok=True)
            self._segments.clear()
            self._file.close()

    def __enter__(self) -> CappedLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
