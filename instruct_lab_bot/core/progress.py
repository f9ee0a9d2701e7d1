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
_BLOCK = "Running block: "
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

    def feed_lines(self, lines: list[str]) -> None:
        """`feed` each of `lines`, cheaper (the output pump's path, a chunk at a time): a plain
        line only joins the tail, and of a run of INFO/WARNING log lines (no bar, error,
        discard count or SDG block in them) only the last with a message is parsed, the only
        one that decides `last_message`, all such a line can change besides the tail."""
        pending: list[str] = []
        for line in lines:
            quiet = not ("%|" in line or "ailed" in line or "rror" in line or "iscarded" in line)
            if quiet and line[:1] not in "DIWEC":
                self.lines_seen += 1
                self._append(line)
            elif quiet and line.startswith(("INFO", "WARNING")) and _BLOCK not in line:
                self.lines_seen += 1
                self._append(line)
                pending.append(line)
            else:
                self._settle(pending)
                self.feed(line)
        self._settle(pending)

    def _settle(self, pending: list[str]) -> None:
        for line in reversed(pending):
            log = parse_log(line)
            if log is not None and log.message:
                self.last_message = log.message[:500]
                break
        pending.clear()

    def _append(self, line: str) -> None:
        self.tail.append(line)
        while len(self.tail) > self.tail_lines:
            self.tail.popleft()

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
