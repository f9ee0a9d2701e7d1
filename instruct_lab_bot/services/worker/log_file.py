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

__all__ = ["CappedLog", "cut_notice"]


def cut_notice(lines: int, size: int, limit: int) -> str:
    return (
        f"[instruct-lab-bot: {lines} lines ({size} bytes) of ilab output cut here; the log "
        f"keeps its start and its end within ILAB_BOT_LOG_LIMIT={limit} bytes]"
    )


def _open(path: Path) -> IO[str]:
    return path.open("w", encoding="utf-8", errors="replace")


@dataclass
class _Segment:
    path: Path
    out: IO[str]
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
        size = len(line.encode("utf-8", errors="replace")) + 1
        if size <= self._head_left and not self._segments:
            self._file.write(line + "\n")
            self._head_left -= size
            return
        segment = self._current()
        segment.out.write(line + "\n")
        segment.lines += 1
        segment.size += size

    def write_lines(self, lines: list[str]) -> None:
        """`write_line` for each of `lines`, in one write when they fit where they go (the
        head, or a tail segment with room): the output pump's path, a chunk at a time."""
        text = "\n".join(lines) + "\n"
        size = len(text.encode("utf-8", errors="replace"))
        if size <= self._head_left and not self._segments:
            self._file.write(text)
            self._head_left -= size
            return
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.size + size > self.limit // 4:
            for line in lines:  # crosses a boundary: line by line, as write_line cuts
                self.write_line(line)
            return
        segment.out.write(text)
        segment.lines += len(lines)
        segment.size += size

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
                self._file.write(cut_notice(self.cut_lines, self.cut_bytes, self.limit) + "\n")
            for segment in self._segments:
                segment.out.close()
                with segment.path.open(encoding="utf-8", errors="replace") as tail:
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
