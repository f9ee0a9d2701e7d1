"""`ilab model train` output → training progress and the loss curve (pure).

Each code path prints its own lines (../shared/ilab/CLI.md §6.4, and a recorded real 0.26.1
run in tests/fixtures/ilab_train/):

- instructlab-training (ilab 0.18's default path, 0.26's `accelerated`):
  `Epoch: 0, Step: 3, Rank: 0, loss = tensor(1.2345, device='cuda:0', grad_fn=…)`, an indented
  JSON block per step (`total_loss`, `overall_throughput` in samples/s, `samples_seen`), tqdm
  `Epoch 0: 40%|…| 2/5 [..]`, `Model saved in <dir>`, `Operation completed successfully!` or
  `Operation failed, terminating process.` (0.18: exit 0 all the same);
- 0.26's `full` pipeline: a log line ending in `: ` then `Epoch: 0, Step: 1, Loss per batch: …,
  Actual Loss Per Batch = tensor(2.1), accumulated loss: …` (step counted per epoch),
  ` num_batches: N` in its summary block, `Saving Model to: <dir>`;
- the `simple` pipeline (HF Trainer + LoRA): `LINUX_TRAIN.PY: <STAGE>` prints, one tqdm bar
  without a description over all epochs' steps, `{'loss': …, 'epoch': …}` dicts every
  logging_steps and a final `{'train_runtime': …, 'train_samples_per_second': …,
  'train_loss': …}`.

`TrainTracker.feed(line)` takes lines already split on `\\n` and `\\r` (as for generate), in
linear time; memory stays bounded however much is printed (the loss history is downsampled
to at most `max_points`). `parse_train_line` reads one line on its own.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace

from instruct_lab_bot.core.progress import ANSI, bar_rate, parse_bar, parse_log

__all__ = [
    "LossPoint",
    "TrainEvent",
    "TrainProgress",
    "TrainTracker",
    "parse_train_line",
]

_NUMBER = r"([-+]?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))"
_LIBRARY_STEP = re.compile(
    r"^Epoch: (\d{1,6}), Step: (\d{1,12}), Rank: \d{1,6}, loss = (?:tensor\()?" + _NUMBER
)
_FULL_STEP = re.compile(
    r"^Epoch: (\d{1,6}), Step: (\d{1,12}), Loss per batch: [^,]{0,60}, "
    r"Actual Loss Per Batch = (?:tensor\()?" + _NUMBER
)
_DICT_LOSS = re.compile(r"'(loss|train_loss)': " + _NUMBER)
_DICT_EPOCH = re.compile(r"'epoch': " + _NUMBER)
_DICT_RATE = re.compile(r"'train_samples_per_second': " + _NUMBER)
_NUM_EPOCHS = re.compile(r"^LINUX_TRAIN\.PY: NUM EPOCHS IS:\s+(\d{1,6})")
_NUM_BATCHES = re.compile(r"^\s*num_batches: (\d{1,12})\s*$")
_STAGE = re.compile(r"^LINUX_TRAIN\.PY: ([A-Z][A-Za-z0-9 -]{0,60})$")
_SAVED = re.compile(r"^(?:Model saved in|Saving Model to:|Model state saved in:) (\S.{0,500})$")
_FAILURES = (
    "Accelerated Training failed with ",
    "Operation failed, terminating process.",
    "Unable to train with ",
    "Error: ",
    "failed to locate model",
)
_DONE = ("Operation completed successfully!", "training completed successfully!")
MAX_JSON_LINES = 60  # a metric block is ~16 lines; longer "blocks" are not metrics


@dataclass(frozen=True)
class TrainEvent:
    """What one line said (None fields: not said)."""

    epoch: int | None = None  # 0-based, as printed
    step: int | None = None  # global step (per epoch for 0.26's full pipeline: `epoch_step`)
    epoch_step: int | None = None
    loss: float | None = None
    samples_per_second: float | None = None
    stage: str | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    saved: str | None = None
    error: str | None = None
    done: bool = False


@dataclass(frozen=True)
class LossPoint:
    step: int
    loss: float


@dataclass(frozen=True)
class TrainProgress:
    """What the check run shows. `epoch` is 1-based (the epoch in progress), `step` the
    global step; totals are None until known. `loss` may be NaN (then `saw_nan`)."""

    stage: str = "Starting"
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    samples_per_second: float | None = None
    eta_seconds: float | None = None
    saw_nan: bool = False
    last_saved: str | None = None
    error: str = ""
    completed: bool = False

    @property
    def percent(self) -> int | None:
        if self.step is None or not self.total_steps:
            return None
        return max(0, min(100, self.step * 100 // self.total_steps))


def _float(text: str) -> float:
    return float(text)


def _library_line(line: str) -> TrainEvent | None:
    if found := _LIBRARY_STEP.match(line):
        epoch, step, loss = found.groups()
        return TrainEvent(epoch=int(epoch), step=int(step), loss=_float(loss))
    if found := _FULL_STEP.match(line):
        epoch, step, loss = found.groups()
        return TrainEvent(epoch=int(epoch), epoch_step=int(step), loss=_float(loss))
    return None


def _trainer_dict(line: str) -> TrainEvent | None:
    """The HF Trainer's `{'loss': …, 'epoch': …}` and final `{'train_runtime': …}` lines."""
    loss = _DICT_LOSS.search(line)
    if loss is None:
        return None
    rate = _DICT_RATE.search(line)
    epoch = _DICT_EPOCH.search(line)
    return TrainEvent(
        loss=_float(loss.group(2)),
        samples_per_second=_float(rate.group(1)) if rate else None,
        stage="Training finished" if loss.group(1) == "train_loss" else None,
        epoch=int(float(epoch.group(1))) if epoch and loss.group(1) == "loss" else None,
    )


def _message_line(line: str) -> TrainEvent | None:
    if found := _NUM_EPOCHS.match(line):
        return TrainEvent(epochs=int(found.group(1)))
    if found := _STAGE.match(line):
        return TrainEvent(stage=found.group(1).strip().capitalize())
    if found := _NUM_BATCHES.match(line):
        return TrainEvent(steps_per_epoch=int(found.group(1)))
    if found := _SAVED.match(line):
        return TrainEvent(saved=found.group(1).strip(), stage="Saving a checkpoint")
    if any(marker in line for marker in _DONE):
        return TrainEvent(done=True, stage="Finished")
    for prefix in _FAILURES:
        at = line.find(prefix)
        if at != -1 and (at == 0 or prefix.startswith(("Accelerated", "Operation"))):
            return TrainEvent(error=line[at:].strip()[:2000])
    return None


def parse_train_line(line: str) -> TrainEvent | None:
    """One output line of `ilab model train` (any release, any pipeline), or None."""
    text = ANSI.sub("", line).strip() if "\x1b" in line else line.strip()
    if not text or len(text) > 20000:
        return None
    if text[:1] in "DIWEC" and (log := parse_log(text)) is not None:
        text = log.message  # `INFO <date> <logger>:<line>: message` (0.26's full pipeline)
    if text.startswith("Epoch: "):
        return _library_line(text)
    if text.startswith("{'"):
        return _trainer_dict(text)
    return _message_line(text)


@dataclass
class TrainTracker:
    """Folds `ilab model train` output into a TrainProgress and a bounded loss history.

    `epochs` (from the job's settings) and `pipeline` (`simple` counts the description-less
    bar drawn while training as the step counter) help where the output does not say."""

    epochs: int | None = None
    pipeline: str | None = None
    max_points: int = 500
    lines_seen: int = 0
    _progress: TrainProgress = field(default_factory=TrainProgress)
    _points: list[LossPoint] = field(default_factory=list)
    _stride: int = 1
    _since_kept: int = 0
    _steps_per_epoch: int | None = None
    _json: list[str] | None = None
    _steps_per_second: float | None = None

    @property
    def progress(self) -> TrainProgress:
        return replace(self._progress, eta_seconds=self._eta(), epochs=self._epochs())

    def loss_curve(self) -> list[LossPoint]:
        """(step, loss) points, oldest first, at most `max_points` (NaN losses left out)."""
        return list(self._points)

    def feed(self, line: str) -> None:
        """Take one output line (split on `\\n` and `\\r`)."""
        self.lines_seen += 1
        if self._json is not None or (line.rstrip().endswith("{") and len(line) < 20):
            self._metric_block(line)
            return
        if "%|" in line:
            self._bar(line)
            return
        event = parse_train_line(line)
        if event is not None:
            self._apply(event)

    def _epochs(self) -> int | None:
        return self._progress.epochs or self.epochs

    def _metric_block(self, line: str) -> None:
        """Collect an indented JSON block (one per step) and read what it holds."""
        text = ANSI.sub("", line)
        if self._json is None:
            self._json = []
        self._json.append(text)
        if text.strip() != "}" and len(self._json) < MAX_JSON_LINES:
            return
        block, self._json = "".join(self._json), None
        try:
            record = json.loads(block)
        except ValueError:
            return
        if isinstance(record, dict):
            self._metrics(record)

    def _metrics(self, record: dict[str, object]) -> None:
        """The step's JSON block: the throughput (samples/s); its loss is the step line's."""
        rate = record.get("overall_throughput")
        if isinstance(rate, int | float) and not isinstance(rate, bool):
            self._progress = replace(self._progress, samples_per_second=float(rate))

    def _bar(self, line: str) -> None:
        bar = parse_bar(line)
        if bar is None:
            return
        rate = bar_rate(line)
        if bar.description.startswith("Epoch ") and bar.total.isdigit():
            self._steps_per_epoch = int(bar.total)
            epoch = bar.description[6:].strip()
            if epoch.isdigit():
                self._progress = replace(self._progress, epoch=int(epoch) + 1)
            self._set_rate(rate)
        elif not bar.description and bar.total.isdigit() and self._counts_steps(bar.total):
            done = int(bar.done) if bar.done.isdigit() else 0  # simple: one bar, all epochs
            total, epochs = int(bar.total), self._epochs()
            progress = replace(self._progress, step=done, total_steps=total)
            if epochs and total >= epochs:
                progress = replace(progress, epoch=min(epochs, done * epochs // total + 1))
            self._progress = progress
            self._set_rate(rate)

    def _counts_steps(self, total: str) -> bool:
        """The simple pipeline's training bar has no description: count it once training
        started (before, the same kind of bar counts the base model's sanity check), and its
        last frames after the next stage's line too: the bar is on stderr, the stages on
        stdout, and how the two interleave is up to the scheduler."""
        if self.pipeline not in (None, "simple"):
            return False
        known = self._progress.total_steps
        return self._progress.stage == "Training" or (known is not None and str(known) == total)

    def _set_rate(self, rate: float | None) -> None:
        if rate is not None:
            self._steps_per_second = rate

    def _apply(self, event: TrainEvent) -> None:
        progress = self._progress
        if event.steps_per_epoch is not None:
            self._steps_per_epoch = event.steps_per_epoch
        if event.epochs is not None:
            progress = replace(progress, epochs=event.epochs)
        if event.stage is not None:
            progress = replace(progress, stage=event.stage)
        if event.saved is not None:
            progress = replace(progress, last_saved=event.saved[:500])
        if event.error is not None:
            progress = replace(progress, error=event.error)
        if event.done:
            progress = replace(progress, completed=True)
        if event.samples_per_second is not None:
            progress = replace(progress, samples_per_second=event.samples_per_second)
        self._progress = progress
        if event.loss is not None:
            self._step_loss(event)

    def _step_loss(self, event: TrainEvent) -> None:
        assert event.loss is not None
        step = event.step
        if step is None and event.epoch_step is not None:
            per_epoch = self._steps_per_epoch or 0
            step = (event.epoch or 0) * per_epoch + event.epoch_step
        if step is None:  # a Trainer dict: its loss at the bar's current step
            step = self._progress.step or 0
        progress = replace(self._progress, step=step, loss=event.loss)
        if event.epoch is not None:
            progress = replace(progress, epoch=event.epoch + 1)
        if self._steps_per_epoch and self._epochs() and self.pipeline != "simple":
            progress = replace(progress, total_steps=self._steps_per_epoch * (self._epochs() or 0))
        if event.stage is None and progress.stage in ("Starting", "Saving a checkpoint"):
            progress = replace(progress, stage="Training")
        self._progress = progress
        self._record_loss(step, event.loss)

    def _record_loss(self, step: int, loss: float) -> None:
        if math.isnan(loss) or math.isinf(loss):
            self._progress = replace(self._progress, saw_nan=True, loss=loss)
            return
        self._progress = replace(self._progress, loss=loss)
        if self._points and self._points[-1].step == step:
            self._points[-1] = LossPoint(step, loss)
            return
        self._since_kept += 1
        if self._since_kept < self._stride:
            return
        self._since_kept = 0
        self._points.append(LossPoint(step, loss))
        if len(self._points) > self.max_points:
            self._points = self._points[::2]  # halve, and keep every other point from now on
            self._stride *= 2

    def _eta(self) -> float | None:
        progress = self._progress
        if progress.completed:
            return 0.0
        if progress.step is None or not progress.total_steps or not self._steps_per_second:
            return None
        left = max(progress.total_steps - progress.step, 0)
        return round(left / self._steps_per_second, 1)
