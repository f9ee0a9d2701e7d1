"""A child's output bytes → text lines, a whole pipe read at a time (pure).

Issue 17 (output pumping): a chunk is decoded once and split with `str` methods, so the cost
per line is a few C-level operations, not a regex match, a buffer append and a decode each.
A chunk that holds a line that may need cutting takes the line-at-a-time path, which defines
the result: both give exactly the same lines (tests fuzz them against each other).
"""

from __future__ import annotations

import re

__all__ = ["LineSplitter"]

_EOL = re.compile(rb"\r\n|\r|\n")
_REPLACED = "\ufffd"


class LineSplitter:
    """Turn a byte stream into text lines with bounded memory.

    Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (tqdm redraws with ``\\r``). Empty lines
    ended by ``\\n`` are kept (they are real blank lines); an empty segment before a lone ``\\r``
    is dropped (it is a cursor move, not a line). A line longer than ``max_line`` bytes is cut
    into pieces at a UTF-8 character boundary, so at most ``max_line`` bytes are ever buffered.
    """

    def __init__(self, max_line: int) -> None:
        if max_line < 4:
            raise ValueError("max_line must be at least 4 bytes (one UTF-8 character)")
        self._max = max_line
        self._buf = bytearray()
        self._skip_lf = False  # the previous chunk ended with '\r': a leading '\n' belongs to it

    def feed(self, data: bytes) -> list[str]:
        start = 1 if self._skip_lf and data[:1] == b"\n" else 0
        end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        lines = self._whole(data, start, end) if end > start else None
        if lines is None:
            return self._feed_slow(data)
        self._skip_lf = data[end - 1] == 13 and end == len(data)  # 13: '\r'
        self._buf.clear()
        self._append(data[end:], lines)
        return lines

    def _whole(self, data: bytes, start: int, end: int) -> list[str] | None:
        """The lines ended in `data[start:end]` (it ends with a line end), or None when one of
        them might be longer than `max_line` bytes: the slow path cuts it."""
        at_start = not self._buf
        raw = bytes(self._buf) + data[start:end] if self._buf else data[start:end]
        lead = at_start and b"\r" in raw  # a sentinel line end: drops a lone '\r' there too
        if b"\r" in raw:  # normalized as bytes: half the work of UCS-2 text (tqdm's █)
            raw = _normalized(b"\n" + raw if lead else raw)
        lines = raw.decode(errors="replace").split("\n")
        del lines[-1]
        if lead:
            del lines[0]
        if lines and max(map(len, lines)) > self._max // 4 and not self._fits(lines):
            return None
        return lines

    def _fits(self, lines: list[str]) -> bool:
        """Whether each line is at most `max_line` bytes, as read (a line with a replaced
        byte is not known to: its re-encoding is not what was read)."""
        limit = self._max // 4
        for line in lines:
            if len(line) > limit and (_REPLACED in line or len(line.encode()) > self._max):
                return False
        return True

    def _feed_slow(self, data: bytes) -> list[str]:
        """A regex match per line end: the reference, for chunks with over-long lines."""
        out: list[str] = []
        pos = 0
        if self._skip_lf and data[:1] == b"\n":
            pos = 1
        self._skip_lf = False
        for match in _EOL.finditer(data, pos):
            self._append(data[pos : match.start()], out)
            if self._buf or match.group() != b"\r":
                out.append(_decode(self._buf))
            self._buf.clear()
            pos = match.end()
            self._skip_lf = match.group() == b"\r" and pos == len(data)
        self._append(data[pos:], out)
        return out

    def close(self) -> list[str]:
        """Flush the final line that had no terminator."""
        out = [_decode(self._buf)] if self._buf else []
        self._buf.clear()
        self._skip_lf = False
        return out

    def _append(self, segment: bytes, out: list[str]) -> None:
        self._buf += segment
        while len(self._buf) > self._max:
            cut = _utf8_cut(self._buf, self._max)
            out.append(_decode(self._buf[:cut]))
            del self._buf[:cut]


def _normalized(text: bytes) -> bytes:
    """`text` with every line ended by `\\n`, the empty segments before a lone `\\r` dropped
    (str replaces: a regex with a look-behind scanned at ~10 MB/s). Each `\\r\\n` is a pair
    (they cannot overlap), so once they are `\\n` every `\\r` left is a lone one: of a run of
    them all but the first end an empty segment, and so does one right after a `\\n`."""
    text = text.replace(b"\r\n", b"\n")
    while b"\r\r" in text:
        text = text.replace(b"\r\r", b"\r")
    return text.replace(b"\n\r", b"\n").replace(b"\r", b"\n")


def _decode(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", errors="replace")


def _utf8_cut(buf: bytearray, limit: int) -> int:
    """Largest cut <= limit that does not split a UTF-8 sequence (falls back to limit)."""
    for back in range(4):
        index = limit - back
        if buf[index] & 0xC0 != 0x80:  # not a continuation byte: a character starts here
            return index
    return limit
