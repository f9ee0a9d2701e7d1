"""The line splitter reads a whole chunk at once (issue 17) and gives exactly the lines the
line-at-a-time reference gives, however the bytes are cut into chunks."""

from __future__ import annotations

import random
import re

import pytest

from instruct_lab_bot.core.line_splitter import LineSplitter

_EOL = re.compile(rb"\r\n|\r|\n")


class Reference:
    """The splitter before issue 17: a regex match, a buffer append and a decode per line."""

    def __init__(self, max_line: int) -> None:
        self.max = max_line
        self.buf = bytearray()
        self.skip_lf = False

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        pos = 1 if self.skip_lf and data[:1] == b"\n" else 0
        self.skip_lf = False
        for match in _EOL.finditer(data, pos):
            self.append(data[pos : match.start()], out)
            if self.buf or match.group() != b"\r":
                out.append(self.buf.decode("utf-8", errors="replace"))
            self.buf.clear()
            pos = match.end()
            self.skip_lf = match.group() == b"\r" and pos == len(data)
        self.append(data[pos:], out)
        return out

    def close(self) -> list[str]:
        out = [self.buf.decode("utf-8", errors="replace")] if self.buf else []
        self.buf.clear()
        return out

    def append(self, segment: bytes, out: list[str]) -> None:
        self.buf += segment
        while len(self.buf) > self.max:
            cut = self.max
            for back in range(4):
                if self.buf[self.max - back] & 0xC0 != 0x80:
                    cut = self.max - back
                    break
            out.append(self.buf[:cut].decode("utf-8", errors="replace"))
            del self.buf[:cut]


ATOMS = [b"\n", b"\r", b"\r\n", b"a", b"xyz", "é".encode(), "█".encode(), b"\xff", b"\xe2\x96"]


def _stream(chooser: random.Random) -> bytes:
    return b"".join(chooser.choice(ATOMS) for _ in range(chooser.randint(0, 120)))


def _chunks(data: bytes, chooser: random.Random) -> list[bytes]:
    cuts = sorted(chooser.sample(range(1, len(data)), min(len(data) - 1, 6))) if data else []
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("max_line", [4, 5, 8, 16, 64, 16 * 1024])
def test_chunked_split_equals_the_line_at_a_time_reference(max_line: int) -> None:
    chooser = random.Random(max_line)
    for _ in range(1500):
        data = _stream(chooser)
        ours, reference = LineSplitter(max_line), Reference(max_line)
        got, want = [], []
        for chunk in _chunks(data, chooser):
            got += ours.feed(chunk)
            want += reference.feed(chunk)
            assert got == want, (data, chunk)
        assert got + ours.close() == want + reference.close(), data


def test_a_long_line_in_a_big_chunk_is_cut_as_the_reference_cuts_it() -> None:
    data = b"INFO start\n" + "é".encode() * 20_000 + b"x" * 33_000 + b"\rbar\r\n\xff" * 3
    for size in (1, 7, 4096, 65536, len(data)):
        ours, reference = LineSplitter(16 * 1024), Reference(16 * 1024)
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        got = [line for chunk in chunks for line in ours.feed(chunk)] + ours.close()
        want = [line for chunk in chunks for line in reference.feed(chunk)] + reference.close()
        assert got == want
        assert max(len(line.encode()) for line in got) <= 16 * 1024
