"""`ilab model train` output → what the train check run shows (pure): epoch, step of total,
loss, throughput, ETA, whether the loss went NaN, and a bounded loss history for the curve.

Reads the line shapes of ../shared/ilab/CLI.md §6.4: instructlab-training's
`Epoch: 0, Step: 3, Rank: 0, loss = 1.23`, 0.26's `full` pipeline `Epoch: 0, Step: 3, Loss per
batch: …, Actual Loss Per Batch = 1.23, …`, the HF Trainer dicts of the `simple`/legacy path
(`{'loss': 1.2, …, 'epoch': 0.5}`), `NUM EPOCHS IS: 2`, and the tqdm `Epoch 0: 12%|…| 3/25
[00:10<01:20,  2.5it/s]` bars. Each line is matched anchored with bounded repetition, so a flood
costs linear time; the history keeps at most `MAX_POINTS` points (halved when full).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from instruct_lab_bot.core.progress import ANSI

MAX_POINTS = 1000
_MAX_LINE = 4096
_NUMBER = r"(?:[-+]?(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(?:[eE][-+]?\d{1,4})?|nan|NaN|inf)"
_STEP = re.compile(
    r".{0,200}?Epoch:? (?P<epoch>\d{1,9}), Step: (?P<step>\d{1,12}),"
    r"(?:.{0,200}?Actual Loss Per Batch = (?:tensor\()?(?P<actual>" + _NUMBER + r")"
    r"|.{0,200}?loss = (?:tensor\()?(?P<loss>" + _NUMBER + r"))?"
)
_HF = re.compile(
    r"\{'loss': (?P<loss>" + _NUMBER + r").{0,400}?'epoch': (?P<epoch>" + _NUMBER + r")"
)
_EPOCHS = re.compile(r".{0,60}NUM EPOCHS IS:\s*(?P<n>\d{1,6})")
_BAR = re.compile(
    r"(?:Epoch (?P<epoch>\d{1,9}):)?[^|]{0,40}\d{1,3}%\|[^|]{0,200}\|\s{0,10}"
    r"(?P<n>\d{1,12})/(?P<total>\d{1,12})\s{0,10}\[[\d:]{1,20}<(?P<eta>[\d:?]{1,20})"
    r"(?:,\s{0,10}(?P<rate>\d{1,12}(?:\.\d{1,6})?)(?P<unit>it/s|s/it))?"
)


@dataclass
class TrainStatus:
    """The newest training facts seen, and the loss history (step → loss)."""

    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    throughput: float | None = None  # steps (batches) per second, from the progress bar
    eta_seconds: float | None = None
    saw_nan: bool = False
    history: list[tuple[int, float]] = field(default_factory=list)
    _stride: int = 1
    _seen: int = 0

    def feed(self, line: str) -> None:
        """Read one output line (redacted already); other lines change nothing."""
        text = ANSI.sub("", line[:_MAX_LINE])
        if "Step:" in text and (match := _STEP.match(text)):
            self.epoch = int(match["epoch"])
            self.step = int(match["step"])
            self._loss(match["actual"] or match["loss"])
        elif "'loss'" in text and (match := _HF.search(text)):
            self.epoch = int(float(match["epoch"])) if _finite(match["epoch"]) else self.epoch
            self.step = (self.step or 0) + 1
            self._loss(match["loss"])
        elif "%|" in text and (match := _BAR.search(text)):
            self._bar(match)
        elif "NUM EPOCHS" in text and (match := _EPOCHS.match(text)):
            self.epochs = int(match["n"])

    def _bar(self, match: re.Match[str]) -> None:
        if match["epoch"] is not None:
            self.epoch = int(match["epoch"])
        self.total_steps = int(match["total"])
        self.eta_seconds = _clock(match["eta"])
        if match["rate"]:
            rate = float(match["rate"])
            self.throughput = rate if match["unit"] == "it/s" else (1 / rate if rate else None)

    def _loss(self, text: str | None) -> None:
        if text is None:
            return
        value = float(text)
        if not math.isfinite(value):
            self.saw_nan = True
            return
        self.loss = value
        self._seen += 1
        if self._seen % self._stride:
            return
        self.history.append((self.step if self.step is not None else self._seen, value))
        if len(self.history) >= MAX_POINTS:
            self.history = self.history[::2]
            self._stride *= 2


def _finite(text: str) -> bool:
    return math.isfinite(float(text))


def _clock(text: str) -> float | None:
    """`01:20` / `1:02:03` → seconds; None for tqdm's `?`."""
    if "?" in text:
        return None
    seconds = 0.0
    for part in text.split(":"):
        if not part:
            return None
        seconds = seconds * 60 + int(part)
    return seconds
