"""core.train_progress on the lines each `ilab model train` path prints: a recorded real 0.26.1
`--pipeline simple` run (tests/fixtures/ilab_train/, rewritten by `make test-real-ilab`), the
training library's and the full pipeline's formats (CLI.md §6.4), failures, NaN and floods."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

from instruct_lab_bot.core.train_progress import TrainTracker, parse_train_line

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ilab_train"
G, Y, OFF = "\033[92m", "\033[93m", "\033[0m"


def lines_of(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text)


def feed(tracker: TrainTracker, text: str) -> TrainTracker:
    for line in lines_of(text):
        tracker.feed(line)
    return tracker


def test_real_0_26_simple_run() -> None:
    text = (FIXTURES / "real-0.26.1-simple.log").read_bytes().decode()
    tracker = TrainTracker(epochs=2, pipeline="simple")
    seen_steps: list[int] = []
    stages: list[str] = []
    for line in lines_of(text):
        tracker.feed(line)
        progress = tracker.progress
        if progress.step is not None and (not seen_steps or seen_steps[-1] != progress.step):
            seen_steps.append(progress.step)
        if not stages or stages[-1] != progress.stage:
            stages.append(progress.stage)
    final = tracker.progress
    assert final.completed and not final.error
    assert final.step == final.total_steps == 12  # 6 samples x 2 epochs, batch size 1
    assert seen_steps == sorted(seen_steps) and len(seen_steps) > 3  # the bar, step by step
    assert final.epoch == 2 and final.epochs == 2
    assert final.loss is not None and final.loss > 0
    assert final.samples_per_second is not None and final.samples_per_second > 0
    assert "Training" in stages and "Merging adapters" in stages and stages[-1] == "Finished"
    assert [p.step for p in tracker.loss_curve()] == [12]  # logging_steps=500: the final loss


def test_the_bars_last_frames_count_after_the_next_stage_line() -> None:
    """The bar is on stderr and the stage lines on stdout: merged, the bar's last frames can
    come after the line that ends training (seen on a real run in CI)."""
    lines = lines_of((FIXTURES / "real-0.26.1-simple.log").read_bytes().decode())
    last_frames = [line for line in lines if "| 12/12 [" in line]
    rest = [line for line in lines if "| 12/12 [" not in line]
    stage_end = next(i for i, line in enumerate(rest) if "train_loss" in line)
    late = rest[: stage_end + 1] + last_frames + rest[stage_end + 1 :]
    tracker = TrainTracker(epochs=2, pipeline="simple")
    for line in late:
        tracker.feed(line)
    assert last_frames and tracker.progress.step == tracker.progress.total_steps == 12


def test_training_library_lines_0_18() -> None:
    """instructlab-training 0.4 (ilab 0.18): ANSI-coloured, a scaled-loss line, a JSON block
    per step with `loss` and throughput, then the failure that still exits 0."""
    out = [f"{G}Running command: torchrun --nnodes=1 … main_ds.py{OFF}"]
    out.append(f"{Y}Number of samples per save: 240{OFF}")
    for step in (1, 2, 3):
        out.append(f"Epoch 0:  {step * 20}%|██        | {step}/5 [00:0{step}<00:04,  1.50s/it]")
        out.append(f"{Y}Per-token loss scaled by world size: tensor(0.5, device='cuda:0'){OFF}")
        out.append(
            f"Epoch: 0, Step: {step}, Rank: 0, loss = tensor({3 - step / 2}, device='cuda:0')"
        )
        block = ["{", '    "epoch": 0,', f'    "step": {step},', '    "loss": 1.0,']
        block += ['    "overall_throughput": 42.5,', '    "timestamp": "2024-08-01T00:00:00"', "}"]
        out += [G + block[0], *block[1:-1], block[-1] + OFF]
    out.append(f"{Y}Saving model in huggingface format at samples_seen: 240{OFF}")
    out.append(f"{Y}Model saved in /job/checkpoints/hf_format/samples_240{OFF}")
    tracker = TrainTracker(epochs=2, pipeline="accelerated")
    for line in out:
        tracker.feed(line)
    progress = tracker.progress
    assert (progress.epoch, progress.epochs, progress.step, progress.total_steps) == (1, 2, 3, 10)
    assert progress.loss == 1.5 and progress.samples_per_second == 42.5
    assert progress.last_saved == "/job/checkpoints/hf_format/samples_240"
    assert progress.eta_seconds == round(7 * 1.5, 1)  # 7 steps left at 1.5 s/step
    assert [(p.step, p.loss) for p in tracker.loss_curve()] == [(1, 2.5), (2, 2.0), (3, 1.5)]
    tracker.feed(f"\033[91mOperation failed, terminating process.{OFF}")
    assert tracker.progress.error == "Operation failed, terminating process."
    assert not tracker.progress.completed


def test_full_pipeline_counts_steps_per_epoch() -> None:
    text = "\n".join(
        [
            "INFO 2025-06-30 10:00:00,000 instructlab.model.full_train:140: avg_sample_len: 211.5",
            " effective_batch_size: 64",
            "  num_batches: 4",
            "INFO 2025-06-30 10:00:01,000 instructlab.model.full_train:338: ",
            "Epoch: 1, Step: 2, Loss per batch: 0.0004, Actual Loss Per Batch = tensor(1.75), "
            "accumulated loss: 3.5",
            "INFO 2025-06-30 10:00:02,000 instructlab.model.full_train:382: Saving Model to: "
            "/job/checkpoints/hf_format/samples_8",
            "ᕦ(òᴗóˇ)ᕤ Full model training completed successfully! ᕦ(òᴗóˇ)ᕤ",
        ]
    )
    tracker = feed(TrainTracker(epochs=3, pipeline="full"), text)
    progress = tracker.progress
    assert (progress.step, progress.total_steps, progress.epoch) == (6, 12, 2)
    assert progress.loss == 1.75 and progress.completed
    assert progress.last_saved == "/job/checkpoints/hf_format/samples_8"


def test_nan_loss_is_flagged_and_left_out_of_the_curve() -> None:
    tracker = TrainTracker(epochs=1)
    tracker.feed("Epoch: 0, Step: 1, Rank: 0, loss = tensor(2.5, device='cuda:0')")
    tracker.feed("Epoch: 0, Step: 2, Rank: 0, loss = tensor(nan, device='cuda:0', grad_fn=<M>)")
    progress = tracker.progress
    assert progress.saw_nan and progress.loss is not None and math.isnan(progress.loss)
    assert [p.step for p in tracker.loss_curve()] == [1]


def test_failures_each_release_prints() -> None:
    for line, error in [
        (
            "Accelerated Training failed with Suffered a failure during distributed training.",
            "Accelerated Training failed with Suffered a failure during distributed training.",
        ),
        (
            "\033[31mUnable to train with device=cpu and pipeline=accelerated\033[0m",
            "Unable to train with device=cpu and pipeline=accelerated",
        ),
        ("Error: Data path must be to a valid .jsonl file. Value given: /d", None),
    ]:
        event = parse_train_line(line)
        assert event is not None and event.error == (error or line)


def test_a_flood_keeps_memory_bounded_and_the_curve_spread() -> None:
    tracker = TrainTracker(epochs=1, max_points=100)
    for step in range(1, 100_001):
        tracker.feed(f"Epoch: 0, Step: {step}, Rank: 0, loss = {1 / step}")
    curve = tracker.loss_curve()
    assert len(curve) <= 100
    assert curve[0].step == 1 and curve[-1].step > 99_000
    gaps = {b.step - a.step for a, b in itertools.pairwise(curve)}
    assert len(gaps) == 1  # evenly spread
    assert tracker.progress.step == 100_000 and tracker.lines_seen == 100_000


def test_hostile_lines_are_read_or_ignored() -> None:
    tracker = TrainTracker()
    for line in ["9" * 1_000_000, "{" * 10, "Epoch: " + "1" * 100_000, "{", *(["x"] * 100)]:
        tracker.feed(line)
    tracker.feed("Epoch: 0, Step: 1, Rank: 0, loss = 0.5")  # an unclosed block was dropped
    assert tracker.progress.step == 1 and tracker.progress.loss == 0.5
