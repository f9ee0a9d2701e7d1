"""`ilab` output → progress (pure).

`ilab data generate` reports progress two ways: tqdm bars (redrawn with `\\r`, one bar per
pipeline block, e.g. `Map (num_proc=8):  40%|████      | 2/5 [00:03<00:04,  1.50s/it]`) and
log lines (`INFO 2024-07-30 19:57:44,987 instructlab.sdg.generate_data:242: message`). The
tracker keeps only what a check run shows: the current stage, percent, ETA and a bounded tail
of the log, so memory stays flat however much the subprocess prints.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

# A bar is found by its `%|` marks (str.find), not by a regex search over the whole line: for
# each mark the digits before it are read backwards and the rest is matched anchored right
# after it. Each character is looked at a bounded number of times (a mark's digit run ends at
# the mark, and the `[^|]*` of one mark stops at the next `|`), so a line costs linear time
# however it is built (a search starting with `\d+` was quadratic on a long run of digits).
_BAR_REST = re.compile(
    r"\|[^|]*\|[ \t]{0,40}"
    r"(?P<n>\d{1,15}(?:\.\d{1,6})?[kMG]?)/(?P<total>\d{1,15}(?:\.\d{1,6})?[kMG]?|\?)"
    r"(?:[ \t]{0,40}\[(?P<elapsed>[\d:]{1,20})(?:<(?P<eta>[\d:?]{1,20}))?[^\]]{0,200}\])?"
)
_MAX_PCT_DIGITS = 3
_RATE = re.compile(r"(\d+(?:\.\d+)?)(it/s|s/it)")
_BLOCK = "Running block: "
_SEVERE = ("ERROR", "CRITICAL")
_LOG = re.compile(
    r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+"
    r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?\s+(?P<logger>[^\s:]+)(?::\d+)?:?\s+"
    r"(?P<message>.*)$"
)
#: Bars of the `datasets` library's housekeeping between SDG's blocks (a second each): shown
#: in the tail, never as the stage a reviewer reads ("Creating json from Arrow format" is
#: not what the job is doing).
_HOUSEKEEPING = re.compile(
    r"(Map|Filter|Creating json from Arrow format|Flattening the indices|Casting to class labels"
    r"|Casting the dataset|Saving the dataset|Generating \w+ split|Loading dataset shards)"
    r"( \(num_proc=\d+\))?( \(\d+/\d+ shards\))?"
)
_DISCARDED = re.compile(r"\b(\d{1,9}) (?:\w+ )?(?:were )?discarded\b", re.IGNORECASE)
_FAILED = re.compile(
    r"(?:failed to generate data with exception|failed with the following error|failed with"
    r"|Error):\s*(?P<error>.+)$",
    re.IGNORECASE,
)
#: Colour and cursor codes (0.26 prints its red error text with raw ANSI codes).
ANSI = re.compile(r"\x1b\[[0-9;?]{0,40}[ -/]{0,5}[@-~]|\x1b[@-_]")


def error_in(line: str) -> str:
    """ilab's own failure text in `line`, or "": also when it follows a progress bar that
    tqdm left on the same line (`Map: 100%|██| 5/5 [00:01<00:00]failed to generate ...`)."""
    if "ailed" not in line and "rror" not in line:
        return ""
    failed = _FAILED.search(ANSI.sub("", line))
    return failed.group("error").strip()[:2000] if failed else ""


@dataclass(frozen=True)
class Bar:
    """One tqdm redraw."""

    description: str
    percent: int
    done: str
    total: str
    elapsed: str | None
    eta: str | None


@dataclass(frozen=True)
class LogLine:
    level: str
    logger: str
    message: str


def parse_bar(line: str) -> Bar | None:
    """The first tqdm bar in `line`, or None; linear in the length of the line."""
    mark = line.find("%|")
    while mark != -1:
        start = mark
        while start > 0 and "0" <= line[start - 1] <= "9":
            start -= 1
        match = _BAR_REST.match(line, mark + 1) if start < mark else None
        if match:
            return _bar(line, start, mark, match)
        mark = line.find("%|", mark + 2)
    return None


def bar_rate(line: str) -> float | None:
    """The rate of a bar `parse_bar` found in `line` (`2.00it/s`, or `1.50s/it` when slower)
    in iterations per second; None when not shown yet. Apart from `Bar`: train asks for it,
    generate's chunked path (`Progress.feed_lines`) never pays for it."""
    found = _RATE.search(line, max(line.find("%|"), 0))
    if found is None or (value := float(found.group(1))) <= 0:
        return None
    return value if found.group(2) == "it/s" else 1 / value


def _bar(line: str, start: int, mark: int, match: re.Match[str]) -> Bar:
    digits = line[start:mark]
    eta = match.group("eta")
    return Bar(
        description=line[:start].strip().rstrip(":").strip()[-200:],
        percent=100 if len(digits) > _MAX_PCT_DIGITS else min(100, int(digits)),
        done=match.group("n"),
        total=match.group("total"),
        elapsed=match.group("elapsed"),
        eta=None if eta in (None, "?") else eta,
    )


def _bar_key(line: str) -> str | None:
    """The text before the percent of the bar at `line`'s first `%|`, or None when there is no
    bar there: two lines with the same key have the same bar description."""
    mark = line.find("%|")
    start = mark
    while start > 0 and "0" <= line[start - 1] <= "9":
        start -= 1
    if start == mark or _BAR_REST.match(line, mark + 1) is None:
        return None
    return line[:start]


@dataclass
class _Wanted:
    """The fields `Progress.feed_lines` still looks for, scanning a chunk backwards."""

    bar: bool
    counter: bool
    stage: bool
    message: bool
    error: bool
    discarded: bool

    def any(self) -> bool:
        return (
            self.bar or self.counter or self.stage or self.message or self.error or (self.discarded)
        )

    def relevant(self, line: str) -> bool:
        """Whether `line` can set a field still wanted (cheap tests before any parse)."""
        if "%|" in line and (self.bar or self.counter or self.stage):
            return True
        return (
            (self.message and line.startswith(("INFO", "WARNING")))
            or (self.error and ("ailed" in line or "rror" in line or line.startswith(_SEVERE)))
            or (self.discarded and "iscarded" in line)
            or (self.stage and _BLOCK in line)
        )


def parse_log(line: str) -> LogLine | None:
    match = _LOG.match(line)
    if not match:
        return None
    return LogLine(match.group("level"), match.group("logger"), match.group("message").strip())


@dataclass
class Progress:
    """What the check run shows while the job runs."""

    tail_lines: int = 200
    stage: str = "Starting"
    percent: int | None = None
    eta: str | None = None
    counter: str | None = None
    last_message: str = ""
    error: str = ""
    discarded: int | None = None
    lines_seen: int = 0
    tail: deque[str] = field(default_factory=deque)
    _last_bar: Bar | None = field(default=None, repr=False)
    _last_line: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.tail = deque(self.tail, maxlen=max(self.tail_lines, 0))

    def feed(self, line: str) -> None:
        """Take one output line (already split on `\\n` and `\\r`)."""
        self.lines_seen += 1
        bar = parse_bar(line)
        if bar is not None and (error := error_in(line)):
            self.error = error
        if bar is not None:
            if not _HOUSEKEEPING.fullmatch(bar.description):
                if bar.description:
                    self.stage = bar.description
                self.percent, self.eta = bar.percent, bar.eta
                self.counter = f"{bar.done}/{bar.total}"
            self._replace_bar_in_tail(line, bar)
            return
        self._append(line)
        if "iscarded" in line:
            # "N instructions generated, 2 discarded due to format, 1 ... rouge score"
            discarded = _DISCARDED.findall(line)
            if discarded:
                self.discarded = sum(int(n) for n in discarded)
        log = parse_log(line) if line[:1] in "DIWEC" else None
        if log is None:
            if error := error_in(line):  # ilab's own failure line is printed plainly
                self.error = error
            return
        if log.level in ("ERROR", "CRITICAL"):
            failed = _FAILED.search(log.message)
            self.error = (failed.group("error") if failed else log.message)[:2000]
        elif log.level in ("INFO", "WARNING") and log.message:
            self.last_message = log.message[:500]
            if log.message.startswith(_BLOCK):  # SDG's step (0.18 draws no bar)
                self.stage = self.last_message

    def feed_lines(self, lines: list[str], encoded: bytes | None = None) -> None:
        """`feed` each of `lines`, a chunk at a time (issue 17: the output pump's path), with
        exactly the same result. Every field is what its last setter in the chunk made it, so
        they are found scanning backwards (`_fields`); the tail is built only from the last
        lines that fill it (`_tail_start`), and of a bar redrawn line after line only what
        tells its frames apart is looked at (`_fill_tail`). `encoded`: `lines` joined by `\\n` in
        UTF-8, when the caller has it (what is looked for is ASCII: bytes are searched faster)."""
        start = self._tail_start(lines)
        self._fill_tail(lines, start)
        if encoded is None:
            encoded = "\n".join(lines).encode(errors="replace")
        self._fields(lines, encoded)
        self.lines_seen += len(lines)

    def _tail_start(self, lines: list[str]) -> int:
        """Where the lines that decide the tail begin: enough lines without a bar mark (one
        entry each, whatever came before them) to fill it."""
        plain = 0
        for index in range(len(lines) - 1, -1, -1):
            if "%|" not in lines[index]:
                plain += 1
                if plain >= self.tail_lines:
                    return index
        return 0

    def _fill_tail(self, lines: list[str], start: int) -> None:
        """The tail as `feed` leaves it: a bar's redraw replaces its previous frame when that
        frame is the tail's last entry and the bar's description is the same."""
        tail = self.tail
        if not tail.maxlen:
            return
        same = self._last_bar is not None and bool(tail) and tail[-1] is self._last_line
        previous: Bar | str | None = self._last_bar if same and start == 0 else None
        for line in lines[start:] if start else lines:
            if "%|" not in line:
                tail.append(line)
                previous = None
            elif previous is None:
                tail.append(line)
                previous = line  # parsed only if a redraw follows it
            else:
                previous = self._redraw(line, previous)

    def _redraw(self, line: str, previous: Bar | str) -> Bar | str | None:
        """Put `line` (a bar mark right after a possible bar) into the tail; what it is."""
        key = _bar_key(line) if isinstance(previous, str) else None
        if (
            key is not None and isinstance(previous, str) and key == _bar_key(previous)
        ):  # same text before the percent
            self.tail[-1] = line  # so the same description
            return line
        bar = parse_bar(line)
        if bar is None:
            self.tail.append(line)
            return None
        before = parse_bar(previous) if isinstance(previous, str) else previous
        if before is not None and before.description == bar.description:
            self.tail[-1] = line
        else:
            self.tail.append(line)
        return bar

    def _fields(self, lines: list[str], encoded: bytes) -> None:
        """Set each field from its last setter in `lines`, scanning backwards; a field whose
        marker text is nowhere in the chunk (`encoded`) is not looked for."""
        marks = b"%|" in encoded
        wanted = _Wanted(
            bar=marks,
            counter=marks,
            stage=marks or b"Running block: " in encoded,
            message=b"INFO" in encoded or b"WARNING" in encoded,
            error=any(needle in encoded for needle in (b"ailed", b"rror", b"ERROR", b"CRITICAL")),
            discarded=b"iscarded" in encoded,
        )
        for line in reversed(lines):
            if not wanted.any():
                return
            if not wanted.relevant(line):
                continue
            bar = parse_bar(line) if "%|" in line else None
            if bar is not None:
                self._bar_fields(line, bar, wanted)
            else:
                self._line_fields(line, wanted)

    def _bar_fields(self, line: str, bar: Bar, wanted: _Wanted) -> None:
        if wanted.error and (error := error_in(line)):
            self.error, wanted.error = error, False
        if not _HOUSEKEEPING.fullmatch(bar.description):
            if wanted.counter:
                self.percent, self.eta = bar.percent, bar.eta
                self.counter, wanted.counter = f"{bar.done}/{bar.total}", False
            if wanted.stage and bar.description:
                self.stage, wanted.stage = bar.description, False
        if wanted.bar:
            self._last_bar, self._last_line, wanted.bar = bar, line, False

    def _line_fields(self, line: str, wanted: _Wanted) -> None:
        if wanted.discarded and "iscarded" in line and (found := _DISCARDED.findall(line)):
            self.discarded, wanted.discarded = sum(int(n) for n in found), False
        log = parse_log(line) if line[:1] in "DIWEC" else None
        if log is None:
            if wanted.error and (error := error_in(line)):
                self.error, wanted.error = error, False
            return
        if log.level in ("ERROR", "CRITICAL"):
            if wanted.error:
                failed = _FAILED.search(log.message)
                self.error = (failed.group("error") if failed else log.message)[:2000]
                wanted.error = False
        elif log.level in ("INFO", "WARNING") and log.message:
            if wanted.message:
                self.last_message, wanted.message = log.message[:500], False
            if wanted.stage and log.message.startswith(_BLOCK):
                self.stage, wanted.stage = log.message[:500], False

    def _append(self, line: str) -> None:
        self.tail.append(line)  # a deque of at most `tail_lines` (`__post_init__`)

    def _replace_bar_in_tail(self, line: str, bar: Bar) -> None:
        """A redraw replaces the previous frame of the same bar, as a terminal would show."""
        same_bar = self._last_bar is not None and self._last_bar.description == bar.description
        if same_bar and self.tail and self.tail[-1] is self._last_line:
            self.tail[-1] = line
            self._last_bar, self._last_line = bar, line
            return
        self._append(line)
        self._last_bar, self._last_line = bar, line

    def last_lines(self, count: int) -> list[str]:
        return list(self.tail)[-count:]
